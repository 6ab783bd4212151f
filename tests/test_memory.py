"""No growth: a million kernel calls, ten thousand mode-AOT calls, no leaked file handles.

Every call builds ctypes arrays of pointers, shapes and strides; a reference kept by
mistake (a memo keyed by data pointers, a growing cache, an engine per call) would leak a
few hundred bytes a call, tens of megabytes over a million. The counts run in a child
interpreter so its RSS is only theirs; RSS is read after a warm-up (first calls allocate
caches and NumPy's pools) and at the end. The bounds are generous against allocator noise
yet far below what a per-call leak of even 16 bytes would add.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

CHILD = r"""
import json, os, sys
import numpy as np
import aotkernels as ak
from aotkernels.families.elemwise import prepare

def rss_mb():
    with open("/proc/self/status") as f:
        return next(int(l.split()[1]) for l in f if l.startswith("VmRSS")) / 1024

def fds():
    return len(os.listdir("/proc/self/fd"))

report = {}
fd0 = fds()
# 1. a million calls of one prepared kernel on small arrays (the mode-AOT hot path)
x, y = np.linspace(0, 1, 8), np.linspace(1, 2, 8)
p, arrays, out = prepare("add", x, y)
n = int(sys.argv[1])
for _ in range(n // 10):
    p.run([*arrays, out])
report["run_warm"] = rss_mb()
for _ in range(n - n // 10):
    p.run([*arrays, out])
report["run_end"] = rss_mb()
assert np.array_equal(out, x + y)
# 2. the full checked path: elemwise (allocating), reduce, cast, into out
m = np.random.default_rng(0).normal(size=(6, 5))
buf = np.empty((6, 5))
def full(k):
    for _ in range(k):
        ak.elemwise("exp", m[:, ::-1])
        ak.elemwise("add", m, m[0], out=buf)
        ak.reduce("sum", m, axis=0)
        ak.cast(m, "float32")
full(2_000)
report["full_warm"] = rss_mb()
full(int(sys.argv[2]))
report["full_end"] = rss_mb()
# 3. ten thousand calls of a mode-AOT function
import pytensor, pytensor.tensor as pt
import aotkernels.pytensor
a, b = pt.matrix("a"), pt.vector("b")
f = pytensor.function([a, b], [pt.exp(a) + b, (a + b).sum(axis=0)], mode="AOT")
for _ in range(1_000):
    f(m, m[0])
report["pytensor_warm"] = rss_mb()
for _ in range(int(sys.argv[3])):
    r = f(m, m[0])
report["pytensor_end"] = rss_mb()
assert np.allclose(r[0], np.exp(m) + m[0])
# 4. a JIT compile and load (child process, pipes, lock file) leaves no descriptor open
ak.elemwise("mul", m[:, ::2], m[:, ::2])
report["fds"] = [fd0, fds()]
print(json.dumps(report))
"""

CALLS, FULL, PYTENSOR = 1_000_000, 15_000, 10_000


def test_a_million_calls_do_not_grow_memory_or_leak_files(aot_lib, jit_cache):
    env = dict(os.environ, AOT_LIBRARY_DIR=str(aot_lib.directory),
               AOT_CACHE_DIR=str(jit_cache))
    res = subprocess.run([sys.executable, "-c", CHILD, str(CALLS), str(FULL), str(PYTENSOR)],
                         env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    r = json.loads(res.stdout.strip().splitlines()[-1])
    print(f"RSS growth MB: {CALLS:,} Prepared.run "
          f"{r['run_end'] - r['run_warm']:.2f}, {FULL:,} x 4 checked calls "
          f"{r['full_end'] - r['full_warm']:.2f}, {PYTENSOR:,} mode-AOT calls "
          f"{r['pytensor_end'] - r['pytensor_warm']:.2f}; fds {r['fds']}")
    assert r["run_end"] - r["run_warm"] < 8, r  # 8 bytes a call would be 7.6 MB
    assert r["full_end"] - r["full_warm"] < 8, r  # 80 bytes a call would be 7.6 MB
    assert r["pytensor_end"] - r["pytensor_warm"] < 8, r
    assert r["fds"][1] == r["fds"][0], r
