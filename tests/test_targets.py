"""Several CPU targets in one library set: each loads, computes the same, and can be forced."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from aotkernels import library
from aotkernels.call import Geometry, Prepared
from aotkernels.generator.catalog import catalog
from aotkernels.signature import Signature
from aotkernels.targets import TARGETS, host_arch, host_level

ROOT = Path(__file__).resolve().parent.parent
X86 = ["x86_64", "x86_64_v3", "x86_64_v4"]

pytestmark = pytest.mark.skipif(host_arch() != "x86_64", reason="x86-64 targets")


@pytest.fixture(scope="module")
def multi_lib() -> Path:
    from aotkernels.build_tools.cli import build

    out = ROOT / "build" / "test-targets-lib"
    sigs = catalog(["add", "exp", "sigmoid", "sin", "pow"], ["f8", "f4"], max_ndim=2)
    build(sigs, X86, out, wheel=False, jobs=os.cpu_count() or 1,
          cache_dir=ROOT / "build" / "ir-cache", quiet=True)
    return out


def run_all(lib: library.Library) -> list[np.ndarray]:
    """Every kernel of the library on the same strided/broadcast operands."""
    rng = np.random.default_rng(1)
    results = []
    for key in sorted(lib.kernels):
        sig = Signature.from_key(key)
        shape = (37,) if sig.layout == "flat" else (5, 7)[-sig.ndim:]
        ins = [rng.normal(size=shape).astype(d) for d in sig.in_dtypes]
        out = np.empty(shape, sig.out_dtype)
        Prepared(sig, lib.function(key), "aot", Geometry.broadcast(ins, out)).run([*ins, out])
        results.append(out)
    return results


def test_each_supported_level_loads_and_agrees(multi_lib, monkeypatch):
    runnable = [t for t in X86 if TARGETS[t].level <= host_level()]
    assert "x86_64" in runnable
    baseline = None
    for name in runnable:
        monkeypatch.setenv("AOT_CPU_TARGET", name)
        lib = library.load(multi_lib)
        assert lib.target == name and lib.reason == "forced by AOT_CPU_TARGET"
        got = run_all(lib)
        if baseline is None:
            baseline = got
        keys = sorted(lib.kernels)
        for key, a, b in zip(keys, got, baseline):
            sig = Signature.from_key(key)
            op, dt = sig.op, sig.out_dtype
            if TARGETS[name].calls_libm(op, dt) == TARGETS["x86_64"].calls_libm(op, dt):
                np.testing.assert_array_equal(a, b)  # same scalar code: the same bits
            else:  # libm on one level, kernels/vecmath.py on the other: both within 3 ulp
                np.testing.assert_allclose(a, b, rtol=6 * np.finfo(a.dtype).eps, atol=0)


def test_the_best_supported_level_is_chosen(multi_lib, monkeypatch):
    monkeypatch.delenv("AOT_CPU_TARGET", raising=False)
    best = max((t for t in X86 if TARGETS[t].level <= host_level()),
               key=lambda t: TARGETS[t].level)
    assert library.load(multi_lib).target == best


def test_native_is_the_best_level_this_machine_runs():
    from aotkernels.targets import native_targets

    best = max((t for t in X86 if TARGETS[t].level <= host_level()),
               key=lambda t: TARGETS[t].level)
    assert native_targets() == (best,)


def test_a_level_the_cpu_lacks_is_refused(multi_lib, monkeypatch):
    monkeypatch.setattr(library, "host_level", lambda: 1)  # pretend: a baseline-only CPU
    monkeypatch.delenv("AOT_CPU_TARGET", raising=False)
    assert library.load(multi_lib).target == "x86_64"
    monkeypatch.setenv("AOT_CPU_TARGET", "x86_64_v3")
    with pytest.raises(library.LibraryError, match="cannot run on this CPU"):
        library.load(multi_lib)


def test_vector_width_follows_the_target(multi_lib):
    """v3 code uses 256-bit registers, the baseline never does."""
    import subprocess

    def ymm(target):
        asm = subprocess.run(["objdump", "-d", str(multi_lib / TARGETS[target].library)],
                             capture_output=True, text=True, check=True).stdout
        return asm.count("%ymm")

    assert ymm("x86_64") == 0 and ymm("x86_64_v3") > 0


def test_builds_are_reproducible(multi_lib, tmp_path):
    """The same inputs give byte-identical libraries (IR from the cache, link redone)."""
    from aotkernels.build_tools.cli import build

    again = tmp_path / "again"
    sigs = catalog(["add", "exp", "sigmoid", "sin", "pow"], ["f8", "f4"], max_ndim=2)
    build(sigs, X86, again, wheel=False, jobs=os.cpu_count() or 1,
          cache_dir=ROOT / "build" / "ir-cache", quiet=True)
    for t in X86:
        lib = TARGETS[t].library
        assert (again / lib).read_bytes() == (multi_lib / lib).read_bytes(), t


def test_a_targets_libm_choice_is_part_of_how_a_library_was_made(monkeypatch):
    """A target's ``libm_ops`` decides its kernels' bodies when they are linked: changing it
    must make existing libraries and linked chunks stale (the generator hash)."""
    import dataclasses

    from aotkernels.generator.stage import generator_hash

    before = generator_hash()
    base = TARGETS["x86_64"]
    monkeypatch.setitem(TARGETS, "x86_64",
                        dataclasses.replace(base, libm_ops=(*base.libm_ops, "tanh")))
    assert generator_hash() != before
