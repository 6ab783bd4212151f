"""Kernel vs NumPy and numba per round, batch by batch: ratios that uneven load cannot skew.

    python benchmarks/bench_paired.py [--lib build/levels-lib] [--target x86_64_v3]
                                      [--ops exp,log,...] [--rounds 21] [--sizes 1000,1000000]
                                      [--strided] [--today build/today-lib] [--fresh 64]

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

``--today DIR`` adds the library's kernels as they were before ``kernels/vecmath.py``
(``benchmarks/today_lib.py`` builds DIR: every op on libm, same templates, target and call
path), timed in the same rounds: issue 17's "today". ``--fresh K`` gives every call the
next of K different input arrays of the size (the default, 1, repeats one array: at 1e3
the branch predictor then learns glibc's branches for those 1000 inputs, which a
vector body, having none, cannot gain from); every timed function pays the same rotation.
``--jitter E`` makes those K arrays the first one moved by a relative E (a sampler's
successive calls: new values, glibc's branches mostly taken as before). Keep K * size
small (64 x 1e3 float64 is 512 KB, in L2).
"""

from __future__ import annotations

import argparse
import ctypes
import itertools
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


def measure(op: str, dtype: str, size: int, rounds: int, strided: bool = False,
            today=None, fresh: int = 1, jitter: float = 0.0) -> dict:
    """``today``: the Library of ``--today``; ``fresh``: input arrays rotated per call,
    independent draws, or with ``jitter`` the first one scaled by 1 + jitter * N(0, 1)."""
    from aotkernels.families.elemwise import prepare

    rng = np.random.default_rng(0)
    step = 2 if strided else 1
    out = np.empty(size, dtype)
    sets = []
    a0, b0 = (rng.normal(size=step * size) for _ in range(2))
    for k in range(fresh):
        if k and jitter:  # the same data moved a little: the branches mostly as before
            a, b = (v * (1 + jitter * rng.normal(size=v.size)) for v in (a0, b0))
        elif k:
            a, b = (rng.normal(size=step * size) for _ in range(2))
        else:
            a, b = a0, b0
        a, b = (v.astype(dtype)[::step] for v in (a, b))
        x = np.abs(a) if positive(op) else a
        sets.append((x, b) if op in BINARY else (x,))
    p, arrays, _ = prepare(op, *sets[0], out=out)
    assert p.source == "aot", (op, p.sig)
    datas = [(ctypes.c_void_p * p.n)(*[v.ctypes.data for v in args], out.ctypes.data)
             for args in sets]
    npf, nbf = numpy_fn(op), numba_loop(op)
    nxt = itertools.cycle(range(fresh)).__next__
    fns = {"aot": lambda: p.fn(datas[nxt()], p.shapes, p.strides),
           "numpy": lambda: npf(*sets[nxt()], out=out),
           "numba": lambda: nbf(*sets[nxt()], out)}
    if today is not None:
        old = today.function(p.sig.key)
        assert old is not None, p.sig.key
        fns["today"] = lambda: old(datas[nxt()], p.shapes, p.strides)
    counts = {k: calls_per_batch(f) for k, f in fns.items()}
    times: dict[str, list[float]] = {k: [] for k in fns}
    order = list(fns)
    for r in range(rounds):
        for k in order[r % len(order):] + order[:r % len(order)]:
            times[k].append(batch_time(fns[k], counts[k]))
    t = {k: np.array(v) for k, v in times.items()}
    label = f"{op} {size:.0e} {'strided ' if strided else ''}{dtype}"
    row = dict(case=label, **{k: float(v.min()) for k, v in t.items()})
    for peer in ("numpy", "numba", "today"):
        if peer not in t:
            continue
        q1, med, q3 = np.percentile(t["aot"] / t[peer], [25, 50, 75])
        row[peer + "_ratio"] = (float(med), float(q1), float(q3))
    return row


def worker(ops: list[str], sizes: list[int], rounds: int, strided: bool,
           today: Path | None, fresh: int, dtypes: list[str], jitter: float) -> None:
    import aotkernels as ak
    from aotkernels.library import load

    old = load(today) if today else None
    peers = ("numpy", "numba", "today") if old else ("numpy", "numba")
    print(f"# {ak.default_library().target}, NumPy features "
          f"{os.environ.get('NPY_ENABLE_CPU_FEATURES', 'all')}, {rounds} rounds, "
          f"{fresh} input array{'s' if fresh > 1 else ''} per case"
          f"{f' (jitter {jitter:g})' if jitter and fresh > 1 else ''}\n")
    print(f"| case | kernel µs | {' | '.join(f'{k} µs' for k in peers)} | "
          f"{' | '.join(f'kernel/{k} median (IQR)' for k in peers)} |")
    print("|---|---" + "|---" * 2 * len(peers) + "|")
    for dtype in dtypes:
        for op in ops:
            for size in sizes:
                r = measure(op, dtype, size, rounds, strided, old, fresh, jitter)
                cells = [f"{r[k] * 1e6:.1f}" for k in ("aot", *peers)]
                cells += [f"{m:.2f} ({lo:.2f}-{hi:.2f})"
                          for m, lo, hi in (r[k + "_ratio"] for k in peers)]
                print(f"| {r['case']} | {' | '.join(cells)} |", flush=True)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--lib", type=Path, default=ROOT / "build" / "levels-lib")
    p.add_argument("--target", default="x86_64_v3")
    p.add_argument("--ops", default=",".join(TRANSCENDENTAL))
    p.add_argument("--sizes", default="1000,1000000")
    p.add_argument("--rounds", type=int, default=21)
    p.add_argument("--strided", action="store_true", help="stride-2 views as inputs")
    p.add_argument("--today", type=Path, default=None,
                   help="a library from benchmarks/today_lib.py: the kernels before vecmath")
    p.add_argument("--dtypes", default="float64,float32")
    p.add_argument("--jitter", type=float, default=0.0,
                   help="with --fresh: the arrays are the first one scaled by 1 + jitter * "
                        "N(0, 1) (an MCMC-like sequence of calls) instead of new draws")
    p.add_argument("--fresh", type=int, default=1,
                   help="rotate each call through this many input arrays")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    ops, sizes = args.ops.split(","), [int(float(s)) for s in args.sizes.split(",")]
    if args.worker:
        worker(ops, sizes, args.rounds, args.strided, args.today, args.fresh,
               args.dtypes.split(","), args.jitter)
        return
    env = dict(os.environ, AOT_CPU_TARGET=args.target, AOT_LIBRARY_DIR=str(args.lib.resolve()),
               AOT_DISABLE_JIT="1")
    if args.target in NUMPY_FEATURES:
        env["NPY_ENABLE_CPU_FEATURES"] = NUMPY_FEATURES[args.target]
    print(f"# paired rounds, {time.strftime('%Y-%m-%d %H:%M')}, load average "
          f"{os.getloadavg()[0]:.1f}", flush=True)
    subprocess.run([sys.executable, __file__, "--worker", "--ops", args.ops, "--sizes",
                    args.sizes, "--rounds", str(args.rounds), "--fresh", str(args.fresh),
                    "--dtypes", args.dtypes, "--jitter", str(args.jitter),
                    *(["--strided"] if args.strided else []),
                    *(["--today", str(args.today.resolve())] if args.today else [])],
                   env=env, check=True,
                   cwd=Path(__file__).parent)


if __name__ == "__main__":
    main()
