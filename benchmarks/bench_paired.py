"""Kernel vs NumPy and numba per round, batch by batch: ratios that uneven load cannot skew.

    python benchmarks/bench_paired.py [--lib build/levels-lib] [--target x86_64_v3]
                                      [--ops exp,log,...] [--rounds 21] [--sizes 1000,1000000]
                                      [--strided]

``bench_levels.py`` takes each column's best over rounds minutes apart; when other work
loads the machine unevenly (spread 2-7 in RESULTS' vector-math runs), a column's best may come
from a quiet moment its peer never had, and wall-clock batches count the time other
processes held the core. Here every round times one batch (~2 ms) of the kernel, of NumPy
and of numba ``@njit`` (the libm loop the kernels had before ``kernels/vecmath.py``) back to
back, in rotating order, in this thread's CPU time, and divides: what load remains (shared
caches, frequency) falls on all three alike. Reported: the median ratio over rounds and its
interquartile range, per op, dtype and size (contiguous inputs, or stride-2 views with
``--strided``; the level's own process, NumPy's SIMD dispatch held to the level as in
``bench_levels.py``).
"""

from __future__ import annotations

import argparse
import ctypes
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from bench_elemwise import BINARY, ROOT, TRANSCENDENTAL, numba_loop, numpy_fn, positive
from bench_levels import NUMPY_FEATURES


def batch_time(fn, n: int) -> float:
    """Per call, in this thread's CPU time: time spent preempted by other processes (the
    bulk of a wall-clock batch at load 7 on 2 cores) is not counted."""
    t0 = time.thread_time()
    for _ in range(n):
        fn()
    return (time.thread_time() - t0) / n


def calls_per_batch(fn, target: float = 0.002) -> int:
    fn()
    n = 1
    while batch_time(fn, n) * n < target and n < 1 << 20:
        n *= 2
    return n


def measure(op: str, dtype: str, size: int, rounds: int, strided: bool = False) -> dict:
    from aotkernels.families.elemwise import prepare

    rng = np.random.default_rng(0)
    step = 2 if strided else 1
    a, b = (rng.normal(size=step * size).astype(dtype)[::step] for _ in range(2))
    x = np.abs(a) if positive(op) else a
    args = (x, b) if op in BINARY else (x,)
    out = np.empty(size, dtype)
    p, arrays, _ = prepare(op, *args, out=out)
    assert p.source == "aot", (op, p.sig)
    data = (ctypes.c_void_p * p.n)(*[v.ctypes.data for v in arrays], out.ctypes.data)
    npf, nbf = numpy_fn(op), numba_loop(op)
    fns = {"aot": lambda: p.fn(data, p.shapes, p.strides), "numpy": lambda: npf(*args, out=out),
           "numba": lambda: nbf(*args, out)}
    counts = {k: calls_per_batch(f) for k, f in fns.items()}
    times: dict[str, list[float]] = {k: [] for k in fns}
    order = list(fns)
    for r in range(rounds):
        for k in order[r % 3:] + order[:r % 3]:
            times[k].append(batch_time(fns[k], counts[k]))
    t = {k: np.array(v) for k, v in times.items()}
    label = f"{op} {size:.0e} {'strided ' if strided else ''}{dtype}"
    row = dict(case=label, **{k: float(v.min()) for k, v in t.items()})
    for peer in ("numpy", "numba"):
        q1, med, q3 = np.percentile(t["aot"] / t[peer], [25, 50, 75])
        row[peer + "_ratio"] = (float(med), float(q1), float(q3))
    return row


def worker(ops: list[str], sizes: list[int], rounds: int, strided: bool) -> None:
    import aotkernels as ak

    print(f"# {ak.default_library().target}, NumPy features "
          f"{os.environ.get('NPY_ENABLE_CPU_FEATURES', 'all')}, {rounds} rounds\n")
    print("| case | kernel µs | numpy µs | numba µs | kernel/numpy median (IQR) "
          "| kernel/numba median (IQR) |")
    print("|---|---|---|---|---|---|")
    for dtype in ("float64", "float32"):
        for op in ops:
            for size in sizes:
                r = measure(op, dtype, size, rounds, strided)
                cells = [f"{r[k] * 1e6:.1f}" for k in ("aot", "numpy", "numba")]
                cells += [f"{m:.2f} ({lo:.2f}-{hi:.2f})"
                          for m, lo, hi in (r["numpy_ratio"], r["numba_ratio"])]
                print(f"| {r['case']} | {' | '.join(cells)} |", flush=True)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--lib", type=Path, default=ROOT / "build" / "levels-lib")
    p.add_argument("--target", default="x86_64_v3")
    p.add_argument("--ops", default=",".join(TRANSCENDENTAL))
    p.add_argument("--sizes", default="1000,1000000")
    p.add_argument("--rounds", type=int, default=21)
    p.add_argument("--strided", action="store_true", help="stride-2 views as inputs")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    ops, sizes = args.ops.split(","), [int(float(s)) for s in args.sizes.split(",")]
    if args.worker:
        worker(ops, sizes, args.rounds, args.strided)
        return
    env = dict(os.environ, AOT_CPU_TARGET=args.target, AOT_LIBRARY_DIR=str(args.lib.resolve()),
               AOT_DISABLE_JIT="1")
    if args.target in NUMPY_FEATURES:
        env["NPY_ENABLE_CPU_FEATURES"] = NUMPY_FEATURES[args.target]
    print(f"# paired rounds, {time.strftime('%Y-%m-%d %H:%M')}, load average "
          f"{os.getloadavg()[0]:.1f}", flush=True)
    subprocess.run([sys.executable, __file__, "--worker", "--ops", args.ops, "--sizes",
                    args.sizes, "--rounds", str(args.rounds),
                    *(["--strided"] if args.strided else [])], env=env, check=True,
                   cwd=Path(__file__).parent)


if __name__ == "__main__":
    main()
