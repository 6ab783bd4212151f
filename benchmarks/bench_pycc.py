"""numba.pycc against ``build-kernels --catalog``: numba's documented pycc example (``mult``
as ``multf``/``multi``, ``square``) plus a vectorisable array kernel (``huber``), built
both ways from the same Python source.

Measured, each in fresh child processes: build time (cold: empty IR cache), size of what
ships (pycc: the CPython extension for one Python and one CPU; ours: the wheel with
three x86-64 levels), import + first call (NumPy already imported), call overhead (a scalar
call, a 1000-element call) and the speed of ``huber`` on 1e6 float64 per CPU level (pycc
built once per level with ``cc.target_cpu``; ours forced with ``AOT_CPU_TARGET``). Timings
are the best of repeats, with the median to show the spread.

    .venv/bin/python benchmarks/bench_pycc.py [--out build/bench-pycc]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CATALOG = ROOT / "examples" / "user_kernels" / "mykernels_catalog.py"

PYCC = '''
import sys
from numba.pycc import CC

cc = CC("pycc_kernels")
cc.output_dir = sys.argv[1]
cc.target_cpu = sys.argv[2]


@cc.export("multf", "f8(f8, f8)")
@cc.export("multi", "i4(i4, i4)")
def mult(a, b):
    return a * b


@cc.export("square", "f8(f8)")
def square(a):
    return a**2


@cc.export("huber", "void(f8[::1], f8, f8[::1])")
def huber(x, d, out):
    for i in range(x.shape[0]):
        a = abs(x[i])
        out[i] = 0.5 * x[i] * x[i] if a <= d else d * (a - 0.5 * d)


if __name__ == "__main__":
    cc.compile()
'''

#: the child that times one build: argv = kind (pycc/ours), then nothing
CHILD = r'''
import json, sys, time, timeit
import numpy as np
kind = sys.argv[1]
t0 = time.perf_counter()
if kind == "pycc":
    import pycc_kernels as m
    m.multf(1.2, 3.4)
    mult, huber = m.multf, m.huber
else:
    import mykernels as m
    m.mult(1.2, 3.4)
    mult, huber = m.mult, (lambda x, d, out: m.huber(x, d, out=out))
first = time.perf_counter() - t0
def best(fn, number, scale, repeat=7):  # (best, median) per call, in 1/scale seconds
    ts = sorted(t / number * scale for t in timeit.repeat(fn, number=number, repeat=repeat))
    return ts[0], ts[len(ts) // 2]
x = np.random.default_rng(0).normal(0, 3, 1_000_000)
out = np.empty_like(x)
small, small_out = x[:1000].copy(), np.empty(1000)
huber(x, 1.5, out)
ref = np.where(np.abs(x) <= 1.5, 0.5 * x * x, 1.5 * (np.abs(x) - 0.75))
assert np.allclose(out, ref, rtol=1e-14)
res = {"first_ms": first * 1e3, "scalar_us": best(lambda: mult(1.2, 3.4), 20000, 1e6),
       "small_us": best(lambda: huber(small, 1.5, small_out), 5000, 1e6),
       "huber_ms": best(lambda: huber(x, 1.5, out), 20, 1e3)}
res["numpy_ms"] = best(lambda: np.where(np.abs(x) <= 1.5, 0.5 * x * x,
                                        1.5 * (np.abs(x) - 0.75)), 20, 1e3)
if kind != "pycc":
    res["target"] = m.info()["target"]
print(json.dumps(res))
'''


def _timed(cmd, **kw) -> float:
    t0 = time.perf_counter()
    res = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, **kw)
    if res.returncode:
        raise SystemExit(f"failed: {cmd}\n{res.stdout[-2000:]}\n{res.stderr[-3000:]}")
    return time.perf_counter() - t0


def _child(kind: str, path: Path, env: dict | None = None, runs: int = 3) -> dict:
    """Best of ``runs`` child processes for the first call, their median elsewhere."""
    env = dict(env or os.environ, PYTHONPATH=str(path))
    env.pop("AOT_LIBRARY_DIR", None)
    results = []
    for _ in range(runs):
        res = subprocess.run([sys.executable, "-c", CHILD, kind], capture_output=True,
                             text=True, env=env, cwd=path)
        if res.returncode:
            raise SystemExit(res.stderr[-3000:])
        results.append(json.loads(res.stdout.splitlines()[-1]))
    best = dict(results[0])
    best["first_ms"] = (min(r["first_ms"] for r in results),
                        sorted(r["first_ms"] for r in results)[len(results) // 2])
    for key in ("scalar_us", "small_us", "huber_ms", "numpy_ms"):
        best[key] = min((r[key] for r in results), key=lambda v: v[0])
    return best


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=ROOT / "build" / "bench-pycc")
    args = p.parse_args()
    out = args.out.resolve()
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    (out / "pycc_src.py").write_text(PYCC)
    report: dict = {"pycc": {}, "ours": {}}
    for cpu, level in (("x86-64", "x86_64"), ("x86-64-v3", "x86_64_v3")):
        d = out / f"pycc-{level}"
        d.mkdir()
        seconds = _timed([sys.executable, out / "pycc_src.py", d, cpu])
        (so,) = d.glob("pycc_kernels*.so")
        report["pycc"][level] = {"build_s": seconds, "bytes": so.stat().st_size,
                                 **_child("pycc", d)}
    # ours, cold (empty IR cache): mult, square, huber in every dtype they declare, flat + nd1
    env = dict(os.environ, AOT_CACHE_DIR=str(out / "cache"))
    seconds = _timed([sys.executable, "-m", "aotkernels.build_tools.cli", "--catalog", CATALOG,
                      "--ops", "mult,square,huber", "--max-ndim", "1", "--jobs", "2",
                      "--targets", "x86_64,x86_64_v3,x86_64_v4", "--out", out / "wheel",
                      "--cache-dir", out / "cache" / "ir-cache", "-q"],
                     env=env, cwd=out)
    (whl,) = (out / "wheel").glob("mykernels-*.whl")
    site = out / "site"
    zipfile.ZipFile(whl).extractall(site)
    kernels = len(json.loads((site / "mykernels" / "_lib" / "manifest.json").read_text())
                  ["kernels"])
    report["ours"]["build"] = {"build_s": seconds, "bytes": whl.stat().st_size,
                               "kernels": kernels}
    for level in ("x86_64", "x86_64_v3"):
        report["ours"][level] = _child("ours", site, dict(env, AOT_CPU_TARGET=level))
    (out / "report.json").write_text(json.dumps(report, indent=1))
    print_table(report)


def print_table(report: dict) -> None:
    """Markdown, as pasted into RESULTS.md: best (median)."""
    def bm(v, fmt="{:.2f}"):
        return f"{fmt.format(v[0])} ({fmt.format(v[1])})"

    ours, pycc = report["ours"], report["pycc"]
    print("| | numba.pycc | aotkernels `--catalog` |\n|---|---|---|")
    print(f"| build, cold (s) | {pycc['x86_64']['build_s']:.0f} per CPU level "
          f"| {ours['build']['build_s']:.0f} for 3 levels ({ours['build']['kernels']} kernels) |")
    print(f"| what ships (KB) | {pycc['x86_64']['bytes'] / 1024:.0f} (.so, one Python, one CPU) "
          f"| {ours['build']['bytes'] / 1024:.0f} (wheel, py3, 3 levels) |")
    print(f"| import + first call (ms) | {bm(pycc['x86_64']['first_ms'], '{:.1f}')} "
          f"| {bm(ours['x86_64']['first_ms'], '{:.0f}')} |")
    print(f"| scalar call `mult(1.2, 3.4)` (us) | {bm(pycc['x86_64']['scalar_us'])} "
          f"| {bm(ours['x86_64']['scalar_us'], '{:.1f}')} |")
    print(f"| `huber` on 1000 float64 (us) | {bm(pycc['x86_64']['small_us'])} "
          f"| {bm(ours['x86_64']['small_us'], '{:.1f}')} |")
    for level in ("x86_64", "x86_64_v3"):
        print(f"| `huber` on 1e6 float64, {level} (ms) | {bm(pycc[level]['huber_ms'])} "
              f"| {bm(ours[level]['huber_ms'])} (NumPy {bm(ours[level]['numpy_ms'], '{:.1f}')}) |")


if __name__ == "__main__":
    main()
