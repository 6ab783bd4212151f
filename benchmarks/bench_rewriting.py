"""Mode AOT's cold rewriting with ``lean_rewriting``'s shortcuts off and on, and whether the
graphs are the same.

    build/pymc-venv/bin/python benchmarks/bench_rewriting.py [--models a,b|all] [--repeat 3]
                                                            [--lib DIR]
                                                            [--compare traces|destroy|s13|
                                                                       inline|s14]
                                                            [--in-process]

Per model and run, two fresh processes (``AOT_LEAN_REWRITING=0``, then ``=1``) with empty
graph caches compile it with ``aotkernels.nutpie.compile_pymc_model`` and report the main
thread's CPU seconds inside mode AOT's rewriter (every graph it rewrites: nutpie's
canonicalize, logp+gradient, expand, initial point), in the whole ``compile_pymc_model``
(PyMC's and nutpie's graph building too, which runs with the shortcuts since session 12;
plans and their export), and a hash of every rewritten graph's
``debugprint`` with types (object addresses masked). Printed: best CPU off and on, their
ratio, and "same" if every run of the model hashed alike. The JIT cache is a copy of
``build/test-jit-cache`` per process, as in ``first_draw_phases.py``.

``--compare traces``: "off" is instead ``compile_pymc_model`` building its graphs with
PyTensor's ordinary stack traces (``traceback__limit`` kept inside ``aot_default``, as
before session 12), "on" as shipped (``traceback__compile_limit`` there); the shortcuts
are on in both.

``--compare destroy``: "off" is the shortcuts without ``destroy_check`` (PyTensor's full
validation of every in-place replacement), "on" as shipped. ``--compare s13``: "off" is
the shortcuts as session 12 left them (without ``destroy_check``, the NaN-free signature
sums and equality, and the pattern pre-check), "on" as shipped. ``--compare inline``: "off"
inlines a plain ``OpFromGraph`` with PyTensor's ``inline_ofg_node`` (which clones the
inputs' graphs too), "on" as shipped. ``--compare s14``: session 14's levers off, as shipped.

``--in-process``: one process per model compiles it once to warm up, then off and on
alternating ``--repeat`` times (each a new ``pm.Model``; the graph and model caches off, so
every compile rewrites and nothing is stored). Fresh processes on this shared machine
vary by +-20-30% in CPU time for the same work; alternating in one process compares like
with like, at the price of leaving out what only a first compile pays.
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

WORKER = r"""
import hashlib, io, json, os, re, sys, time, warnings
from contextlib import contextmanager
warnings.filterwarnings("ignore")
import pytensor
import aotkernels.nutpie
from aotkernels.pytensor import destroy_check, graph_cache, lean_rewriting as lean, rewrites
from pytensor.tensor.rewriting.ofg import inline_ofg_node
from tests.corpus import MODELS
name, compare, states = sys.argv[1], sys.argv[2], sys.argv[3].split(",")
shipped = aotkernels.nutpie.aot_default

@contextmanager
def keeping_traces():
    limit = pytensor.config.traceback__limit
    with shipped(), pytensor.config.change_flags(traceback__limit=limit):
        yield

#: (class, attribute, PyTensor's, shipped) per shortcut a comparison swaps
SWAPS = {**lean.SWAPS, **destroy_check.SWAPS,
         "traces": (aotkernels.nutpie, "aot_default", keeping_traces, shipped),
         "inline": (rewrites, "inline_inner_graph", inline_ofg_node,
                    rewrites.inline_inner_graph)}
SWAPPED = {"destroy": list(destroy_check.SWAPS),
           "s13": [*destroy_check.SWAPS, "signature_sum", "signature_eq", "patterns"],
           "traces": ["traces"], "inline": ["inline"], "s14": ["inline"]}.get(compare, [])

def switch(on):
    if compare == "lean":
        os.environ["AOT_LEAN_REWRITING"] = "1" if on else "0"
    for key in SWAPPED:
        owner, attr, plain, ours = SWAPS[key]
        setattr(owner, attr, ours if on else plain)

plain_apply = graph_cache.CachedRewriter.apply
spent, texts = [0.0], []
def apply(self, fgraph, *args, **kwargs):
    t0 = time.thread_time()
    try:
        return plain_apply(self, fgraph, *args, **kwargs)
    finally:
        spent[0] += time.thread_time() - t0
        out = io.StringIO()
        pytensor.dprint(fgraph, print_type=True, file=out)
        texts.append(out.getvalue())
graph_cache.CachedRewriter.apply = apply
for state in states:
    switch(state == "on")
    spent[0], texts[:] = 0.0, []
    before = dict(destroy_check.stats)
    t0 = time.thread_time()
    aotkernels.nutpie.compile_pymc_model(MODELS[name]())
    whole = time.thread_time() - t0
    text = re.sub(r"0x[0-9A-Fa-f]+", "0x", "\n".join(texts))
    print(json.dumps({"state": state, "cpu": spent[0], "whole": whole,
                      "hash": hashlib.sha1(text.encode()).hexdigest()[:12],
                      "validations": {k: v - before[k] for k, v in destroy_check.stats.items()}}))
"""


def run(python: str, model: str, states: list[str], compare: str, lib: Path,
        jit: Path, in_process: bool) -> list[dict]:
    """The worker's runs of ``model`` in ``states`` ("off"/"on"/"warm-up"), in one
    process (``in_process``: graph and model caches off) or on empty caches."""
    with tempfile.TemporaryDirectory(prefix="aotk-rewriting-") as d:
        shutil.copytree(jit, Path(d) / "jit")
        env = dict(os.environ, AOT_LIBRARY_DIR=str(lib), AOT_CACHE_DIR=str(Path(d) / "jit"),
                   AOT_GRAPH_CACHE_DIR=str(Path(d) / "g"),
                   PYTENSOR_FLAGS=f"base_compiledir={Path(d) / 'pt'}")
        if in_process:
            env.update(AOT_GRAPH_CACHE="0", AOT_MODEL_CACHE="0")
        res = subprocess.run([python, "-c", WORKER, model, compare, ",".join(states)],
                             cwd=ROOT, env=env, capture_output=True, text=True)
    if res.returncode:
        raise SystemExit(f"{model}: {res.stderr[-1500:]}")
    return [json.loads(line) for line in res.stdout.strip().splitlines()
            if line.startswith("{")]


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--python", default=str(ROOT / "build" / "pymc-venv" / "bin" / "python"))
    p.add_argument("--models", default="all")
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--lib", type=Path, default=ROOT / "build" / "native-lib")
    p.add_argument("--jit-cache", type=Path, default=ROOT / "build" / "test-jit-cache")
    p.add_argument("--compare", choices=("lean", "traces", "destroy", "s13", "inline", "s14"),
                   default="lean")
    p.add_argument("--in-process", action="store_true",
                   help="one process per model, off and on alternating --repeat times after "
                        "a warm-up compile (graph and model caches off): less noise")
    args = p.parse_args()
    models = args.models
    if models == "all":
        models = subprocess.run(
            [args.python, "-c", "from tests.corpus import MODELS; print(*MODELS, sep=',')"],
            cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()
    where = "in one process per model" if args.in_process else "fresh processes"
    print(f"# Rewriting CPU ms, {args.compare} off / on, best of {args.repeat} ({where}), "
          f"{time.strftime('%Y-%m-%d %H:%M')}, load {os.getloadavg()[0]:.1f}\n")
    print("| model | rewriting off | on | ratio | whole compile off | on | ratio | graphs |\n"
          "|---|---|---|---|---|---|---|---|")
    total = {k: [0.0, 0.0] for k in ("cpu", "whole")}
    validations = {"accepted": 0, "full": 0}
    for model in models.split(","):
        cpu = {k: {"0": [], "1": []} for k in total}
        hashes = set()
        if args.in_process:  # one process: a warm-up, then off and on alternating
            states = ["warm-up"] + ["off", "on"] * args.repeat
            runs = run(args.python, model, states, args.compare, args.lib, args.jit_cache,
                       True)
        else:  # a fresh process on empty caches per run
            runs = [r for _ in range(args.repeat) for state in ("off", "on")
                    for r in run(args.python, model, [state], args.compare, args.lib,
                                 args.jit_cache, False)]
        for r in runs:
            if r["state"] == "on" and r is runs[-1]:  # the last run: one compile's count
                for k, v in r["validations"].items():
                    validations[k] += v
            if r["state"] != "warm-up":
                for k in total:
                    cpu[k]["1" if r["state"] == "on" else "0"].append(r[k])
            hashes.add(r["hash"])
        cells = []
        for k in total:
            off, on = min(cpu[k]["0"]), min(cpu[k]["1"])
            total[k][0] += off
            total[k][1] += on
            cells.append(f"{off * 1e3:.0f} | {on * 1e3:.0f} | {on / off:.2f}")
        print(f"| {model} | {' | '.join(cells)} | "
              f"{'same' if len(hashes) == 1 else 'DIFFERENT'} |", flush=True)
    cells = [f"{off * 1e3:.0f} | {on * 1e3:.0f} | {on / off:.2f}" for off, on in total.values()]
    print(f"| **all** | {' | '.join(cells)} | |")
    print(f"\nDestroy-handler validations in one shipped compile of each model: "
          f"{validations['accepted']} accepted by destroy_check, {validations['full']} by "
          f"PyTensor's full validation.")


if __name__ == "__main__":
    sys.exit(main())
