"""In-place elementwise kernels against the same kernels writing elsewhere, and NumPy.

    python benchmarks/bench_inplace.py [--lib DIR] [--sizes 1600,1000000] [--rounds 9]

PyTensor makes most elementwise nodes of a model in place (``exp`` of a product writes the
product's buffer), so plans call kernels whose output is one of their inputs. A loop LLVM
vectorised only after a run-time check that the output does not overlap an input ran
scalar on an exact alias; the flat kernels now store through that input instead
(``kernels/elemwise.py``). Per op and size: the library kernel called through ctypes with
a separate output and in place, and NumPy's ``out=`` in place. Each call first restores
the input (``np.copyto`` from a pristine copy: repeated in-place ``exp`` would run into
infinities), and the copy's own time, measured alone, is subtracted. Best of ``--rounds``.
"""

from __future__ import annotations

import argparse
import ctypes
import os
from pathlib import Path

import numpy as np
from bench_elemwise import best, library_dir

OPS = {"exp": (np.exp, (-5.0, 1.0)), "log": (np.log, (0.1, 10.0)),
       "log1p": (np.log1p, (-0.5, 5.0)), "tanh": (np.tanh, (-3.0, 3.0)),
       "add": (np.add, (-1.0, 1.0)), "mul": (np.multiply, (-1.0, 1.0))}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--lib", type=Path, default=None,
                   help="kernel library (default: bench_elemwise's)")
    p.add_argument("--sizes", default="1600,1000000")
    p.add_argument("--rounds", type=int, default=9)
    args = p.parse_args()
    os.environ["AOT_LIBRARY_DIR"] = str(library_dir(args.lib))
    import aotkernels as ak

    lib = ak.default_library()
    if lib is None:
        raise SystemExit(f"no usable library in {os.environ['AOT_LIBRARY_DIR']} (see the log)")
    print(f"library target {lib.target}; ns per element, best of {args.rounds}")
    print("| op | n | separate | in place | in place / separate | NumPy in place |")
    print("|---|---|---|---|---|---|")
    for n in map(int, args.sizes.split(",")):
        for op, (np_op, (lo, hi)) in OPS.items():
            nin = 2 if op in ("add", "mul") else 1
            found = lib.find("elemwise", op, ("float64",) * nin, "float64", 1, flat=True)
            if found[1] is None:
                continue
            fn = found[1]
            rng = np.random.default_rng(0)
            pristine = rng.uniform(lo, hi, n)
            x, y, out = pristine.copy(), rng.uniform(lo, hi, n), np.empty(n)
            shapes = (ctypes.c_int64 * (nin + 1))(*[n] * (nin + 1))
            strides = (ctypes.c_int64 * (nin + 1))(*[8] * (nin + 1))
            ins = [x.ctypes.data, y.ctypes.data][:nin]
            separate = (ctypes.c_void_p * (nin + 1))(*ins, out.ctypes.data)
            inplace = (ctypes.c_void_p * (nin + 1))(*ins, x.ctypes.data)
            extra = (y,) if nin == 2 else ()
            copy = best(lambda: np.copyto(x, pristine), repeat=args.rounds)
            t_sep = best(lambda: (np.copyto(x, pristine), fn(separate, shapes, strides)),
                         repeat=args.rounds) - copy
            t_in = best(lambda: (np.copyto(x, pristine), fn(inplace, shapes, strides)),
                        repeat=args.rounds) - copy
            t_np = best(lambda: (np.copyto(x, pristine), np_op(x, *extra, out=x)),
                        repeat=args.rounds) - copy
            want = np_op(pristine, *extra)
            np.copyto(x, pristine)
            fn(inplace, shapes, strides)
            np.testing.assert_allclose(x, want, rtol=1e-14)
            ns = [t / n * 1e9 for t in (t_sep, t_in, t_np)]
            print(f"| {op} | {n} | {ns[0]:.2f} | {ns[1]:.2f} | {ns[1] / ns[0]:.2f} "
                  f"| {ns[2]:.2f} |")


if __name__ == "__main__":
    main()
