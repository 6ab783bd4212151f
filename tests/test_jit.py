"""JIT fallback: a signature missing from the library compiles once, then loads from disk.

Each step runs in a fresh interpreter, as a user's second session would.
"""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

import aotkernels as ak
from aotkernels import jit

SCRIPT = r"""
import json, sys
import numpy as np
import aotkernels as ak
from aotkernels import jit
from aotkernels.families.elemwise import resolve
x = np.arange(24.0).reshape(4, 6)[:, :3]         # rows with gaps: an nd2 kernel
y = np.linspace(-3, 3, 12).astype(np.float32).reshape(2, 3, 2)[:, ::-1]
r1 = ak.elemwise("mul", x, x)
r2 = ak.elemwise("sigmoid", y)
print(json.dumps({
    "sources": [resolve("mul", x, x)[1], resolve("sigmoid", y)[1]],
    "ok": bool(np.allclose(r1, x * x) and np.allclose(r2, 1 / (1 + np.exp(-y)), rtol=1e-6)),
    "stats": jit.stats, "numba_imported": "numba" in sys.modules,
    "llvmlite_imported": "llvmlite" in sys.modules}))
"""


def run(env_extra: dict, tmp_path) -> dict:
    import os

    env = dict(os.environ, **env_extra)
    res = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True,
                         text=True, cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout.strip().splitlines()[-1])


def test_miss_compiles_once_then_loads_from_disk_without_numba(aot_lib, jit_cache, tmp_path):
    env = {"AOT_CACHE_DIR": str(jit_cache), "AOT_LIBRARY_DIR": str(aot_lib.directory)}
    first = run(env, tmp_path)
    assert first["ok"] and first["sources"] == ["jit", "jit"]
    assert first["stats"] == {"compiled": 2, "loaded": 0}
    assert first["numba_imported"] is False  # compiled in a child process
    second = run(env, tmp_path)
    assert second["ok"] and second["stats"] == {"compiled": 0, "loaded": 2}
    assert second["numba_imported"] is False  # proof that nothing was compiled
    assert second["llvmlite_imported"] is False  # shared objects, mapped by the loader
    (cache,) = jit_cache.iterdir()
    misses = (cache / "misses.txt").read_text().split()
    assert misses == ["elemwise/mul/f8,f8->f8/nd2", "elemwise/sigmoid/f4->f4/nd3"]
    assert len(list(cache.glob("aotk_*.o"))) == len(list(cache.glob("aotk_*.so"))) == 2


def test_disabled_jit_raises_on_a_miss(aot_lib, monkeypatch):
    monkeypatch.setenv("AOT_DISABLE_JIT", "1")
    x = np.ones((3, 4))[:, ::2]
    with pytest.raises(ak.KernelNotAvailable, match="mul"):
        ak.elemwise("mul", x, x)


def test_jit_kernel_matches_the_aot_kernel(aot_lib, jit_cache):
    """The same signature through both paths: same template, same ABI, same numbers.

    The JIT object is tuned for this CPU, the library for the baseline; the arithmetic is
    the same scalar code, so the bits are too.
    """
    from aotkernels.call import Geometry, Prepared
    from aotkernels.signature import Signature

    sig = Signature("elemwise", "exp", ("float64",), "float64", "nd", 2)
    x = np.linspace(-5, 5, 60).reshape(6, 10)[:, ::3]
    aot_out, jit_out = np.empty(x.shape), np.empty(x.shape)
    geo = Geometry.broadcast([x], aot_out)
    Prepared(sig, aot_lib.function(sig.key), "aot", geo).run([x, aot_out])
    Prepared(sig, jit.function(sig), "jit", geo).run([x, jit_out])
    np.testing.assert_array_equal(aot_out, jit_out)


def test_several_jit_kernels_in_one_process(aot_lib, jit_cache):
    """Regression: with one in-memory engine for all objects, the second kernel was wrong."""
    x = np.random.default_rng(0).normal(size=(6, 5))
    exp = ak.elemwise("exp", x[:, ::2].T)  # nd2 exp: not in the session library
    gt = ak.elemwise("gt", x, np.zeros((1, 1), np.int8))  # nd2 gt(f8, i1): not either
    np.testing.assert_allclose(exp, np.exp(x[:, ::2].T))
    np.testing.assert_array_equal(gt, x > 0)


SPECIAL = r"""
import json, sys
import numpy as np
import aotkernels as ak
from aotkernels import jit
from aotkernels.families.elemwise import resolve
from scipy import special
a = np.linspace(0.5, 4, 24).reshape(4, 6)[:, ::2]      # nd2: never in the test library
x = np.linspace(0.1, 3, 24).reshape(4, 6)[:, ::2]
got = [ak.elemwise("psi", a), ak.elemwise("gammaincc", a, x)]
want = [special.psi(a), special.gammaincc(a, x)]
print(json.dumps({"sources": [resolve("psi", a)[1], resolve("gammaincc", a, x)[1]],
                  "ok": all(bool(np.allclose(g, w, rtol=1e-14)) for g, w in zip(got, want)),
                  "stats": jit.stats, "llvmlite": "llvmlite" in sys.modules}))
"""


def test_jit_kernels_calling_scipy_load_as_shared_objects(aot_lib, jit_cache, tmp_path):
    """A JIT kernel that calls SciPy through ``aotk_special`` gets its own table filled
    when it is loaded as a shared object in a later process (without llvmlite)."""
    import os

    env = dict(os.environ, AOT_CACHE_DIR=str(jit_cache), AOT_LIBRARY_DIR=str(aot_lib.directory))
    reports = []
    for _ in range(2):
        res = subprocess.run([sys.executable, "-c", SPECIAL], env=env, capture_output=True,
                             text=True, cwd=tmp_path)
        assert res.returncode == 0, res.stderr
        reports.append(json.loads(res.stdout.strip().splitlines()[-1]))
    first, second = reports
    assert first["sources"] == ["jit", "jit"] and first["ok"], first
    assert second == {"sources": ["jit", "jit"], "ok": True,
                      "stats": {"compiled": 0, "loaded": 2}, "llvmlite": False}, second


def test_without_a_c_compiler_jit_objects_load_with_llvmlite(aot_lib, tmp_path):
    """No compiler to link shared objects: the objects are cached and loaded with llvmlite,
    as before shared objects; the numbers are the same."""
    cache = tmp_path / "cache"
    env = {"AOT_CACHE_DIR": str(cache), "AOT_LIBRARY_DIR": str(aot_lib.directory),
           "CC": str(tmp_path / "no-such-compiler")}
    for stats in ({"compiled": 2, "loaded": 0}, {"compiled": 0, "loaded": 2}):
        report = run(env, tmp_path)
        assert report["ok"] and report["stats"] == stats and report["llvmlite_imported"]
    assert len(list(cache.glob("*/aotk_*.o"))) == 2 and not list(cache.glob("*/*.so"))


def test_background_compiles_yield_the_cpu(aot_lib, jit_cache):
    """Nobody waits for a background compile (fused kernels), so its thread, and through it
    the compiler process, runs at the lowest priority: at equal priority it took a third of
    two cores from two sampling chains. The caller's own priority is left alone."""
    import os
    import threading

    from aotkernels.signature import Signature

    if not sys.platform.startswith("linux"):
        pytest.skip("per-thread nice values are Linux's")
    mine = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    sig = Signature("elemwise", "exp", ("float32",), "float32", "nd", 3)  # not in the library
    (fn,) = jit.functions_later([sig]).result(timeout=600)
    x = np.linspace(-2, 2, 24, dtype=np.float32).reshape(2, 3, 4)[:, ::-1, ::2]
    np.testing.assert_allclose(ak.elemwise("exp", x), np.exp(x), rtol=1e-6)
    (worker,) = [t for t in threading.enumerate() if t.name == "aotkernels-jit"]
    assert os.getpriority(os.PRIO_PROCESS, worker.native_id) == 19  # the most a nice goes
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == mine
