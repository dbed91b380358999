"""``functorch_lite.keras``: a Keras-like front end, compiled by XLA, over the functional core.

    import functorch_lite.keras as keras        # in place of `import keras` / `tf.keras`

    model = keras.Sequential([keras.Input(shape=(28, 28, 1)),
                              keras.layers.Conv2D(32, 3, activation="relu"), ...])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    history = model.fit(x, y, batch_size=128, epochs=1, validation_split=0.1)

Every layer is a functional-core module (``layer.module``) and ``fit`` drives the same jitted
train step as :func:`functorch_lite.train.fit`.  Escape hatch: ``model.params`` /
``model.state`` are the pytrees and ``model.apply_fn`` the pure function.  Not available: the
recurrent layers (the core has none yet), freezing layers (``trainable=False``), multi-input or
multi-output ``fit``, full-model ``save`` (``save_weights`` / ``load_weights`` only; the file is
functorch_lite's .npz format whatever its suffix).
"""
from . import (activations, backend, callbacks, datasets, distribution, initializers, layers,
               losses, metrics, models, optimizers, utils)
from .layers import Input, InputLayer, Layer
from .models import Functional, Model, Sequential

__all__ = ["Input", "InputLayer", "Layer", "Model", "Sequential", "Functional", "activations",
           "backend", "callbacks", "datasets", "distribution", "initializers", "layers", "losses", "metrics",
           "models", "optimizers", "utils"]
