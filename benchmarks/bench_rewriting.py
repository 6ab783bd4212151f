"""Mode AOT's cold rewriting with ``lean_rewriting``'s shortcuts off and on, and whether the
graphs are the same.

    build/pymc-venv/bin/python benchmarks/bench_rewriting.py [--models a,b|all] [--repeat 3]
                                                            [--lib DIR]
                                                            [--compare traces|destroy]

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
validation of every in-place replacement), "on" as shipped.
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
import hashlib, io, json, re, sys, time, warnings
warnings.filterwarnings("ignore")
import pytensor
import aotkernels.nutpie
from aotkernels.pytensor import graph_cache
from tests.corpus import MODELS
model = MODELS[sys.argv[1]]()
if sys.argv[2:] == ["keep-traces"]:
    from contextlib import contextmanager
    shipped = aotkernels.nutpie.aot_default
    @contextmanager
    def keeping_traces():
        limit = pytensor.config.traceback__limit
        with shipped(), pytensor.config.change_flags(traceback__limit=limit):
            yield
    aotkernels.nutpie.aot_default = keeping_traces
plain = graph_cache.CachedRewriter.apply
spent, texts = [0.0], []
def apply(self, fgraph, *args, **kwargs):
    t0 = time.thread_time()
    try:
        return plain(self, fgraph, *args, **kwargs)
    finally:
        spent[0] += time.thread_time() - t0
        out = io.StringIO()
        pytensor.dprint(fgraph, print_type=True, file=out)
        texts.append(out.getvalue())
graph_cache.CachedRewriter.apply = apply
if sys.argv[2:] == ["full-validation"]:
    from pytensor.graph.destroyhandler import DestroyHandler
    from aotkernels.pytensor import destroy_check
    setattr(DestroyHandler, destroy_check.VALIDATE, destroy_check.PYTENSOR_VALIDATE)
t0 = time.thread_time()
aotkernels.nutpie.compile_pymc_model(model)
whole = time.thread_time() - t0
text = re.sub(r"0x[0-9A-Fa-f]+", "0x", "\n".join(texts))
print(json.dumps({"cpu": spent[0], "whole": whole,
                  "hash": hashlib.sha1(text.encode()).hexdigest()[:12]}))
"""


def run(python: str, model: str, on: str, compare: str, lib: Path, jit: Path) -> dict:
    lean = "0" if compare == "lean" and on == "0" else "1"
    extra = {"traces": ["keep-traces"], "destroy": ["full-validation"]}.get(compare, [])
    extra = extra if on == "0" else []
    with tempfile.TemporaryDirectory(prefix="aotk-rewriting-") as d:
        shutil.copytree(jit, Path(d) / "jit")
        env = dict(os.environ, AOT_LEAN_REWRITING=lean, AOT_LIBRARY_DIR=str(lib),
                   AOT_CACHE_DIR=str(Path(d) / "jit"), AOT_GRAPH_CACHE_DIR=str(Path(d) / "g"),
                   PYTENSOR_FLAGS=f"base_compiledir={Path(d) / 'pt'}")
        res = subprocess.run([python, "-c", WORKER, model, *extra], cwd=ROOT, env=env,
                             capture_output=True, text=True)
    if res.returncode:
        raise SystemExit(f"{model}: {res.stderr[-1500:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--python", default=str(ROOT / "build" / "pymc-venv" / "bin" / "python"))
    p.add_argument("--models", default="all")
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--lib", type=Path, default=ROOT / "build" / "native-lib")
    p.add_argument("--jit-cache", type=Path, default=ROOT / "build" / "test-jit-cache")
    p.add_argument("--compare", choices=("lean", "traces", "destroy"), default="lean")
    args = p.parse_args()
    models = args.models
    if models == "all":
        models = subprocess.run(
            [args.python, "-c", "from tests.corpus import MODELS; print(*MODELS, sep=',')"],
            cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()
    print(f"# Rewriting CPU ms, {args.compare} off / on, best of {args.repeat}, "
          f"{time.strftime('%Y-%m-%d %H:%M')}, load {os.getloadavg()[0]:.1f}\n")
    print("| model | rewriting off | on | ratio | whole compile off | on | ratio | graphs |\n"
          "|---|---|---|---|---|---|---|---|")
    total = {k: [0.0, 0.0] for k in ("cpu", "whole")}
    for model in models.split(","):
        cpu = {k: {"0": [], "1": []} for k in total}
        hashes = set()
        for _ in range(args.repeat):
            for lean in ("0", "1"):  # off, on
                r = run(args.python, model, lean, args.compare, args.lib, args.jit_cache)
                for k in total:
                    cpu[k][lean].append(r[k])
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


if __name__ == "__main__":
    sys.exit(main())
