"""Hostile operands for the axis, blas, copy, index and lapack families, run by
test_hostile_families.py in
a child interpreter: every case must give NumPy's numbers or a clear exception.

Operand variants: every dtype of the ABI and some outside it, ranks 0-3, foreign byte
order, misaligned, reversed, strided, transposed and broadcast views, empty and size-1
dimensions, Python scalars and lists, junk. Usage: ``python hostile_families.py LOG``.
"""

# ruff: noqa: B023  (every lambda is called at once by check(), inside its loop iteration)
from __future__ import annotations

import itertools
import json
import sys

import numpy as np

import aotkernels as ak

ALLOWED = (TypeError, ValueError, IndexError, ak.KernelNotAvailable)
rng = np.random.default_rng(0)


def variants(shape, dtype):
    x = (rng.normal(size=shape) * 3).astype(dtype)
    out = [x, x.astype(x.dtype.newbyteorder(">")), x.tolist(), "junk", None]
    if x.ndim:
        out += [x[::-1], x.T, np.broadcast_to(x[:1], x.shape)]
        raw = np.zeros(x.nbytes + 1, np.uint8)
        mis = raw[1:].view(x.dtype).reshape(x.shape)
        mis[...] = x
        out.append(mis)
    return out


def reference(fn, *args, **kw):
    try:
        with np.errstate(all="ignore"):
            return fn(*args, **kw), None
    except Exception as exc:  # noqa: BLE001 - what NumPy raises is what we compare with
        return None, exc


def check(log, name, got_fn, want_fn, counts):
    log.write(name + "\n")
    log.flush()
    want, want_exc = reference(want_fn)
    try:
        got = got_fn()
    except ALLOWED:
        counts["refused"] += 1
        return
    if want_exc is not None:
        raise AssertionError(f"{name}: NumPy raised {want_exc!r}, aotkernels returned {got!r}")
    got, want = np.asarray(got), np.asarray(want)
    assert got.shape == want.shape, (name, got.shape, want.shape)
    if got.dtype.kind == "f":
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5, equal_nan=True,
                                   err_msg=name)
    else:
        np.testing.assert_array_equal(got, want, err_msg=name)
    counts["correct"] += 1


def np_softmax(x, axis):
    x = np.asarray(x, dtype=float) if not isinstance(x, np.ndarray) else x
    if x.dtype.kind != "f":
        raise TypeError
    if x.size == 0:  # PyTensor 3's backends: an empty result, not the max's ValueError
        x.sum(axis=axis)  # an axis out of range, or not an integer, still raises
        return np.empty_like(x)
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def index_variants(n: int) -> list:
    """Valid, repeated, negative and out-of-range indices; other integer dtypes, byte order,
    misalignment, strides; floats, bools, a matrix, a list and junk."""
    good = np.array([0, n - 1, -1, 0] if n else [], dtype=np.int64)
    raw = np.zeros(good.nbytes + 1, np.uint8)
    mis = raw[1:].view(np.int64)
    mis[...] = good
    return [good, good.astype(np.int32), good.astype(">i8"), mis, np.repeat(good, 2)[::2],
            np.array([n]), np.array([-n - 1]), np.array([2**62]), good.astype(np.uint8),
            good.astype(float), good > 0, good.reshape(-1, 1) if n else good.reshape(0, 1),
            [0], "junk"]


def _np_index(idx):
    i = np.asarray(idx)
    if i.ndim != 1 or i.dtype.kind not in "iu":
        raise TypeError("indices must be a vector of integers")
    return i


def np_take(x, idx):
    a = np.asarray(x)
    if a.ndim == 0:
        raise ValueError
    return a[_np_index(idx)]


def np_inc(x, idx, y):
    a = np.array(x)
    if a.ndim == 0:
        raise ValueError
    np.add.at(a, _np_index(idx), np.asarray(y, dtype=a.dtype))
    return a


def np_put(x, idx, y):
    a = np.array(x)
    if a.ndim == 0:
        raise ValueError
    a[_np_index(idx)] = y
    return a


def np_points(x, idx):
    a = np.asarray(x)
    if a.ndim != 2:
        raise ValueError
    i = _np_index(idx)
    return a[i, i]


def np_inc_points(x, idx, y):
    a = np.array(x)
    if a.ndim != 2:
        raise ValueError
    i = _np_index(idx)
    np.add.at(a, (i, i), np.asarray(y, dtype=a.dtype))
    return a


def scipy_cholesky_or_nan(x):
    """PyTensor's Cholesky: SciPy's factor, or NaN where the matrix is not positive definite."""
    import scipy.linalg as sl

    try:
        return sl.cholesky(x, lower=True, check_finite=False)
    except np.linalg.LinAlgError:
        return np.full(np.shape(x), np.nan)


def scipy_solve_or_nan(x, b, **kw):
    """PyTensor's Solve: SciPy's solution, or NaN (of the solution's shape here) where the
    matrix is singular. Copies: SciPy's ``solve`` refuses misaligned arrays."""
    import scipy.linalg as sl

    try:
        return sl.solve(np.array(x), np.array(b), check_finite=False, **kw)
    except np.linalg.LinAlgError:
        return np.full(np.shape(b), np.nan)


def scipy_lu_factor_or_nan(x):
    """PyTensor's LUFactor: SciPy's factors and pivots, the factors NaN if singular."""
    import warnings

    import scipy.linalg as sl

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        lu, piv = sl.lu_factor(x, check_finite=False)
    if (np.diagonal(lu) == 0).any():
        lu = np.full(lu.shape, np.nan)
    return lu, piv


def numpy_inv_or_nan(x):
    """``np.linalg.inv``, NaN where the matrix is singular (``ak.inv(on_error="nan")``)."""
    try:
        return np.linalg.inv(x)
    except np.linalg.LinAlgError:
        if np.ndim(x) != 2 or np.shape(x)[0] != np.shape(x)[1]:
            raise ValueError("not a square matrix") from None
        return np.full(np.shape(x), np.nan)


def scipy_posdef(x):
    """PyMC's ``posdef``: whether ``scipy.linalg.cholesky`` succeeds."""
    import scipy.linalg as sl

    try:
        sl.cholesky(x)
        return True
    except np.linalg.LinAlgError:
        if np.ndim(x) != 2 or np.shape(x)[0] != np.shape(x)[1]:
            raise ValueError("not a square matrix") from None
        return False


def pytensor_pivots(p, inverse: bool):
    """PyTensor's PivotToPermutations.perform (integer pivots only)."""
    p = np.asarray(p)
    if p.ndim != 1 or p.dtype.kind not in "iu":
        raise TypeError
    perm = np.arange(len(p), dtype="int64")
    for i in range(len(p)):
        perm[i], perm[p[i]] = perm[p[i]], perm[i]
    return perm if inverse else np.argsort(perm)


def solvers(log, counts) -> None:
    """Cholesky factors, triangular, general and positive definite solves and solves with a
    factor, determinants, inverses and the positive-definiteness test, of square (and not
    square) matrices; a singular one is a ``LinAlgError``, a ``ValueError``, or NaN as
    PyTensor's Ops give."""
    import scipy.linalg as sl

    for shape, dtype in itertools.product([(0, 0), (1, 1), (4, 4), (3, 4), (2, 2, 2)],
                                          ["float64", "float32", "int32", "complex128"]):
        for i, x in enumerate(variants(shape, dtype)):
            tag = f"{shape} {dtype} v{i}"
            check(log, f"cholesky {tag}",
                  lambda: ak.cholesky(x, on_error="nan", check_finite=False),
                  lambda: scipy_cholesky_or_nan(x), counts)
            for k in (0, 1):  # sign and log-determinant
                check(log, f"slogdet {tag} [{k}]", lambda: ak.slogdet(x)[k],
                      lambda: np.linalg.slogdet(x)[k], counts)
            check(log, f"det {tag}", lambda: ak.det(x), lambda: np.linalg.det(x), counts)
            check(log, f"inv {tag}", lambda: ak.inv(x, on_error="nan"),
                  lambda: numpy_inv_or_nan(x), counts)
            check(log, f"is_positive_definite {tag}", lambda: ak.is_positive_definite(x),
                  lambda: scipy_posdef(x), counts)
            for k in (0, 1):  # LU factors (NaN if singular), then the pivots
                check(log, f"lu_factor {tag} [{k}]",
                      lambda: ak.lu_factor(x, on_error="nan", check_finite=False)[k],
                      lambda: scipy_lu_factor_or_nan(x)[k], counts)
            for j, b in enumerate(variants(shape[:1], dtype) + variants(shape[:1] + (2,),
                                                                        dtype)):
                check(log, f"solve_triangular {tag} b{j}",
                      lambda: ak.solve_triangular(x, b, lower=True, check_finite=False),
                      lambda: sl.solve_triangular(x, b, lower=True, check_finite=False),
                      counts)
                for assume_a in ("gen", "pos"):
                    check(log, f"solve {assume_a} {tag} b{j}",
                          lambda: ak.solve(x, b, assume_a=assume_a, on_error="nan",
                                           check_finite=False),
                          lambda: scipy_solve_or_nan(x, b, assume_a=assume_a), counts)
                check(log, f"cho_solve {tag} b{j}",
                      lambda: ak.cho_solve((x, True), b, check_finite=False),
                      lambda: sl.cho_solve((x, True), b, check_finite=False), counts)


def main(path: str) -> int:
    counts = {"correct": 0, "refused": 0}
    with open(path, "w") as log:
        shapes = [(), (0,), (1,), (5,), (3, 4), (0, 3), (2, 1, 3)]
        dtypes = ["float64", "float32", "int32", "bool", "complex128", "float16"]
        for shape, dtype in itertools.product(shapes, dtypes):
            for i, x in enumerate(variants(shape, dtype)):
                for inverse in (True, False):
                    check(log, f"pivot_to_permutation {shape} {dtype} v{i} {inverse}",
                          lambda: ak.pivot_to_permutation(x, inverse=inverse),
                          lambda: pytensor_pivots(x, inverse), counts)
                for axis in [None, 0, -1, 5, 1.5]:
                    tag = f"{shape} {dtype} v{i} axis={axis}"
                    check(log, f"argmax {tag}", lambda: ak.argmax(x, axis=axis),
                          lambda: np.argmax(np.asarray(x), axis=axis), counts)
                    if isinstance(axis, int) or axis is None:
                        check(log, f"argsort {tag}", lambda: ak.argsort(x, axis=axis),
                              lambda: np.argsort(np.asarray(x), axis=axis, kind="stable"),
                              counts)
                    if isinstance(axis, int):
                        check(log, f"cumsum {tag}", lambda: ak.cumsum(x, axis=axis),
                              lambda: np.cumsum(np.asarray(x), axis=axis,
                                                dtype=np.asarray(x).dtype), counts)
                    check(log, f"softmax {tag}", lambda: ak.softmax(x, axis=axis),
                          lambda: np_softmax(x, axis), counts)
                for j, y in enumerate(variants(shape[::-1], dtype)):
                    tag = f"{shape} {dtype} v{i} @ v{j}"
                    check(log, f"dot {tag}", lambda: ak.dot(x, y),
                          lambda: np.dot(np.asarray(x), np.asarray(y)), counts)
                    check(log, f"join {tag}", lambda: ak.join(0, x, y),
                          lambda: np.concatenate([np.asarray(x), np.asarray(y)]), counts)
                check(log, f"alloc {shape} {dtype} v{i}", lambda: ak.alloc(x, (2, *shape)),
                      lambda: np.broadcast_to(np.asarray(x), (2, *shape)).copy(), counts)
                for j, idx in enumerate(index_variants(shape[0] if shape else 0)):
                    tag = f"{shape} {dtype} v{i} idx{j}"
                    check(log, f"take {tag}", lambda: ak.take(x, idx),
                          lambda: np_take(x, idx), counts)
                    check(log, f"inc {tag}", lambda: ak.inc(x, idx, 1),
                          lambda: np_inc(x, idx, 1), counts)
                    check(log, f"put {tag}", lambda: ak.put(x, idx, 2),
                          lambda: np_put(x, idx, 2), counts)
                    check(log, f"take_points {tag}", lambda: ak.take_points(x, (idx, idx)),
                          lambda: np_points(x, idx), counts)
                    check(log, f"inc_points {tag}",
                          lambda: ak.inc_points(x, (idx, idx), 1),
                          lambda: np_inc_points(x, idx, 1), counts)
        solvers(log, counts)
    print(json.dumps({"total": sum(counts.values()), "counts": counts}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
