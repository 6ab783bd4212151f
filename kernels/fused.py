"""Fused elementwise kernels: one loop nest for a run of elementwise steps of a plan.

A plan (``aotkernels/pytensor/planner.py``) runs each elementwise node as one catalog
kernel: one loop and one memory pass per node. A ``Program`` describes a run of such steps
over one iteration shape as a single kernel of the same ABI: the scalar bodies are the
catalog's own (``scalar_ops``, with the same compute-dtype conversions as
``elemwise.build``), each intermediate is rounded to its step's result dtype exactly as a
store into that step's array would, and only the results read outside the run are written.
So a fused kernel computes the same bits as the steps it replaces.

A program is data (``to_json``/``from_json``) named by a hash of itself (``name``), which
is the op of its signature in the ``fused`` family: the JIT's compiler child gets the JSON
in ``AOT_FUSED_PROGRAM`` and registers it before compiling (``register``). Operands are the
memory inputs, then the outputs, all seen with the run's collapsed shape (stride 0 where
broadcast); ``pattern`` fixes per operand whether its innermost axis is contiguous
(``c``), broadcast (``s``, read once per row) or strided (``g``), and the kernel checks
that on entry (status 2 otherwise). An output the planner placed in the memory of one of
the run's inputs (``aliases``) is stored through that input's array, which the kernel also
checks on entry: LLVM vectorises a loop only after a run-time overlap check of each array
it writes against the others, which an exact alias fails (the loop then ran scalar).
Strided operands (``g``) go through stack blocks of ``BLOCK`` elements on rows of at least
``BLOCKED``: copied in (and out) by scalar loops, so that the loop computing the steps
touches contiguous memory only and vectorises (one strided operand kept the whole loop
scalar).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

import numpy as np

from aotkernels.kernels.scalar_ops import SCALAR_OPS
from aotkernels.signature import Signature

#: the family's op table: program name -> Program (filled by ``register``)
FUSED: dict[str, Program] = {}

#: status of a fused kernel called with operands off its pattern (a planner bug)
BAD_GEOMETRY = 2
#: rows of at least this many elements take the stack blocks of strided operands: on
#: shorter rows copying in and out costs more than the vector loop saves (ordered
#: logistic's (150, 4) rows, measured)
BLOCKED = 16


@dataclass(frozen=True)
class Program:
    """``steps``: (op, kernel in dtypes, result dtype, args), an arg ``k`` being memory input
    ``k`` if ``k < nin``, else the result of step ``k - nin``; ``outputs``: per output
    operand, the step whose result it stores."""

    dtypes: tuple[str, ...]  # operands: memory inputs, then outputs
    nin: int
    pattern: str  # per operand: c, s or g
    ndim: int
    steps: tuple[tuple[str, tuple[str, ...], str, tuple[int, ...]], ...]
    outputs: tuple[int, ...]
    #: per output: the memory input it is stored through (contiguous or strided, never
    #: broadcast: a one-element run stores through its own operand), or -1; or empty
    aliases: tuple[int, ...] = ()

    def to_json(self) -> str:
        return json.dumps([self.dtypes, self.nin, self.pattern, self.ndim, self.steps,
                           self.outputs, self.aliases], separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> Program:
        dtypes, nin, pattern, ndim, steps, outputs, *aliases = json.loads(text)
        return cls(tuple(dtypes), nin, pattern, ndim,
                   tuple((op, tuple(ins), out, tuple(args)) for op, ins, out, args in steps),
                   tuple(outputs), tuple(aliases[0]) if aliases else ())

    @property
    def name(self) -> str:
        return "fz" + hashlib.sha256(self.to_json().encode()).hexdigest()[:20]

    @property
    def signature(self) -> Signature:
        return Signature("fused", self.name, self.dtypes[:-1], self.dtypes[-1], "nd",
                         self.ndim)


def register(program: Program) -> Signature:
    """Make ``program`` known to this process's ``fused`` family; its signature."""
    FUSED[program.name] = program
    return program.signature


def _scalar(op: str, ins: tuple[str, ...], out: str):
    """(scalar body, per-input converters): what ``elemwise.build`` compiles for the
    elementwise kernel of (op, ins, out)."""
    from numba import njit

    from aotkernels.kernels.elemwise import converter
    from aotkernels.kernels.scalar_ops import cast_body

    sop = SCALAR_OPS[op]
    _, compute = sop.types(ins, out)
    converters = [converter(c) if c != d else None for c, d in zip(compute, ins)]
    if op == "cast":
        body = cast_body(ins[0], out)
    else:
        body = sop.impl(next((c for c in compute if c), ins[-1]))
    return njit(inline="always")(body), converters


def source(p: Program, name: str) -> tuple[list[str], dict]:
    """The kernel's Python source and the names it uses."""
    import numba

    from aotkernels.kernels.abi import assume_c, keep_scalar, stack_block
    from aotkernels.kernels.elemwise import BLOCK, converter

    n_ops, last = len(p.dtypes), p.ndim - 1
    outer = [f"i{d}" for d in range(last)]
    env: dict = {"assume_c": assume_c, "keep_scalar": keep_scalar, "BLOCK": BLOCK}
    args = ", ".join(f"a{k}" for k in range(n_ops))
    checks = []
    for k, (d, pat) in enumerate(zip(p.dtypes, p.pattern)):
        size = np.dtype(d).itemsize
        if pat == "c":
            checks.append(f"a{k}.strides[{last}] == {size}")
        elif pat == "s":
            checks.append(f"a{k}.strides[{last}] == 0")
    aliases = [i if i >= 0 and p.pattern[i] != "s" else -1 for i in p.aliases]
    for k, i in enumerate(aliases):
        if i >= 0:
            checks.append(f"a{i}.ctypes.data == a{p.nin + k}.ctypes.data")
    src = [f"def {name}({args}):",
           f"    n = a{n_ops - 1}.shape[{last}]",
           "    if n == 0:",
           "        return 0"]
    if checks:
        src += [f"    if not ({' and '.join(checks)}):", f"        return {BAD_GEOMETRY}"]
    strided = [k for k, pat in enumerate(p.pattern) if pat == "g"]
    for k in strided:
        env[f"block{k}"] = stack_block(numba.from_dtype(np.dtype(p.dtypes[k])), BLOCK)
        src.append(f"    b{k} = block{k}()")
    pad = "    "
    for d in range(last):
        src.append(f"{pad}for i{d} in range(a{n_ops - 1}.shape[{d}]):")
        pad += "    "
    row = f"[{', '.join(outer)}]" if outer else ""
    plain, blocked = [], []  # per operand: how the element loop reads or stores it
    for k, pat in enumerate(p.pattern):
        if pat == "s":
            index = ", ".join([*outer, "0"])
            src.append(f"{pad}s{k} = a{k}[{index}]")
            plain.append(f"s{k}")
            blocked.append(f"s{k}")
        else:
            view = f"a{k}{row}"
            src.append(f"{pad}r{k} = {f'assume_c({view})' if pat == 'c' else view}")
            plain.append(f"r{k}[j]")
            blocked.append(f"b{k}[j]" if pat == "g" else f"v{k}[j]")
    stored = {aliases[k] if aliases and aliases[k] >= 0 else p.nin + k
              for k in range(len(p.outputs))}

    def steps(reads: list[str], pad: str) -> list[str]:
        lines = []
        for i, (op, ins, out, refs) in enumerate(p.steps):
            body, converters = _scalar(op, ins, out)
            env[f"f{i}"], env[f"o{i}"] = body, converter(out)
            terms = []
            for a, (ref, conv) in enumerate(zip(refs, converters)):
                term = reads[ref] if ref < p.nin else f"t{ref - p.nin}"
                if conv is not None:
                    env[f"c{i}_{a}"] = conv
                    term = f"c{i}_{a}({term})"
                terms.append(term)
            lines.append(f"{pad}t{i} = o{i}(f{i}({', '.join(terms)}))")
        for k, step in enumerate(p.outputs):
            alias = aliases[k] if aliases else -1
            lines.append(f"{pad}{reads[alias if alias >= 0 else p.nin + k]} = t{step}")
        return lines

    if not strided:
        src += [f"{pad}for j in range(n):", *steps(plain, pad + "    ")]
    else:  # rows of at least BLOCKED elements: blocks of BLOCK, strided inputs copied in,
        # the steps, strided results copied out; shorter rows: the loop as it is
        src += [f"{pad}if n < {BLOCKED}:", f"{pad}    for j in range(n):",
                *steps(plain, pad + "        "), f"{pad}else:"]
        pad += "    "
        src += [f"{pad}for j0 in range(0, n, BLOCK):", f"{pad}    m = min(BLOCK, n - j0)"]
        pad += "    "
        for k in strided:
            if k < p.nin:
                src += [f"{pad}for j in range(m):", f"{pad}    keep_scalar()",
                        f"{pad}    b{k}[j] = r{k}[j0 + j]"]
        src += [f"{pad}v{k} = assume_c(r{k}[j0:j0 + m])" for k, pat in enumerate(p.pattern)
                if pat == "c"]  # per block: its index stays a plain 0..m loop counter
        src += [f"{pad}for j in range(m):", *steps(blocked, pad + "    ")]
        for k in strided:
            if k in stored:
                src += [f"{pad}for j in range(m):", f"{pad}    keep_scalar()",
                        f"{pad}    r{k}[j0 + j] = b{k}[j]"]
    src.append("    return 0")
    return src, env


def build(sig: Signature, name: str):
    """``(body, operand specs)`` for the registered program ``sig.op``."""
    from numba import njit

    p = FUSED[sig.op]
    src, env = source(p, name)
    exec(compile("\n".join(src), f"<aotkernels {sig.key}>", "exec"), env)
    return njit(env[name]), [(d, p.ndim, "A") for d in p.dtypes]
