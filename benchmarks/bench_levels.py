"""The same kernels at each x86-64 level this machine runs: what v3 and v4 gain over baseline.

    python benchmarks/bench_levels.py [--lib build/levels-lib] [--no-build] [--rounds 3]
                                       [--ops exp,log,...]

Builds one library with ``--targets x86_64,x86_64_v3,x86_64_v4`` for just the benchmarked
ops (into ``build/levels-lib``; the IR cache makes a rebuild a relink), then times every
level the CPU supports in its own process (``AOT_CPU_TARGET`` forced, ``AOT_LIBRARY_DIR``
set, ``AOT_DISABLE_JIT=1`` so a missing kernel fails instead of being compiled). Levels run
in separate processes because a process loads one library, and in interleaved rounds so
that load from other work on the machine falls on every level alike. Times are the kernel
called through ctypes with prebuilt arguments (what differs between levels; the Python call
adds ~15 µs at any level), best of 5 batches in each round, best over rounds; NumPy (its SIMD
dispatch held to the level: ``NUMPY_FEATURES``) and numba ``@njit`` (a loop over the libm
body the kernels had before ``kernels/vecmath.py``: the peer, and what "today" was) are
timed in every level's process, and each level is compared with its own;
``spread`` is the worst level's slowest round over its best.
Reductions accumulate into a prefilled output (the kernels' ABI), so repeated calls keep
adding into it: the work per call is the same. float32 sums accumulate in float64, as in
PyTensor; NumPy's float32 sum stays in float32.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from bench_elemwise import BINARY, ROOT, TRANSCENDENTAL, best, numba_loop, numpy_fn, positive

LEVELS = ("x86_64", "x86_64_v3", "x86_64_v4")
ELEMWISE_OPS, REDUCE_OPS = ("add", "mul", *TRANSCENDENTAL), ("sum", "max")
DTYPES = ("float64", "float32")
N, SIDE = 1_000_000, 1000
#: NumPy's own SIMD dispatch held to each level (``NPY_ENABLE_CPU_FEATURES``), so a level's
#: kernels are compared with NumPy on the same instructions; NumPy's baseline is x86-64-v2,
#: so its baseline column runs SSE4.2 code, and v4 leaves NumPy free
NUMPY_FEATURES = {"x86_64": "X86_V2", "x86_64_v3": "X86_V3"}


def elemwise_cases(dtype: str, ops: tuple[str, ...] = ELEMWISE_OPS):
    """(label, op, inputs): 1e6 elements contiguous, 1e6 with stride 2 (the transcendental
    ops: the nd kernel's general loop), 1000x1000 with a broadcast row (add, mul, exp,
    sigmoid), and 1e3 contiguous for the transcendental ops."""
    rng = np.random.default_rng(0)
    a, b = (rng.normal(size=N).astype(dtype) for _ in range(2))
    m = rng.normal(size=(SIDE, SIDE)).astype(dtype)
    row = rng.normal(size=SIDE).astype(dtype)
    wide = rng.normal(size=2 * N).astype(dtype)
    for op in ops:
        binary = op in ("add", "mul")
        x = np.abs(a) if positive(op) else a
        if op in BINARY:
            yield f"{op} 1e3", op, (x[:1000].copy(), b[:1000].copy())
            yield f"{op} contiguous", op, (x, b)
            yield f"{op} strided", op, (np.abs(wide)[::2], wide[1::2])
            continue
        if not binary:
            yield f"{op} 1e3", op, (x[:1000].copy(),)
        yield f"{op} contiguous", op, (a, b) if binary else (x,)
        if not binary:
            yield f"{op} strided", op, ((np.abs(wide) if positive(op) else wide)[::2],)
        # a unary op's broadcast input is a stride-0 view of one row
        if op in ("add", "mul", "exp", "sigmoid"):
            yield f"{op} broadcast row", op, (m, row) if binary else (
                np.broadcast_to(row, (SIDE, SIDE)),)


def reduce_cases(dtype: str, ops: tuple[str, ...] = REDUCE_OPS):
    rng = np.random.default_rng(1)
    v = rng.normal(size=N).astype(dtype)
    m = rng.normal(size=(SIDE, SIDE)).astype(dtype)
    for op in (o for o in REDUCE_OPS if o in ops):
        yield f"{op} 1e6", op, v, None
        yield f"{op} 1000x1000 axis 0", op, m, 0
        yield f"{op} 1000x1000 axis 1", op, m, 1


def worker(ops: tuple[str, ...]) -> list[dict]:
    """Time every case of ``ops`` at the level this process was started with."""
    import aotkernels as ak
    from aotkernels.families import reduce as reductions
    from aotkernels.families.elemwise import prepare

    lib = ak.default_library()
    loops = {op: numba_loop(op) for op in TRANSCENDENTAL}
    rows = []
    for dtype in DTYPES:
        for label, op, args in elemwise_cases(dtype, tuple(o for o in ELEMWISE_OPS if o in ops)):
            out = np.empty(np.broadcast_shapes(*(x.shape for x in args)), dtype)
            p, arrays, _ = prepare(op, *args, out=out)
            assert p.source == "aot", (op, p.sig)
            data = (ctypes.c_void_p * p.n)(*[x.ctypes.data for x in arrays], out.ctypes.data)
            t_aot = best(lambda: p.fn(data, p.shapes, p.strides))
            fn = numpy_fn(op)
            t_np = best(lambda: fn(*args, out=out))
            t_nb = best(lambda: loops[op](*args, out)) if op in loops else np.nan
            np.testing.assert_allclose(ak.elemwise(op, *args), fn(*args), atol=1e-300,
                                       rtol=1e-12 if dtype == "float64" else 1e-5)
            rows.append(dict(case=f"{label} {dtype}", kernel=p.sig.key.split("/", 2)[2],
                             aot=t_aot, numpy=t_np, numba=t_nb))
        for label, op, x, axis in reduce_cases(dtype, ops):
            p, a, _, acc = reductions.prepare(op, x, axis)
            assert p.source == "aot", p.sig
            data = (ctypes.c_void_p * 2)(a.ctypes.data, acc.ctypes.data)
            t_aot = best(lambda: p.fn(data, p.shapes, p.strides))
            np_fn = getattr(np, op)
            t_np = best(lambda: np_fn(x, axis=axis))
            np.testing.assert_allclose(ak.reduce(op, x, axis=axis),
                                       np_fn(x.astype("float64"), axis=axis),
                                       rtol=1e-9 if dtype == "float64" else 1e-5)
            rows.append(dict(case=f"{label} {dtype}", kernel=p.sig.key.split("/", 2)[2],
                             aot=t_aot, numpy=t_np, numba=np.nan))
    return [dict(r, target=lib.target) for r in rows]


def build_library(out: Path, ops: tuple[str, ...]) -> None:
    cmd = [sys.executable, "-m", "aotkernels.build_tools.cli", "--no-wheel", "--quiet",
           "--targets", ",".join(LEVELS), "--ops", ",".join(ops),
           "--dtypes", ",".join(DTYPES), "--max-ndim", "2", "--out", str(out)]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)


def run_level(level: str, lib: Path, ops: tuple[str, ...]) -> list[dict]:
    env = dict(os.environ, AOT_CPU_TARGET=level, AOT_LIBRARY_DIR=str(lib), AOT_DISABLE_JIT="1")
    if level in NUMPY_FEATURES:
        env["NPY_ENABLE_CPU_FEATURES"] = NUMPY_FEATURES[level]
    res = subprocess.run([sys.executable, __file__, "--worker", "--ops", ",".join(ops)],
                         env=env, capture_output=True,
                         text=True, cwd=Path(__file__).parent)
    if res.returncode:
        raise SystemExit(f"level {level} failed:\n{res.stderr[-3000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def best_of_rounds(rounds: list[list[dict]]) -> list[dict]:
    """Best per case over rounds; ``spread`` is the kernel's worst/best over rounds."""
    return [dict(rows[0], aot=min(r["aot"] for r in rows), numpy=min(r["numpy"] for r in rows),
                 numba=min(r["numba"] for r in rows),
                 spread=max(r["aot"] for r in rows) / min(r["aot"] for r in rows))
            for rows in zip(*rounds)]


def report(results: dict[str, list[dict]]) -> None:
    """Per level: the kernel, NumPy held to that level, and the kernel's ratios to NumPy at
    its level and to numba ``@njit`` timed in the same processes."""
    levels = list(results)
    short = [lv.removeprefix("x86_64_") if lv != "x86_64" else "base" for lv in levels]
    print(f"| case | kernel | {' | '.join(f'{s} µs' for s in short)} | "
          f"{' | '.join(f'numpy {s} µs' for s in short)} | numba µs | "
          f"{' | '.join(f'{s}/base' for s in short[1:])} | "
          f"{' | '.join(f'{s}/numpy {s}' for s in short)} | "
          f"{' | '.join(f'{s}/numba' for s in short)} | spread |")
    print("|---|---" + "|---" * (5 * len(levels)) + "|---|---|")
    for i, row in enumerate(results[levels[0]]):
        rs = [results[lv][i] for lv in levels]
        times = [r["aot"] for r in rs]
        nb = [r["numba"] for r in rs]
        cells = [f"{t * 1e6:.1f}" for t in times] + [f"{r['numpy'] * 1e6:.1f}" for r in rs]
        cells.append("" if np.isnan(min(nb)) else f"{min(nb) * 1e6:.1f}")
        cells += [f"{t / times[0]:.2f}" for t in times[1:]]
        cells += [f"{t / r['numpy']:.2f}" for t, r in zip(times, rs)]
        cells += ["" if np.isnan(n) else f"{t / n:.2f}" for t, n in zip(times, nb)]
        spread = max(r["spread"] for r in rs)
        print(f"| {row['case']} | {row['kernel']} | {' | '.join(cells)} | {spread:.2f} |")


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.machine()


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--lib", type=Path, default=ROOT / "build" / "levels-lib")
    p.add_argument("--no-build", action="store_true", help="use --lib as it is")
    p.add_argument("--rounds", type=int, default=3, help="interleaved runs of every level")
    p.add_argument("--ops", default=",".join(ELEMWISE_OPS + REDUCE_OPS),
                   help="only these ops (comma-separated; the library is built for them)")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    ops = tuple(args.ops.split(","))
    if args.worker:
        print(json.dumps(worker(ops)))
        return
    from aotkernels.targets import TARGETS, host_level

    lib = args.lib.resolve()
    if not args.no_build:
        t0 = time.perf_counter()
        build_library(lib, ops)
        print(f"# built {lib} in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    levels = [lv for lv in LEVELS if TARGETS[lv].level <= host_level()]
    print(f"# CPU levels, {time.strftime('%Y-%m-%d')}; {_cpu_name()}, x86-64 level "
          f"{host_level()}: timing {', '.join(levels)}, best of {args.rounds} rounds\n")
    runs: dict[str, list] = {lv: [] for lv in levels}
    for _ in range(args.rounds):
        for lv in levels:
            runs[lv].append(run_level(lv, lib, ops))
    report({lv: best_of_rounds(rows) for lv, rows in runs.items()})


if __name__ == "__main__":
    main()
