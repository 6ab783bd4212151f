"""The solver kernels (``lapack`` family) against SciPy, and the two corpus models that use
them with and without mode AOT's solver servers.

    build/pymc-venv/bin/python benchmarks/bench_solvers.py [--rounds 20] [--numba]

Part 1, per size: ``ak.cholesky``, ``ak.solve_triangular``, ``ak.solve`` (general and
positive definite) and ``ak.cho_solve`` (matrix right-hand side of 8 columns) against
SciPy's functions with ``check_finite=False`` (what PyTensor's ``perform`` costs, less its
own Python). Part 2: ``logp_dlogp`` of
marginal_gp and mvnormal_lkj (tests/corpus) in mode AOT with this branch's servers, mode AOT
with the solver servers switched off (the Ops on PyTensor's ``perform``, as before), mode C
and optionally NUMBA, compiled in one process and timed in interleaved rounds. Reported:
best time per call over the rounds, and the spread (median over best).
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent


def best_and_spread(fns: dict, rounds: int) -> dict:
    per = {}
    for name, fn in fns.items():  # a batch of about 5 ms per round
        t = time.perf_counter()
        fn()
        per[name] = max(1, int(0.005 / max(time.perf_counter() - t, 1e-7)))
    samples = {name: [] for name in fns}
    names = list(fns)
    for r in range(rounds):
        for name in names[r % len(names):] + names[:r % len(names)]:
            fn, k = fns[name], per[name]
            t = time.perf_counter()
            for _ in range(k):
                fn()
            samples[name].append((time.perf_counter() - t) / k)
    return {n: (min(v), sorted(v)[len(v) // 2] / min(v)) for n, v in samples.items()}


def kernels(rounds: int) -> None:
    import scipy.linalg as sl

    import aotkernels as ak

    print(f"LAPACK: {ak.default_library().lapack}")
    print("| n | cholesky µs (aot / scipy) | ratio | solve_triangular µs (aot / scipy) | ratio |")
    print("|---|---|---|---|---|")
    rng = np.random.default_rng(0)
    for n in (3, 40, 200):
        m = rng.normal(size=(n, n))
        a = m @ m.T + n * np.eye(n)
        b = rng.normal(size=(n, 8))
        L = sl.cholesky(a, lower=True)
        res = best_and_spread({
            "chol aot": lambda: ak.cholesky(a, check_finite=False),
            "chol scipy": lambda: sl.cholesky(a, lower=True, check_finite=False),
            "trs aot": lambda: ak.solve_triangular(L, b, lower=True, check_finite=False),
            "trs scipy": lambda: sl.solve_triangular(L, b, lower=True, check_finite=False),
        }, rounds)
        us = {k: v[0] * 1e6 for k, v in res.items()}
        spread = max(v[1] for v in res.values())
        print(f"| {n} | {us['chol aot']:.1f} / {us['chol scipy']:.1f} | "
              f"{us['chol aot'] / us['chol scipy']:.2f} | {us['trs aot']:.1f} / "
              f"{us['trs scipy']:.1f} | {us['trs aot'] / us['trs scipy']:.2f} |"
              f" (spread up to {spread:.2f})")

    print("\n| n | solve (gen) µs (aot / scipy) | ratio | solve (pos) µs (aot / scipy) | ratio"
          " | cho_solve µs (aot / scipy) | ratio |")
    print("|---|---|---|---|---|---|---|")
    for n in (3, 40, 200):
        m = rng.normal(size=(n, n))
        a = m @ m.T + n * np.eye(n)
        b = rng.normal(size=(n, 8))
        L = sl.cholesky(a, lower=True)
        res = best_and_spread({
            "gen aot": lambda: ak.solve(a, b, check_finite=False),
            "gen scipy": lambda: sl.solve(a, b, check_finite=False),
            "pos aot": lambda: ak.solve(a, b, assume_a="pos", check_finite=False),
            "pos scipy": lambda: sl.solve(a, b, assume_a="pos", check_finite=False),
            "cho aot": lambda: ak.cho_solve((L, True), b, check_finite=False),
            "cho scipy": lambda: sl.cho_solve((L, True), b, check_finite=False),
        }, rounds)
        us = {k: v[0] * 1e6 for k, v in res.items()}
        spread = max(v[1] for v in res.values())
        cells = [f"{us[k + ' aot']:.1f} / {us[k + ' scipy']:.1f} | "
                 f"{us[k + ' aot'] / us[k + ' scipy']:.2f}" for k in ("gen", "pos", "cho")]
        print(f"| {n} | " + " | ".join(cells) + f" | (spread up to {spread:.2f})")


def models(rounds: int, numba: bool) -> None:
    sys.path.insert(0, str(ROOT))
    from pytensor.compile.builders import OpFromGraph
    from pytensor.tensor.basic import AllocDiag, ExtractDiag
    from pytensor.tensor.blas import Ger
    from pytensor.tensor.slinalg import Cholesky, SolveTriangular

    import aotkernels.pytensor as am
    from aotkernels.pytensor.servers import serve
    from tests.corpus import MODELS, logp_dlogp, points

    print("\n| model | AOT µs | AOT, solvers on perform µs | C µs | NUMBA µs | AOT/before |"
          " AOT/C | AOT/NUMBA | python plan items (after/before) |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name in ("marginal_gp", "mvnormal_lkj"):
        m = MODELS[name]()
        x = points(m, 1)[0]
        fs = {"AOT": logp_dlogp(m, "AOT")}
        saved = {cls: serve.dispatch(cls) for cls in (Cholesky, SolveTriangular, Ger,
                                                       ExtractDiag, AllocDiag)}
        for cls in (Cholesky, SolveTriangular, Ger, ExtractDiag):
            serve.register(cls)(lambda op, node, thunk: thunk)
        serve.register(AllocDiag)(serve.dispatch(OpFromGraph))
        fs["before"] = logp_dlogp(m, "AOT")
        for cls, fn in saved.items():
            serve.register(cls)(fn)
        fs["C"] = logp_dlogp(m, "CVM")
        if numba:
            fs["NUMBA"] = logp_dlogp(m, "NUMBA")
        for f in fs.values():
            for _ in range(3):  # mode AOT: record, plan, replay
                f(x)
        items = [sum(v for k, v in (am.plan_summary(fs[k]) or {}).items()
                     if k in ("python", "view (run)")) for k in ("AOT", "before")]
        res = best_and_spread({k: (lambda f=f: f(x)) for k, f in fs.items()}, rounds)
        us = {k: v[0] * 1e6 for k, v in res.items()}
        spread = max(v[1] for v in res.values())
        nb = us.get("NUMBA")
        cells = [name, f"{us['AOT']:.1f}", f"{us['before']:.1f}", f"{us['C']:.1f}",
                 f"{nb:.1f}" if nb else "–", f"{us['AOT'] / us['before']:.2f}",
                 f"{us['AOT'] / us['C']:.2f}", f"{us['AOT'] / nb:.2f}" if nb else "–",
                 f"{items[0]}/{items[1]}"]
        print("| " + " | ".join(cells) + f" | (spread up to {spread:.2f})")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=20)
    p.add_argument("--numba", action="store_true", help="also mode NUMBA (minutes to compile)")
    args = p.parse_args()
    warnings.filterwarnings("ignore")
    kernels(args.rounds)
    models(args.rounds, args.numba)


if __name__ == "__main__":
    main()
