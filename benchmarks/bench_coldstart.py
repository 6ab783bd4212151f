"""Where the time to a first result goes: mode AOT cold and warm, against NUMBA and C.

    python benchmarks/bench_coldstart.py [--lib DIR] [--repeat 5] [--cases ...]
                                         [--modes AOT,NUMBA,C] [--python PY] [--before PY]
    build/pymc-venv/bin/python benchmarks/bench_coldstart.py --corpus [--cases a,b] ...

Every measurement is a fresh process. Kernels are prebuilt (``--lib``; the JIT cache is
a directory kept for the whole run, warmed by one run of each case first), so what is
measured is PyTensor's work and aotkernels' own. Mode AOT runs in three states: graph
cache off (``AOT_GRAPH_CACHE=0``), cold (an empty graph cache) and warm (a second process
on the cache the cold one left). NUMBA and C run cold (empty numba cache and PyTensor
compiledir) and warm (a second process on them). Each state runs ``--repeat`` times
(NUMBA and C cold: ``--other-repeat`` times, they take 10-40 s each); reported is the best
run and, after ``±``, the spread (worst minus best) of the time to a first result.

Phases, in seconds: ``import`` (``import pytensor``), ``aot`` (``import aotkernels.pytensor``
and loading the library), ``graph`` (building the graph, gradients included), ``clone``
(``pytensor.function`` until rewriting: PyTensor clones the graph and makes the
FunctionGraph), ``rewrite`` (the mode's optimizer: for a warm AOT, keying the graph,
reading its entry and installing it), ``link`` (the linker: thunks, the VM), ``first``
(the first call), ``second`` (the second call: mode AOT records it and plans), and
``to first`` (from ``pytensor.function`` to the first result), ``cpu to first`` (the CPU
time this process spent on it, best of the runs: what load from other processes on a
shared machine does not inflate). ``rss`` is the process's
peak RSS in MiB after the second call (numba compiles in process; C's compiler runs in
children, not counted). Cases are ``bench_pytensor.py``'s (``radon`` needs pymc: pass
``--python build/pymc-venv/bin/python``, which measures the aotkernels that interpreter
imports). ``--corpus``: the models of ``tests/corpus`` compiled as ``pm.sample`` compiles
them (``Model.logp_dlogp_function``; ``model`` is building the model and its initial point,
``graph`` the rest of that call before its ``pytensor.function``). ``--before PY`` measures
mode AOT a second time with another interpreter (a venv of an older checkout: its
aotkernels), interleaved with this one's, so old and new are compared in one run.

Each child collects garbage once just before ``pytensor.function``: the first full
collection after importing PyMC (0.2-0.5 s, scanning some 300,000 objects) otherwise falls
wherever an allocation triggers it, into one compile or another, in every mode. BLAS runs
single-threaded (``--blas-threads``), as in ``bench_corpus.py``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_elemwise import library_dir
from bench_pytensor import BUILD

#: the start of every child: mode, case, the timers of ``import`` and ``aot``
PROLOGUE = r"""
import gc, json, resource, sys, time, warnings
T = {}
mode, case = sys.argv[1], sys.argv[2]
t0 = time.perf_counter()
import pytensor
T["import"] = time.perf_counter() - t0
t = time.perf_counter()
if mode == "AOT":
    import aotkernels.pytensor as am
    from aotkernels.library import default_library
    default_library()
T["aot"] = time.perf_counter() - t
"""

#: ``rewrite`` and ``link``: FunctionMaker's two steps, timed in their outermost calls
#: (OpFromGraph compiles inner functions); ``function``: ``pytensor.function`` itself; all
#: three of the last ``pytensor.function`` call before the first call (PyMC compiles
#: functions of its own). A compile during the first call (an ``OpFromGraph`` that
#: compiles its inner function when first run) is the first call's: before session 17 it
#: replaced the phases of the function being timed, whose own compile then went uncounted.
TIMERS = r"""
try:
    from pytensor.compile.maker import FunctionMaker
except ImportError:  # PyTensor 2.x
    from pytensor.compile.function.types import FunctionMaker

depth = {}
calling = []  # set by ``finish``: compiles from here on are the first call's (OpFromGraph)

def timed(name, fn):
    def wrapper(*args, **kwargs):
        if calling:
            return fn(*args, **kwargs)
        depth[name] = depth.get(name, 0) + 1
        if name == "function" and depth[name] == 1:  # the phases of the last call only
            for k in ("function", "rewrite", "link"):
                T[k] = T["cpu " + k] = 0.0
        t, cpu = time.perf_counter(), time.process_time()
        try:
            return fn(*args, **kwargs)
        finally:
            depth[name] -= 1
            if not depth[name]:
                T[name] = T.get(name, 0.0) + time.perf_counter() - t
                T["cpu " + name] = T.get("cpu " + name, 0.0) + time.process_time() - cpu
    return wrapper

FunctionMaker.prepare_fgraph = staticmethod(timed("rewrite", FunctionMaker.prepare_fgraph))
FunctionMaker.create = timed("link", FunctionMaker.create)

def finish(f, values):
    calling.append(True)
    t, cpu = time.perf_counter(), time.process_time()
    f(*values)
    T["first"] = time.perf_counter() - t
    T["to first"] = T["first"] + T["function"]
    T["cpu"] = time.process_time() - cpu + T["cpu function"]
    T["clone"] = T["function"] - T["rewrite"] - T["link"]
    t = time.perf_counter()
    f(*values)
    T["second"] = time.perf_counter() - t
    T["rss"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if mode == "AOT":
        try:
            from aotkernels.pytensor import graph_cache
        except ImportError:  # --before a tree older than the graph cache
            graph_cache = None
        T["cache"] = {k: v for k, v in graph_cache.stats.items() if v} if graph_cache else {}
    print(json.dumps(T))
"""

#: a case of ``bench_pytensor.py``: build the graph, time ``pytensor.function`` and calls
CHILD = PROLOGUE + BUILD + TIMERS + r"""
t = time.perf_counter()
inputs, outputs, values = build(case)
T["graph"] = time.perf_counter() - t
gc.collect()  # the import's garbage collection debt is no compile's
f = timed("function", pytensor.function)(inputs, outputs, mode={"C": "CVM"}.get(mode, mode))
finish(f, values)
"""

#: a model of ``tests/corpus`` (PyMC): ``model`` builds it and its initial point, ``graph``
#: is the rest of ``logp_dlogp_function`` (the logp and gradient graphs, and a FAST_COMPILE
#: function of PyMC's for the initial point), then its last ``pytensor.function`` call, the
#: logp and gradient's, is timed
CORPUS_CHILD = PROLOGUE + TIMERS + r"""
warnings.filterwarnings("ignore")
sys.path.append(sys.argv[3])  # the checkout, for tests.corpus (after aotkernels' own path)
t = time.perf_counter()
import pymc
T["import"] += time.perf_counter() - t
if mode == "AOT":
    am.use_as_default()  # PyMC's own functions (the initial point) too, as a user would
from tests.corpus import MODELS, logp_dlogp, points
t = time.perf_counter()
m = MODELS[case]()
values = points(m, 1)
T["model"] = time.perf_counter() - t
pytensor.function = timed("function", pytensor.function)
gc.collect()  # the import's garbage collection debt is no compile's
t = time.perf_counter()
f = logp_dlogp(m, {"C": "CVM"}.get(mode, mode))
T["graph"] = time.perf_counter() - t - T["function"]
if mode == "AOT":
    import aotkernels
    T["aotkernels"] = aotkernels.__file__
finish(f, values)
"""

PHASES = ["import", "aot", "graph", "clone", "rewrite", "link", "first", "second", "to first"]
CORPUS_PHASES = ["import", "aot", "model", "graph", "clone", "rewrite", "link", "first", "second",
                 "to first"]
CASES = ["radon-like", "logistic-100x10", "softmax-classifier", "elemwise-1000"]
ROOT = Path(__file__).resolve().parent.parent
BLAS_THREADS = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


def run(python: str, mode: str, case: str, env: dict, corpus: bool = False) -> dict:
    code, extra = (CORPUS_CHILD, [str(ROOT)]) if corpus else (CHILD, [])
    res = subprocess.run([python, "-c", code, mode, case, *extra], env=env, cwd=ROOT,
                         capture_output=True, text=True)
    if res.returncode:
        raise SystemExit(f"{mode} {case} failed:\n{res.stderr[-3000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def states(python: str, mode: str, case: str, base: dict, scratch: Path, repeat: int,
           other_repeat: int, corpus: bool, warm_repeat: int = 0) -> dict[str, list[dict]]:
    """state -> runs: each cold run in new caches, each warm run right after its cold one."""
    out: dict[str, list[dict]] = {}

    def fresh(name: str) -> dict:
        d = scratch / name
        shutil.rmtree(d, ignore_errors=True)
        return dict(base, AOT_GRAPH_CACHE_DIR=str(d / "graphs"), NUMBA_CACHE_DIR=str(d / "numba"),
                    PYTENSOR_FLAGS=f"base_compiledir={d / 'pytensor'}")

    if mode == "AOT":
        out["off"] = [run(python, mode, case, dict(fresh("off"), AOT_GRAPH_CACHE="0"), corpus)
                      for _ in range(repeat)]
    cold, warm = [], []
    for _ in range(repeat if mode == "AOT" else other_repeat):
        env = fresh("state")
        cold.append(run(python, mode, case, env, corpus))
        warm.append(run(python, mode, case, env, corpus))
    while len(warm) < max(repeat, warm_repeat):  # more warm runs on the last cold caches
        warm.append(run(python, mode, case, env, corpus))
    out["cold"], out["warm"] = cold, warm
    return out


def row(case: str, label: str, runs: list[dict], phases: list[str]) -> str:
    best = min(runs, key=lambda r: r["to first"])
    spread = max(r["to first"] for r in runs) - best["to first"]
    cells = [f"{best[p] * 1e3:.0f}" for p in phases[:-1]]
    cpu = min(r["cpu"] for r in runs)
    return (f"| {case} | {label} | {len(runs)} | " + " | ".join(cells)
            + f" | **{best['to first'] * 1e3:.0f}** ± {spread * 1e3:.0f} | {cpu * 1e3:.0f} "
            f"| {best['rss']:.0f} |")


def corpus_models(python: str) -> list[str]:
    code = "from tests.corpus import MODELS; print(','.join(MODELS))"
    res = subprocess.run([python, "-c", code], cwd=ROOT, capture_output=True, text=True)
    if res.returncode:
        raise SystemExit(f"--corpus needs PyMC ({python} -m pip show pymc): {res.stderr[-500:]}")
    return res.stdout.split()[-1].split(",")


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--lib", type=Path, default=None)
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--other-repeat", type=int, default=1)
    p.add_argument("--warm-repeat", type=int, default=0, help="warm runs (default --repeat)")
    p.add_argument("--cases", default=None, help="cases, or with --corpus models (default all)")
    p.add_argument("--corpus", action="store_true",
                   help="the models of tests/corpus (PyMC's logp_dlogp_function)")
    p.add_argument("--modes", default="AOT,NUMBA,C")
    p.add_argument("--python", default=sys.executable)
    p.add_argument("--blas-threads", type=int, default=1,
                   help="OpenBLAS/OpenMP threads (0: the environment's); starting OpenBLAS's "
                        "thread pool costs a first call 25 ms on a busy machine")
    p.add_argument("--before", default=None, metavar="PY",
                   help="also measure mode AOT with this interpreter's aotkernels (an older "
                        "checkout's venv), interleaved, as 'AOT before'")
    args = p.parse_args()
    lib = library_dir(args.lib)
    if not (lib / "manifest.json").exists():
        raise SystemExit(f"no library in {lib}: run build-kernels --no-wheel --out {lib}")
    version = subprocess.run([args.python, "-c", "import pytensor; print(pytensor.__version__)"],
                             capture_output=True, text=True, check=True).stdout.strip()
    phases = CORPUS_PHASES if args.corpus else PHASES
    cases = (args.cases.split(",") if args.cases
             else corpus_models(args.python) if args.corpus else CASES)
    pythons = [("", args.python)] + ([(" before", args.before)] if args.before else [])
    with tempfile.TemporaryDirectory(prefix="aotk-coldstart-") as d:
        scratch = Path(d)
        base = dict(os.environ, AOT_LIBRARY_DIR=str(lib), AOT_CACHE_DIR=str(scratch / "jit"),
                    PYTHONDONTWRITEBYTECODE="1")
        if args.blas_threads:
            base.update(dict.fromkeys(BLAS_THREADS, str(args.blas_threads)))
        base.pop("AOT_GRAPH_CACHE", None)
        print(f"# Cold start, {time.strftime('%Y-%m-%d %H:%M')}: {platform.machine()}, "
              f"{os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}, PyTensor {version}, "
              f"library {lib.name}; ms, best of n runs ± (worst - best) of 'to first'\n")
        print("| case | mode | n | " + " | ".join(phases) + " | cpu to first | rss MiB |")
        print("|---|---|---|" + "---|" * len(phases) + "---|---|")
        for case in cases:
            run(args.python, "AOT", case, dict(base, AOT_GRAPH_CACHE="0"), args.corpus)  # JIT
            for mode in args.modes.split(","):
                for tag, python in (pythons if mode == "AOT" else pythons[:1]):
                    result = states(python, mode, case, base, scratch, args.repeat,
                                    args.other_repeat, args.corpus, args.warm_repeat)
                    for state, runs in result.items():
                        label = f"{mode}{tag} {'cache off' if state == 'off' else state}"
                        print(row(case, label, runs, phases), flush=True)
        print(f"\nload average at the end: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
