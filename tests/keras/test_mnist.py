"""The Keras MNIST convnet script, with `import keras` replaced: one epoch on real MNIST."""
import numpy as np
import pytest

import functorch_lite.keras as keras
from functorch_lite.keras import layers


@pytest.mark.slow
def test_sequential_cnn_reaches_98_percent_on_mnist_in_one_epoch():
    keras.utils.set_random_seed(0)
    (x_train, y_train), (x_test, y_test) = keras.datasets.mnist.load_data()
    x_train = np.expand_dims(x_train.astype("float32") / 255, -1)
    x_test = np.expand_dims(x_test.astype("float32") / 255, -1)
    model = keras.Sequential([
        keras.Input(shape=(28, 28, 1)),
        layers.Conv2D(32, kernel_size=(3, 3), activation="relu"),
        layers.MaxPooling2D(pool_size=(2, 2)),
        layers.Conv2D(64, kernel_size=(3, 3), activation="relu"),
        layers.MaxPooling2D(pool_size=(2, 2)),
        layers.Flatten(),
        layers.Dense(128, activation="relu"),
        layers.Dense(10, activation="softmax"),
    ])
    model.compile(loss="sparse_categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
    history = model.fit(x_train, y_train, batch_size=32, epochs=1,
                        validation_data=(x_test[:1000], y_test[:1000]), verbose=0)
    loss, acc = model.evaluate(x_test, y_test, batch_size=500, verbose=0)
    assert sorted(history.history) == ["accuracy", "loss", "val_accuracy", "val_loss"]
    assert acc >= 0.98, f"test accuracy {acc:.4f} after one epoch"
    assert model._k.trainer.train_step.compiles.count <= 2
    print(f"MNIST one epoch: test accuracy {acc:.4f}, loss {loss:.4f}")
