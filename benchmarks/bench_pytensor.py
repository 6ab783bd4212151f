"""PyTensor cold start and steady state: mode AOT against NUMBA and C (cvm), in one run.

    python benchmarks/bench_pytensor.py [--lib DIR] [--repeat 50]

Every (case, mode) runs in a fresh process with empty caches (cold: PyTensor's base_compiledir,
numba's cache and aotkernels' JIT cache all in a new temporary directory), then once more in
another fresh process with the caches the first one left (warm). Reported: time from
``pytensor.function`` to the first result, and the median of ``--repeat`` later calls.
``--lib`` is the kernel library (default: $AOT_LIBRARY_DIR, else build/full-lib).
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

from bench_elemwise import library_dir

#: ``build(case) -> (inputs, outputs, values)`` for every case (bench_overhead.py shares it)
BUILD = r"""
import numpy as np
import pytensor
import pytensor.tensor as pt
rng = np.random.default_rng(0)

def build(case):
    if case.startswith("elemwise"):
        n = int(case.split("-")[1])
        x, y = pt.vector("x"), pt.vector("y")
        out = pt.exp(-x * x) * pt.sigmoid(y) + pt.log1p(pt.abs(x - y)) / (1 + y * y)
        return [x, y], [out], [rng.normal(size=n), rng.normal(size=n)]
    if case.startswith("logistic"):
        n, k = map(int, case.split("-")[1].split("x"))
        x, w, t = pt.matrix("x"), pt.vector("w"), pt.vector("t")
        p = pt.sigmoid(x @ w)
        loss = -pt.mean(t * pt.log(p) + (1 - t) * pt.log(1 - p)) + 1e-3 * pt.sum(w ** 2)
        return [x, w, t], [loss, pytensor.grad(loss, w)], [
            rng.normal(size=(n, k)), rng.normal(size=k), (rng.random(n) < 0.5).astype(float)]
    if case == "softmax-classifier":
        x, w, b = pt.matrix("x"), pt.matrix("w"), pt.vector("b")
        y = pt.lvector("y")
        p = pt.special.softmax(x @ w + b, axis=1)
        loss = -pt.mean(pt.log(p[pt.arange(y.shape[0]), y]))
        return [x, w, b, y], [loss, *pytensor.grad(loss, [w, b])], [
            rng.normal(size=(500, 20)), rng.normal(size=(20, 5)), np.zeros(5),
            rng.integers(0, 5, 500)]
    if case == "radon-like":  # radon's logp and dlogp written in PyTensor (no pymc needed)
        from pytensor.raise_op import Assert
        n_county, n = 85, 919
        county = rng.integers(0, n_county, n)
        floor = rng.integers(0, 2, n).astype(float)
        obs = 1.5 + 0.3 * rng.normal(size=n_county)[county] - 0.6 * floor + 0.7 * rng.normal(size=n)
        check = Assert("sigma > 0")

        def normal(x, mu, sigma):
            sigma = check(sigma, pt.all(pt.gt(sigma, 0)))
            return -0.5 * ((x - mu) / sigma) ** 2 - pt.log(sigma) - 0.5 * np.log(2 * np.pi)

        def halfnormal_log(v, s):  # logp of exp(v), plus the log transform's jacobian v
            return 0.5 * np.log(2 / np.pi) - np.log(s) - 0.5 * (pt.exp(v) / s) ** 2 + v

        mu_a, sa_log = pt.scalar("mu_a"), pt.scalar("sigma_a_log__")
        a, b, s_log = pt.vector("a"), pt.scalar("b"), pt.scalar("sigma_log__")
        logp = (normal(mu_a, 0.0, 10.0) + halfnormal_log(sa_log, 5.0)
                + pt.sum(normal(a, mu_a, pt.exp(sa_log))) + normal(b, 0.0, 10.0)
                + halfnormal_log(s_log, 5.0)
                + pt.sum(normal(pt.constant(obs), a[pt.constant(county)] + b * floor,
                                pt.exp(s_log))))
        inputs = [mu_a, sa_log, a, b, s_log]
        return inputs, [logp, *pytensor.grad(logp, inputs)], [
            np.asarray(0.1), np.asarray(0.1), np.full(n_county, 0.1), np.asarray(0.1),
            np.asarray(0.1)]
    if case == "radon":  # a hierarchical PyMC model's logp and dlogp (synthetic radon data)
        import pymc as pm
        n_county, n = 85, 919
        county = rng.integers(0, n_county, n)
        floor = rng.integers(0, 2, n).astype(float)
        obs = 1.5 + 0.3 * rng.normal(size=n_county)[county] - 0.6 * floor + 0.7 * rng.normal(size=n)
        with pm.Model() as model:
            mu_a, sigma_a = pm.Normal("mu_a", 0, 10), pm.HalfNormal("sigma_a", 5)
            a = pm.Normal("a", mu_a, sigma_a, shape=n_county)
            b, sigma = pm.Normal("b", 0, 10), pm.HalfNormal("sigma", 5)
            pm.Normal("y", a[county] + b * floor, sigma, observed=obs)
        inputs = model.value_vars
        logp = model.logp()
        point = model.initial_point()
        return inputs, [logp, *pytensor.grad(logp, inputs)], [
            np.asarray(point[v.name]) + 0.1 for v in inputs]
    raise SystemExit(f"unknown case {case}")
"""

CASE = BUILD + r"""
import json, sys, time
mode, case, repeat = sys.argv[1], sys.argv[2], int(sys.argv[3])
if mode == "AOT":
    import aotkernels.pytensor as am

inputs, outputs, values = build(case)
t0 = time.perf_counter()
f = pytensor.function(inputs, outputs, mode=mode)
first = f(*values)
t_first = time.perf_counter() - t0
times = []
for _ in range(repeat):
    t = time.perf_counter()
    f(*values)
    times.append(time.perf_counter() - t)
times.sort()
cov = dict(am.coverage_summary(f)) if mode == "AOT" else None
plan = dict(am.plan_summary(f) or {}) if mode == "AOT" else None
print(json.dumps({"first": t_first, "steady": times[len(times) // 2], "coverage": cov,
                  "plan": plan, "pytensor": pytensor.__version__,
                  "numba_imported": "numba" in sys.modules,
                  "result": float(np.asarray(first[0]).ravel()[0])}))
"""

CASES = ["elemwise-10", "elemwise-1000000", "logistic-100x10", "logistic-10000x100",
         "softmax-classifier"]
MODES = ["AOT", "NUMBA", "C"]


def run(mode: str, case: str, cache: Path, repeat: int, lib: Path, python: str) -> dict:
    env = dict(os.environ, AOT_LIBRARY_DIR=str(lib), AOT_CACHE_DIR=str(cache / "aot"),
               NUMBA_CACHE_DIR=str(cache / "numba"),
               PYTENSOR_FLAGS=f"base_compiledir={cache / 'pytensor'}")
    mode_arg = {"C": "CVM"}.get(mode, mode)
    res = subprocess.run([python, "-c", CASE, mode_arg, case, str(repeat)], env=env,
                         capture_output=True, text=True)
    if res.returncode:
        raise SystemExit(f"{mode} {case} failed:\n{res.stderr[-3000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--lib", type=Path, default=None)
    p.add_argument("--repeat", type=int, default=50)
    p.add_argument("--cases", default=",".join(CASES), help=f"of {CASES + ['radon']} "
                   "(radon needs pymc: --python build/pymc-venv/bin/python)")
    p.add_argument("--python", default=sys.executable,
                   help="the interpreter whose PyTensor is measured (default: this one)")
    args = p.parse_args()
    lib = library_dir(args.lib)
    if not (lib / "manifest.json").exists():
        raise SystemExit(f"no library in {lib}: run build-kernels --no-wheel --out {lib}")
    version = subprocess.run([args.python, "-c", "import pytensor; print(pytensor.__version__)"],
                             capture_output=True, text=True, check=True).stdout.strip()
    print(f"# PyTensor modes, {time.strftime('%Y-%m-%d')}: {platform.machine()}, "
          f"{os.cpu_count()} cores, PyTensor {version}\n")
    print("| case | mode | cold first s | warm first s | steady µs | AOT/NUMBA first (cold) "
          "| AOT/C first (cold) | AOT/NUMBA steady | AOT/C steady | AOT nodes | AOT plan |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for case in args.cases.split(","):
        rows = {}
        for mode in MODES:
            with tempfile.TemporaryDirectory(prefix="aotk-bench-") as d:
                cold = run(mode, case, Path(d), args.repeat, lib, args.python)
                warm = run(mode, case, Path(d), args.repeat, lib, args.python)
            rows[mode] = (cold, warm)
        a_cold, a_warm = rows["AOT"]
        for mode, (cold, warm) in rows.items():
            ratios = ""
            if mode == "AOT":
                n_cold, n_warm = rows["NUMBA"]
                c_cold, c_warm = rows["C"]
                ratios = (f"{a_cold['first'] / n_cold['first']:.3f} | "
                          f"{a_cold['first'] / c_cold['first']:.3f} | "
                          f"{a_warm['steady'] / n_warm['steady']:.2f} | "
                          f"{a_warm['steady'] / c_warm['steady']:.2f} | "
                          f"{_fmt(cold['coverage'])} | {_fmt(warm['plan'])}")
            else:
                ratios = " | | | | | "
            print(f"| {case} | {mode} | {cold['first']:.2f} | {warm['first']:.2f} "
                  f"| {warm['steady'] * 1e6:.1f} | {ratios} |")


def _fmt(counts: dict) -> str:
    return ", ".join(f"{k} {v}" for k, v in sorted(counts.items(), key=lambda kv: -kv[1]))


if __name__ == "__main__":
    main()
