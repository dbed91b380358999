"""The Keras-like and torch-like training runs of the 2-process job (_mp_worker.py), shared
with test_multiprocess.py, which runs them in one process as the reference."""
import numpy as np  # noqa: F401


def keras_fit(x, y, distributed=True):
    """A Keras model trained 2 epochs (shuffled) under keras.distribution.DataParallel()."""
    import functorch_lite.keras as keras
    keras.utils.set_random_seed(0)
    m = keras.Sequential([keras.Input(shape=(6,)), keras.layers.Dense(16, activation="relu"),
                          keras.layers.Dense(3)])
    m.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    if distributed:
        keras.distribution.set_distribution(keras.distribution.DataParallel())
    try:
        m.fit(x, y, batch_size=32, epochs=2, verbose=0)
    finally:
        keras.distribution.set_distribution(None)
    return m.get_weights()


def torch_loop(wrap, batches):
    """A torch MLP (wrapped by ``wrap``) trained 2 epochs with SGD+momentum on ``batches``."""
    import functorch_lite.torch as torch
    import functorch_lite.torch.nn as nn
    import functorch_lite.torch.nn.functional as F
    torch.manual_seed(0)
    model = wrap(nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 3)))
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    for _ in range(2):
        for xb, yb in batches:
            opt.zero_grad()
            yb = torch.from_numpy(yb)
            if hasattr(model, "global_batch"):   # DDP: the local targets become the global ones
                yb = model.global_batch(yb)
            F.cross_entropy(model(torch.from_numpy(xb)), yb).backward()
            opt.step()
    return {k: v.numpy() for k, v in model.state_dict().items()}
