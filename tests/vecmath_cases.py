"""Inputs and an ulp measure for the vectorised transcendental ops (``kernels/vecmath.py``).

The reference is NumPy in ``np.longdouble`` (x87 extended on x86-64, quad on aarch64): its
libm results carry 11 or more bits beyond float64, so the error it adds to a float64 ulp
measure is below 1/1000 ulp. ``tests/test_vecmath.py`` checks 1e5 samples per op in CI;

    python tests/vecmath_cases.py [--samples 10000000] [--lib DIR] [--target x86_64_v3]

prints the ulp table of README's "Vector math" (AOT kernels of the library in use).
"""

from __future__ import annotations

import argparse
import os

import numpy as np

LD = np.longdouble
LN2 = np.log(2.0)


def _mpmath(name: str):
    """A reference through mpmath (NumPy has no erf) at 80 bits, into long double as the
    sum of two doubles (~100 µs a value: ``measure`` screens with SciPy first)."""

    def ref(x: np.ndarray) -> np.ndarray:
        from mpmath import libmp

        fn = getattr(libmp, f"mpf_{name}")
        # erf is +-1 and erfc 0 or 2 (to long double) beyond +-30, where mpmath struggles
        xs = np.clip(x.astype(np.float64), -30.0, 30.0)
        out = np.empty(len(xs), LD)
        for i, v in enumerate(xs.tolist()):
            if v != v:
                out[i] = np.nan
                continue
            m = fn(libmp.from_float(v), 80)
            hi = libmp.to_float(m)
            out[i] = LD(hi) + LD(libmp.to_float(libmp.mpf_sub(m, libmp.from_float(hi), 80)))
        return np.copysign(out, xs) if name == "erf" else out  # mpmath has no -0.0

    return ref


def _scipy(name: str):
    def approx(x: np.ndarray) -> np.ndarray:
        import scipy.special

        return getattr(scipy.special, name)(x.astype(np.float64)).astype(LD)

    return approx


#: ops whose reference is slow: over many samples, SciPy (within a few ulps) screens them
#: and the reference checks the ones farthest from SciPy plus random ones
SCREEN = {"erf": _scipy("erf"), "erfc": _scipy("erfc")}


#: op -> reference on longdouble arrays
REFERENCE = {
    "exp": np.exp, "expm1": np.expm1, "log": np.log, "log1p": np.log1p, "tanh": np.tanh,
    "sigmoid": lambda x: 1 / (1 + np.exp(-x)),
    "softplus": lambda x: np.logaddexp(np.zeros((), x.dtype), x),
    "erf": _mpmath("erf"), "erfc": _mpmath("erfc"), "sin": np.sin, "cos": np.cos,
    "pow": lambda xy: np.power(xy[0], xy[1]),
}
#: ops of two operands: their samples are a (2, n) array, the rows being the operands
BINARY = ("pow",)
#: where erf/erfc switch approximations, saturate or underflow
ERF_EDGES = [0.84375, 1.25, 2.857142857142857, 6.0, 5.9215871, 26.5, 26.55, 27.2, 28.0,
             0.25, 2.0**-28, 2.0**-56]
OPS = tuple(REFERENCE)

#: values every op must get exactly right (sign of zero, inf, nan, thresholds)
SPECIALS = [0.0, -0.0, np.inf, -np.inf, np.nan, 5e-324, -5e-324, 2.2250738585072014e-308,
            1e-310, -1e-310, 1.0, -1.0, 0.5, 2.0, 709.782712893384, 709.7827128933841,
            -745.1332191019411, -745.1332191019412, -708.4, 88.72283, 88.72284, -103.97,
            -87.33, 20.0, -20.0, 40.0, -45.0, 1.7976931348623157e308, -1.7976931348623157e308]


def _near(centres: np.ndarray, n: int, rng, width: int = 4) -> np.ndarray:
    """Values within ``width`` ulps of random picks of ``centres``."""
    c = rng.choice(centres, n)
    steps = rng.integers(-width, width + 1, n).astype(np.float64)
    return c + steps * np.spacing(c)


def operands(op: str, x: np.ndarray) -> tuple[np.ndarray, ...]:
    """The kernel's operands for samples ``x`` of ``op``."""
    return tuple(x) if op in BINARY else (x,)


def trig_samples(n: int, rng) -> np.ndarray:
    """sin, cos: dense within a few ulps of k pi/2 (where the reduction cancels; k up to
    2**20 and beyond, with the last multiples before the libm fallback at TRIG_BOUND),
    across TRIG_BOUND, every binade, and uniformly on the everyday range."""
    q = n // 6
    k = np.concatenate([rng.integers(-2**20, 2**20, q // 2), rng.integers(-64, 64, q // 4),
                        rng.integers(-2**40, 2**40, q - q // 2 - q // 4)]).astype(np.float64)
    near = _near(k * (np.pi / 2), q, rng, 8)
    bound = _near(np.array([1647099.0, -1647099.0, 1647098.5]), q, rng, 1 << 20)
    mags = np.exp2(rng.uniform(-1074, 1024, q)) * rng.choice([-1.0, 1.0], q)
    small = rng.normal(0, 1, q) * np.exp2(rng.uniform(-60, 0, q))
    wide = rng.uniform(-2e6, 2e6, q)
    body = rng.uniform(-10, 10, n - 5 * q)
    return np.concatenate([near, bound, mags, small, wide, body])


def pow_samples(n: int, rng) -> np.ndarray:
    """pow: (x, y) rows. |x| over every binade with y spread so that x**y covers the whole
    range (and beyond, to overflow and underflow), results near the overflow threshold and
    in the subnormals, x near 1 with huge y, integer y (odd and even) with negative x,
    small integers and halves, and the everyday range."""
    q = n // 6
    x1 = np.exp2(rng.uniform(-1074, 1024, q))
    l1 = np.log2(x1)
    y1 = rng.uniform(-1100, 1100, q) / np.where(np.abs(l1) < 1e-3, 1.0, l1)
    x2 = np.exp2(rng.uniform(-60, 60, q))
    target = rng.choice([1024.0, -1022.0, -1074.0, -1060.0], q) + rng.uniform(-1, 1, q)
    y2 = target / np.where(np.log2(x2) == 0, 1.0, np.log2(x2))
    x3 = 1.0 + rng.normal(0, 1, q) * np.exp2(rng.uniform(-52, -10, q))
    y3 = rng.uniform(-1, 1, q) * np.exp2(rng.uniform(10, 62, q))
    x4 = -np.exp2(rng.uniform(-40, 40, q))
    y4 = np.round(rng.uniform(-30, 30, q))
    x5 = rng.uniform(-10, 10, q)
    y5 = rng.choice([0.5, -0.5, 1.0, -1.0, 2.0, -2.0, 3.0, 1.5, 0.0], q)
    rest = n - 5 * q
    x6, y6 = rng.uniform(0, 10, rest), rng.uniform(-10, 10, rest)
    x = np.concatenate([x1, x2, x3, x4, x5, x6])
    y = np.concatenate([y1, y2, y3, y4, y5, y6])
    return np.stack([x, y])


def samples(op: str, n: int, seed: int = 0) -> np.ndarray:
    """``n`` float64 inputs for ``op``: its whole range log-uniformly, dense near the range
    reduction's boundaries (k ln2/2, powers of two, sqrt(2) 2**k), the overflow and
    underflow thresholds, subnormals and zeros."""
    rng = np.random.default_rng(seed)
    if op in ("sin", "cos"):
        return trig_samples(n, rng)
    if op == "pow":
        return pow_samples(n, rng)
    q = n // 8
    mags = np.exp2(rng.uniform(-1074, 1024, q))  # every binade
    wide = mags * rng.choice([-1.0, 1.0], q)
    small = rng.normal(0, 1, q) * np.exp2(rng.uniform(-60, 0, q))
    k = np.arange(-2200, 2200)
    half_ln2 = _near((k + 0.5) * LN2, q, rng)  # exp/expm1: round(x/ln2) changes here
    twos = np.ldexp(1.0, np.arange(-1074, 1024))
    binades = _near(np.concatenate([twos, twos * np.sqrt(2.0)]), q, rng)
    thresholds = _near(np.array([709.782712893384, -745.1332191019411, -708.39641853226,
                                 -45.0, 20.0, -20.0, 40.0, -37.0, 18.0, 33.3, -1.0,
                                 np.sqrt(0.5) - 1, np.sqrt(2.0) - 1, 1.0]), q, rng, 64)
    dense = rng.uniform(-50, 50, q)
    rest = n - 6 * q
    body = rng.uniform(-750, 750, rest)
    if op in ("erf", "erfc"):  # the approximations' own edges; the body where they vary
        edges = np.array(ERF_EDGES)
        thresholds = _near(np.concatenate([edges, -edges]), q, rng, 64)
        dense = rng.uniform(-6, 6, q)
        body = rng.uniform(-30, 30, rest)
    x = np.concatenate([wide, small, half_ln2, binades, thresholds, dense, body])
    if op in ("log", "log1p"):  # mostly in the domain
        x = np.where(rng.random(n) < 0.9, np.abs(x), x)
        if op == "log1p":
            x = np.where(rng.random(n) < 0.3, x - 1.0, x)
    return x


def samples_f32(op: str, n: int, seed: int = 0) -> np.ndarray:
    """``n`` float32 inputs for ``op``: half as ``samples`` (rounded), half at float32's own
    boundaries, which float64 samples a few float64 ulps from a boundary miss: random bit
    patterns (every binade, subnormals), within 8 float32 ulps of (k + 1/2) ln2, 2**k and
    sqrt(2) 2**k, and within 64 of expf's overflow and underflow thresholds, the smallest
    normal's log, where expm1 and tanh saturate."""
    rng = np.random.default_rng(seed + 1)
    with np.errstate(over="ignore"):
        half = samples(op, n - n // 2, seed).astype(np.float32)
    if op in ("sin", "cos", "pow"):
        with np.errstate(over="ignore"):
            rest = samples(op, n // 2, seed + 1).astype(np.float32)
        return np.concatenate([half, rest], axis=-1)
    q = n // 10

    def near(centres: np.ndarray, m: int, width: int) -> np.ndarray:
        bits = rng.choice(centres.astype(np.float32), m).view(np.int32)
        return (bits + rng.integers(-width, width + 1, m).astype(np.int32)).view(np.float32)

    patterns = rng.integers(0, 2**32, q, dtype=np.uint64).astype(np.uint32).view(np.float32)
    half_ln2 = near((np.arange(-152, 130) + 0.5) * LN2, q, 8)
    twos = np.ldexp(1.0, np.arange(-149, 128))
    binades = near(np.concatenate([twos, twos[:-1] * np.sqrt(2.0)]), q, 8)
    edges = near(np.array([88.72283935546875, -103.97207708, -87.33654475, -88.72283935546875,
                           -9.0, 9.0, 10.0, -10.0, -17.33, -17.5, 20.0, -20.0, -1.0, 1.0]),
                 q, 64)
    dense = rng.uniform(-110, 90, n // 2 - 4 * q).astype(np.float32)
    x = np.concatenate([patterns, half_ln2, binades, edges, dense])
    x = np.where(np.isfinite(x), x, np.float32(1.0))  # patterns' inf and nan are specials
    if op in ("log", "log1p"):
        x = np.where(rng.random(len(x)) < 0.9, np.abs(x), x)
        if op == "log1p":
            x = np.where(rng.random(len(x)) < 0.3, x - np.float32(1.0), x)
    return np.concatenate([half, x.astype(np.float32)])


def samples_of(op: str, n: int, dtype: str, seed: int = 0) -> np.ndarray:
    """``samples`` in float64, ``samples_f32`` in float32."""
    return samples(op, n, seed) if dtype == "float64" else samples_f32(op, n, seed)


def reference(op: str, x: np.ndarray) -> np.ndarray:
    with np.errstate(all="ignore"):
        return REFERENCE[op](x.astype(LD))


def ulp_errors(got: np.ndarray, want: np.ndarray) -> np.ndarray:
    """|got - want| in units of the last place of ``want`` rounded to got's dtype (0 where
    they agree, including inf and nan; inf where one is nan or inf and the other is not)."""
    dt = got.dtype
    with np.errstate(all="ignore"):
        w = want.astype(dt)
        agree = (got == w) | (np.isnan(got) & np.isnan(w))
        spacing = np.spacing(np.abs(w)).astype(LD)
        err = np.abs(got.astype(LD) - want) / spacing
    err = np.where(agree, 0.0, err)
    return np.where(np.isfinite(err), err, np.inf).astype(np.float64)


def measure(op: str, dtype: str, n: int, seed: int = 0, chunk: int = 1_000_000,
            checked: int = 200, far: int = 500_000):
    """(max ulp error, input where it occurs, SciPy's max error on the checked samples)
    over ``n`` samples through ``ak.elemwise``. Ops in ``SCREEN``: per chunk, every sample
    more than 1 ulp from SciPy (asserted to be at most ``far``) and ``checked`` random
    ones get the reference: any other sample is within 1 ulp of SciPy (of its own error);
    NaN for the others."""
    import aotkernels as ak

    worst, at, scipy_worst = 0.0, np.nan, np.nan
    rng = np.random.default_rng(seed)
    for i, start in enumerate(range(0, n, chunk)):
        x = samples_of(op, min(chunk, n - start), dtype, seed + i)
        got = ak.elemwise(op, *operands(op, x))
        if op in SCREEN:
            near = SCREEN[op](x)
            (off,) = np.nonzero(ulp_errors(got, near) > 1.0)
            assert len(off) <= far, f"{op} {dtype}: {len(off)} samples > 1 ulp from SciPy"
            pick = np.concatenate([off, rng.integers(0, len(x), checked)])
            want = reference(op, x[pick])
            s = ulp_errors(near[pick].astype(dtype), want).max()
            scipy_worst = s if not scipy_worst >= s else scipy_worst
            x, got = x[pick], got[pick]
        else:
            want = reference(op, x)
        err = ulp_errors(got, want)
        j = int(np.argmax(err))
        if err[j] > worst:
            worst, at = float(err[j]), x[..., j].tolist()
    return worst, at, scipy_worst


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--samples", type=float, default=1e7)
    p.add_argument("--lib", help="library directory (sets AOT_LIBRARY_DIR)")
    p.add_argument("--target", help="CPU target to load (sets AOT_CPU_TARGET)")
    p.add_argument("--ops", default=",".join(OPS), help="only these (comma-separated)")
    args = p.parse_args()
    if args.lib:
        os.environ["AOT_LIBRARY_DIR"] = args.lib
    if args.target:
        os.environ["AOT_CPU_TARGET"] = args.target
    os.environ["AOT_DISABLE_JIT"] = "1"
    import aotkernels as ak

    n = int(args.samples)
    print(f"# max error in ulps over {n:.0e} samples per op and dtype, library target "
          f"{ak.default_library().target} (0: every sample correctly rounded)\n")
    print("| op | float64 ulp | at x | float32 ulp | at x |")
    print("|---|---|---|---|---|")
    notes = []
    for op in args.ops.split(","):
        cells = []
        for dtype in ("float64", "float32"):
            worst, at, scipy_worst = measure(op, dtype, n)
            where = ", ".join(f"{v:.6g}" for v in np.atleast_1d(at))
            cells += [f"{worst:.2f}", "-" if worst == 0 else where]
            if op in SCREEN:
                notes.append(f"{op} {dtype}: samples within 1 ulp of SciPy's not checked "
                             f"(SciPy's own max error on the checked: {scipy_worst:.2f} ulp)")
        print(f"| {op} | {' | '.join(cells)} |", flush=True)
    print("\n" + "\n".join(f"- {note}" for note in notes) if notes else "")


if __name__ == "__main__":
    main()
