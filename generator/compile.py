"""Signature -> LLVM IR of one kernel, through numba, in a process pool with an on-disk cache.

Compilation is the slow step (~0.15 s per kernel). Each result is cached under its exported
symbol, which hashes the signature and its family's template sources, plus the numba
version and optimisation level: a rebuild compiles only kernels whose template changed.
Workers run numba at ``NUMBA_OPT=0``; optimisation happens once per target at link time,
so vector widths are chosen for that target, not for the build host.
"""

from __future__ import annotations

import os
import traceback
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path

from aotkernels.kernels import builder, template_hash
from aotkernels.process import atomic_write
from aotkernels.signature import Signature


@dataclass(frozen=True)
class KernelIR:
    sig: Signature
    symbol: str  # exported C name
    inner: str  # numba's inner function the exported wrapper calls
    ir: str


class KernelCompileError(RuntimeError):
    """A kernel failed to compile; the message names its signature and numba's error."""


def symbol_of(sig: Signature) -> str:
    return sig.symbol(template_hash(sig.family))


def compile_kernel(sig: Signature) -> KernelIR:
    """Compile one signature in this process (imports numba)."""
    import numba
    import numpy as np

    from aotkernels.kernels.abi import make_cfunc

    symbol = symbol_of(sig)
    body, operands = builder(sig.family)(sig, f"body_{symbol}")
    specs = [(numba.from_dtype(np.dtype(d)), nd, layout) for d, nd, layout in operands]
    cf = make_cfunc(body, specs, symbol)
    wrapper = cf._wrapper_name or cf.native_name
    return KernelIR(sig, symbol, wrapper.removeprefix("cfunc."), cf._library.get_llvm_str())


def _worker_init(catalogs: tuple[tuple[str, str], ...] = (),
                 programs: tuple[tuple[str, str], ...] = ()) -> None:
    """numba at O0; the user catalogs being built imported (they register their family),
    and the programs being built (fused runs, scalar loops) registered."""
    os.environ["NUMBA_OPT"] = "0"
    from aotkernels.kernels import import_catalog, register_program

    for module, file in catalogs:
        import_catalog(module, file)
    for family, text in programs:
        register_program(family, text)


def catalogs_of(sigs: Iterable[Signature]) -> tuple[tuple[str, str], ...]:
    """The (module, file) of every user catalog among ``sigs``' families."""
    from aotkernels.kernels import FAMILIES

    return tuple(sorted({FAMILIES[s.family].origin for s in sigs
                         if FAMILIES[s.family].origin is not None}))


def programs_of(sigs: Iterable[Signature]) -> tuple[tuple[str, str], ...]:
    """(family, JSON) of every program among ``sigs`` (``--from-usage`` found them)."""
    from aotkernels.kernels import program_json

    return tuple(sorted({(s.family, program_json(s)) for s in sigs
                         if program_json(s) is not None}))


def _compile_task(sig: Signature):
    try:
        return compile_kernel(sig)
    except Exception as exc:  # report, don't kill the pool: the caller names the signature
        lines = traceback.format_exception_only(type(exc), exc)
        return KernelCompileError(f"{sig.key}: {''.join(lines).strip()}")


def _cache_tag() -> str:
    import numba

    return f"numba{numba.__version__}-O0"


class IRCache:
    """``<dir>/<symbol>.<tag>.ll``, written atomically; safe to share between builds."""

    def __init__(self, root: Path | None):
        self.root = root
        self.tag = None if root is None else _cache_tag()
        if root is not None:
            root.mkdir(parents=True, exist_ok=True)

    def _path(self, symbol: str) -> Path:
        return self.root / f"{symbol}.{self.tag}.ll"

    def get(self, sig: Signature) -> KernelIR | None:
        if self.root is None:
            return None
        path = self._path(symbol_of(sig))
        try:
            inner, ir = path.read_text().split("\n", 1)
        except (OSError, ValueError):
            return None
        return KernelIR(sig, symbol_of(sig), inner.removeprefix("; inner "), ir)

    def put(self, k: KernelIR) -> None:
        if self.root is None:
            return
        atomic_write(self._path(k.symbol), f"; inner {k.inner}\n{k.ir}")


def compile_all(
    sigs: Iterable[Signature],
    jobs: int,
    cache: IRCache,
    progress: Callable[[int, int, int], None] | None = None,
) -> Iterator[KernelIR | KernelCompileError]:
    """Yield every signature's IR (from the cache when possible), in input order.

    ``progress(done, total, cached)`` is called after each kernel.
    """
    sigs = list(sigs)
    results: list = [cache.get(s) for s in sigs]
    todo = [i for i, r in enumerate(results) if r is None]
    cached = len(sigs) - len(todo)
    done = cached
    if progress:
        progress(done, len(sigs), cached)
    if todo:
        with ProcessPoolExecutor(jobs, mp_context=get_context("spawn"),
                                 initializer=_worker_init,
                                 initargs=(catalogs_of(sigs[i] for i in todo),
                                           programs_of(sigs[i] for i in todo))) as pool:
            chunk = max(1, min(16, len(todo) // (4 * jobs)))
            for i, res in zip(todo, pool.map(_compile_task, [sigs[i] for i in todo],
                                             chunksize=chunk)):
                if isinstance(res, KernelIR):
                    cache.put(res)
                results[i] = res
                done += 1
                if progress:
                    progress(done, len(sigs), cached)
    yield from results
