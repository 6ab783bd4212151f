"""Scalar bodies that call SciPy's special functions through the library's slot table.

PyTensor computes ``psi``, ``erfcx``, ``gammainc``, ... with ``scipy.special`` in every mode
(its perform, and its NUMBA mode through ``scipy.special.cython_special``), so the one way
to give the same numbers is to call the same code. A kernel cannot hold a process's
addresses, so it calls through ``aotk_special``, a table of function pointers that the C
shim defines and the runtime fills when a SciPy-backed op is first resolved
(``aotkernels.special``). An empty slot makes the body fail (status 1, the op's ``raises``):
never a call through a null pointer. JIT-compiled kernels see the same table through a
symbol the runtime binds to its own copy (``aotkernels.jit``).

Every slot holds the ``double f(double, ..., int skip_dispatch)`` variant of a Cython
``cpdef`` function; float32 operands are computed in double and rounded on the store.
"""

from __future__ import annotations

from functools import cache

from llvmlite import ir
from numba import types
from numba.extending import intrinsic

from aotkernels.kernels.scalar_ops import SPECIAL_SLOTS, TABLE_SYMBOL
from aotkernels.special import link_symbol

_i8p = ir.IntType(8).as_pointer()


def _table(builder: ir.IRBuilder) -> ir.GlobalVariable:
    """The external ``void *aotk_special[SPECIAL_SLOTS]`` (defined by the shim)."""
    module = builder.module
    try:
        return module.get_global(TABLE_SYMBOL)
    except KeyError:
        gv = ir.GlobalVariable(module, ir.ArrayType(_i8p, SPECIAL_SLOTS), TABLE_SYMBOL)
        gv.linkage = "external"
        return gv


@intrinsic
def slot_address(typingctx, slot_t):
    """The function pointer in slot ``slot`` as an integer (0: not bound)."""

    def codegen(context, builder, sig, args):
        slot = context.cast(builder, args[0], sig.args[0], types.intp)
        zero = ir.Constant(slot.type, 0)
        ptr = builder.load(builder.gep(_table(builder), [zero, slot]))
        return builder.ptrtoint(ptr, context.get_value_type(types.intp))

    return types.intp(slot_t), codegen


def _call(nin: int):
    """Typing result of ``callN(address, x0, ..., x{N-1}) -> float64`` through a pointer to
    a ``double f(double, ..., int skip_dispatch)``."""

    def codegen(context, builder, signature, args):
        d = ir.DoubleType()
        fn = builder.inttoptr(args[0], ir.FunctionType(d, [d] * nin + [ir.IntType(32)])
                              .as_pointer())
        return builder.call(fn, [*args[1:], ir.Constant(ir.IntType(32), 0)])

    return types.float64(types.intp, *[types.float64] * nin), codegen


@intrinsic
def call1(typingctx, addr, x):
    return _call(1)


@intrinsic
def call2(typingctx, addr, x, y):
    return _call(2)


@intrinsic
def call3(typingctx, addr, x, y, z):
    return _call(3)


@intrinsic
def call4(typingctx, addr, x, y, z, w):
    return _call(4)


@cache
def body(slot: int, nin: int):
    """The scalar body (plain Python, as every ``ScalarOp`` body) of the SciPy function in
    ``slot`` taking ``nin`` operands."""
    link_symbol()  # numba finalises the kernel in its own JIT, which must resolve the table
    if nin == 1:
        def f(x):
            p = slot_address(slot)
            if p == 0:
                raise RuntimeError("scipy.special is not bound")
            return call1(p, float(x))
    elif nin == 2:
        def f(x, y):
            p = slot_address(slot)
            if p == 0:
                raise RuntimeError("scipy.special is not bound")
            return call2(p, float(x), float(y))
    elif nin == 3:
        def f(x, y, z):
            p = slot_address(slot)
            if p == 0:
                raise RuntimeError("scipy.special is not bound")
            return call3(p, float(x), float(y), float(z))
    elif nin == 4:
        def f(x, y, z, w):
            p = slot_address(slot)
            if p == 0:
                raise RuntimeError("scipy.special is not bound")
            return call4(p, float(x), float(y), float(z), float(w))
    else:
        raise ValueError(f"no SciPy body of {nin} operands")
    return f
