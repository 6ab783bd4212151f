"""Calls of a user catalog's kernels (``aotkernels.user``): checked like every family.

A signature is chosen by the inputs' dtypes as NumPy's ufuncs choose a loop: an exact match
first, else the first declared signature every input converts to safely (a Python scalar
only needs the same kind: ``1.5`` is fine for float32). Inputs are converted before the
call; the kernel comes from the catalog's library, else is JIT-compiled from the same
module (``call.prepare``).
"""

from __future__ import annotations

import numpy as np

from aotkernels import call
from aotkernels.families.elemwise import self_overlapping, unalias
from aotkernels.kernels.user_ops import ArrayOp, ArraySig, ElementwiseOp, ReductionOp


def _operands(inputs) -> tuple[list[np.ndarray], list[str], list[bool]]:
    pairs = [call.operand(x) for x in inputs]
    weak = [isinstance(x, (bool, int, float)) for x in inputs]  # Python scalars
    return [a for a, _ in pairs], [d for _, d in pairs], weak


def _choose(name: str, declared: list[tuple[str, ...]], dtypes: list[str],
            weak: list[bool]) -> tuple[str, ...]:
    if tuple(dtypes) in declared:
        return tuple(dtypes)
    for ins in declared:
        if len(ins) == len(dtypes) and all(
                np.can_cast(d, i, "same_kind" if w else "safe")
                for d, i, w in zip(dtypes, ins, weak)):
            return ins
    have = "; ".join(",".join(ins) for ins in declared)
    raise TypeError(f"{name} has no signature for inputs ({', '.join(dtypes)}); it takes "
                    f"({have})")


def _cast(arrays: list[np.ndarray], have: list[str], want: tuple[str, ...]) -> list[np.ndarray]:
    return [a if h == w else a.astype(w) for a, h, w in zip(arrays, have, want)]


def _errors(name: str, raises) -> dict:
    return {1: raises or (call.KernelError, f"{name} raised an exception in its kernel")}


def prepare_elementwise(family: str, op: ElementwiseOp, inputs, out=None):
    """``(Prepared or None if empty, operand arrays, out)``, like ``elemwise.prepare``."""
    if len(inputs) != op.nin:
        raise TypeError(f"{op.name} takes {op.nin} inputs, got {len(inputs)}")
    arrays, dtypes, weak = _operands(inputs)
    ins = _choose(op.name, [i for i, _ in op.sigs], dtypes, weak)
    arrays, out_dtype = _cast(arrays, dtypes, ins), op.out_dtype(ins)
    shape = np.broadcast_shapes(*(a.shape for a in arrays))
    if out is None:
        out = np.empty(shape, out_dtype)
    else:
        out = call.check_out(out, shape, out_dtype)
        arrays = [unalias(a, out) for a in arrays]
    if out.size == 0:
        return None, arrays, out
    geometry = call.Geometry.broadcast(arrays, out)
    return call.prepare(family, op.name, ins, out_dtype, geometry,
                        errors=_errors(op.name, op.raises)), arrays, out


def elementwise(family: str, op: ElementwiseOp, inputs, out=None) -> np.ndarray:
    if out is not None and self_overlapping(out):  # as NumPy: compute, then copy back
        call.check_out(out, out.shape, out.dtype.name)
        np.copyto(out, elementwise(family, op, inputs, np.empty(out.shape, out.dtype)))
        return out
    prepared, arrays, out = prepare_elementwise(family, op, inputs, out)
    if prepared is not None:
        prepared.run([*arrays, out])
    return out


def reduce(family: str, op: ReductionOp, x, axis=None, keepdims: bool = False) -> np.ndarray:
    """Fold ``x`` along ``axis`` (None: all) with the op, starting from its identity."""
    arrays, dtypes, weak = _operands([x])
    (d,) = _choose(op.name, [(t,) for t in op.dtypes], dtypes, weak)
    (a,) = _cast(arrays, dtypes, (d,))
    reduced = call.axes(axis, a.ndim)
    if a.ndim == 0:  # a scalar: folded once into the identity
        a, reduced = a.reshape(1), (0,)
    kept = tuple(1 if i in reduced else n for i, n in enumerate(a.shape))
    acc = np.full(kept, op.identity, d)
    if a.size:
        call.prepare(family, op.name, (d,), d, call.Geometry.reduction(a, acc),
                     errors=_errors(op.name, op.combine.raises), update=True).run([a, acc])
    if keepdims:
        return acc.reshape([1] * np.ndim(x)) if np.ndim(x) == 0 else acc
    return acc.reshape([n for i, n in enumerate(a.shape) if i not in reduced])


def _outputs(op: ArrayOp, s: ArraySig, inputs, out) -> list[np.ndarray]:
    if out is None:
        if op.shape is None:
            raise TypeError(f"{op.name} writes into out=: pass its output array(s), or "
                            "declare shape= to let it allocate them")
        shapes = op.shape(*inputs)
        shapes = [shapes] if len(s.outs) == 1 else list(shapes)
        return [np.empty(tuple(shape), d) for shape, (d, _) in zip(shapes, s.outs)]
    outs = [out] if isinstance(out, np.ndarray) else list(out)
    if len(outs) != len(s.outs):
        raise TypeError(f"{op.name} writes {len(s.outs)} output(s), got {len(outs)}")
    for i, (o, (d, n)) in enumerate(zip(outs, s.outs)):
        if not isinstance(o, np.ndarray):
            raise TypeError(f"output {i} of {op.name} must be a numpy array")
        if o.ndim != n:
            raise ValueError(f"output {i} of {op.name} has rank {o.ndim}, its signature {n}")
        call.check_out(o, o.shape, d)
    return outs


def array(family: str, op: ArrayOp, inputs, out=None):
    """Call a whole-array kernel: ``out`` is its output (a tuple if several), returned."""
    arrays, dtypes, weak = _operands(inputs)
    ins = _choose(op.name, [tuple(d for d, _ in s.ins) for s in op.sigs], dtypes, weak)
    s = op.find(ins)
    arrays = _cast(arrays, dtypes, ins)
    for i, (a, (_, n)) in enumerate(zip(arrays, s.ins)):
        if a.ndim != n:
            raise ValueError(f"input {i} of {op.name} has rank {a.ndim}, its signature {n}")
    outs = _outputs(op, s, inputs, out)
    for i, o in enumerate(outs):
        if any(np.may_share_memory(o, other) for other in outs[i + 1:]):
            raise ValueError(f"outputs of {op.name} overlap")
    arrays = [a.copy() if any(np.may_share_memory(a, o) for o in outs) else a
              for a in arrays]  # a kernel may read an input after writing an output
    operands = [*arrays, *outs]
    call.prepare(family, op.name, ins, s.outs[0][0], call.Geometry.operands(operands, s.ndim),
                 errors=_errors(op.name, op.raises)).run(operands)
    return outs[0] if len(outs) == 1 else tuple(outs)
