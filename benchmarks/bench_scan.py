"""Scan per call: PyTensor's loop (before) against the loop step in C (after), NUMBA and C.

    build/pymc-venv/bin/python benchmarks/bench_scan.py [--models scan_garch,rnn-8x200]

Per case (a corpus model's ``logp_dlogp``, what ``pm.sample`` calls, or ``rnn-KxT``: the
logp and gradient of a tanh recurrence of K states over T steps with a K x K matrix, two
Scans), one process compiles mode AOT with Scans on PyTensor's ``perform`` loop
(``AOT_SCAN_LOOP=0`` while its plan is made: the code before the loop step), mode AOT with
the loop step, mode NUMBA and mode C (PyTensor's C backend, ``FAST_RUN``), and calls them in
interleaved rounds (every function per round, rotating order, batches of about 5 ms).
Fused kernels are waited for in both AOT functions. Reported: the best round's time per
call and the spread (median over best), ratios to NUMBA and C, the plan's Python items,
and the plan exported to C (``cplan``: nutpie's ``aotk_nutpie_logp`` called through ctypes,
which adds about a microsecond) where it exports. Results are checked against NUMBA's.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

CASE = r"""
import ctypes, json, os, sys, time, warnings
warnings.filterwarnings("ignore")
import numpy as np
import pytensor
import pytensor.tensor as pt
import aotkernels.pytensor as am
from aotkernels.pytensor.cplan import Model, NotExportable, entry_points, export
name, rounds = sys.argv[1], int(sys.argv[2])
if name.startswith("rnn-"):
    k, t = (int(v) for v in name.split("-")[1].split("x"))
    rng = np.random.default_rng(0)
    xs = rng.normal(size=(t, k))
    x = pt.dvector("x")
    w = x[:k * k].reshape((k, k)) * 0.1
    b = x[k * k:]
    h, _ = pytensor.scan(lambda x_t, h, w, b: pt.tanh(pt.dot(w, h) + x_t + b),
                         sequences=[pt.as_tensor(xs)], outputs_info=[pt.zeros(k)],
                         non_sequences=[w, b])
    logp = -0.5 * pt.sum((h - 0.1) ** 2) - 0.5 * pt.sum(x ** 2)
    args = [rng.normal(size=k * k + k)]
    make = lambda mode: pytensor.function([x], [logp, pytensor.grad(logp, x)], mode=mode)
else:
    from tests.corpus import MODELS, logp_dlogp, points
    m = MODELS[name]()
    args = [points(m, 1)[0]]
    make = lambda mode: logp_dlogp(m, mode)

def python_items(f):
    plan = next(iter(f.vm.plans.values()))
    return plan.kinds().get("python", 0) + plan.kinds().get("view (run)", 0)

fs, outs, info = {}, {}, {}
for label, mode, loop in (("perform", "AOT", "0"), ("loop", "AOT", "1"),
                          ("NUMBA", "NUMBA", "1"), ("C", "FAST_RUN", "1")):
    os.environ["AOT_SCAN_LOOP"] = loop
    f = fs[label] = make(mode)
    for _ in range(3):  # mode AOT: run, record and plan, replay
        outs[label] = [np.array(v, copy=True) for v in f(*args)]
    if mode == "AOT":
        am.wait_for_fusion(f, 1200)
        info[f"python items {label}"] = python_items(f)
os.environ["AOT_SCAN_LOOP"] = "1"
ref = outs["NUMBA"]
info["agree"] = max(float(np.max(np.abs(o - r) / np.maximum(np.abs(r), 1.0)))
                    for out in outs.values() for o, r in zip(out, ref))
calls = {label: (lambda f=f: f(*args)) for label, f in fs.items()}
entries = entry_points()
try:
    x = np.ascontiguousarray(args[0])
    cp = export(fs["loop"], x, (1, x.size))
    model = Model(cp, cp, entries)
    fn = ctypes.CFUNCTYPE(ctypes.c_int64, ctypes.c_uint64, ctypes.c_void_p, ctypes.c_void_p,
                          ctypes.c_void_p, ctypes.c_void_p)(entries[0])
    grad, lp = np.empty(x.size), np.empty(1)
    a = (x.size, x.ctypes.data, grad.ctypes.data, lp.ctypes.data, model.user_data.ctypes.data)
    info["C export rc"] = int(fn(*a))  # 0, or nutpie's code for a non-finite value
    info["C export agree"] = float(max(abs(lp[0] - ref[0]), np.max(np.abs(grad - ref[1]))))
    calls["C export"] = lambda: fn(*a)
except NotExportable as exc:
    info["C export"] = str(exc)[:80]
per = {}
for label, c in calls.items():
    t = time.perf_counter()
    c()
    per[label] = max(1, int(0.005 / max(time.perf_counter() - t, 1e-7)))
labels = list(calls)
samples = {label: [] for label in labels}
for r in range(rounds):
    for label in labels[r % len(labels):] + labels[:r % len(labels)]:
        c, k = calls[label], per[label]
        t = time.perf_counter()
        for _ in range(k):
            c()
        samples[label].append((time.perf_counter() - t) / k)
info["steady"] = {label: {"best": min(v) * 1e6, "median": sorted(v)[len(v) // 2] * 1e6}
                  for label, v in samples.items()}
print(json.dumps(info))
"""


def library() -> Path:
    full = ROOT / "build" / "full-lib"
    return full if (full / "manifest.json").exists() else ROOT / "build" / "test-lib"


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--models", default="scan_garch,rnn-8x200",
                   help="comma-separated corpus models and rnn-KxT")
    p.add_argument("--rounds", type=int, default=30)
    p.add_argument("--lib", type=Path, default=None, help="kernel library (default: above)")
    args = p.parse_args()
    lib = (args.lib or library()).resolve()
    shown = (lib.relative_to(ROOT) if lib.is_relative_to(ROOT)
             else Path("…", *lib.parts[-2:]))
    tmp = tempfile.TemporaryDirectory(prefix="bench-scan-")
    env = dict(os.environ, AOT_LIBRARY_DIR=str(lib), AOT_CACHE_DIR=str(Path(tmp.name)),
               OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1")
    print(f"# {time.strftime('%Y-%m-%d %H:%M')}, {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at start; "
          f"library {shown}; {args.rounds} rounds\n")
    print("| case | AOT perform µs | AOT loop µs | C export µs | NUMBA µs | C µs "
          "| perform/NUMBA | loop/NUMBA | loop/C | spread p, l, N, C | Python items p → l "
          "| agree |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for name in args.models.split(","):
        res = subprocess.run([sys.executable, "-c", CASE, name, str(args.rounds)], cwd=ROOT,
                             env=env, capture_output=True, text=True)
        if res.returncode:
            print(f"| {name} | failed: {res.stderr.strip().splitlines()[-1][:150]} |")
            continue
        r = json.loads(res.stdout.strip().splitlines()[-1])
        s = r["steady"]
        pf, lo, nu, cc = (s[k]["best"] for k in ("perform", "loop", "NUMBA", "C"))
        ce = f"{s['C export']['best']:.1f}" if "C export" in s else r.get("C export", "-")
        spread = ", ".join(f"{s[k]['median'] / s[k]['best']:.2f}"
                           for k in ("perform", "loop", "NUMBA", "C"))
        print(f"| {name} | {pf:.1f} | {lo:.1f} | {ce} | {nu:.1f} | {cc:.1f} | {pf / nu:.1f} "
              f"| **{lo / nu:.2f}** | {lo / cc:.2f} | {spread} "
              f"| {r['python items perform']} → {r['python items loop']} "
              f"| {r['agree']:.0e} |", flush=True)
    print(f"\nload average at the end: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
