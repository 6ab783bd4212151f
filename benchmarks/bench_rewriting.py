"""Mode AOT's cold rewriting with ``lean_rewriting``'s shortcuts off and on, and whether the
graphs are the same.

    build/pymc-venv/bin/python benchmarks/bench_rewriting.py [--models a,b|all] [--repeat 3]
                                                            [--lib DIR]

Per model and run, two fresh processes (``AOT_LEAN_REWRITING=0``, then ``=1``) with empty
graph caches compile it with ``aotkernels.nutpie.compile_pymc_model`` and report the main
thread's CPU seconds inside mode AOT's rewriter (every graph it rewrites: nutpie's
canonicalize, logp+gradient, expand, initial point) and a hash of every rewritten graph's
``debugprint`` with types (object addresses masked). Printed: best CPU off and on, their
ratio, and "same" if every run of the model hashed alike. The JIT cache is a copy of
``build/test-jit-cache`` per process, as in ``first_draw_phases.py``.
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
aotkernels.nutpie.compile_pymc_model(model)
text = re.sub(r"0x[0-9A-Fa-f]+", "0x", "\n".join(texts))
print(json.dumps({"cpu": spent[0], "hash": hashlib.sha1(text.encode()).hexdigest()[:12]}))
"""


def run(python: str, model: str, lean: str, lib: Path, jit: Path) -> dict:
    with tempfile.TemporaryDirectory(prefix="aotk-rewriting-") as d:
        shutil.copytree(jit, Path(d) / "jit")
        env = dict(os.environ, AOT_LEAN_REWRITING=lean, AOT_LIBRARY_DIR=str(lib),
                   AOT_CACHE_DIR=str(Path(d) / "jit"), AOT_GRAPH_CACHE_DIR=str(Path(d) / "g"),
                   PYTENSOR_FLAGS=f"base_compiledir={Path(d) / 'pt'}")
        res = subprocess.run([python, "-c", WORKER, model], cwd=ROOT, env=env,
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
    args = p.parse_args()
    models = args.models
    if models == "all":
        models = subprocess.run(
            [args.python, "-c", "from tests.corpus import MODELS; print(*MODELS, sep=',')"],
            cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()
    print(f"# Rewriting CPU ms, lean off / on, best of {args.repeat}, "
          f"{time.strftime('%Y-%m-%d %H:%M')}, load {os.getloadavg()[0]:.1f}\n")
    print("| model | off | on | ratio | graphs |\n|---|---|---|---|---|")
    total = [0.0, 0.0]
    for model in models.split(","):
        cpu, hashes = {"0": [], "1": []}, set()
        for _ in range(args.repeat):
            for lean in ("0", "1"):
                r = run(args.python, model, lean, args.lib, args.jit_cache)
                cpu[lean].append(r["cpu"])
                hashes.add(r["hash"])
        off, on = min(cpu["0"]), min(cpu["1"])
        total[0] += off
        total[1] += on
        print(f"| {model} | {off * 1e3:.0f} | {on * 1e3:.0f} | {on / off:.2f} | "
              f"{'same' if len(hashes) == 1 else 'DIFFERENT'} |", flush=True)
    print(f"| **all** | {total[0] * 1e3:.0f} | {total[1] * 1e3:.0f} | "
          f"{total[1] / total[0]:.2f} | |")


if __name__ == "__main__":
    sys.exit(main())
