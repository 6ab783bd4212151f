"""Shared fixtures: one small kernel library per test session, built like build-kernels does.

The session library holds every catalog signature in the ``flat`` layout (all ops, all
dtypes) plus ``nd`` kernels of every rank for a few ops of each arity, and every kernel of
the reduce, axis, blas, index and lapack families, so the suite covers every scalar body,
row body and loop-nest shape while compiling about a third of the catalog. It goes to
``build/test-lib`` and reuses the IR cache in ``build/ir-cache``.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

import pytest

from aotkernels import jit, library
from aotkernels.generator.catalog import catalog
from aotkernels.generator.stage import generator_hash
from aotkernels.kernels import template_hash
from aotkernels.signature import Signature
from aotkernels.targets import default_targets

ROOT = Path(__file__).resolve().parent.parent
TEST_LIB = ROOT / "build" / "test-lib"

# Fused kernels compile in background child processes (seconds each): off for the suite,
# on in tests/test_fusion.py, which checks them
os.environ.setdefault("AOT_FUSION", "0")

#: ops whose nd kernels (ranks 1-4) are in the session library: unary, binary, ternary, cast
ND_OPS = ("add", "exp", "lt", "clip", "switch", "identity")
ND_CASTS = (("float64", "int32"), ("int32", "float64"), ("bool", "float32"),
            ("float32", "bool"), ("uint8", "float64"))
#: nd kernels (ranks 1-3) the graph tests would otherwise JIT-compile on a clean checkout:
#: (op, dtype of the inputs); not ``mul``, the JIT tests' kernel the library lacks
ND_GRAPH = tuple((op, "float64") for op in ("sub", "true_div", "neg", "log", "pow", "eq", "le",
                                            "ge", "gt"))


def session_signatures() -> list[Signature]:
    full = catalog()
    sigs = [s for s in full if s.layout == "flat"]
    sigs += [s for s in full if s.layout == "nd" and s.op in ND_OPS]
    sigs += [s for s in full if s.layout == "nd" and s.op == "cast"
             and (s.in_dtypes[0], s.out_dtype) in ND_CASTS]
    sigs += [s for s in full if s.layout == "nd" and s.ndim <= 3
             and (s.op, s.in_dtypes[0]) in ND_GRAPH]
    sigs += [s for s in full if s.family in ("reduce", "axis", "blas", "index", "lapack")]
    return sorted(set(sigs))


@pytest.fixture(scope="session")
def aot_lib() -> library.Library:
    """The session library, loaded as this process's default; AOT_LIBRARY_DIR points at it.
    Test workers (``pytest -n``) take turns: the first builds it, the others wait and load."""
    TEST_LIB.parent.mkdir(parents=True, exist_ok=True)
    with open(TEST_LIB.parent / "test-lib.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        build_session_library()
    os.environ["AOT_LIBRARY_DIR"] = str(TEST_LIB)
    # graphs with layouts outside the session library JIT-compile once per checkout
    os.environ.setdefault("AOT_CACHE_DIR", str(ROOT / "build" / "test-jit-cache"))
    library._default.clear()
    lib = library.default_library()
    assert lib is not None and lib.directory == TEST_LIB
    return lib


def build_session_library() -> None:
    """Build ``build/test-lib`` unless its manifest already lists these kernels, made by this
    generator from these templates (a template edited in a checkout rebuilds it)."""
    from aotkernels.build_tools.cli import build

    sigs = session_signatures()
    manifest = TEST_LIB / "manifest.json"
    want = {s.key for s in sigs}
    fresh = False
    if manifest.exists():  # read the manifest only: dlopen-ing a file we may rebuild in
        try:                # place would pin the old code in this process
            m = library.read_manifest(TEST_LIB)
            fresh = (set(m["kernels"]) == want and m["generator"] == generator_hash()
                     and all(h == template_hash(f) for f, h in m["families"].items()))
        except library.LibraryError:
            fresh = False
    if not fresh:
        build(sigs, list(default_targets()), TEST_LIB, wheel=False, jobs=os.cpu_count() or 1,
              cache_dir=ROOT / "build" / "ir-cache", quiet=True)


@pytest.fixture(scope="session")
def pymc_python() -> Path:
    """The interpreter of ``build/pymc-venv`` (PyMC with PyTensor 2.38, made by ``make
    setup``); its absence skips the test, or fails it under CI, where setup makes it."""
    python = ROOT / "build" / "pymc-venv" / "bin" / "python"
    if not python.exists():
        message = f"no {python.parent.parent} (make setup creates it)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return python


@pytest.fixture
def no_jit(monkeypatch, aot_lib):
    """Any kernel that is not prebuilt raises: proves a test ran on the AOT library."""
    monkeypatch.setenv("AOT_DISABLE_JIT", "1")
    before = dict(jit.stats)
    yield aot_lib
    assert jit.stats == before


@pytest.fixture
def jit_cache(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("AOT_CACHE_DIR", str(tmp_path / "jit-cache"))
    return tmp_path / "jit-cache"
