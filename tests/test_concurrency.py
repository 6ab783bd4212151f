"""Many processes, a fork, many threads: one JIT cache, no corrupted entry, no wrong result.

numba's own cache has raced across processes and, after ``fork``, let a later process run
another kernel's body (uid collisions). Here a JIT entry is named by its signature and
template hash, written by one atomic rename, verified when read, and compiled under a
per-symbol file lock; these tests hold the runtime to that with real compilations, kept to
a few distinct signatures (each costs 1-3 s on this 2-core machine).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

import aotkernels as ak
from aotkernels import jit

#: signatures the session library lacks (strided nd1/nd2/nd3 of ops without nd kernels there)
WORKER = r"""
import json, os, sys, time
from pathlib import Path
import numpy as np
import aotkernels as ak
from aotkernels import jit
from aotkernels.families.elemwise import resolve
go, which = Path(sys.argv[1]), sys.argv[2]
Path(sys.argv[3]).touch()                      # ready
while not go.exists():
    time.sleep(0.005)
x = np.linspace(-3, 3, 48).reshape(4, 12)[:, ::3]           # 4x4 view, rows with gaps
y = np.linspace(-2, 2, 60).astype(np.float32).reshape(3, 4, 5)[:, ::-1, ::2]
results = {"shared": (ak.elemwise("maximum", x, x), np.maximum(x, x))}
if which == "a":
    results["own"] = (ak.elemwise("tanh", y), np.tanh(y))
else:
    results["own"] = (ak.elemwise("minimum", x, x.T), np.minimum(x, x.T))
ok = {k: bool(np.allclose(g, w, rtol=2e-6)) for k, (g, w) in results.items()}
print(json.dumps({"ok": ok, "stats": jit.stats, "pid": os.getpid(),
                  "sources": [resolve("maximum", x, x)[1]]}))
"""


def test_eight_processes_compile_same_and_different_signatures(aot_lib, jit_cache, tmp_path):
    """8 processes start together on an empty cache: all need one signature, half need a
    second and half a third. Each signature is compiled exactly once, by whichever process
    got its lock; every other process waits and loads the verified entry."""
    env = dict(os.environ, AOT_LIBRARY_DIR=str(aot_lib.directory),
               AOT_CACHE_DIR=str(jit_cache))
    go = tmp_path / "go"
    procs = []
    for i in range(8):
        ready = tmp_path / f"ready{i}"
        procs.append((ready, subprocess.Popen(
            [sys.executable, "-c", WORKER, str(go), "ab"[i % 2], str(ready)], env=env,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)))
    deadline = time.monotonic() + 60
    while not all(r.exists() for r, _ in procs):
        assert time.monotonic() < deadline, "workers did not start"
        time.sleep(0.01)
    go.touch()
    reports = []
    for _, p in procs:
        out, err = p.communicate(timeout=120)  # a deadlock fails here, not forever
        assert p.returncode == 0, err
        reports.append(json.loads(out.strip().splitlines()[-1]))
    assert all(all(r["ok"].values()) for r in reports), reports
    assert sum(r["stats"]["compiled"] for r in reports) == 3, reports
    assert sum(r["stats"]["loaded"] for r in reports) == 8 * 2 - 3
    (cache,) = jit_cache.iterdir()
    entries = sorted(cache.glob("aotk_*.o"))
    assert len(entries) == 3
    for e in entries:
        jit.unseal(e.stem, e.read_bytes())  # every entry whole and verified
    assert sorted((cache / "misses.txt").read_text().split()) == sorted([
        "elemwise/maximum/f8,f8->f8/nd1", "elemwise/minimum/f8,f8->f8/nd2",
        "elemwise/tanh/f4->f4/nd3"])
    assert not [p.name for p in cache.iterdir() if p.name.endswith((".tmp", ".raw"))]


FORK = r"""
import json, os, select, sys, threading, time
import numpy as np
import aotkernels as ak
from aotkernels import jit

def check(name, got, want):
    assert np.allclose(got, want, rtol=2e-6), name

x = np.linspace(-3, 3, 48).reshape(4, 12)[:, ::3]
check("aot", ak.elemwise("add", x, x), x + x)                     # prebuilt, nd2
check("jit before fork", ak.elemwise("maximum", x, x), np.maximum(x, x))          # compiled here
# another thread holds the JIT lock while we fork: the child must not inherit it held
held, release = threading.Event(), threading.Event()
def hold():
    with jit._lock:
        held.set()
        release.wait()
t = threading.Thread(target=hold)
t.start()
held.wait()
r, w = os.pipe()
pid = os.fork()
if pid == 0:
    os.close(r)
    try:
        check("aot in child", ak.elemwise("add", x, x), x + x)
        check("inherited jit", ak.elemwise("maximum", x, x), np.maximum(x, x))
        check("new jit in child", ak.elemwise("minimum", x, x.T), np.minimum(x, x.T))
        msg = json.dumps({"ok": True, "stats": jit.stats})
    except BaseException as e:
        msg = json.dumps({"ok": False, "error": repr(e)})
    os.write(w, msg.encode())
    os._exit(0)
os.close(w)
release.set()
t.join()
# the parent compiles another signature while the child compiles its own
y = np.linspace(-2, 2, 60).astype(np.float32).reshape(3, 4, 5)[:, ::-1, ::2]
check("new jit in parent", ak.elemwise("tanh", y), np.tanh(y))
if not select.select([r], [], [], 90)[0]:
    os.kill(pid, 9)
    raise SystemExit("forked child deadlocked")
child = json.loads(os.read(r, 65536).decode())
_, status = os.waitpid(pid, 0)
# each side now loads what the other compiled: the bodies must be the right ones
print(json.dumps({"child": child, "status": status, "parent": jit.stats,
                  "child_sub_in_parent": bool(np.allclose(ak.elemwise("minimum", x, x.T),
                                                          np.minimum(x, x.T)))}))
"""


def test_fork_child_uses_kernels_and_the_jit_cache(aot_lib, jit_cache):
    """After ``fork`` the child runs prebuilt and inherited JIT kernels, compiles a new one
    while the parent compiles another (and a thread of the parent held the JIT lock at the
    fork), and each process then loads the other's entry and gets the right numbers."""
    env = dict(os.environ, AOT_LIBRARY_DIR=str(aot_lib.directory),
               AOT_CACHE_DIR=str(jit_cache))
    res = subprocess.run([sys.executable, "-c", FORK], env=env, capture_output=True,
                         text=True, timeout=180)
    assert res.returncode == 0, res.stderr
    report = json.loads(res.stdout.strip().splitlines()[-1])
    assert report["status"] == 0 and report["child"]["ok"], report
    assert report["child"]["stats"]["compiled"] == 2  # maximum inherited, minimum its own
    assert report["parent"]["compiled"] == 2 and report["parent"]["loaded"] == 1  # sub
    assert report["child_sub_in_parent"]


@pytest.fixture
def aot_function(aot_lib):
    """A factory of identical mode-AOT functions: one per thread, as PyTensor functions
    keep per-call storage and are not shared between threads in any mode."""
    pytensor = pytest.importorskip("pytensor")
    import pytensor.tensor as pt

    import aotkernels.pytensor  # noqa: F401

    m, v = pt.matrix("m"), pt.vector("v")
    outs = [pt.exp(m) + v, (m + v).sum(axis=0), pt.switch(pt.lt(m, 0), -m, m).max()]
    return lambda: pytensor.function([m, v], outs, mode="AOT")


def test_eight_threads_share_the_resolver_and_mode_aot(aot_function, jit_cache, monkeypatch):
    """8 threads at once: elementwise, reductions and casts through the call path, a mode-AOT
    function each, and the same JIT-only signature requested by all (compiled once:
    counted by key, since other kernels may compile meanwhile, the functions' own and the
    fused kernels an earlier test asked for in the background)."""
    compiled: list[str] = []
    plain = jit._compile_objects

    def counted(todo, dir_fd):
        compiled.extend(sig.key for sig, _ in todo)
        return plain(todo, dir_fd)

    monkeypatch.setattr(jit, "_compile_objects", counted)
    fns = [aot_function() for _ in range(8)]
    start = threading.Barrier(8)
    errors: list[str] = []
    x = np.linspace(0, 1, 30).reshape(5, 6)[:, ::2]
    log1p = "elemwise/log1p/f8->f8/"  # a strided layout the test library lacks
    fresh = not any(key.startswith(log1p) for key in jit._fns)

    def work(i: int) -> None:
        try:
            rng = np.random.default_rng(i)
            start.wait()
            np.testing.assert_allclose(ak.elemwise("log1p", x), np.log1p(x))  # JIT
            for k in range(150):
                n = 1 + (k * 7 + i) % 40
                a = rng.normal(size=(n, 3))
                b = rng.normal(size=3)
                np.testing.assert_allclose(ak.elemwise("add", a, b), a + b)
                np.testing.assert_allclose(ak.reduce("sum", a, axis=0), a.sum(axis=0))
                np.testing.assert_array_equal(ak.cast(a[:, ::-1] * 10, "int32"),
                                              (a[:, ::-1] * 10).astype(np.int32))
                got = fns[i](a, b)
                np.testing.assert_allclose(got[0], np.exp(a) + b)
                np.testing.assert_allclose(got[1], (a + b).sum(axis=0))
                np.testing.assert_allclose(got[2], np.abs(a).max())
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            errors.append(f"thread {i}: {exc!r}")

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads), "a thread deadlocked"
    assert not errors, errors
    if fresh:  # log1p: compiled once for the 8 threads that wanted it at once
        assert sum(key.startswith(log1p) for key in compiled) == 1, compiled
