"""Where the time to a first result goes: mode AOT cold and warm, against NUMBA and C.

    python benchmarks/bench_coldstart.py [--lib DIR] [--repeat 5] [--cases ...]
                                         [--modes AOT,NUMBA,C] [--python PY]

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
imports).
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

CHILD = r"""
import json, resource, sys, time
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
""" + BUILD + r"""
try:
    from pytensor.compile.maker import FunctionMaker
except ImportError:  # PyTensor 2.x
    from pytensor.compile.function.types import FunctionMaker

depth = {}

def timed(name, fn):  # the outermost call only: OpFromGraph compiles inner functions
    def wrapper(*args, **kwargs):
        depth[name] = depth.get(name, 0) + 1
        t = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            depth[name] -= 1
            if not depth[name]:
                T[name] = T.get(name, 0.0) + time.perf_counter() - t
    return wrapper

FunctionMaker.prepare_fgraph = staticmethod(timed("rewrite", FunctionMaker.prepare_fgraph))
FunctionMaker.create = timed("link", FunctionMaker.create)
t = time.perf_counter()
inputs, outputs, values = build(case)
T["graph"] = time.perf_counter() - t
T["rewrite"] = T["link"] = 0.0  # PyMC compiles functions of its own while building
t, cpu = time.perf_counter(), time.process_time()
f = pytensor.function(inputs, outputs, mode={"C": "CVM"}.get(mode, mode))
t_fn = time.perf_counter() - t
t = time.perf_counter()
f(*values)
T["first"] = time.perf_counter() - t
T["to first"] = time.perf_counter() - t + t_fn
T["cpu"] = time.process_time() - cpu
T["clone"] = t_fn - T["rewrite"] - T["link"]
t = time.perf_counter()
f(*values)
T["second"] = time.perf_counter() - t
T["rss"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
if mode == "AOT":
    from aotkernels.pytensor import graph_cache
    T["cache"] = {k: v for k, v in graph_cache.stats.items() if v}
print(json.dumps(T))
"""

PHASES = ["import", "aot", "graph", "clone", "rewrite", "link", "first", "second", "to first"]
CASES = ["radon-like", "logistic-100x10", "softmax-classifier", "elemwise-1000"]


def run(python: str, mode: str, case: str, env: dict) -> dict:
    res = subprocess.run([python, "-c", CHILD, mode, case], env=env, capture_output=True,
                         text=True)
    if res.returncode:
        raise SystemExit(f"{mode} {case} failed:\n{res.stderr[-3000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def states(python: str, mode: str, case: str, base: dict, scratch: Path, repeat: int,
           other_repeat: int) -> dict[str, list[dict]]:
    """state -> runs: each cold run in new caches, each warm run right after its cold one."""
    out: dict[str, list[dict]] = {}

    def fresh(name: str) -> dict:
        d = scratch / name
        shutil.rmtree(d, ignore_errors=True)
        return dict(base, AOT_GRAPH_CACHE_DIR=str(d / "graphs"), NUMBA_CACHE_DIR=str(d / "numba"),
                    PYTENSOR_FLAGS=f"base_compiledir={d / 'pytensor'}")

    if mode == "AOT":
        out["off"] = [run(python, mode, case, dict(fresh("off"), AOT_GRAPH_CACHE="0"))
                      for _ in range(repeat)]
    cold, warm = [], []
    for _ in range(repeat if mode == "AOT" else other_repeat):
        env = fresh("state")
        cold.append(run(python, mode, case, env))
        warm.append(run(python, mode, case, env))
    while len(warm) < repeat:  # more warm runs on the last cold run's caches
        warm.append(run(python, mode, case, env))
    out["cold"], out["warm"] = cold, warm
    return out


def row(case: str, label: str, runs: list[dict]) -> str:
    best = min(runs, key=lambda r: r["to first"])
    spread = max(r["to first"] for r in runs) - best["to first"]
    cells = [f"{best[p] * 1e3:.0f}" for p in PHASES[:-1]]
    cpu = min(r["cpu"] for r in runs)
    return (f"| {case} | {label} | {len(runs)} | " + " | ".join(cells)
            + f" | **{best['to first'] * 1e3:.0f}** ± {spread * 1e3:.0f} | {cpu * 1e3:.0f} "
            f"| {best['rss']:.0f} |")


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--lib", type=Path, default=None)
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--other-repeat", type=int, default=1)
    p.add_argument("--cases", default=",".join(CASES))
    p.add_argument("--modes", default="AOT,NUMBA,C")
    p.add_argument("--python", default=sys.executable)
    args = p.parse_args()
    lib = library_dir(args.lib)
    if not (lib / "manifest.json").exists():
        raise SystemExit(f"no library in {lib}: run build-kernels --no-wheel --out {lib}")
    version = subprocess.run([args.python, "-c", "import pytensor; print(pytensor.__version__)"],
                             capture_output=True, text=True, check=True).stdout.strip()
    with tempfile.TemporaryDirectory(prefix="aotk-coldstart-") as d:
        scratch = Path(d)
        base = dict(os.environ, AOT_LIBRARY_DIR=str(lib), AOT_CACHE_DIR=str(scratch / "jit"))
        base.pop("AOT_GRAPH_CACHE", None)
        print(f"# Cold start, {time.strftime('%Y-%m-%d')}: {platform.machine()}, "
              f"{os.cpu_count()} cores, PyTensor {version}, library {lib.name}; ms, best of "
              f"n runs ± (worst - best) of 'to first'\n")
        print("| case | mode | n | " + " | ".join(PHASES) + " | cpu to first | rss MiB |")
        print("|---|---|---|" + "---|" * len(PHASES) + "---|---|")
        for case in args.cases.split(","):
            run(args.python, "AOT", case, dict(base, AOT_GRAPH_CACHE="0"))  # warm the JIT
            for mode in args.modes.split(","):
                result = states(args.python, mode, case, base, scratch, args.repeat,
                                args.other_repeat)
                for state, runs in result.items():
                    label = f"{mode} {'cache off' if state == 'off' else state}"
                    print(row(case, label, runs), flush=True)


if __name__ == "__main__":
    main()
