"""Reductions against NumPy and numba, in one run.

    python benchmarks/bench_reduce.py [--lib DIR]

sum and max of 1e6 float64 values, and over each axis of a 1000x1000 matrix. ``aot call``
is ``aotkernels.reduce`` (validation, accumulator allocation and fill, ctypes); numba is
``@njit`` calling ``np.sum``/``np.max`` (or an axis loop). NumPy sums pairwise with SIMD;
the kernels accumulate sequentially (PyTensor's C order).
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np
from bench_elemwise import best, library_dir


def numba_funcs():
    from numba import njit

    @njit
    def sum_all(a):
        return a.sum()

    @njit
    def max_all(a):
        return a.max()

    @njit
    def sum_axis0(a):
        out = np.zeros(a.shape[1])
        for i in range(a.shape[0]):
            out += a[i]
        return out

    @njit
    def sum_axis1(a):
        out = np.empty(a.shape[0])
        for i in range(a.shape[0]):
            out[i] = a[i].sum()
        return out

    @njit
    def max_axis1(a):
        out = np.empty(a.shape[0])
        for i in range(a.shape[0]):
            out[i] = a[i].max()
        return out

    return {("sum", None): sum_all, ("max", None): max_all, ("sum", 0): sum_axis0,
            ("sum", 1): sum_axis1, ("max", 1): max_axis1}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--lib", type=Path, default=None)
    args = p.parse_args()
    os.environ["AOT_LIBRARY_DIR"] = str(library_dir(args.lib))
    import aotkernels as ak

    nb = numba_funcs()
    rng = np.random.default_rng(0)
    v, m = rng.normal(size=1_000_000), rng.normal(size=(1000, 1000))
    print(f"# reductions, {time.strftime('%Y-%m-%d')}; library {ak.default_library().path}\n")
    print("| case | kernel | numpy µs | numba µs | aot call µs | aot/numpy | aot/numba |")
    print("|---|---|---|---|---|---|---|")
    for op, x, axis, label in [("sum", v, None, "sum 1e6"), ("max", v, None, "max 1e6"),
                               ("sum", m, 0, "sum 1000x1000 axis 0"),
                               ("sum", m, 1, "sum 1000x1000 axis 1"),
                               ("max", m, 1, "max 1000x1000 axis 1")]:
        np_fn = getattr(np, op)
        t_np = best(lambda: np_fn(x, axis=axis))
        nf = nb[(op, axis)]
        nf(x)
        t_nb = best(lambda: nf(x))
        t_ak = best(lambda: ak.reduce(op, x, axis=axis))
        np.testing.assert_allclose(ak.reduce(op, x, axis=axis), np_fn(x, axis=axis), rtol=1e-9)
        sig, source = ak.resolve_reduce(op, x, axis=axis)
        print(f"| {label} | {source} {sig.key.split('/', 1)[1]} | {t_np * 1e6:.1f} "
              f"| {t_nb * 1e6:.1f} | {t_ak * 1e6:.1f} | {t_ak / t_np:.2f} | {t_ak / t_nb:.2f} |")


if __name__ == "__main__":
    main()
