"""The scalar-op table: the one place that lists elementwise ops, their type rules and bodies.

Semantics follow PyTensor's scalar ops (``pytensor.scalar``), which differ from NumPy in a
few places (integer division by zero raises, ``true_div`` of integers gives float64,
``exp`` of int8 gives float32, ...); ``tests/test_type_rules.py`` checks every rule here
against PyTensor itself. Bodies are plain Python over scalars that numba compiles; this
module does not import numba, so the runtime can use the type rules without it.
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

FLOATS = ("float64", "float32")
INTS = ("int64", "int32", "int8", "uint8")
DTYPES = (*FLOATS, *INTS, "bool")

# PyTensor's ``upgrade_to_float``: small integers go to float32, wide ones to float64.
_TO_FLOAT = {"bool": "float32", "int8": "float32", "uint8": "float32", "int16": "float32",
             "uint16": "float32", "int32": "float64", "int64": "float64", "uint32": "float64",
             "uint64": "float64"}


def kind(dtype: str) -> str:
    """'f' float, 'i' integer (signed or not), 'b' bool: the key of ``ScalarOp.impls``."""
    return {"f": "f", "i": "i", "u": "i", "b": "b"}[np.dtype(dtype).kind]


def upcast(*dtypes: str) -> str:
    """PyTensor's ``upcast`` under the default cast policy: NumPy promotion of the dtypes."""
    return str(np.result_type(*dtypes))


# -- type rules: in dtypes -> (out dtype, compute dtype of each input or None = as is) --------

def _same(ins):  # result and computation in the common dtype
    out = upcast(*ins)
    return out, (out,) * len(ins)


def _nobool(ins):
    out, comp = _same(ins)
    if out == "bool":
        raise TypeError("bool operands are not supported")
    return out, comp


def _min8(ins):  # pow: bool ** bool is int8
    out = upcast(*ins)
    out = "int8" if out == "bool" else out
    return out, (out,) * len(ins)


def _float(ins):  # upgrade_to_float; integers are computed in float64 like PyTensor's C code
    out = upcast(*(_TO_FLOAT.get(d, d) for d in ins))
    comp = out if all(kind(d) == "f" for d in ins) else "float64"
    return out, (comp,) * len(ins)


def _float_as_out(ins):  # upgrade_to_float, computed in that float (deg2rad's perform)
    out, _ = _float(ins)
    return out, (out,) * len(ins)


def _true_div(ins):  # all-integer division gives floatX (float64), else the float upcast
    out = upcast(*ins)
    if kind(out) != "f":
        return "float64", ("float64",) * len(ins)
    return out, (out,) * len(ins)


def _float_only(ins):
    if kind(ins[0]) != "f":
        raise TypeError("only float operands are supported")
    return ins[0], (ins[0],)


def _compare(ins):
    return "bool", (upcast(*ins),) * len(ins)


def _predicate(ins):
    return "bool", (None,)


def _bitwise(ins):  # all bool (logical) or all integer (bitwise), never mixed
    kinds = {kind(d) for d in ins}
    if kinds not in ({"b"}, {"i"}):
        raise TypeError("bit operations take all-integer or all-bool operands")
    out = upcast(*ins)
    return out, (out,) * len(ins)


def _bool_only(ins):
    if ins[0] != "bool":
        raise TypeError("only bool operands are supported")
    return "bool", (None,)


def _switch(ins):  # a condition of any dtype is its truth value (the cast to bool)
    out = upcast(*ins[1:])
    return out, ("bool", out, out)


# -- bodies (numba nopython over scalars) -----------------------------------------------------

def _int_div_i(x, y):
    if y == 0:
        raise ZeroDivisionError("integer division by zero")
    if y == -1:  # INT_MIN // -1 traps in hardware; the wrapped result is -x
        return -x
    return x // y


def _mod_i(x, y):
    if y == 0:
        raise ZeroDivisionError("integer modulo by zero")
    if y == -1:
        return x - x  # zero of x's type
    return x % y


def _pow_i(x, y):
    if y < 0:
        raise ValueError("integers to negative integer powers are not allowed")
    r = x - x + 1
    while y:
        if y & 1:
            r = r * x
        x = x * x
        y >>= 1
    return r


def _sign_f(x):
    if x > 0:
        return 1.0
    if x < 0:
        return -1.0
    return 0.0 if x == 0 else x  # +0.0 for either zero, nan for nan, like np.sign


def _sign_i(x):
    return (x > 0) - (x < 0)


def _maximum_f(x, y):
    # np.maximum: nan propagates, and of two equal values (0.0 and -0.0) the second is the
    # result; ``|`` (not ``or``) keeps it one select, no branch, so reductions and row
    # loops vectorise
    return x if (x > y) | (x != x) else y


def _minimum_f(x, y):
    return x if (x < y) | (x != x) else y


class CastError(ValueError, OverflowError):
    """A float that is NaN, infinite or out of range cast to an integer dtype.

    PyTensor's Python mode raises ``ValueError`` (NaN) or ``OverflowError`` (the rest); its C
    and NUMBA modes return what the CPU's conversion happens to give (C undefined behaviour),
    which a vectorised loop and its scalar tail did not even agree on. This is both.
    """


def cast_body(in_dtype: str, out_dtype: str) -> Callable:
    """The scalar body of ``cast``: the store converts; float -> integer is range-checked."""
    if kind(in_dtype) != "f" or np.dtype(out_dtype).kind not in "iu":
        return lambda x: x
    info = np.iinfo(out_dtype)
    lo, hi = float(info.min), float(info.max + 1)  # both exact: 0 or powers of two

    def checked(x):
        t = np.trunc(x)
        if t >= lo and t < hi:  # NaN fails both
            return x
        raise OverflowError("cannot convert NaN, infinity or an out-of-range float to integer")

    return checked


def _check(c):  # a condition that must hold (CheckAndRaise); the caller names the error
    if not c:
        raise AssertionError("a checked condition is false")
    return c


def _clip(x, lo, hi):
    if x < lo:
        return lo
    if x > hi:
        return hi
    return x


#: ops with a body in ``kernels/vecmath.py``, in the bit order of the per-target mask of
#: ops that call libm instead (``Target.libm_ops``; append only)
VEC_OPS = ("exp", "expm1", "log", "log1p", "sigmoid", "softplus", "tanh", "erf", "erfc",
           "sin", "cos", "pow")
#: the ``int64`` global holding that mask in kernel IR; the linker defines it as a constant
#: per target (``generator.link``), so O3 keeps exactly one of the two bodies
LIBM_SYMBOL = "aotk_libm_ops"


def libm_bit(op: str, dtype: str | None = None) -> int:
    """The bit of ``LIBM_SYMBOL``'s mask saying op ``op`` computed in ``dtype`` calls libm:
    bit i for float64 (and no dtype), 32 + i for float32 (i: the op's place in VEC_OPS)."""
    return VEC_OPS.index(op) + (32 if dtype == "float32" else 0)


def libm_mask(libm_ops: tuple[str, ...]) -> int:
    """The mask of ``LIBM_SYMBOL`` for a target whose ``libm_ops`` are these: ``op`` for
    both dtypes, ``op:float64`` or ``op:float32`` for one."""
    bits = set()
    for entry in libm_ops:
        op, _, dtype = entry.partition(":")
        bits.update(libm_bit(op, d) for d in ((dtype,) if dtype else ("float64", "float32")))
    return sum(1 << b for b in bits)


@dataclass(frozen=True)
class VecBody:
    """A body in ``kernels/vecmath.py`` (vectorisable exp, log, ...), named rather than
    imported because that module imports numba; ``ScalarOp.impl`` resolves it to the
    vector body or libm's, chosen per target at link time."""

    name: str

    def resolve(self, marked: bool = False, dtype: str | None = None) -> Callable:
        """``marked``, ``dtype``: see ``vecmath.body`` (the elemwise template runs the
        fixup; ``dtype`` is the compute dtype)."""
        vecmath = importlib.import_module("aotkernels.kernels.vecmath")
        return vecmath.body(self.name, marked, dtype)


@dataclass(frozen=True)
class ScalarOp:
    """One elementwise op: its arity, type rule, and a body per compute kind ('f', 'i', 'b').

    ``impls['*']`` serves every kind without its own entry; an entry named by a compute
    dtype (``float32``) comes before its kind's. ``raises`` is the exception
    (class, message) a non-zero kernel status stands for: a body can fail no other way.
    ``scipy``: the op is that ``scipy.special`` function, called through the library's slot
    table (``kernels/special.py``); it ships for float operands only (integers are cast).
    """

    name: str
    nin: int
    rule: Callable | None
    impls: dict = field(hash=False, compare=False)
    raises: tuple[type[Exception], str] | None = None
    scipy: str | None = None

    def types(self, in_dtypes: tuple[str, ...], out: str | None = None) -> tuple[str, tuple]:
        """(out dtype, compute dtypes) for these inputs; TypeError where PyTensor has none.

        ``out`` is required by ``cast`` and must agree with the rule for every other op.
        """
        if len(in_dtypes) != self.nin:
            raise TypeError(f"{self.name} takes {self.nin} operands, got {len(in_dtypes)}")
        if self.rule is None:
            if out is None:
                raise TypeError(f"{self.name} needs an output dtype")
            return str(np.dtype(out)), (None,)
        res, comp = self.rule(tuple(in_dtypes))
        if out is not None and np.dtype(out) != np.dtype(res):
            raise TypeError(f"{self.name}{tuple(in_dtypes)} gives {res}, not {out}")
        return res, comp

    @property
    def vector_body(self) -> VecBody | None:
        """The op's body in ``kernels/vecmath.py``, if it has one."""
        return next((b for b in self.impls.values() if isinstance(b, VecBody)), None)

    def vector_body_for(self, compute_dtype: str | None) -> VecBody | None:
        """The body in ``kernels/vecmath.py`` that ``impl(compute_dtype)`` resolves, if any
        (pow has one for floats only)."""
        fn = self.impls.get(kind(compute_dtype) if compute_dtype else "*", self.impls.get("*"))
        return fn if isinstance(fn, VecBody) else None

    def impl(self, compute_dtype: str | None, marked: bool = False) -> Callable:
        if self.scipy is not None:
            from aotkernels.kernels.special import body  # numba: templates only

            return body(SCIPY_FUNCTIONS.index(self.scipy), self.nin)
        k = kind(compute_dtype) if compute_dtype else "*"
        fn = self.impls.get(compute_dtype) or self.impls.get(k, self.impls.get("*"))
        if fn is None:
            raise TypeError(f"{self.name} has no body for {compute_dtype}")
        return fn.resolve(marked, compute_dtype) if isinstance(fn, VecBody) else fn


def _op(name, nin, rule, body=None, raises=None, **impls):
    if body is not None:
        impls["*"] = body
    return ScalarOp(name, nin, rule, impls, raises)


#: ``scipy.special.cython_special`` functions a kernel may call, in slot order (an ABI
#: fact: append only); the shim's ``aotk_special`` table holds their addresses
SCIPY_FUNCTIONS = ("psi", "erfcx", "erfinv", "erfcinv", "gammainc", "gammaincc",
                   "gammaincinv", "gammainccinv", "j0", "j1", "jv", "i0", "i1", "iv", "ive",
                   "kve", "owens_t", "betainc", "betaincinv", "hyp2f1", "i0e", "i1e")
#: capacity of the table the shim defines; the symbol kernels read it through
SPECIAL_SLOTS, TABLE_SYMBOL = 64, "aotk_special"
_SCIPY_MISSING = (RuntimeError, "scipy.special is not available to aotkernels kernels")


def _scipy_op(name: str, nin: int) -> ScalarOp:
    """PyTensor's op of that name computes ``scipy.special.<name>``: so does the kernel."""
    return ScalarOp(name, nin, _float, {}, _SCIPY_MISSING, scipy=name)


# -- bodies of PyTensor's special functions that SciPy does not export to Cython ----------

def _tri_gamma(x):
    """``polygamma(1, x)`` (PyTensor's perform): upward recurrence (positive terms, no
    cancellation) to x >= 10, then the asymptotic series; x < -100 by reflection first.
    Poles (0, -1, ..., and -inf) give inf, like SciPy."""
    if x != x:
        return x
    if x <= 0.0 and (x == -math.inf or x == math.floor(x)):
        return math.inf
    head, sign = 0.0, 1.0
    if x < -100.0:  # psi1(x) = pi^2 / sin^2(pi x) - psi1(1 - x); sin^2(pi x) has period 1
        s = math.sin(math.pi * (x - math.floor(x)))
        head, sign, x = math.pi * math.pi / (s * s), -1.0, 1.0 - x
    r = 0.0
    while x < 10.0:
        r += 1.0 / (x * x)
        x += 1.0
    y = 1.0 / (x * x)  # 1/x + 1/(2x^2) + sum B_2k / x^(2k+1), to the x^-15 term
    series = 1.0 / x + y / 2.0 + (y / x) * (1.0 / 6.0 + y * (-1.0 / 30.0 + y * (1.0 / 42.0 + y * (
        -1.0 / 30.0 + y * (5.0 / 66.0 + y * (-691.0 / 2730.0 + y * (7.0 / 6.0)))))))
    return head + sign * (r + series)


def _log1mexp(x):  # PyTensor's Log1mexp: log(1 - exp(x))
    if x < -0.6931471805599453:
        return math.log1p(-math.exp(x))
    return math.log(-math.expm1(x))


def _xlogx(x):
    if x == 0.0:
        return x - x
    return x * math.log(x)


def _xlogy0(x, y):
    if x == 0.0:
        return x - x
    return x * math.log(y)


def _round_half_away(x):  # PyTensor's impl: not C's round(), which gives 0.0 at 0.49999999999999994
    if x > 0:
        return np.floor(x + 0.5)
    return np.ceil(x - 0.5)


#: NumPy's float32 deg2rad and rad2deg multiply by constants made in float32
_DEG2RAD_F32 = np.float32(np.pi) / np.float32(180)
_RAD2DEG_F32 = np.float32(180) / np.float32(np.pi)

SCALAR_OPS: dict[str, ScalarOp] = {op.name: op for op in [
    # arithmetic
    _op("add", 2, _same, lambda x, y: x + y),
    _op("sub", 2, _nobool, lambda x, y: x - y),
    _op("mul", 2, _same, lambda x, y: x * y),
    _op("true_div", 2, _true_div, lambda x, y: x / y),
    _op("int_div", 2, _same, f=lambda x, y: x // y, i=_int_div_i, b=_int_div_i,
        raises=(ZeroDivisionError, "integer division by zero")),
    _op("mod", 2, _same, f=lambda x, y: x % y, i=_mod_i, b=_mod_i,
        raises=(ZeroDivisionError, "integer modulo by zero")),
    _op("pow", 2, _min8, f=VecBody("pow"), i=_pow_i,
        raises=(ValueError, "integers to negative integer powers are not allowed")),
    _op("neg", 1, _nobool, lambda x: -x),
    _op("abs", 1, _same, lambda x: abs(x)),
    _op("sign", 1, _nobool, f=_sign_f, i=_sign_i),
    _op("sqr", 1, _same, lambda x: x * x),
    _op("reciprocal", 1, _float, lambda x: 1.0 / x),
    _op("maximum", 2, _same, f=_maximum_f, **{"*": lambda x, y: max(x, y)}),
    _op("minimum", 2, _same, f=_minimum_f, **{"*": lambda x, y: min(x, y)}),
    _op("clip", 3, _same, _clip),
    # exponentials, logarithms, powers
    _op("exp", 1, _float, VecBody("exp")),
    _op("exp2", 1, _float, lambda x: np.exp2(x)),
    _op("expm1", 1, _float, VecBody("expm1")),
    _op("log", 1, _float, VecBody("log")),
    _op("log2", 1, _float, lambda x: math.log2(x)),
    _op("log10", 1, _float, lambda x: math.log10(x)),
    _op("log1p", 1, _float, VecBody("log1p")),
    _op("sqrt", 1, _float, lambda x: math.sqrt(x)),
    _op("sigmoid", 1, _float, VecBody("sigmoid")),
    _op("softplus", 1, _float, VecBody("softplus")),
    # trigonometric and hyperbolic
    _op("sin", 1, _float, VecBody("sin")),
    _op("cos", 1, _float, VecBody("cos")),
    _op("tan", 1, _float, lambda x: math.tan(x)),
    _op("sinh", 1, _float, lambda x: math.sinh(x)),
    _op("cosh", 1, _float, lambda x: math.cosh(x)),
    _op("tanh", 1, _float, VecBody("tanh")),
    _op("arcsinh", 1, _float, lambda x: math.asinh(x)),
    _op("arctanh", 1, _float, lambda x: math.atanh(x)),
    _op("arcsin", 1, _float, lambda x: math.asin(x)),
    _op("arccos", 1, _float, lambda x: math.acos(x)),
    _op("arctan", 1, _float, lambda x: math.atan(x)),
    _op("arccosh", 1, _float, lambda x: math.acosh(x)),
    _op("arctan2", 2, _float, lambda y, x: math.atan2(y, x)),  # VonMises' logp
    # special functions
    _op("erf", 1, _float, VecBody("erf")),
    _op("erfc", 1, _float, VecBody("erfc")),
    _op("gamma", 1, _float, lambda x: math.gamma(x)),
    _op("gammaln", 1, _float, lambda x: math.lgamma(x)),
    _op("tri_gamma", 1, _float, _tri_gamma),
    _op("log1mexp", 1, _float, _log1mexp),
    _op("xlogx", 1, _float, _xlogx),
    _op("xlogy0", 2, _float, _xlogy0),
    *[_scipy_op(name, nin) for name, nin in (
        ("psi", 1), ("erfcx", 1), ("erfinv", 1), ("erfcinv", 1), ("gammainc", 2),
        ("gammaincc", 2), ("gammaincinv", 2), ("gammainccinv", 2), ("j0", 1), ("j1", 1),
        ("jv", 2), ("i0", 1), ("i1", 1), ("iv", 2), ("ive", 2), ("kve", 2), ("owens_t", 2),
        ("betainc", 3), ("betaincinv", 3), ("hyp2f1", 4), ("i0e", 1), ("i1e", 1))],
    # rounding
    _op("floor", 1, _float, lambda x: np.floor(x)),
    _op("ceil", 1, _float, lambda x: np.ceil(x)),
    _op("round_half_to_even", 1, _float_only, lambda x: np.rint(x)),
    _op("round_half_away_from_zero", 1, _float_only, _round_half_away),
    _op("trunc", 1, _float, lambda x: np.trunc(x)),
    # angles
    _op("deg2rad", 1, _float_as_out, f=lambda x: x * (math.pi / 180.0),
        float32=lambda x: x * _DEG2RAD_F32),
    _op("rad2deg", 1, _float_as_out, f=lambda x: x * (180.0 / math.pi),
        float32=lambda x: x * _RAD2DEG_F32),
    # comparison and logic
    _op("lt", 2, _compare, lambda x, y: x < y),
    _op("le", 2, _compare, lambda x, y: x <= y),
    _op("gt", 2, _compare, lambda x, y: x > y),
    _op("ge", 2, _compare, lambda x, y: x >= y),
    _op("eq", 2, _compare, lambda x, y: x == y),
    _op("neq", 2, _compare, lambda x, y: x != y),
    _op("and", 2, _bitwise, lambda x, y: x & y),
    _op("or", 2, _bitwise, lambda x, y: x | y),
    _op("xor", 2, _bitwise, lambda x, y: x ^ y),
    _op("invert", 1, _bitwise, i=lambda x: ~x, b=lambda x: not x),
    _op("isnan", 1, _predicate, f=lambda x: x != x, **{"*": lambda x: False}),
    _op("isinf", 1, _predicate, f=lambda x: abs(x) == math.inf, **{"*": lambda x: False}),
    _op("switch", 3, _switch, lambda c, x, y: x if c else y),
    _op("check", 1, _bool_only, _check, raises=(AssertionError, "a checked condition is false")),
    # copies (join, alloc and PyTensor's tensor_copy) and conversion, the one op whose
    # output dtype is a parameter (rule None)
    _op("identity", 1, _same, lambda x: x),
    _op("cast", 1, None, lambda x: x,  # the body per dtype pair is ``cast_body``
        raises=(CastError, "cannot convert NaN, infinity or an out-of-range float to integer")),
]}

