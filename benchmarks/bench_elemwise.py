"""Elementwise speed, library load time and size, against NumPy and numba, in one run.

    python benchmarks/bench_elemwise.py [--lib DIR] [--target x86_64_v3] [--cache-kernels 200]
                                        [--quick]

``--lib`` is a library directory from ``build-kernels --no-wheel`` (default: $AOT_LIBRARY_DIR,
else build/full-lib, else the installed package); ``--target`` loads that CPU level of it
(``AOT_CPU_TARGET``; ``bench_levels.py`` runs every level side by side, this script one).
NumPy's own SIMD dispatch is whatever ``NPY_ENABLE_CPU_FEATURES`` leaves it. Prints markdown
tables; the figures in RESULTS.md come from this script.

Columns: ``aot call`` is ``aotkernels.elemwise(..., out=o)`` (validation, resolution and a
ctypes call per call); ``aot prepared`` is ``Prepared.run`` (data pointers marshalled per
call, what a PyTensor node costs); ``aot kernel`` calls the kernel with prebuilt arguments,
which is what a planned graph executes. numba is ``@njit`` running the same ufunc with
``out=`` (no allocation).
"""

from __future__ import annotations

import argparse
import ctypes
import json
import math
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent


def library_dir(arg: Path | None) -> Path:
    """``--lib``, else $AOT_LIBRARY_DIR, else build/full-lib (what ``make bench`` builds)."""
    return (arg or Path(os.environ.get("AOT_LIBRARY_DIR", ROOT / "build" / "full-lib"))).resolve()


def best(fn, min_time=0.2, repeat=5) -> float:
    """Best per-call seconds over ``repeat`` batches sized to run ``min_time`` each."""
    fn()
    n, t = 1, 0.0
    while True:
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        t = time.perf_counter() - t0
        if t > min_time / repeat or n > 1e6:
            break
        n *= 4
    res = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        res.append((time.perf_counter() - t0) / n)
    return min(res)


#: the transcendental ops (kernels/vecmath.py): NumPy's function and the scalar libm body
#: they replaced, which numba ``@njit`` compiles as a loop (the peer, and "today")
TRANSCENDENTAL = ("exp", "expm1", "log", "log1p", "sigmoid", "softplus", "tanh", "erf", "erfc",
                  "sin", "cos", "pow")


def numpy_fn(op: str):
    import scipy.special

    return {"add": np.add, "mul": np.multiply, "exp": np.exp, "expm1": np.expm1,
            "log": np.log, "log1p": np.log1p, "sigmoid": scipy.special.expit,
            "softplus": lambda x, out=None: np.logaddexp(np.zeros((), x.dtype), x, out=out),
            "tanh": np.tanh, "erf": scipy.special.erf, "erfc": scipy.special.erfc,
            "sin": np.sin, "cos": np.cos, "pow": np.power}[op]


def _libm_softplus(x):  # the piecewise form (PyTensor's) the kernels used before vecmath
    if x < -37.0:
        return math.exp(x)
    if x < 18.0:
        return math.log1p(math.exp(x))
    if x < 33.3:
        return x + math.exp(-x)
    return x


LIBM_BODIES = {"exp": lambda x: math.exp(x), "expm1": lambda x: math.expm1(x),
               "log": lambda x: math.log(x), "log1p": lambda x: math.log1p(x),
               "sigmoid": lambda x: 1.0 / (1.0 + math.exp(-x)), "softplus": _libm_softplus,
               "tanh": lambda x: math.tanh(x), "erf": lambda x: math.erf(x),
               "erfc": lambda x: math.erfc(x), "sin": lambda x: math.sin(x),
               "cos": lambda x: math.cos(x), "pow": lambda x, y: x**y}
#: ops of two operands among them (benchmarked on a positive base)
BINARY = ("pow",)


def numba_loop(op: str):
    """``@njit`` loop ``f(a, out)`` (``f(a, b, out)`` for ``BINARY``) over any-rank arrays
    with the libm body of ``op``."""
    from numba import njit

    body = njit(LIBM_BODIES[op])

    @njit
    def loop(a, o):
        for idx in np.ndindex(a.shape):
            o[idx] = body(a[idx])

    @njit
    def loop2(a, b, o):
        for idx in np.ndindex(a.shape):
            o[idx] = body(a[idx], b[idx])

    return loop2 if op in BINARY else loop


def positive(op: str) -> bool:
    """Ops benchmarked on |x| (their domain; pow's base)."""
    return op in ("log", "log1p", "pow")


def cases(n: int):
    """(op, layout, dtype, inputs): add, exp and sigmoid in four layouts (float64); every
    transcendental op contiguous in float64 and float32."""
    rng = np.random.default_rng(0)
    side = int(round(n**0.5))
    a, b = rng.normal(size=n), rng.normal(size=n)
    big = rng.normal(size=2 * n)
    m, row = rng.normal(size=(side, side)), rng.normal(size=side)
    for op in ("add", "exp", "sigmoid"):
        yield op, "contiguous", "float64", (a, b) if op == "add" else (a,)
        yield op, "strided", "float64", (big[::2], b) if op == "add" else (big[::2],)
        if op == "add":
            yield op, "broadcast row", "float64", (m, row)
        else:
            yield op, "2-d reversed", "float64", (m[::-1],)
    for dtype in ("float64", "float32"):
        for op in TRANSCENDENTAL:
            if dtype == "float64" and op in ("exp", "sigmoid"):
                continue
            x = np.abs(a) if positive(op) else a
            args = (x, b) if op in BINARY else (x,)
            yield op, "contiguous", dtype, tuple(v.astype(dtype) for v in args)


def numba_funcs():
    from numba import njit

    @njit
    def add(a, b, o):
        np.add(a, b, o)

    return {"add": add, **{op: numba_loop(op) for op in TRANSCENDENTAL}}


def _measure(op, args, numpy_fn, numba_fn) -> dict:
    import aotkernels as ak
    from aotkernels.families.elemwise import prepare

    out = np.empty(np.broadcast_shapes(*(x.shape for x in args)), args[0].dtype)
    t_np = best(lambda: numpy_fn(*args, out=out))
    t_nb = best(lambda: numba_fn(*args, out))
    t_call = best(lambda: ak.elemwise(op, *args, out=out))
    p, arrays, _ = prepare(op, *args, out=out)
    t_prep = best(lambda: p.run([*arrays, out]))
    data = (ctypes.c_void_p * p.n)(*[a.ctypes.data for a in arrays], out.ctypes.data)
    t_kern = best(lambda: p.fn(data, p.shapes, p.strides))
    rtol = 1e-12 if out.dtype == np.float64 else 1e-5
    assert np.allclose(out, numpy_fn(*args), rtol=rtol, atol=1e-300), op
    return dict(kernel=p.sig.key.split("/", 2)[2], source=p.source, numpy=t_np, numba=t_nb,
                call=t_call, prepared=t_prep, kern=t_kern)


def bench_speed(quick: bool) -> list[dict]:
    nb = numba_funcs()
    rows = []
    for n in (1_000, 1_000_000):
        for op, layout, dtype, args in cases(n):
            rows.append(dict(n=n, op=op, layout=layout, dtype=dtype,
                             **_measure(op, args, numpy_fn(op), nb[op])))
            if quick and n == 1_000_000:
                break
    return rows


LOAD_SCRIPT = r"""
import json, sys, time
t0 = time.perf_counter()
import numpy
t1 = time.perf_counter()
from aotkernels import library
t2 = time.perf_counter()
lib = library.load()
t3 = time.perf_counter()
for key in lib.kernels:
    lib.function(key)
t4 = time.perf_counter()
print(json.dumps({"numpy_import": t1 - t0, "aotkernels_import": t2 - t1, "load": t3 - t2,
                  "resolve_all": t4 - t3, "kernels": len(lib.kernels),
                  "numba_imported": "numba" in sys.modules}))
"""


def bench_load(lib_dir: Path) -> dict:
    env = dict(os.environ, AOT_LIBRARY_DIR=str(lib_dir))
    runs = []
    for _ in range(5):
        out = subprocess.run([sys.executable, "-c", LOAD_SCRIPT], env=env, capture_output=True,
                             text=True, check=True).stdout
        runs.append(json.loads(out))
    return {k: min(r[k] for r in runs) if isinstance(runs[0][k], float) else runs[0][k]
            for k in runs[0]}


NUMBA_MODULE = '''
import numpy as np
from numba import njit
from aotkernels.kernels.abi import assume_c
from aotkernels.kernels.scalar_ops import SCALAR_OPS
f = njit(inline="always")(SCALAR_OPS[{op!r}].impl({compute!r}))
{converters}
{source}
kernel = njit({numba_sig!r}, cache=True)({name})
'''


def bench_numba_cache(lib_dir: Path, count: int) -> dict:
    """numba's own ``cache=True`` for the same kernels, against a library of exactly those."""
    from aotkernels.build_tools.cli import build
    from aotkernels.kernels import elemwise
    from aotkernels.kernels.scalar_ops import SCALAR_OPS
    from aotkernels.library import read_manifest
    from aotkernels.signature import Signature

    keys = sorted(k for k in read_manifest(lib_dir)["kernels"] if k.startswith("elemwise/"))
    step = max(1, len(keys) // count)
    sigs = [Signature.from_key(k) for k in keys[::step][:count]]
    work = Path(tempfile.mkdtemp(prefix="aotk-bench-"))
    try:
        mods = work / "mods"
        mods.mkdir()
        names = []
        for i, sig in enumerate(sigs):
            op = SCALAR_OPS[sig.op]
            _, compute = op.types(sig.in_dtypes, sig.out_dtype)
            conv = [elemwise.converter(c) if c != d else None
                    for c, d in zip(compute, sig.in_dtypes)]
            if sig.layout == "flat":
                src = elemwise._flat_source(op.nin, conv)
            else:
                sizes = [np.dtype(d).itemsize for d in (*sig.in_dtypes, sig.out_dtype)]
                src = elemwise._nd_source(op.nin, sig.ndim, conv, sizes)
            name = f"k{i}"
            src[0] = src[0].replace("def kernel", f"def {name}")
            lay = "::1" if sig.layout == "flat" else ":"
            arr = [f"{'bool_' if d == 'bool' else d}[{', '.join([':'] * (sig.ndim - 1) + [lay])}]"
                   for d in (*sig.in_dtypes, sig.out_dtype)]
            convs = "\n".join(f"c{j} = np.{c.__name__}" for j, c in enumerate(conv) if c)
            (mods / f"m{i}.py").write_text(NUMBA_MODULE.format(
                op=sig.op, compute=next((c for c in compute if c), sig.in_dtypes[-1]),
                converters=convs, source="\n".join(src), numba_sig=f"int64({', '.join(arr)})",
                name=name))
            names.append(f"m{i}")
        script = ("import sys, time; t=time.perf_counter(); import importlib\n"
                  f"for m in {names!r}: importlib.import_module(m).kernel\n"
                  "print(time.perf_counter()-t)")
        env = dict(os.environ, NUMBA_CACHE_DIR=str(work / "cache"), PYTHONPATH=str(mods))
        cold = float(subprocess.run([sys.executable, "-c", script], env=env, check=True,
                                    capture_output=True, text=True).stdout)
        warm = float(subprocess.run([sys.executable, "-c", script], env=env, check=True,
                                    capture_output=True, text=True).stdout)
        cache_bytes = sum(p.stat().st_size for p in (work / "cache").rglob("*") if p.is_file())
        summary = build(sigs, ["x86_64"], work / "lib", wheel=False, jobs=os.cpu_count() or 1,
                        cache_dir=ROOT / "build" / "ir-cache", quiet=True)
        lib_bytes = summary["library_bytes"]["x86_64"]
        return dict(kernels=len(sigs), numba_cache_bytes=cache_bytes, library_bytes=lib_bytes,
                    numba_cold_s=cold, numba_warm_s=warm)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--lib", type=Path, default=None)
    p.add_argument("--target", help="CPU level of the library to load (AOT_CPU_TARGET)")
    p.add_argument("--cache-kernels", type=int, default=200)
    p.add_argument("--quick", action="store_true")
    args = p.parse_args()
    lib_dir = library_dir(args.lib)
    if not (lib_dir / "manifest.json").exists():
        raise SystemExit(f"no library in {lib_dir}: run build-kernels --no-wheel --out {lib_dir}")
    os.environ["AOT_LIBRARY_DIR"] = str(lib_dir.resolve())
    if args.target:
        os.environ["AOT_CPU_TARGET"] = args.target
    import numba

    print(f"# elementwise benchmark, {time.strftime('%Y-%m-%d')}")
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; "
          f"python {platform.python_version()}, numpy {np.__version__}, numba {numba.__version__}")
    from aotkernels import default_library

    lib = default_library()
    print(f"library: {lib.path.name} ({lib.path.stat().st_size / 1e6:.2f} MB, "
          f"{len(lib.kernels)} kernels, target {lib.target})\n")

    print("| n | op | layout | dtype | kernel | numpy µs | numba µs | aot call µs "
          "| aot prepared µs | aot kernel µs | kernel/numpy | kernel/numba |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in bench_speed(args.quick):
        print(f"| {r['n']:.0e} | {r['op']} | {r['layout']} | {r['dtype']} "
              f"| {r['source']} {r['kernel']} "
              f"| {r['numpy'] * 1e6:.1f} | {r['numba'] * 1e6:.1f} | {r['call'] * 1e6:.1f} "
              f"| {r['prepared'] * 1e6:.1f} | {r['kern'] * 1e6:.1f} "
              f"| {r['kern'] / r['numpy']:.2f} | {r['kern'] / r['numba']:.2f} |")

    ld = bench_load(lib_dir)
    print(f"\nfresh process, best of 5: import numpy {ld['numpy_import'] * 1e3:.1f} ms; import "
          f"aotkernels {ld['aotkernels_import'] * 1e3:.1f} ms; load library (verify sha256, "
          f"dlopen) {ld['load'] * 1e3:.1f} ms; resolve all {ld['kernels']} kernels "
          f"{ld['resolve_all'] * 1e3:.1f} ms; load + resolve-all "
          f"{(ld['load'] + ld['resolve_all']) * 1e3:.1f} ms (goal < 20 ms); "
          f"numba imported: {ld['numba_imported']}")

    if args.cache_kernels:
        c = bench_numba_cache(lib_dir, args.cache_kernels)
        ratio = c["numba_cache_bytes"] / c["library_bytes"]
        print(f"\nsame {c['kernels']} kernels: numba cache=True "
              f"{c['numba_cache_bytes'] / 1e6:.2f} MB vs library {c['library_bytes'] / 1e6:.3f} MB:"
              f" {ratio:.1f}x smaller (goal >= 10x); numba first run {c['numba_cold_s']:.1f} s, "
              f"from its cache {c['numba_warm_s']:.2f} s")


if __name__ == "__main__":
    main()
