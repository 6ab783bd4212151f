"""Samplers on corpus models: aotkernels+nutpie against nutpie's numba backend and
``pm.sample`` in modes AOT, NUMBA and C.

    python benchmarks/bench_samplers.py [--models a,b] [--tune 1000] [--draws 1000]
                                        [--chains 4] [--cores 2] [--repeat 1] [--lib DIR]

Per model and sampler, a fresh process in build/pymc-venv (PyMC 5.28, PyTensor 2.38, nutpie
0.16) with empty caches (PyTensor's compiledir, numba's cache, aotkernels' JIT and graph
caches in a new directory) runs ``tune + draws`` on ``chains`` chains and reports, imports
aside: seconds to the first draw, the whole run (compile + sampling), draws per second after
the first draw (all chains), gradient evaluations per second, and the process's peak RSS
(children included: ``pm.sample`` samples in worker processes).

- nutpie samplers: compile (``aotkernels.nutpie.compile_pymc_model`` / ``nutpie.
  compile_pymc_model``; "aot+nutpie warm" is a second process on the graph cache and
  model cache the "aot+nutpie" row filled, everything else still empty), then a run of
  one chain with 1 tuning step and 1 draw (first draw = compile + that run; nutpie 0.16.8
  panics with tune=0), then the full run, timed alone (whole run = compile + full run).
- ``pm.sample``: one call with ``compile_kwargs={"mode": ...}`` and that mode the default
  (``aotkernels.pytensor.use_as_default()``, ``config.mode``), NUTS: PyMC compiles its
  trace's point function with the default mode, not ``compile_kwargs`` (before session 18
  that was the C backend in every row); first draw is the first ``callback``.
- Gradient evaluations per second (per core): ``sum(n_steps)`` over tuning and draws,
  divided by the sampling seconds (after the first draw) and by the chains sampling at once.

- "aot+nutpie fused": a process after two that waited for the model's fused kernels
  (``pytensor.fusion``), so the plans are fused at export; "aot+nutpie unfused": a warm
  process with ``AOT_FUSION=0``. The aot+nutpie rows of a repeat share a graph cache and
  a JIT cache (a copy of ``--jit-cache``, else empty); the sampler column says the plan's
  kernel steps per gradient at export and at the end, and how many plan swaps (fused
  kernels arriving mid-run) happened.

BLAS runs single-threaded (the corpus's matrices are tiny; see bench_corpus.py). With
``--repeat N`` each row runs N times (cold each time, "warm" on its own cold run's cache):
the row shows the run with the shortest whole run and the spread (longest / shortest
whole run), and the best gradient evaluations per second with their spread; the load
column is the 1-minute load average when the row's first run began.
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

ROOT = Path(__file__).resolve().parent.parent
SAMPLERS = ["aot+nutpie", "aot+nutpie warm", "aot+nutpie fused", "aot+nutpie unfused",
            "numba+nutpie", "pm AOT", "pm NUMBA", "pm C"]

WORKER = r"""
import json, resource, sys, time, warnings
warnings.filterwarnings("ignore")
t_import = time.perf_counter()
import numpy as np
import pymc as pm
import pytensor
import nutpie
import aotkernels.nutpie, aotkernels.pytensor
from tests.corpus import MODELS
sampler, name, tune, draws, chains, cores = sys.argv[1:7]
tune, draws, chains, cores = int(tune), int(draws), int(chains), int(cores)
model = MODELS[name]()
t_import = time.perf_counter() - t_import
out = {"sampler": sampler, "model": name}
if "nutpie" in sampler:
    t0 = time.perf_counter()
    if sampler.startswith("aot+nutpie"):
        compiled = aotkernels.nutpie.compile_pymc_model(model)
        plans = getattr(compiled, "plans", None)
        out["c_plan"] = plans is not None
        if plans is not None:
            out["steps_export"] = plans.logp.steps
            pending = sum(p.pending is not None and p.pending[2] is not None
                          for p in (plans.logp, plans.expand))
            if sampler == "aot+nutpie prep":  # fill the JIT cache with the fused kernels
                while plans.swaps < pending:
                    time.sleep(0.05)
                print(json.dumps({"sampler": sampler, "swaps": plans.swaps}))
                sys.exit(0)
    else:
        compiled = nutpie.compile_pymc_model(model)
    t_compile = time.perf_counter() - t0
    t = time.perf_counter()
    nutpie.sample(compiled, chains=1, tune=1, draws=1, seed=2, progress_bar=False, cores=1)
    out["first_draw"] = t_compile + time.perf_counter() - t
    t = time.perf_counter()
    trace = nutpie.sample(compiled, chains=chains, tune=tune, draws=draws, seed=1,
                          progress_bar=False, cores=cores, save_warmup=True)
    sampling = time.perf_counter() - t
    out.update(compile=t_compile, whole=t_compile + sampling,
               draws_per_s=chains * (tune + draws) / sampling)
    stats = (trace.warmup_sample_stats, trace.sample_stats)
    steps = int(sum(s["n_steps"].values.sum() for s in stats))
    out.update(grads_per_s=steps / sampling / min(chains, cores), n_steps=steps)
    if out.get("c_plan"):
        out.update(steps_end=compiled.plans.logp.steps, swaps=compiled.plans.swaps)
else:
    mode = {"pm AOT": "AOT", "pm NUMBA": "NUMBA", "pm C": "CVM"}[sampler]
    # the default mode too: pm.sample compiles its trace's point function without
    # compile_kwargs (in the default C backend, seconds of C compiles in a fresh compiledir)
    if mode == "AOT":
        aotkernels.pytensor.use_as_default()
    else:
        pytensor.config.mode = mode
    firsts = []
    def callback(trace, draw):
        if not firsts:
            firsts.append(time.perf_counter())
    t0 = time.perf_counter()
    with model:
        trace = pm.sample(draws=draws, tune=tune, chains=chains, cores=cores, random_seed=1,
                          progressbar=False, compute_convergence_checks=False,
                          discard_tuned_samples=False, callback=callback,
                          compile_kwargs={"mode": mode})
    end = time.perf_counter()
    first = firsts[0] if firsts else end
    stats = trace.sample_stats
    steps = int(stats["n_steps"].values.sum()) if "n_steps" in stats else 0
    after = max(end - first, 1e-9)
    out.update(first_draw=first - t0, whole=end - t0,
               draws_per_s=(chains * (tune + draws) - 1) / after,
               grads_per_s=steps / after / min(chains, cores), n_steps=steps)
rss = max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
          resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
out.update(import_s=t_import, peak_rss_mib=rss / 1024)
print(json.dumps(out))
"""


def library() -> tuple[Path, str]:
    full = ROOT / "build" / "full-lib"
    if (full / "manifest.json").exists():
        return full, "build/full-lib (the full catalog)"
    return ROOT / "build" / "test-lib", ("build/test-lib (the small test library; its misses "
                                         "are JIT-compiled in the run's fresh cache)")


def run(python: str, args: list[str], lib: Path, jit_cache: Path | None,
        graphs: Path | None = None) -> dict:
    """One sampler on one model in a fresh process with empty caches (the graph cache is
    ``graphs`` if given). "aot+nutpie fused" first runs an untimed process that waits for
    the model's fused kernels (into ``jit_cache``); "aot+nutpie unfused" runs with
    ``AOT_FUSION=0``."""
    with tempfile.TemporaryDirectory(prefix="aotk-samplers-") as d:
        cache = Path(d)
        env = dict(os.environ, AOT_LIBRARY_DIR=str(lib),
                   AOT_CACHE_DIR=str(jit_cache or cache / "aot"),
                   AOT_GRAPH_CACHE_DIR=str(graphs or cache / "graphs"),
                   NUMBA_CACHE_DIR=str(cache / "numba"),
                   PYTENSOR_FLAGS=f"base_compiledir={cache / 'pytensor'}",
                   OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
        if args[0] == "aot+nutpie unfused":
            env["AOT_FUSION"] = "0"
        # twice: a process that rewrote the graphs orders some elementwise runs otherwise
        # than one that took them from the graph cache (another fused program)
        for _ in range(2 if args[0] == "aot+nutpie fused" else 0):
            prep = subprocess.run([python, "-c", WORKER, "aot+nutpie prep", *args[1:]],
                                  cwd=ROOT, env=env, capture_output=True, text=True)
            if prep.returncode:
                return {"error": prep.stderr[-1500:]}
        t = time.perf_counter()
        res = subprocess.run([python, "-c", WORKER, *args], cwd=ROOT, env=env,
                             capture_output=True, text=True)
        wall = time.perf_counter() - t
    if res.returncode:
        return {"error": res.stderr[-1500:]}
    out = json.loads(res.stdout.strip().splitlines()[-1])
    out["process_s"] = wall
    return out


def corpus(python: str) -> list[str]:
    """The corpus's model names (``tests/corpus``)."""
    return subprocess.run([python, "-c", "from tests.corpus import MODELS; print(*MODELS)"],
                          cwd=ROOT, capture_output=True, text=True,
                          check=True).stdout.split()


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--python", default=str(ROOT / "build" / "pymc-venv" / "bin" / "python"))
    p.add_argument("--models", default="eight_schools_noncentered,logistic_regression,"
                   "poisson_regression,radon_varying_slopes", help="names, or 'all'")
    p.add_argument("--samplers", default=",".join(SAMPLERS))
    p.add_argument("--tune", type=int, default=1000)
    p.add_argument("--draws", type=int, default=1000)
    p.add_argument("--chains", type=int, default=4)
    p.add_argument("--cores", type=int, default=os.cpu_count() or 1)
    p.add_argument("--repeat", type=int, default=1)
    p.add_argument("--lib", type=Path, default=None)
    p.add_argument("--jit-cache", type=Path, default=None,
                   help="kernels the library lacks come from this JIT cache, as if the library "
                        "had them (default: a fresh one, so they are compiled in the run)")
    args = p.parse_args()
    lib, which = (args.lib.resolve(), str(args.lib)) if args.lib else library()
    version = subprocess.run([args.python, "-c", "import pytensor, pymc, nutpie; print("
                              "pytensor.__version__, pymc.__version__, nutpie.__version__)"],
                             capture_output=True, text=True, check=True).stdout.split()
    print(f"# Samplers, {time.strftime('%Y-%m-%d')}: {platform.machine()}, {os.cpu_count()} "
          f"cores, PyTensor {version[0]}, PyMC {version[1]}, nutpie {version[2]}; library "
          f"{which}; {args.tune} tune + {args.draws} draws x {args.chains} chains on "
          f"{args.cores} cores; JIT cache {args.jit_cache or 'fresh'}; load average "
          f"{os.getloadavg()[0]:.1f} at the start\n")
    print("| model | sampler | first draw s | whole run s | vs numba+nutpie | spread "
          "| draws/s | grad evals/s | spread | vs numba+nutpie | peak RSS MiB | import s "
          "| load |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    models = list(corpus(args.python)) if args.models == "all" else args.models.split(",")
    samplers = args.samplers.split(",")
    for name in models:
        runs: dict = {sampler: [] for sampler in samplers}
        loads: dict = {}
        for _ in range(args.repeat):
            with tempfile.TemporaryDirectory(prefix="aotk-graphs-") as graphs:
                # the aot+nutpie rows of a repeat share a JIT cache (a copy of --jit-cache,
                # so that fused kernels compiled here stay here) and a graph cache
                jit_cache = Path(graphs) / "jit"
                if args.jit_cache:
                    shutil.copytree(args.jit_cache, jit_cache)
                for sampler in samplers:
                    loads.setdefault(sampler, os.getloadavg()[0])
                    aot = sampler.startswith("aot+nutpie")
                    runs[sampler].append(run(
                        args.python, [sampler, name, str(args.tune), str(args.draws),
                                      str(args.chains), str(args.cores)], lib,
                        jit_cache if aot else args.jit_cache and args.jit_cache.resolve(),
                        Path(graphs) / "graphs" if aot else None))
        rows = {}
        for sampler, results in runs.items():
            good = [r for r in results if "error" not in r]
            rows[sampler] = min(good, key=lambda r: r["whole"]) if good else results[0]
            if good:
                rows[sampler]["spread"] = (max(r["whole"] for r in good)
                                           / min(r["whole"] for r in good))
                grads = [r["grads_per_s"] for r in good]  # the best of the repeats
                rows[sampler].update(grads_per_s=max(grads),
                                     grads_spread=max(grads) / max(min(grads), 1e-9))
        base = rows.get("numba+nutpie", {})
        for sampler, r in rows.items():
            if "error" in r:
                print(f"| {name} | {sampler} | failed: "
                      f"{r['error'].strip().splitlines()[-1][:120]} ||||||||||||", flush=True)
                continue
            whole = (f"{r['whole'] / base['whole']:.2f}x" if "whole" in base else "")
            grads = (f"{r['grads_per_s'] / base['grads_per_s']:.2f}x"
                     if "grads_per_s" in base else "")
            tag = "" if r.get("c_plan", True) else " (Python callbacks)"
            if "steps_export" in r:
                tag += f" [{r['steps_export']}->{r['steps_end']} steps, {r['swaps']} swaps]"
            print(f"| {name} | {sampler}{tag} | {r['first_draw']:.2f} | {r['whole']:.2f} "
                  f"| {whole} | {r['spread']:.2f} | {r['draws_per_s']:.0f} "
                  f"| {r['grads_per_s']:.0f} | {r['grads_spread']:.2f} | {grads} "
                  f"| {r['peak_rss_mib']:.0f} "
                  f"| {r['import_s']:.2f} | {loads[sampler]:.1f} |", flush=True)


if __name__ == "__main__":
    sys.exit(main())
