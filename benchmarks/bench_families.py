"""Matrix products, joins with direct writes and softmax against NumPy (and numba), one run.

    python benchmarks/bench_families.py [--lib DIR]

* gemm 500x500 and gemv 1000x1000 by a 1000-vector: ``aotkernels.dot`` (a ``blas`` kernel
  calling the BLAS bound at load) against ``numpy.dot`` (the same OpenBLAS);
* join of 8 streams: ``concatenate([2 * x_i])`` built from temporaries by NumPy, against
  each ``2 * x_i`` written by a kernel straight into its slice of the output;
* softmax of 1000x1000 along the rows: the max-shifted NumPy formula and an ``@njit``
  row loop, against the ``axis`` kernel.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np
from bench_elemwise import best, library_dir


def numba_softmax():
    from numba import njit

    @njit
    def softmax_rows(x):
        out = np.empty_like(x)
        for i in range(x.shape[0]):
            m = x[i].max()
            e = np.exp(x[i] - m)
            out[i] = e / e.sum()
        return out

    return softmax_rows


def np_softmax(x):
    e = np.exp(x - x.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--lib", type=Path, default=None)
    args = p.parse_args()
    os.environ["AOT_LIBRARY_DIR"] = str(library_dir(args.lib))
    import aotkernels as ak
    from aotkernels import assemble, record
    from aotkernels.families import blas as linalg

    library = ak.default_library()
    rng = np.random.default_rng(0)
    print(f"# kernel families, {time.strftime('%Y-%m-%d')}; library {library.path}; "
          f"BLAS: {library.blas}\n")
    print("| case | numpy µs | numba µs | aot µs | aot/numpy | aot/numba |")
    print("|---|---|---|---|---|---|")

    def row(label, t_np, t_aot, t_nb=None):
        nb = f"{t_nb * 1e6:.1f}" if t_nb else ""
        ratio_nb = f"{t_aot / t_nb:.2f}" if t_nb else ""
        print(f"| {label} | {t_np * 1e6:.1f} | {nb} | {t_aot * 1e6:.1f} | "
              f"{t_aot / t_np:.2f} | {ratio_nb} |", flush=True)

    for dtype in ("float64", "float32"):
        a, b = (rng.normal(size=(500, 500)).astype(dtype) for _ in range(2))
        c = np.empty((500, 500), dtype)
        with record.capture() as calls:
            np.testing.assert_allclose(linalg.dot(a, b), a @ b, rtol=1e-3, atol=1e-3)
        assert record.source(calls) == "aot"
        row(f"gemm 500x500 {dtype}", best(lambda: np.dot(a, b, out=c)),
            best(lambda: linalg.dot(a, b, out=c)))
        m, v = rng.normal(size=(1000, 1000)).astype(dtype), rng.normal(size=1000).astype(dtype)
        y = np.empty(1000, dtype)
        row(f"gemv 1000x1000 @ 1000 {dtype}", best(lambda: np.dot(m, v, out=y)),
            best(lambda: linalg.dot(m, v, out=y)))

    streams = [rng.normal(size=125_000) for _ in range(8)]
    out = np.empty(1_000_000)
    views = assemble.slices(out, 0, [len(s) for s in streams])
    two = np.float64(2.0)

    def direct():
        for s, dest in zip(streams, views):
            ak.elemwise("mul", s, two, out=dest)

    direct()
    np.testing.assert_array_equal(out, np.concatenate([2 * s for s in streams]))
    row("join of 8 streams (2*x_i): temporaries vs direct writes",
        best(lambda: np.concatenate([2 * s for s in streams])), best(direct))
    row("join of 8 streams (2*x_i): aot temporaries + join",
        best(lambda: np.concatenate([2 * s for s in streams])),
        best(lambda: ak.join(0, *[ak.elemwise("mul", s, two) for s in streams])))

    x = rng.normal(size=(1000, 1000))
    nb = numba_softmax()
    np.testing.assert_allclose(ak.softmax(x, axis=1), np_softmax(x), rtol=1e-12)
    nb(x)
    row("softmax 1000x1000 axis 1", best(lambda: np_softmax(x)),
        best(lambda: ak.softmax(x, axis=1)), best(lambda: nb(x)))
    row("softmax 1000x1000 axis 0", best(lambda: np_softmax(x.T).T),
        best(lambda: ak.softmax(x, axis=0)))
    row("log_softmax 1000x1000 axis 1",
        best(lambda: (x - x.max(1, keepdims=True))
             - np.log(np.exp(x - x.max(1, keepdims=True)).sum(1, keepdims=True))),
        best(lambda: ak.log_softmax(x, axis=1)))
    row("argmax 1000x1000 axis 1", best(lambda: np.argmax(x, axis=1)),
        best(lambda: ak.argmax(x, axis=1)))
    row("cumsum 1000x1000 axis 1", best(lambda: np.cumsum(x, axis=1)),
        best(lambda: ak.cumsum(x, axis=1)))


if __name__ == "__main__":
    main()
