"""``nn.RNN``, ``nn.LSTM``, ``nn.GRU`` over the core's ``SimpleRNN``/``LSTM``/``GRU`` (a
``lax.scan`` over time), with torch's parameter names (``weight_ih_l0``, ``bias_hh_l1_reverse``,
...), gate order and U(-1/sqrt(H), 1/sqrt(H)) initialisation."""
from __future__ import annotations

import math

import jax
import numpy as np

from ... import layers as L
from .. import random as _random
from . import functional as F
from .module import Module, ModuleShapeError, Parameter, module_label

__all__ = ["RNN", "LSTM", "GRU"]


class _RNNBase(Module):
    _core_cls = None
    _gates = 1

    def __init__(self, input_size, hidden_size, num_layers=1, bias=True, batch_first=False,
                 dropout=0.0, bidirectional=False, proj_size=0, device=None, dtype=None, **core_kw):
        super().__init__()
        if proj_size:
            raise NotImplementedError(f"{type(self).__name__}(proj_size={proj_size}) is not supported")
        if not 0 <= dropout <= 1 or isinstance(dropout, bool):
            raise ValueError("dropout should be a number in range [0, 1] representing the "
                             "probability of an element being zeroed")
        self.input_size, self.hidden_size, self.num_layers = input_size, hidden_size, num_layers
        self.bias, self.batch_first, self.dropout = bias, batch_first, float(dropout)
        self.bidirectional = bidirectional
        self.core = self._core_cls(hidden_size, num_layers=num_layers, bidirectional=bidirectional,
                                   batch_first=True, return_sequences=True, return_state=True,
                                   dropout=min(float(dropout), 0.999), use_bias=bias, **core_kw)
        rng = _random.host_rng()
        bound = 1.0 / math.sqrt(hidden_size)
        self._names = []
        for layer in range(num_layers):
            fan_in = input_size if layer == 0 else hidden_size * (2 if bidirectional else 1)
            for sfx in (f"l{layer}",) + ((f"l{layer}_reverse",) if bidirectional else ()):
                shapes = {"weight_ih": (self._gates * hidden_size, fan_in),
                          "weight_hh": (self._gates * hidden_size, hidden_size)}
                if bias:
                    shapes.update(bias_ih=(self._gates * hidden_size,),
                                  bias_hh=(self._gates * hidden_size,))
                for w, shape in shapes.items():
                    value = jax.device_put(rng.uniform(-bound, bound, shape).astype(np.float32))
                    setattr(self, f"{w}_{sfx}", Parameter(value))
                    self._names.append((f"{sfx}/{w}", f"{w}_{sfx}"))

    def _check(self, x, hx):
        if x.ndim not in (2, 3):
            raise ModuleShapeError(f"{module_label(self)}: input must have 2 dimensions (unbatched) or "
                                   f"3 dimensions (batched), got {x.ndim}")
        if x.shape[-1] != self.input_size:
            raise ModuleShapeError(f"{module_label(self)}: input.size(-1) must be equal to input_size. "
                                   f"Expected {self.input_size}, got {x.shape[-1]}")

    def forward(self, input, hx=None):  # noqa: A002
        self._check(input, hx)
        unbatched = input.ndim == 2
        x = input.unsqueeze(0 if self.batch_first else 1) if unbatched else input
        if not self.batch_first:
            x = x.transpose(0, 1)
        states = () if hx is None else (hx if isinstance(hx, tuple) else (hx,))
        if unbatched:
            states = tuple(s.unsqueeze(1) for s in states)
        d = 2 if self.bidirectional else 1
        want = (self.num_layers * d, x.shape[0], self.hidden_size)
        for s in states:
            if tuple(s.shape) != want:
                raise ModuleShapeError(f"{module_label(self)}: Expected hidden size {want}, got "
                                       f"{tuple(s.shape)}")
        params = {core: getattr(self, attr) for core, attr in self._names}
        use_key = self.training and self.dropout > 0 and self.num_layers > 1
        n_out = 1 + (2 if self._gates == 4 else 1)
        outs = F.core_call(self.core, x, params, train=self.training, multi=n_out, key=use_key,
                           extra=states)
        y, finals = outs[0], outs[1:]
        if not self.batch_first:
            y = y.transpose(0, 1)
        if unbatched:
            y = y.squeeze(0 if self.batch_first else 1)
            finals = tuple(f.squeeze(1) for f in finals)
        return y, (finals if self._gates == 4 else finals[0])

    def extra_repr(self):
        s = f"{self.input_size}, {self.hidden_size}"
        if self.num_layers != 1:
            s += f", num_layers={self.num_layers}"
        if not self.bias:
            s += ", bias=False"
        if self.batch_first:
            s += ", batch_first=True"
        if self.dropout:
            s += f", dropout={self.dropout}"
        if self.bidirectional:
            s += ", bidirectional=True"
        return s


class RNN(_RNNBase):
    _core_cls = L.SimpleRNN
    _gates = 1

    def __init__(self, input_size, hidden_size, num_layers=1, nonlinearity="tanh", bias=True,
                 batch_first=False, dropout=0.0, bidirectional=False, device=None, dtype=None):
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"Unknown nonlinearity '{nonlinearity}'. Select from 'tanh' or 'relu'.")
        super().__init__(input_size, hidden_size, num_layers, bias, batch_first, dropout,
                         bidirectional, activation=nonlinearity)
        self.nonlinearity = nonlinearity


class LSTM(_RNNBase):
    _core_cls = L.LSTM
    _gates = 4


class GRU(_RNNBase):
    _core_cls = L.GRU
    _gates = 3
