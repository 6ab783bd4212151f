"""Reference results for elementwise ops: NumPy/SciPy, computed the way PyTensor does.

Inputs are converted to the op's compute dtype, the NumPy function applied, and the
result converted to the output dtype. Where PyTensor's semantics are not NumPy's, the
reference says so (``PYTENSOR_DIFFERS``) and follows PyTensor.
"""

from __future__ import annotations

import numpy as np
import scipy.special as sp

from aotkernels.kernels.scalar_ops import SCALAR_OPS, SCIPY_FUNCTIONS

NUMPY = {
    "add": np.add, "sub": np.subtract, "mul": np.multiply, "true_div": np.true_divide,
    "int_div": np.floor_divide, "mod": np.mod, "pow": np.power, "neg": np.negative,
    "abs": np.abs, "sign": np.sign, "sqr": np.square, "reciprocal": np.reciprocal,
    "maximum": np.maximum, "minimum": np.minimum,
    "exp": np.exp, "exp2": np.exp2, "expm1": np.expm1, "log": np.log, "log2": np.log2,
    "log10": np.log10, "log1p": np.log1p, "sqrt": np.sqrt, "sigmoid": sp.expit,
    "softplus": lambda x: np.logaddexp(np.zeros((), x.dtype), x),
    "sin": np.sin, "cos": np.cos, "tan": np.tan, "sinh": np.sinh, "cosh": np.cosh,
    "tanh": np.tanh, "arcsinh": np.arcsinh, "arctanh": np.arctanh,
    "arcsin": np.arcsin, "arccos": np.arccos, "arctan": np.arctan, "arccosh": np.arccosh,
    "arctan2": np.arctan2,
    "erf": sp.erf, "erfc": sp.erfc, "gamma": sp.gamma,
    "gammaln": lambda x: np.where(np.isneginf(x), np.inf, sp.gammaln(x)),  # C: lgamma(-inf)=+inf
    "tri_gamma": lambda x: sp.polygamma(1, x),
    "log1mexp": lambda x: np.where(x < np.log(0.5), np.log1p(-np.exp(x)), np.log(-np.expm1(x))),
    "xlogx": lambda x: np.where(x == 0, 0, x * np.log(x)),
    "xlogy0": lambda x, y: np.where(x == 0, 0, x * np.log(y)),
    # computed in double and rounded once, as the kernels do (SciPy's own float32 loops of
    # erfinv, betainc, ... differ by their error, up to ~1e-5 relative; README "Semantics")
    **{name: (lambda f: lambda *xs: f(*[x.astype(np.float64) for x in xs]))(getattr(sp, name))
       for name in SCIPY_FUNCTIONS},
    "floor": np.floor, "ceil": np.ceil, "round_half_to_even": np.round, "trunc": np.trunc,
    "round_half_away_from_zero": lambda x: np.where(x > 0, np.floor(x + np.asarray(0.5, x.dtype)),
                                                    np.ceil(x - np.asarray(0.5, x.dtype))),
    "deg2rad": np.deg2rad, "rad2deg": np.rad2deg,
    "lt": np.less, "le": np.less_equal, "gt": np.greater, "ge": np.greater_equal,
    "eq": np.equal, "neq": np.not_equal, "and": np.bitwise_and, "or": np.bitwise_or,
    "xor": np.bitwise_xor, "invert": np.invert, "isnan": np.isnan, "isinf": np.isinf,
    # PyTensor's Clip is "x < lo ? lo : x > hi ? hi : x"; np.clip differs when lo > hi.
    "clip": lambda x, lo, hi: np.where(x < lo, lo, np.where(x > hi, hi, x)),
    "switch": lambda c, x, y: np.where(c, x, y),
    "check": lambda c: c.copy(),  # where every element holds (test_check_raises: the rest)
    "identity": lambda x: x.copy(),
    "cast": lambda x: x,
}

#: Where PyTensor (and so aotkernels) and NumPy disagree; each is asserted in the tests.
PYTENSOR_DIFFERS = {
    "int_div": "integer division by zero raises ZeroDivisionError (NumPy returns 0)",
    "mod": "integer modulo by zero raises ZeroDivisionError (NumPy returns 0)",
    "exp": "exp(int8) is float32 (NumPy: float16)",
    "reciprocal": "reciprocal of integers is a float (NumPy: integer reciprocal)",
    "clip": "clip with lo > hi gives lo where x < lo (np.clip gives hi)",
}


def reference(op: str, *arrays: np.ndarray, out_dtype: str | None = None) -> np.ndarray:
    sop = SCALAR_OPS[op]
    out, compute = sop.types(tuple(a.dtype.name for a in arrays), out_dtype)
    args = [a if c is None else a.astype(c) for a, c in zip(arrays, compute)]
    with np.errstate(all="ignore"):
        res = np.asarray(NUMPY[op](*args))
        return res.astype(out)


def ran(fn, *args, **kwargs):
    """``(fn(*args, **kwargs), where it ran)``: "aot", "jit", "numpy" (see ``record.source``)."""
    from aotkernels import record

    with record.capture() as calls:
        res = fn(*args, **kwargs)
    return res, record.source(calls)
