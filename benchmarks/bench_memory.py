"""Peak memory: load the library and run PyTensor graphs in mode AOT, against NUMBA and C.

    python benchmarks/bench_memory.py [--lib DIR] [--workloads logistic,suite]

Every (workload, mode) runs in a fresh process with empty caches (a new temporary
``AOT_CACHE_DIR``, ``NUMBA_CACHE_DIR`` and PyTensor ``base_compiledir``, as in
``bench_pytensor.py``); NUMBA and C also run once more warm, on the caches their cold run
left. Reported: the process's peak RSS (``VmHWM``) and the largest child it waited for
(``RUSAGE_CHILDREN``: the C compiler, aotkernels' JIT compiler), in MiB.

Workloads: ``import`` (import aotkernels and load the library, no PyTensor); ``logistic``
(one logistic-regression loss+grad graph, the README's demo); ``suite`` (twelve graphs
compiled and run in one process: elementwise chains, reductions, softmax classifier,
logistic regressions of several sizes, like a test file compiles many small graphs).
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

CASE = r"""
import json, resource, sys
workload, mode = sys.argv[1], sys.argv[2]
import numpy as np
if workload == "import":
    import aotkernels
    from aotkernels import library
    assert library.default_library() is not None
else:
    import pytensor
    import pytensor.tensor as pt
    if mode == "AOT":
        import aotkernels.pytensor
    rng = np.random.default_rng(0)

    def elemwise(k):
        x, y = pt.vector("x"), pt.vector("y")
        out = x
        for i in range(k):
            out = pt.exp(-out * out) * pt.sigmoid(y) + pt.log1p(pt.abs(out - y)) / (1 + i)
        return [x, y], [out], [rng.normal(size=1000), rng.normal(size=1000)]

    def logistic(n, k):
        x, w, t = pt.matrix("x"), pt.vector("w"), pt.vector("t")
        p = pt.sigmoid(x @ w)
        loss = -pt.mean(t * pt.log(p) + (1 - t) * pt.log(1 - p)) + 1e-3 * pt.sum(w ** 2)
        return [x, w, t], [loss, pytensor.grad(loss, w)], [
            rng.normal(size=(n, k)), rng.normal(size=k), (rng.random(n) < 0.5).astype(float)]

    def softmax():
        x, w, b, y = pt.matrix("x"), pt.matrix("w"), pt.vector("b"), pt.lvector("y")
        p = pt.special.softmax(x @ w + b, axis=1)
        loss = -pt.mean(pt.log(p[pt.arange(y.shape[0]), y]))
        return [x, w, b, y], [loss, *pytensor.grad(loss, [w, b])], [
            rng.normal(size=(500, 20)), rng.normal(size=(20, 5)), np.zeros(5),
            rng.integers(0, 5, 500)]

    def reductions():
        m = pt.matrix("m")
        outs = [m.sum(axis=0), m.max(axis=1), pt.prod(m[:3], axis=1), pt.all(m > 0),
                pt.mean(m, axis=0) - pt.min(m)]
        return [m], outs, [rng.normal(size=(50, 40))]

    graphs = {"logistic": [lambda: logistic(100, 10)],
              "suite": [lambda: elemwise(1), lambda: elemwise(3), lambda: elemwise(6),
                        lambda: logistic(100, 10), lambda: logistic(1000, 30),
                        softmax, reductions,
                        lambda: elemwise(2), lambda: logistic(50, 5), reductions,
                        softmax, lambda: elemwise(4)]}[workload]
    for build in graphs:
        ins, outs, vals = build()
        f = pytensor.function(ins, outs, mode=mode)
        f(*vals)
with open("/proc/self/status") as fh:
    hwm = next(int(l.split()[1]) for l in fh if l.startswith("VmHWM")) / 1024
children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
print(json.dumps({"peak": hwm, "child_peak": children, "numba": "numba" in sys.modules}))
"""


def run(workload: str, mode: str, cache: Path, lib: Path) -> dict:
    env = dict(os.environ, AOT_LIBRARY_DIR=str(lib), AOT_CACHE_DIR=str(cache / "aot"),
               NUMBA_CACHE_DIR=str(cache / "numba"),
               PYTENSOR_FLAGS=f"base_compiledir={cache / 'pytensor'}")
    t = time.perf_counter()
    res = subprocess.run([sys.executable, "-c", CASE, workload, mode], env=env,
                         capture_output=True, text=True)
    if res.returncode:
        raise SystemExit(f"{workload} {mode} failed:\n{res.stderr[-3000:]}")
    report = json.loads(res.stdout.strip().splitlines()[-1])
    report["seconds"] = time.perf_counter() - t
    return report


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--lib", type=Path, default=None)
    p.add_argument("--workloads", default="import,logistic,suite")
    args = p.parse_args()
    lib = library_dir(args.lib)
    if not (lib / "manifest.json").exists():
        raise SystemExit(f"no library in {lib}: run build-kernels --no-wheel --out {lib}")
    kernels = len(json.loads((lib / "manifest.json").read_text())["kernels"])
    print(f"# Peak RSS, {time.strftime('%Y-%m-%d')}: {platform.machine()}, "
          f"{os.cpu_count()} cores, library {lib.name} ({kernels} kernels)\n")
    print("| workload | mode | caches | peak RSS MiB | largest child MiB | wall s "
          "| numba imported |")
    print("|---|---|---|---|---|---|---|")
    for workload in args.workloads.split(","):
        modes = ["AOT"] if workload == "import" else ["AOT", "NUMBA", "CVM"]
        for mode in modes:
            with tempfile.TemporaryDirectory(prefix="aotk-mem-") as d:
                runs = [("cold", run(workload, mode, Path(d), lib))]
                if mode != "AOT":
                    runs.append(("warm", run(workload, mode, Path(d), lib)))
            for caches, r in runs:
                name = "import + load" if workload == "import" else mode.replace("CVM", "C")
                print(f"| {workload} | {name} | {caches} | {r['peak']:.0f} "
                      f"| {r['child_peak']:.0f} | {r['seconds']:.1f} | {r['numba']} |")


if __name__ == "__main__":
    main()
