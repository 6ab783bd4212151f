"""Scalar loops: PyTensor's ``ScalarLoop`` (the gradients of ``gammainc``, ``gammaincc``,
``betainc``, ``hyp2f1``) as one kernel per loop program.

A ``Loop`` is the scalar program of an ``Elemwise{ScalarLoop}`` node: per element, the
carried values start at their inputs, ``n_steps`` times every inner node runs and the
carries take their updates at once; a while loop stops after the first step whose
``until`` is true and returns that flag as its last output (false if no step ran); a for
loop refuses a negative ``n_steps`` (status ``NEGATIVE_STEPS``), as ``ScalarLoop.perform``
does. Each inner node is the catalog's scalar body with ``elemwise.build``'s compute-dtype
conversions and its result rounded to its dtype, as PyTensor's scalar ``perform`` casts
each inner result to its promised dtype. Ops with a vector body (``exp``, ``log1p``,
``pow``, ...) call libm here on every target (``vecmath.LIBM``): a loop carried from one
step to the next does not vectorise, and libm's functions are what NumPy's scalar code
calls where it has no SIMD version of its own.

A loop is data (``to_json``/``from_json``) named by a hash of itself (``name``), the op of
its signature in the ``loop`` family, like a fused program (``kernels/fused.py``): the
JIT's child registers it from JSON, ``misses.txt`` records it, ``build-kernels
--from-usage`` bakes it. Operands: ``n_steps``, the inputs the node takes from memory
(inputs that are constants of the graph are part of the program), then the outputs the
kernel writes, every operand seen with one collapsed shape (stride 0 where broadcast).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

from aotkernels.kernels.scalar_ops import SCALAR_OPS
from aotkernels.signature import Signature

#: the family's op table: loop name -> Loop (filled by ``register``)
LOOPS: dict[str, Loop] = {}

#: status of a for loop (no ``until``) given a negative number of steps
NEGATIVE_STEPS = 3
NEGATIVE_MESSAGE = "ScalarLoop does not have a termination condition."


@dataclass(frozen=True)
class Loop:
    """``dtypes``: operands (``n_steps``, memory inputs, outputs); ``sources``: per input
    of the inner graph, ``[0, k]`` memory input ``k`` (1-based operand index) or ``[1, j]``
    constant ``j``; ``consts``: (dtype, value) of the graph's constant inputs and the inner
    graph's own constants; ``steps``: (op, kernel in dtypes, result dtype, args), an arg
    ``a`` being inner input ``a`` if ``a < n_inner``, constant ``a - n_inner`` if below
    ``n_inner + len(consts)``, else the result of step ``a - n_inner - len(consts)``;
    ``updates``: per carry (the first inner inputs), the arg it becomes; ``until``: the
    arg of the stop flag, or -1 for a for loop; ``outputs``: per output operand, the node
    output it holds (``n_update`` for the until flag)."""

    dtypes: tuple[str, ...]
    nin: int
    sources: tuple[tuple[int, int], ...]
    consts: tuple[tuple[str, object], ...]
    steps: tuple[tuple[str, tuple[str, ...], str, tuple[int, ...]], ...]
    updates: tuple[int, ...]
    until: int
    outputs: tuple[int, ...]
    ndim: int

    def to_json(self) -> str:
        return json.dumps([self.dtypes, self.nin, self.sources, self.consts, self.steps,
                           self.updates, self.until, self.outputs, self.ndim],
                          separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> Loop:
        dtypes, nin, sources, consts, steps, updates, until, outputs, ndim = json.loads(text)
        return cls(tuple(dtypes), nin, tuple(tuple(s) for s in sources),
                   tuple((d, v) for d, v in consts),
                   tuple((op, tuple(ins), out, tuple(args)) for op, ins, out, args in steps),
                   tuple(updates), until, tuple(outputs), ndim)

    @property
    def name(self) -> str:
        return "lp" + hashlib.sha256(self.to_json().encode()).hexdigest()[:20]

    @property
    def signature(self) -> Signature:
        return Signature("loop", self.name, self.dtypes[:-1], self.dtypes[-1], "nd",
                         self.ndim)

    @property
    def raises(self) -> tuple[type[Exception], str] | None:
        """The exception of status 1: the failure of its one kind of failing inner op (a
        cast out of range, an integer division by zero), or None if none can fail or
        several kinds could."""
        found = {SCALAR_OPS[op].raises for op, _, _, _ in self.steps} - {None}
        return found.pop() if len(found) == 1 else None


def register(loop: Loop) -> Signature:
    """Make ``loop`` known to this process's ``loop`` family; its signature."""
    LOOPS[loop.name] = loop
    return loop.signature


def _scalar(op: str, ins: tuple[str, ...], out: str):
    """(scalar body, per-input converters) of one inner node: ``fused._scalar``'s, with
    libm's body for the vector-math ops."""
    from numba import njit

    from aotkernels.kernels.elemwise import converter
    from aotkernels.kernels.scalar_ops import cast_body
    from aotkernels.kernels.vecmath import LIBM

    sop = SCALAR_OPS[op]
    _, compute = sop.types(ins, out)
    converters = [converter(c) if c != d else None for c, d in zip(compute, ins)]
    comp = next((c for c in compute if c), ins[-1])
    if op == "cast":
        body = cast_body(ins[0], out)
    elif sop.vector_body_for(comp) is not None:
        body = LIBM[sop.vector_body_for(comp).name]
    else:
        body = sop.impl(comp)
    return njit(inline="always")(body), converters


def source(p: Loop, name: str) -> tuple[list[str], dict]:
    """The kernel's Python source and the names it uses."""
    from aotkernels.kernels.elemwise import converter

    n_ops = len(p.dtypes)
    n_inner, n_const = len(p.sources), len(p.consts)
    n_update = len(p.updates)
    env: dict = {}
    idx = ", ".join(f"i{d}" for d in range(p.ndim))
    src = [f"def {name}({', '.join(f'a{k}' for k in range(n_ops))}):"]
    pad = "    "
    for d in range(p.ndim):
        src.append(f"{pad}for i{d} in range(a{n_ops - 1}.shape[{d}]):")
        pad += "    "

    def ref(a: int) -> str:
        if a < n_inner:
            return f"x{a}"
        if a < n_inner + n_const:
            return f"k{a - n_inner}"
        return f"t{a - n_inner - n_const}"

    for j, (dtype, value) in enumerate(p.consts):
        env[f"K{j}"], env[f"ck{j}"] = value, converter(dtype)
        src.append(f"{pad}k{j} = ck{j}(K{j})")
    for a, (kind, k) in enumerate(p.sources):
        env[f"cx{a}"] = converter(p.dtypes[k] if kind == 0 else p.consts[k][0])
        src.append(f"{pad}x{a} = cx{a}({f'a{k}[{idx}]' if kind == 0 else f'k{k}'})")
    src.append(f"{pad}n = a0[{idx}]")
    if p.until >= 0:
        src.append(f"{pad}until = False")
    else:
        src += [f"{pad}if n < 0:", f"{pad}    return {NEGATIVE_STEPS}"]
    src.append(f"{pad}for _ in range(n):")
    body = pad + "    "
    for i, (op, ins, out, args) in enumerate(p.steps):
        f, converters = _scalar(op, ins, out)
        env[f"f{i}"], env[f"o{i}"] = f, converter(out)
        terms = []
        for j, (a, conv) in enumerate(zip(args, converters)):
            term = ref(a)
            if conv is not None:
                env[f"c{i}_{j}"] = conv
                term = f"c{i}_{j}({term})"
            terms.append(term)
        src.append(f"{body}t{i} = o{i}(f{i}({', '.join(terms)}))")
    if n_update:
        carries = ", ".join(f"x{a}" for a in range(n_update))
        src.append(f"{body}{carries}, = {', '.join(ref(u) for u in p.updates)},")
    if p.until >= 0:
        src += [f"{body}until = {ref(p.until)}", f"{body}if until:", f"{body}    break"]
    for k, out in enumerate(p.outputs):
        value = "until" if out == n_update else f"x{out}"
        src.append(f"{pad}a{p.nin + k}[{idx}] = {value}")
    src.append("    return 0")
    return src, env


def build(sig: Signature, name: str):
    """``(body, operand specs)`` for the registered loop ``sig.op``."""
    from numba import njit

    p = LOOPS[sig.op]
    src, env = source(p, name)
    exec(compile("\n".join(src), f"<aotkernels {sig.key}>", "exec"), env)
    return njit(env[name]), [(d, p.ndim, "A") for d in p.dtypes]
