"""Training on optax: TrainState, the jitted steps, fit/evaluate/predict, History, callbacks."""
from .fit import Callback, History, Trainer, evaluate, fit, predict
from .state import TrainState
from .step import CompileCounter, make_eval_step, make_predict, make_train_step

__all__ = ["Callback", "CompileCounter", "History", "TrainState", "Trainer", "evaluate", "fit",
           "make_eval_step", "make_predict", "make_train_step", "predict"]
