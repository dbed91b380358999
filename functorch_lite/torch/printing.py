"""How a tensor prints: ``tensor([1.0000, 2.5000], grad_fn=<MulBackward0>)``, as torch."""
from __future__ import annotations

import numpy as np

from . import dtypes as _dt


def format_tensor(t) -> str:
    v = np.asarray(t._value())
    d = t.dtype
    if v.dtype == np.bool_:
        body = np.array2string(v, separator=", ", prefix="tensor(")
    elif np.issubdtype(v.dtype, np.floating):
        finite = v[np.isfinite(v)]
        ints = finite.size and np.all(finite == np.round(finite)) and np.max(np.abs(finite)) < 1e8
        if ints or finite.size == 0:
            body = np.array2string(v, separator=", ", prefix="tensor(",
                                   formatter={"float_kind": lambda x: _int_float(x)})
        else:
            big = np.max(np.abs(finite)) >= 1e4 or np.min(np.abs(finite[finite != 0]), initial=1) < 1e-4
            body = np.array2string(v, separator=", ", prefix="tensor(", precision=4,
                                   floatmode="fixed" if not big else "maxprec",
                                   suppress_small=False)
    else:
        body = np.array2string(v, separator=", ", prefix="tensor(")
    extras = []
    if d not in (_dt.float32, _dt.int64, _dt.bool_):
        extras.append(f"dtype={d!r}")
    fn = t.grad_fn
    if fn is not None:
        extras.append(f"grad_fn=<{fn.name()}>")
    elif t.requires_grad:
        extras.append("requires_grad=True")
    return "tensor(" + body + "".join(", " + e for e in extras) + ")"


def _int_float(x):
    if not np.isfinite(x):
        return str(x).replace("inf", "inf").replace("nan", "nan")
    return f"{x:.0f}."
