"""Steady state with and without fused kernels (issue 13), against NUMBA, in one process.

    build/pymc-venv/bin/python benchmarks/bench_fusion.py [--models a,b] [--rounds 30]
    .venv/bin/python benchmarks/bench_fusion.py --models chain-10,chain-1000000

Per case (a corpus model's ``logp_dlogp``, what ``pm.sample`` calls, or the 11-node
elementwise chain of ``bench_pytensor.py`` at n elements), one process compiles three
functions: mode AOT with fusion off (``AOT_FUSION=0`` while its plan is made: what a first
process runs before fused kernels arrive), mode AOT with fusion on, waited for
(``wait_for_fusion``: what a second process runs once the JIT cache holds the fused
kernels, which it loads in the background without compiling) and mode NUMBA. They are
called in interleaved rounds (each round calls every function, in rotating order, a batch
of about 5 ms, sized from warm calls); reported: the best round's time per call, the
spread (median over best, of wall time and of the process's CPU time per call: on a shared
machine the wall spread is mostly preemption by other processes), the ratios to NUMBA, the
fused runs and the plan's kernel steps before and after, the fused plan's C work alone
(its segments' steps, no Python) and the rest of a call (the Python around it:
``trivial-10``, ``x + y``, measures the per-call overhead), and the time of the first
three calls of each function (the first result is not delayed by fusion: plans are made on
the second call, fused kernels compile in the background). Every function's results are
checked against NUMBA's first.

The kernel library is build/full-lib if it exists, else build/test-lib; missing kernels
and fused kernels go to a fresh JIT cache in a temporary directory (``--cache`` keeps one).
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
import json, os, sys, time, warnings
warnings.filterwarnings("ignore")
import numpy as np
import pytensor
import aotkernels.pytensor as am
from aotkernels.pytensor.executor import Segment
name, rounds = sys.argv[1], int(sys.argv[2])
if name.startswith(("chain-", "trivial-")):
    import pytensor.tensor as pt
    n = int(name.split("-")[1])
    x, y = pt.vector("x"), pt.vector("y")
    if name.startswith("chain-"):
        out = pt.exp(-x * x) * pt.sigmoid(y) + pt.log1p(pt.abs(x - y)) / (1 + y * y)
    else:
        out = x + y
    rng = np.random.default_rng(0)
    args = [rng.normal(size=n), rng.normal(size=n)]
    make = lambda mode: pytensor.function([x, y], out, mode=mode)
else:
    from tests.corpus import MODELS, logp_dlogp, points
    m = MODELS[name]()
    args = [points(m, 1)[0]]
    make = lambda mode: logp_dlogp(m, mode)

def steps(f):
    plan = next(iter(f.vm.plans.values()))
    return sum(item.n.value for item in plan.items if item.__class__ is Segment)

os.environ["AOT_FUSION"] = "0"
warm = make("AOT")  # JIT-compiles what the library lacks, so no function below pays it
for _ in range(3):
    warm(*args)
fs, outs, info = {}, {}, {}
for label, mode, fusion in (("unfused", "AOT", "0"), ("fused", "AOT", "1"),
                            ("NUMBA", "NUMBA", "1")):
    os.environ["AOT_FUSION"] = fusion
    f = fs[label] = make(mode)
    t = time.perf_counter()
    for _ in range(3):  # mode AOT: run, record and plan, replay
        outs[label] = [np.array(v, copy=True) for v in f(*args)]
    info[f"three calls {label} ms"] = (time.perf_counter() - t) * 1e3
t = time.perf_counter()
info["fused runs"] = am.wait_for_fusion(fs["fused"], 1200)
info["fusion wait s"] = time.perf_counter() - t
info["steps"] = [steps(fs["unfused"]), steps(fs["fused"])]
ref = outs["NUMBA"]
fs["fused"](*args)
outs["fused"] = [np.array(v, copy=True) for v in fs["fused"](*args)]
info["agree"] = max(float(np.max(np.abs(o - r) / np.maximum(np.abs(r), 1.0)))
                    for out in outs.values() for o, r in zip(out, ref))
per = {}
for label, f in fs.items():  # batch sizes from warm calls: the first call after
    for _ in range(20):      # wait_for_fusion swaps the fused kernels in (about 1 ms)
        f(*args)
    t = time.perf_counter()
    for _ in range(20):
        f(*args)
    per[label] = max(1, int(0.005 * 20 / max(time.perf_counter() - t, 1e-7)))
labels = list(fs)
samples = {label: [] for label in labels}
cpu = {label: [] for label in labels}
for r in range(rounds):
    for label in labels[r % 3:] + labels[:r % 3]:
        f, k = fs[label], per[label]
        t, c = time.perf_counter(), time.process_time()
        for _ in range(k):
            f(*args)
        samples[label].append((time.perf_counter() - t) / k)
        cpu[label].append((time.process_time() - c) / k)
med = lambda v: sorted(v)[len(v) // 2]
info["steady"] = {label: {"best": min(v) * 1e6, "median": med(v) * 1e6,
                          "cpu best": min(cpu[label]) * 1e6, "cpu median": med(cpu[label]) * 1e6}
                  for label, v in samples.items()}
plan = next(iter(fs["fused"].vm.plans.values()))  # its C work alone: the steps
cs = []
for _ in range(rounds):
    t = time.perf_counter()
    for _ in range(100):
        for item in plan.items:
            if item.__class__ is Segment:
                plan.run_steps(item.n, item.table_p, plan.roots_p, item.status_p)
    cs.append((time.perf_counter() - t) / 100)
info["C µs"] = min(cs) * 1e6
print(json.dumps(info))
"""


def library() -> Path:
    full = ROOT / "build" / "full-lib"
    return full if (full / "manifest.json").exists() else ROOT / "build" / "test-lib"


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--models", default="", help="comma-separated corpus models, chain-N "
                   "and trivial-N (default: the corpus, chain-10, chain-1000000, trivial-10)")
    p.add_argument("--rounds", type=int, default=30)
    p.add_argument("--cache", type=Path, default=None, help="JIT cache (default: a fresh one)")
    p.add_argument("--lib", type=Path, default=None, help="kernel library (default: above)")
    args = p.parse_args()
    if args.models:
        names = args.models.split(",")
    else:
        sys.path.insert(0, str(ROOT))
        from tests.corpus import MODELS

        names = ["trivial-10", "chain-10", "chain-1000000", *MODELS]
    lib = (args.lib or library()).resolve()
    # a library inside this checkout by its relative path; another by its last parts only
    # (results are pasted into RESULTS.md, which names no machine's directories)
    shown = (lib.relative_to(ROOT) if lib.is_relative_to(ROOT)
             else Path("…", *lib.parts[-2:]))
    tmp = tempfile.TemporaryDirectory(prefix="bench-fusion-")
    cache = args.cache or Path(tmp.name)
    env = dict(os.environ, AOT_LIBRARY_DIR=str(lib), AOT_CACHE_DIR=str(cache),
               OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1")
    print(f"# {time.strftime('%Y-%m-%d %H:%M')}, {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at start; "
          f"library {shown}; {args.rounds} rounds\n")
    print("| case | AOT unfused µs | AOT fused µs | NUMBA µs | unfused/NUMBA | fused/NUMBA "
          "| spread (median/best) u, f, N | CPU median/best u, f, N | fused runs | steps | C µs "
          "| AOT fused − C µs "
          "| 3 first calls ms u / f / N | fusion wait s | agree |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for name in names:
        res = subprocess.run([sys.executable, "-c", CASE, name, str(args.rounds)], cwd=ROOT,
                             env=env, capture_output=True, text=True)
        if res.returncode:
            print(f"| {name} | failed: {res.stderr.strip().splitlines()[-1][:150]} |")
            continue
        r = json.loads(res.stdout.strip().splitlines()[-1])
        s = r["steady"]
        u, f, n = (s[k]["best"] for k in ("unfused", "fused", "NUMBA"))
        spread = ", ".join(f"{s[k]['median'] / s[k]['best']:.2f}"
                           for k in ("unfused", "fused", "NUMBA"))
        cspread = ", ".join(f"{s[k]['cpu median'] / s[k]['cpu best']:.2f}"
                            for k in ("unfused", "fused", "NUMBA"))
        print(f"| {name} | {u:.1f} | {f:.1f} | {n:.1f} | {u / n:.2f} | **{f / n:.2f}** "
              f"| {spread} | {cspread} | {r['fused runs']} | {r['steps'][0]} → {r['steps'][1]} "
              f"| {r['C µs']:.1f} | {f - r['C µs']:.1f} | "
              + " / ".join(f"{r[f'three calls {k} ms']:.0f}" for k in ("unfused", "fused", "NUMBA"))
              + f" | {r['fusion wait s']:.1f} | {r['agree']:.0e} |", flush=True)
    print(f"\nload average at the end: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
