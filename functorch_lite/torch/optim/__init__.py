"""``functorch_lite.torch.optim``: PyTorch's optimizers as one jitted update, fused into the
compiled training step; ``lr_scheduler`` changes hyper-parameters without recompiling."""
from . import lr_scheduler
from .optimizers import SGD, Adadelta, Adagrad, Adam, AdamW, Optimizer, RMSprop

__all__ = ["Adadelta", "Adagrad", "Adam", "AdamW", "Optimizer", "RMSprop", "SGD", "lr_scheduler"]
