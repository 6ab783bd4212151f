"""The kernel ABI on the numba side: array views over raw pointers, and the cfunc glue.

Every kernel, AOT or JIT, has the C signature
``int32 kernel(void **data, const int64 *shapes, const int64 *strides)``
(the runtime side is ``aotkernels.call``). ``view`` builds a numba array struct from a pointer plus
shape/stride slots with ``meminfo=NULL``, so kernel bodies are ordinary numba array code
that can never allocate: they are compiled with ``_nrt=False``.
"""

from __future__ import annotations

from functools import cache

from llvmlite import ir
from numba import cfunc, types
from numba.core import cgutils
from numba.extending import intrinsic
from numba.np.arrayobj import make_array, populate_array

#: numba type of the kernel entry point; the exported C symbol wraps it (generator.link).
KERNEL_SIG = types.int32(
    types.CPointer(types.voidptr), types.CPointer(types.int64), types.CPointer(types.int64)
)


@cache
def view(dtype: types.Type, ndim: int, layout: str = "A"):
    """Intrinsic ``view(data_ptr, shapes, strides, offset) -> Array(dtype, ndim, layout)``.

    ``offset`` is the index of this operand's first slot in ``shapes``/``strides``; it is a
    compile-time constant in the generated glue, so the loads fold away.
    """
    aryty = types.Array(dtype, ndim, layout)

    @intrinsic
    def _view(typingctx, data_t, shapes_t, strides_t, off_t):
        sig = aryty(data_t, shapes_t, strides_t, off_t)

        def codegen(context, builder, sig, args):
            data, shp, strd, off = args
            intp = context.get_value_type(types.intp)
            off = context.cast(builder, off, sig.args[3], types.intp)
            ary = make_array(aryty)(context, builder)
            shape, strides = [], []
            for i in range(ndim):
                idx = builder.add(off, ir.Constant(intp, i))
                shape.append(builder.load(builder.gep(shp, [idx])))
                strides.append(builder.load(builder.gep(strd, [idx])))
            itemsize = context.get_abi_sizeof(context.get_data_type(dtype))
            populate_array(
                ary,
                data=builder.bitcast(data, ary.data.type),
                shape=cgutils.pack_array(builder, shape, ty=intp),
                strides=cgutils.pack_array(builder, strides, ty=intp),
                itemsize=ir.Constant(intp, itemsize),
                meminfo=None,
            )
            return ary._getvalue()

        return sig, codegen

    return _view


@intrinsic
def assume_c(typingctx, ary_t):
    """Re-label a 1-D view as C-contiguous once the caller has checked its stride.

    Contiguous loops are what LLVM vectorises; the struct is unchanged.
    """
    if not (isinstance(ary_t, types.Array) and ary_t.ndim == 1):
        return None

    def codegen(context, builder, sig, args):
        return args[0]

    return ary_t.copy(layout="C")(ary_t), codegen


@cache
def stack_block(dtype: types.Type, size: int):
    """Intrinsic ``() -> Array(dtype, 1, 'C')`` of ``size`` elements on the kernel's stack.

    A scratch block needs no allocator: strided rows are copied through blocks like this so
    the op itself runs a contiguous loop that LLVM vectorises (``kernels/elemwise.py``).
    """
    aryty = types.Array(dtype, 1, "C")

    @intrinsic
    def _block(typingctx):
        def codegen(context, builder, sig, args):
            intp = context.get_value_type(types.intp)
            llty = context.get_data_type(dtype)
            data = cgutils.alloca_once(builder, llty, size=size)  # entry block: static
            ary = make_array(aryty)(context, builder)
            itemsize = context.get_abi_sizeof(llty)
            populate_array(ary, data=data,
                           shape=cgutils.pack_array(builder, [ir.Constant(intp, size)]),
                           strides=cgutils.pack_array(builder, [ir.Constant(intp, itemsize)]),
                           itemsize=ir.Constant(intp, itemsize), meminfo=None)
            return ary._getvalue()

        return aryty(), codegen

    return _block


@intrinsic
def keep_scalar(typingctx):
    """An empty ``asm sideeffect``: the loop holding it stays scalar. For the strided copies
    in and out of stack blocks: widened, they become gathers and scatters, which cost more
    than the scalar loads and stores (AVX-512 scatters on AMD doubled a strided exp)."""

    def codegen(context, builder, sig, args):
        builder.asm(ir.FunctionType(ir.VoidType(), []), "", "", [], side_effect=True)
        return context.get_dummy_value()

    return types.none(), codegen


def make_cfunc(body, operands, name: str):
    """Compile ``body(*arrays) -> int`` as a kernel entry point named ``name``.

    ``operands`` lists ``(numba dtype, ndim, layout)`` for inputs then outputs. The glue is
    generated source so that views and slot offsets are constants. ``name`` must be unique
    across the catalog: it seeds numba's mangled names (second guard against collisions,
    the first being internalisation in ``generator.link``).
    """
    offsets, off = [], 0
    for _, ndim, _ in operands:
        offsets.append(off)
        off += ndim
    args = ", ".join(f"a{i}" for i in range(len(operands)))
    src = [f"def {name}(data, shapes, strides):"]
    src += [f"    a{i} = v{i}(data[{i}], shapes, strides, {o})" for i, o in enumerate(offsets)]
    src += [f"    return body({args})"]
    env = {f"v{i}": view(*spec) for i, spec in enumerate(operands)}
    env["body"] = body
    exec("\n".join(src), env)
    return cfunc(KERNEL_SIG, _nrt=False, error_model="numpy")(env[name])
