"""Where the time to nutpie's first draw goes: ``aotkernels.nutpie.compile_pymc_model`` by
phase, then nutpie's first draw, cold (empty caches) and warm (a second process on them).

    python benchmarks/first_draw_phases.py [--models a,b] [--repeat 1] [--lib DIR]
                                           [--jit-cache DIR]

Per model, fresh processes in build/pymc-venv: "cold" on an empty graph cache and model
cache and a copy of ``--jit-cache`` (default: build/test-jit-cache, standing in for the full
catalog), then on what the cold one stored "warm, no model cache" (``AOT_MODEL_CACHE=0``:
the graph cache only, as before the model cache) and "warm". Each phase is timed exclusive
of the phases nested in it (wall seconds and the main thread's CPU seconds), by wrapping
the functions PyMC, nutpie and aotkernels call:

- imports: PyMC, nutpie, aotkernels and building the ``pm.Model`` (not part of the goal);
- model cache: ``aotkernels.nutpie``'s lookup and store of the model's graphs;
- logp graph: ``Model.logp`` (PyMC's logprob IR, transforms);
- nutpie rewrite: nutpie's canonicalize/stabilize of the logp graph (graph cache);
- gradient: ``pytensor.grad``;
- initial point graph: ``make_initial_point_expression``;
- rewrites: the graph cache's lookup and install, or PyTensor's rewriting on a miss;
- linking: the rest of ``pytensor.function`` (thunks, plans);
- export: priming calls and the C tables (``cplan.export``);
- other: the rest of ``compile_pymc_model`` (shapes, names, dims);
- first draw: ``nutpie.sample`` of 1 chain, 1 tuning step, 1 draw (as bench_samplers counts
  it, including nutpie's conversion of the draw to an ``InferenceData``).

The total is ``compile_pymc_model`` + first draw (imports aside), the goal's measure.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RUNS = ["cold", "warm, no model cache", "warm"]
PHASES = ["model cache", "logp graph", "nutpie rewrite", "gradient", "initial point graph",
          "rewrites", "linking", "export", "other", "first draw"]

WORKER = r"""
import json, sys, time, warnings
warnings.filterwarnings("ignore")
w0, c0 = time.perf_counter(), time.thread_time()
import numpy as np
import pymc as pm
import pytensor
import pytensor.gradient
import pymc.initial_point
import nutpie
import aotkernels.nutpie
from aotkernels.pytensor import graph_cache
from tests.corpus import MODELS
model = MODELS[sys.argv[1]]()
out = {"model": sys.argv[1], "imports": [time.perf_counter() - w0, time.thread_time() - c0]}
spent = {}
stack = []

def timed(phase, fn):
    def wrapper(*args, **kwargs):
        stack.append([0.0, 0.0])
        w, c = time.perf_counter(), time.thread_time()
        try:
            return fn(*args, **kwargs)
        finally:
            dw, dc = time.perf_counter() - w, time.thread_time() - c
            inner = stack.pop()
            total = spent.setdefault(phase, [0.0, 0.0])
            total[0] += dw - inner[0]
            total[1] += dc - inner[1]
            if stack:
                stack[-1][0] += dw
                stack[-1][1] += dc
    return wrapper

def patch(owner, name, phase):
    setattr(owner, name, timed(phase, getattr(owner, name)))

patch(pm.Model, "logp", "logp graph")
patch(graph_cache, "rewrite_graph", "nutpie rewrite")
patch(pytensor.gradient, "grad", "gradient")
patch(pymc.initial_point, "make_initial_point_expression", "initial point graph")
patch(graph_cache.CachedRewriter, "apply", "rewrites")
patch(pytensor, "function", "linking")
patch(aotkernels.nutpie, "exported", "export")
mc = getattr(aotkernels.nutpie, "model_cache", None)
if mc is not None:
    patch(mc, "lookup", "model cache")
    patch(mc, "remember", "model cache")
compile_ = timed("other", aotkernels.nutpie.compile_pymc_model)
w, c = time.perf_counter(), time.thread_time()
compiled = compile_(model)
sample = timed("first draw", nutpie.sample)
sample(compiled, chains=1, tune=1, draws=1, seed=2, progress_bar=False, cores=1)
out["total"] = [time.perf_counter() - w, time.thread_time() - c]
out["phases"] = spent
out["c_plan"] = getattr(compiled, "plans", None) is not None
out["graph_cache"] = dict(graph_cache.stats)
if mc is not None:
    out["model_cache"] = dict(mc.stats)
print(json.dumps(out))
"""


def run(python: str, name: str, env: dict) -> dict:
    res = subprocess.run([python, "-c", WORKER, name], cwd=ROOT, env=env, capture_output=True,
                         text=True)
    if res.returncode:
        return {"model": name, "error": res.stderr[-1500:]}
    return json.loads(res.stdout.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--python", default=str(ROOT / "build" / "pymc-venv" / "bin" / "python"))
    p.add_argument("--models", default="eight_schools_noncentered,radon_varying_slopes,"
                   "normal_mixture,marginal_gp,scan_garch")
    p.add_argument("--repeat", type=int, default=1)
    p.add_argument("--lib", type=Path, default=ROOT / "build" / "test-lib")
    p.add_argument("--jit-cache", type=Path, default=ROOT / "build" / "test-jit-cache")
    p.add_argument("--json", action="store_true", help="one JSON line per run as well")
    args = p.parse_args()
    if args.models == "all":
        args.models = subprocess.run(
            [args.python, "-c", "from tests.corpus import MODELS; print(*MODELS, sep=',')"],
            cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()
    print(f"# First draw by phase, {time.strftime('%Y-%m-%d %H:%M')}, {os.cpu_count()} cores, "
          f"load average {os.getloadavg()[0]:.1f} at the start; seconds, wall / main-thread "
          f"CPU, best of {args.repeat} by total wall\n")
    print("| model | run | " + " | ".join(PHASES) + " | total (goal 1 s) | imports | load |")
    print("|---|---|" + "---|" * (len(PHASES) + 3))
    for name in args.models.split(","):
        best: dict[str, dict] = {}
        for _ in range(args.repeat):
            with tempfile.TemporaryDirectory(prefix="aotk-firstdraw-") as d:
                jit = Path(d) / "jit"
                shutil.copytree(args.jit_cache, jit)
                env = dict(os.environ, AOT_LIBRARY_DIR=str(args.lib), AOT_CACHE_DIR=str(jit),
                           AOT_GRAPH_CACHE_DIR=str(Path(d) / "graphs"),
                           NUMBA_CACHE_DIR=str(Path(d) / "numba"),
                           PYTENSOR_FLAGS=f"base_compiledir={Path(d) / 'pytensor'}",
                           OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1")
                for which in RUNS:
                    load = os.getloadavg()[0]
                    off = {"AOT_MODEL_CACHE": "0"} if which == "warm, no model cache" else {}
                    r = run(args.python, name, dict(env, **off))
                    r["load"] = load
                    if args.json:
                        print(json.dumps(dict(r, run=which)), file=sys.stderr)
                    old = best.get(which)
                    if "error" in r or old is None or ("error" not in old and
                                                       r["total"][0] < old["total"][0]):
                        best[which] = r if old is None or "error" not in r else old
        for which, r in best.items():
            if "error" in r:
                print(f"| {name} | {which} | failed: "
                      f"{r['error'].strip().splitlines()[-1][:100]} |", flush=True)
                continue
            cells = [fmt(r["phases"].get(phase)) for phase in PHASES]
            tag = "" if r["c_plan"] else " (Python callbacks)"
            print(f"| {name}{tag} | {which} | " + " | ".join(cells) + f" | {fmt(r['total'])} "
                  f"| {fmt(r['imports'])} | {r['load']:.1f} |", flush=True)


def fmt(pair) -> str:
    return "" if not pair else f"{pair[0]:.2f} / {pair[1]:.2f}"


if __name__ == "__main__":
    sys.exit(main())
