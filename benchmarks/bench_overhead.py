"""Where a steady mode-AOT call spends its time, against NUMBA and C in the same process.

    python benchmarks/bench_overhead.py [--lib DIR] [--cases elemwise-10,...] [--rounds 200]

The modes' functions are called in interleaved rounds (so machine load hits all alike);
reported: the median call of each mode, then, for mode AOT's plan, the time of
``Plan.run`` alone, of its C segments (``aotk_run_steps``) and of the nodes it leaves to
Python. Cases are bench_pytensor.py's (radon needs pymc: run this with
build/pymc-venv/bin/python).
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

from bench_elemwise import library_dir
from bench_pytensor import BUILD


def median(fn, n: int) -> float:
    times = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    times.sort()
    return times[n // 2]


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--lib", type=Path, default=None)
    p.add_argument("--cases", default="elemwise-10,elemwise-1000000,logistic-100x10")
    p.add_argument("--rounds", type=int, default=200)
    args = p.parse_args()
    os.environ["AOT_LIBRARY_DIR"] = str(library_dir(args.lib))
    ns: dict = {}
    exec(BUILD, ns)
    import numpy as np
    import pytensor

    import aotkernels.pytensor as am
    from aotkernels.pytensor.executor import Segment

    print(f"# in-process steady state, {time.strftime('%Y-%m-%d')}, PyTensor "
          f"{pytensor.__version__}\n")
    print("| case | AOT µs | NUMBA µs | C µs | AOT/NUMBA | plan.run µs | C segments µs "
          "| Python nodes µs | plan |")
    print("|---|---|---|---|---|---|---|---|---|")
    for case in args.cases.split(","):
        inputs, outputs, values = ns["build"](case)
        fs = {m: pytensor.function(inputs, outputs, mode=m) for m in ("AOT", "NUMBA", "CVM")}
        per = max(1, 2000 // args.rounds) if case.endswith("-10") else 1
        for f in fs.values():
            f(*values), f(*values)
        samples: dict = {m: [] for m in fs}
        for _ in range(args.rounds):
            for m, f in fs.items():
                t = time.perf_counter()
                for _ in range(per):
                    f(*values)
                samples[m].append((time.perf_counter() - t) / per)
        med = {m: sorted(v)[len(v) // 2] * 1e6 for m, v in samples.items()}
        vm = fs["AOT"].vm
        plan = next(iter(vm.plans.values()))
        for cell, v in zip(vm.input_storage, values):
            cell[0] = np.asarray(v)
        n = 20 * args.rounds
        run = median(lambda: plan.run(vm), n)
        segments = sum(median(lambda s=s: plan.run_steps(s.n, s.table_p, plan.roots_p,
                                                          s.status_p), n)
                       for s in plan.items if isinstance(s, Segment))
        python = sum(median(item.thunk, n) for item in plan.items
                     if not isinstance(item, Segment))
        kinds = ", ".join(f"{k} {v}" for k, v in am.plan_summary(fs["AOT"]).most_common())
        print(f"| {case} | {med['AOT']:.1f} | {med['NUMBA']:.1f} | {med['CVM']:.1f} "
              f"| {med['AOT'] / med['NUMBA']:.2f} | {run * 1e6:.1f} | {segments * 1e6:.1f} "
              f"| {python * 1e6:.1f} | {kinds} |")


if __name__ == "__main__":
    main()
