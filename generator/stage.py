"""Stage a build: compile the catalog, link one object per target, write the manifest.

The stage directory is what CMake consumes (``AOTK_STAGE_DIR``): objects
``<target>.<chunk>.o`` for every target and ``manifest.json`` mapping every signature key to
its exported symbol and listing each target's objects. Linked chunks are cached next to
the IR (``<cache>/objects``), keyed by their kernels' symbols and the target, so a rebuild
after editing one template relinks only the chunks holding that template's kernels.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path

from aotkernels.generator.compile import IRCache, KernelCompileError, compile_all
from aotkernels.kernels import FAMILIES, template_hash
from aotkernels.process import atomic_write
from aotkernels.signature import ABI_VERSION, Signature
from aotkernels.targets import TARGETS

_GENERATOR_DIR = Path(__file__).resolve().parent
_SHIM = _GENERATOR_DIR.parent / "build_tools" / "shim" / "aotk_shim.c"

#: Kernels per linked module: modules are optimised and emitted in parallel, and O3 time
#: grows faster than linearly with module size.
LINK_CHUNK = 128


def generator_hash() -> str:
    """Hash of the generator's own sources, the C shim linked into every library and the
    targets' definitions (a target's ``libm_ops`` decides its kernels' bodies at link time),
    recorded so a library says how it was made."""
    h = hashlib.sha256()
    for path in [*sorted(_GENERATOR_DIR.glob("*.py")), _SHIM]:
        if path.exists():  # the shim ships in the wheel too, but a partial copy may lack it
            h.update(path.read_bytes())
    h.update(repr(sorted(TARGETS.items())).encode())
    return h.hexdigest()[:16]


@dataclass
class StageReport:
    kernels: int
    cached: int
    compile_seconds: float
    link_seconds: dict[str, float] = field(default_factory=dict)
    object_bytes: dict[str, int] = field(default_factory=dict)
    families: Counter = field(default_factory=Counter)
    failures: list[KernelCompileError] = field(default_factory=list)
    linked_chunks: dict[str, tuple[int, int]] = field(default_factory=dict)  # (linked, all)


def _object_key(chunk, target) -> str:
    """A linked chunk is a function of its kernels' symbols (which hash their templates),
    the target, llvmlite and the linker's own source."""
    import llvmlite

    h = hashlib.sha256(f"{target}|{llvmlite.__version__}|{generator_hash()}".encode())
    for k in chunk:
        h.update(k.symbol.encode())
    return h.hexdigest()[:24]


def _cached_object(cache_dir: Path | None, key: str) -> bytes | None:
    if cache_dir is None:
        return None
    try:
        return (cache_dir / "objects" / f"{key}.o").read_bytes()
    except OSError:
        return None


def _store_object(cache_dir: Path | None, key: str, obj: bytes) -> None:
    if cache_dir is None:
        return
    path = cache_dir / "objects" / f"{key}.o"
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, obj)  # concurrent builds share the cache


def stage(sigs: Sequence[Signature], targets: Sequence[str], out: Path, jobs: int,
          cache_dir: Path | None, progress: Callable[[int, int, int], None] | None = None,
          log: Callable[[str], None] = print, prefix: str = "aotkernels") -> StageReport:
    """Compile ``sigs`` and link them per target into ``out`` with their manifest; the
    libraries will be ``lib<prefix>_<target>.so``."""
    import llvmlite
    import numba

    from aotkernels.generator.link import link_object

    unknown = [t for t in targets if t not in TARGETS]
    if unknown:
        raise ValueError(f"unknown targets {unknown}; known: {', '.join(TARGETS)}")
    t0 = time.perf_counter()
    cache = IRCache(cache_dir)
    cached = sum(cache.get(s) is not None for s in sigs)
    results = list(compile_all(sigs, jobs, cache, progress))
    report = StageReport(len(sigs), cached, time.perf_counter() - t0)
    kernels = [r for r in results if not isinstance(r, KernelCompileError)]
    report.failures = [r for r in results if isinstance(r, KernelCompileError)]
    if report.failures:
        return report
    report.families = Counter(k.sig.family for k in kernels)
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    chunks = [kernels[i:i + LINK_CHUNK] for i in range(0, len(kernels), LINK_CHUNK)]
    objects: dict[str, list[str]] = {}
    with ProcessPoolExecutor(jobs, mp_context=get_context("spawn")) as pool:
        for name in targets:
            t1 = time.perf_counter()
            keys = [_object_key(chunk, TARGETS[name]) for chunk in chunks]
            objs = [_cached_object(cache_dir, key) for key in keys]
            todo = [i for i, o in enumerate(objs) if o is None]
            log(f"linking {len(kernels)} kernels for {name}: {len(todo)} of {len(chunks)} "
                "chunks (the rest from the object cache) ...")
            for i, obj in zip(todo, pool.map(link_object, [chunks[i] for i in todo],
                                              [TARGETS[name]] * len(todo))):
                objs[i] = obj
                _store_object(cache_dir, keys[i], obj)
            objects[name] = [f"{name}.{i}.o" for i in range(len(objs))]
            for fname, obj in zip(objects[name], objs):
                (out / fname).write_bytes(obj)
            report.link_seconds[name] = time.perf_counter() - t1
            report.object_bytes[name] = sum(len(o) for o in objs)
            report.linked_chunks[name] = (len(todo), len(chunks))
    families = sorted({k.sig.family for k in kernels})
    manifest = {
        "abi": ABI_VERSION,
        "generator": generator_hash(),
        "numba": numba.__version__,
        "llvmlite": llvmlite.__version__,
        "families": {f: template_hash(f) for f in families if f in FAMILIES},
        "targets": [{"name": t, "arch": TARGETS[t].arch, "library": f"lib{prefix}_{t}.so",
                     "cpu": TARGETS[t].cpu,
                     "level": TARGETS[t].level, "objects": objects[t]} for t in targets],
        "kernels": {k.sig.key: k.symbol for k in kernels},
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1, sort_keys=True))
    return report
