"""The model corpus (tests/corpus) in modes AOT, NUMBA and C: first result and steady state.

    python benchmarks/bench_corpus.py [--models a,b] [--rounds 30] [--blas-threads 1] [--lib DIR]

Every model's ``logp_dlogp`` (what ``pm.sample`` compiles for NUTS: one raveled vector in,
logp and its gradient out) runs in build/pymc-venv (PyMC 5.28, PyTensor 2.38; ``--python``
picks another interpreter). Per model and mode, a fresh process times the PyMC compile call
through the first result with empty caches (cold: PyTensor's compiledir, numba's cache and
aotkernels' JIT cache in a new directory), then another fresh process with the caches the
first left (warm). Then one process per model compiles all three modes (warm caches) and
times logp+dlogp calls in interleaved rounds (each round calls every mode, in rotating
order, a batch of about 5 ms); reported: the best round's time per call, and the spread
(median round over best). Ratios come from the same run. The kernel library is build/full-lib
if it exists, else the small test library (build/test-lib), whose misses are JIT-compiled into
the cold run's cache (so they count in AOT's cold first result, not its warm one).

BLAS runs single-threaded by default (``--blas-threads``; 0 leaves the environment alone): the
corpus's matrices are tiny, and on a machine whose cores are busy OpenBLAS's threads made a
3x3 Cholesky model take 50 ms a call instead of 0.3 ms, in modes AOT and C alike.
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
MODES = {"AOT": "AOT", "NUMBA": "NUMBA", "C": "CVM"}  # column -> PyTensor mode name

FIRST = r"""
import json, sys, time, warnings
warnings.filterwarnings("ignore")
import numpy as np
from tests.corpus import MODELS, logp_dlogp, points
mode, name = sys.argv[1], sys.argv[2]
m = MODELS[name]()
x = points(m, 1)[0]
t0 = time.perf_counter()
f = logp_dlogp(m, mode)
out = f(x)
first = time.perf_counter() - t0
info = {"first": first, "logp": float(out[0]), "n": int(x.size)}
if mode == "AOT":
    import aotkernels.pytensor as am
    from aotkernels import jit
    f(x)
    info.update(coverage=dict(am.coverage_summary(f)), plan=dict(am.plan_summary(f) or {}),
                jit_compiled=jit.stats["compiled"])
print(json.dumps(info))
"""

STEADY = r"""
import json, sys, time, warnings
warnings.filterwarnings("ignore")
import numpy as np
from tests.corpus import MODELS, logp_dlogp, points
name, rounds, modes = sys.argv[1], int(sys.argv[2]), sys.argv[3].split(",")
m = MODELS[name]()
x = points(m, 1)[0]
fs = {mode: logp_dlogp(m, mode) for mode in modes}
outs = {}
for mode, f in fs.items():
    for _ in range(3):  # mode AOT: record, plan, replay
        outs[mode] = [np.array(v, copy=True) for v in f(x)]
ref = outs[modes[0]]
agree = max(float(np.max(np.abs(o - r) / np.maximum(np.abs(r), 1.0)))
            for out in outs.values() for o, r in zip(out, ref))
per = {}
for mode, f in fs.items():  # a batch of about 5 ms per mode and round
    t = time.perf_counter()
    f(x)
    per[mode] = max(1, int(0.005 / max(time.perf_counter() - t, 1e-7)))
samples = {mode: [] for mode in modes}
for r in range(rounds):
    for mode in modes[r % len(modes):] + modes[:r % len(modes)]:
        f, k = fs[mode], per[mode]
        t = time.perf_counter()
        for _ in range(k):
            f(x)
        samples[mode].append((time.perf_counter() - t) / k)
res = {mode: {"best": min(v), "median": sorted(v)[len(v) // 2]} for mode, v in samples.items()}
print(json.dumps({"steady": res, "agree": agree}))
"""


def library() -> tuple[Path, str]:
    full = ROOT / "build" / "full-lib"
    if (full / "manifest.json").exists():
        return full, "build/full-lib (the full catalog)"
    return ROOT / "build" / "test-lib", ("build/test-lib (the small test library; "
                                         "build/full-lib does not exist: `make bench` builds it)")


BLAS_THREADS = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


def env_for(lib: Path, cache: Path) -> dict:
    return dict(os.environ, AOT_LIBRARY_DIR=str(lib), AOT_CACHE_DIR=str(cache / "aot"),
                NUMBA_CACHE_DIR=str(cache / "numba"),
                PYTENSOR_FLAGS=f"base_compiledir={cache / 'pytensor'}")


def run(python: str, code: str, args: list[str], env: dict) -> dict:
    res = subprocess.run([python, "-c", code, *args], cwd=ROOT, env=env, capture_output=True,
                         text=True)
    if res.returncode:
        raise SystemExit(f"{args} failed:\n{res.stderr[-3000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def steady_env(lib: Path, base: Path) -> dict:
    """Every mode's warm cache in one process: aotkernels' JIT cache from the AOT runs, and
    one base_compiledir linking the NUMBA runs' numba cache (PyTensor keeps it in
    ``numba/``) and the C runs' compiled modules (``compiledir_*``)."""
    compiledir = base / "steady" / "pytensor"
    compiledir.mkdir(parents=True)
    numba = base / "NUMBA" / "pytensor" / "numba"
    if numba.is_dir():
        (compiledir / "numba").symlink_to(numba, target_is_directory=True)
    for d in (base / "C" / "pytensor").glob("compiledir_*"):
        (compiledir / d.name).symlink_to(d, target_is_directory=True)
    return dict(os.environ, AOT_LIBRARY_DIR=str(lib), AOT_CACHE_DIR=str(base / "AOT" / "aot"),
                NUMBA_CACHE_DIR=str(base / "NUMBA" / "numba"),
                PYTENSOR_FLAGS=f"base_compiledir={compiledir}")


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--python", default=str(ROOT / "build" / "pymc-venv" / "bin" / "python"))
    p.add_argument("--models", default="", help="comma-separated (default: the whole corpus)")
    p.add_argument("--rounds", type=int, default=30)
    p.add_argument("--blas-threads", type=int, default=1, help="0: as the environment says")
    p.add_argument("--lib", type=Path, default=None, help="kernel library (default: above)")
    args = p.parse_args()
    if args.blas_threads:
        os.environ.update(dict.fromkeys(BLAS_THREADS, str(args.blas_threads)))
    lib, which = (args.lib.resolve(), str(args.lib)) if args.lib else library()
    names = args.models.split(",") if args.models else json.loads(subprocess.run(
        [args.python, "-c", "import json; from tests.corpus import MODELS; "
         "print(json.dumps(list(MODELS)))"], cwd=ROOT, capture_output=True, text=True,
        check=True).stdout.strip().splitlines()[-1])
    version = subprocess.run([args.python, "-c", "import pytensor, pymc; "
                              "print(pytensor.__version__, pymc.__version__)"],
                             capture_output=True, text=True, check=True).stdout.split()
    print(f"# Model corpus, {time.strftime('%Y-%m-%d')}: {platform.machine()}, "
          f"{os.cpu_count()} cores, PyTensor {version[0]}, PyMC {version[1]}; "
          f"library {which}; BLAS threads: {args.blas_threads or 'default'}\n")
    print("First result: seconds from the PyMC compile call to the first logp+dlogp, cold "
          "(empty caches) / warm. Steady: best of "
          f"{args.rounds} interleaved rounds, µs per call; spread: median round over best.\n")
    print("| model | n | AOT first s | NUMBA first s | C first s | AOT/NUMBA first "
          "| AOT/C first | AOT µs | NUMBA µs | C µs | spread A/N/C % | AOT/NUMBA steady "
          "| AOT/C steady | AOT nodes |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for name in names:
        with tempfile.TemporaryDirectory(prefix="aotk-corpus-") as d:
            base, first = Path(d), {}
            for col, mode in MODES.items():
                env = env_for(lib, base / col)
                cold = run(args.python, FIRST, [mode, name], env)
                warm = run(args.python, FIRST, [mode, name], env)
                first[col] = (cold, warm)
            steady = run(args.python, STEADY, [name, str(args.rounds), ",".join(MODES.values())],
                         steady_env(lib, base))
        print(row(name, first, steady), flush=True)


def row(name: str, first: dict, steady: dict) -> str:
    def secs(col):
        cold, warm = first[col]
        return f"{cold['first']:.2f} / {warm['first']:.2f}"

    def ratio(col):
        (ac, aw), (oc, ow) = first["AOT"], first[col]
        return f"{ac['first'] / oc['first']:.3f} / {aw['first'] / ow['first']:.2f}"

    s = {col: steady["steady"][mode] for col, mode in MODES.items()}
    best = {col: v["best"] * 1e6 for col, v in s.items()}
    spread = "/".join(f"{100 * (v['median'] / v['best'] - 1):.0f}" for v in s.values())
    aot = first["AOT"][1]
    nodes = ", ".join(f"{k} {v}" for k, v in sorted(aot["coverage"].items(), key=lambda kv: -kv[1]))
    return (f"| {name} | {aot['n']} | {secs('AOT')} | {secs('NUMBA')} | {secs('C')} "
            f"| {ratio('NUMBA')} | {ratio('C')} | {best['AOT']:.1f} | {best['NUMBA']:.1f} "
            f"| {best['C']:.1f} | {spread} | {best['AOT'] / best['NUMBA']:.2f} "
            f"| {best['AOT'] / best['C']:.2f} | {nodes} |")


if __name__ == "__main__":
    sys.exit(main())
