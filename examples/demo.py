"""The main job's last step: use the installed wheel on real arrays and a PyTensor graph.

Runs in a fresh venv with the wheel (and PyTensor, if installed); ``AOT_DISABLE_JIT=1`` is
set so every kernel provably comes from the prebuilt library, and numba is never imported.
"""

from __future__ import annotations

import os
import sys
import time

os.environ.setdefault("AOT_DISABLE_JIT", "1")

t0 = time.perf_counter()
import numpy as np  # noqa: E402

import aotkernels as ak  # noqa: E402
from aotkernels.families.elemwise import resolve  # noqa: E402

lib = ak.default_library()
t_load = time.perf_counter() - t0
print(f"library {lib.path.name} (target {lib.target}: {lib.reason}), "
      f"{len(lib.kernels)} kernels; import + load {t_load * 1e3:.0f} ms")

rng = np.random.default_rng(0)
x = rng.normal(size=(1000, 1000))
b = rng.normal(size=1000)
cases = [
    ("add", (x, b), x + b),
    ("exp", (x[:, ::2],), np.exp(x[:, ::2])),
    ("sigmoid", (x.astype(np.float32),), 1 / (1 + np.exp(-x.astype(np.float32)))),
    ("mul", (x, 2), x * 2),
    ("gt", (x, 0.5), x > 0.5),
    ("switch", (x > 0, x, 0.0), np.where(x > 0, x, 0.0)),
]
print(f"{'op':<9}{'operands':<52}{'kernel':<34}{'max |err|':>10}{'ms':>8}")
for op, args, want in cases:
    t = time.perf_counter()
    got = ak.elemwise(op, *args)
    ms = (time.perf_counter() - t) * 1e3
    sig, source = resolve(op, *args)
    err = float(np.max(np.abs(got.astype(np.float64) - want)))
    shapes = ", ".join(f"{np.asarray(a).dtype}{np.asarray(a).shape}" for a in args)
    print(f"{op:<9}{shapes:<52}{source + ' ' + sig.key.split('/', 1)[1]:<34}{err:>10.1e}"
          f"{ms:>8.2f}")
    assert err < 1e-5, (op, err)

try:
    import pytensor
    import pytensor.tensor as pt
except ImportError:
    pytensor = None
if pytensor is not None:
    import aotkernels.pytensor as am

    X = rng.normal(size=(10_000, 100))
    w_true = rng.normal(size=100)
    Y = (X @ w_true + rng.normal(size=10_000) > 0).astype(np.float64)
    x, w, y = pt.matrix("x"), pt.vector("w"), pt.vector("y")
    p = pt.sigmoid(x @ w)
    loss = -pt.mean(y * pt.log(p) + (1 - y) * pt.log(1 - p))
    grad = pytensor.grad(loss, w)
    t = time.perf_counter()
    f = pytensor.function([x, w, y], [loss, grad], mode="AOT")
    got = f(X, np.zeros(100), Y)
    first = time.perf_counter() - t
    ref = pytensor.function([x, w, y], [loss, grad], mode="FAST_COMPILE")(X, np.zeros(100), Y)
    assert all(np.allclose(a, b) for a, b in zip(got, ref))
    print(f"\nPyTensor {pytensor.__version__}, logistic regression loss + gradient "
          f"(10000 x 100), mode='AOT': pytensor.function to first result {first:.2f} s; "
          f"loss {got[0]:.6f} (FAST_COMPILE agrees)")
    print("nodes by implementation:", dict(am.coverage_summary(f)))
    w0 = np.zeros(100)
    for _ in range(3):  # later calls replay the recorded kernels from C
        w0 = w0 - 0.5 * f(X, w0, Y)[1]
    calls = []
    for _ in range(5):
        t = time.perf_counter()
        got = f(X, w0, Y)
        calls.append(time.perf_counter() - t)
    print(f"after 3 gradient steps: loss {got[0]:.6f}; a call now takes "
          f"{min(calls) * 1e6:.0f} us; plan: {dict(am.plan_summary(f))}")
print("numba imported:", "numba" in sys.modules)
