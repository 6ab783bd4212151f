"""Vectorisable transcendental functions: the bodies of exp, log, sigmoid, ... in ``scalar_ops``.

numba on LLVM 20 has no SVML: ``math.exp`` in a loop is a scalar libm call per element, so
loops around it never widen. These are range reduction plus a polynomial, written only with
arithmetic, comparisons whose two arms are both computed (LLVM turns them into selects) and
float <-> int bit reinterpretation (``np.float64(x).view(np.int64)``, a bitcast in numba),
so the loop vectoriser widens them to the target's lanes (SSE2, AVX2, AVX-512, NEON) with
no call and no instruction the target lacks. Integer <-> float conversions go through the
``SHIFT`` trick (x + 1.5 * 2**52 holds round(x) in its low mantissa bits) because int64 <->
double conversion instructions exist only from AVX-512DQ on.

No fused multiply-add is used (numba emits none without fastmath), so every target, AOT or
JIT, computes the same bits. float32 ``exp``, ``expm1``, ``log``, ``log1p``, ``sigmoid``,
``softplus``, ``tanh`` have float32 bodies (``F32_BODIES``: twice the lanes); the other
float32 ops call the float64 functions (the kernel's store rounds the result once). A
target may keep libm for some ops and dtypes (``Target.libm_ops``: baseline SSE2, where
glibc's scalar code is faster than two lanes of float64 polynomial, and ``pow`` everywhere
but x86-64-v4's float64, whose table lookups are gathers that only AVX-512 makes pay):
``body`` gives both, and the linker keeps one per target.
``sin``/``cos`` reduce arguments below 2**20 * pi/2 only; a larger finite one is returned
as itself, a marker the elementwise template recomputes with libm in a second loop
(``marked`` bodies), and fused kernels take the whole body, which calls libm itself. Measured errors
are in README ("Vector math") and ``tests/vecmath_cases.py``; ``tests/test_vecmath.py``
checks them. This module imports numba: ``scalar_ops`` names its bodies here by
``VecBody`` and resolves them only when a kernel is built.
"""

from __future__ import annotations

import ctypes
import decimal
import math
import struct
from collections.abc import Callable

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic

from aotkernels.kernels.scalar_ops import LIBM_SYMBOL, libm_bit

#: compiled once per worker and dtype (inline="always" recompiled them into every kernel:
#: 3-8x slower builds); LLVM inlines them into the kernel loop at link time
inline = njit(error_model="numpy")

SHIFT = 6755399441055744.0  # 1.5 * 2**52: round-to-int by adding and subtracting it
SHIFT_BITS = 0x4338000000000000
LOG2E = 1.4426950408889634
LN2_HI = 6.93147180369123816490e-01  # ln 2 split (fdlibm): k * LN2_HI is exact for |k| < 2**20
LN2_LO = 1.90821492927058770002e-10
TWO52 = 4503599627370496.0
MIN_NORMAL = 2.2250738585072014e-308
SQRT_HALF_BITS = 0x3FE6A09E667F3BCD
INF = math.inf
NAN = math.nan

# 1/n! for the Taylor series of expm1 on |r| <= ln2/2: the n = 14 term is < 2**-57 of the sum
E2, E3, E4, E5, E6, E7, E8, E9, E10, E11, E12, E13 = (1.0 / math.factorial(n)
                                                      for n in range(2, 14))

# fdlibm's log kernel: log(1+f) = f - f*f/2 + s*(f*f/2 + R(s*s)), s = f/(2+f); error < 1 ulp
LG1 = 6.666666666666735130e-01
LG2 = 3.999999999940941908e-01
LG3 = 2.857142874366239149e-01
LG4 = 2.222219843214978396e-01
LG5 = 1.818357216161805012e-01
LG6 = 1.531383769920937332e-01
LG7 = 1.479819860511658591e-01


@inline
def as_bits(x):
    """The IEEE bits of a float64 as int64 (a bitcast)."""
    return np.float64(x).view(np.int64)


@inline
def from_bits(i):
    return np.int64(i).view(np.float64)


@inline
def to_int(xf):
    """An integral float64 ``xf`` (|xf| < 2**51) as int64, with no conversion instruction."""
    return as_bits(xf + SHIFT) - SHIFT_BITS


@inline
def to_float(k):
    """An int64 ``k`` (|k| < 2**51) as float64, with no conversion instruction."""
    return from_bits(k + SHIFT_BITS) - SHIFT


@inline
def pow2(kf):
    """2**kf for an integral float64 kf in [-1022, 1023]."""
    return from_bits((to_int(kf) + 1023) << 52)


@inline
def ldexp(p, kf):
    """p * 2**kf for an integral kf in [-2044, 2046], rounded once even into subnormals.

    Two factors, each a normal power of two: the first product stays normal and exact.
    """
    k1 = (kf * 0.5 + SHIFT) - SHIFT
    return p * pow2(k1) * pow2(kf - k1)


@inline
def expm1_poly(r):
    """expm1(r) for |r| <= ln2/2 + tiny, within 0.5 ulp of the rounding of its last add.

    Estrin's scheme: a dependency chain of 4 multiply-adds instead of Horner's 11, so a
    vector loop is bound by throughput, not latency (exp took 0.6x numba, not 0.5x)."""
    r2 = r * r
    r4 = r2 * r2
    q01 = (E2 + E3 * r) + (E4 + E5 * r) * r2
    q23 = (E6 + E7 * r) + (E8 + E9 * r) * r2
    q45 = (E10 + E11 * r) + (E12 + E13 * r) * r2
    q = (q01 + q23 * r4) + q45 * (r4 * r4)
    return r + r2 * q


@inline
def reduce_ln2(x):
    """(k, r): x = k ln2 + r, k integral, |r| <= ln2/2 (|x| < 2**20)."""
    kf = (x * LOG2E + SHIFT) - SHIFT
    return kf, (x - kf * LN2_HI) - kf * LN2_LO


@inline
def exp(x):
    x = np.float64(x)
    # clamp so 2**k stays in ldexp's range; the rounding in ldexp gives inf and 0 beyond
    # the thresholds (709.78, -745.13); NaN passes both comparisons unchanged
    x = -746.0 if x < -746.0 else x
    x = 710.0 if x > 710.0 else x
    kf, r = reduce_ln2(x)
    return ldexp(1.0 + expm1_poly(r), kf)


@inline
def expm1(x):
    x = np.float64(x)
    xc = -45.0 if x < -45.0 else x  # expm1(-45) rounds to -1
    xc = 710.0 if xc > 710.0 else xc
    kf, r = reduce_ln2(xc)
    # expm1(x) = 2**k * (expm1(r) + 1 - 2**-k); 1 - 2**-k is exact for |k| <= 53, and 1 beyond
    nk = -kf if kf < 60.0 else -60.0
    res = ldexp(expm1_poly(r) + (1.0 - pow2(nk)), kf)
    return x if x == 0.0 else res  # keeps -0.0


@inline
def split_exponent(x):
    """(k, m): x = m * 2**k, m in [sqrt(1/2), sqrt(2)), for a positive normal x."""
    ix = as_bits(x)
    k = (ix - SQRT_HALF_BITS) >> 52
    return to_float(k), from_bits(ix - (k << 52))


@inline
def log_kernel(kf, f, c):
    """log(2**k * (1 + f)) + c for f in [sqrt(1/2) - 1, sqrt(2) - 1) and a tiny c (fdlibm)."""
    s = f / (2.0 + f)
    z = s * s
    w = z * z
    r = z * (LG1 + w * (LG3 + w * (LG5 + w * LG7))) + w * (LG2 + w * (LG4 + w * LG6))
    hfsq = 0.5 * f * f
    return kf * LN2_HI - ((hfsq - (s * (hfsq + r) + (kf * LN2_LO + c))) - f)


@inline
def log(x):
    x = np.float64(x)
    tiny = x < MIN_NORMAL
    kf, m = split_exponent(x * TWO52 if tiny else x)
    kf = kf - 52.0 if tiny else kf
    res = log_kernel(kf, m - 1.0, 0.0)
    res = res if x < INF else x  # inf, nan
    res = -INF if x == 0.0 else res
    return NAN if x < 0.0 else res


@inline
def log1p(x):
    x = np.float64(x)
    u = 1.0 + x
    kf, m = split_exponent(u)
    # u's rounding error, relative to u (fdlibm); x itself where no scaling happened
    c = (1.0 - (u - x)) if kf > 0.0 else (x - (u - 1.0))
    c = c / u if u < 9007199254740992.0 else 0.0
    small = kf == 0.0
    res = log_kernel(kf, x if small else m - 1.0, 0.0 if small else c)
    res = res if x < INF else x
    res = x if x == 0.0 else res  # keeps -0.0
    res = -INF if x == -1.0 else res
    return NAN if x < -1.0 else res


@inline
def sigmoid(x):
    """1 / (1 + e) for x >= 0, e / (1 + e) below, e = exp(-|x|): no overflow, no underflow
    to 0 before the true result does."""
    x = np.float64(x)
    e = exp(-abs(x))
    s = 1.0 / (1.0 + e)
    return s if x >= 0.0 else e * s


@inline
def softplus(x):
    """log(1 + exp(x)) = max(x, 0) + log1p(exp(-|x|)): no overflow, exact in both tails."""
    x = np.float64(x)
    return (x if x > 0.0 else 0.0) + log1p(exp(-abs(x)))


@inline
def tanh(x):
    """expm1(2x) / (expm1(2x) + 2): relative accuracy near 0, tanh(+-20) rounds to +-1."""
    x = np.float64(x)
    xc = 20.0 if x > 20.0 else x
    xc = -20.0 if xc < -20.0 else xc
    e = expm1(2.0 * xc)
    return e / (e + 2.0)



# erf, erfc: fdlibm's s_erf.c (rational approximations on |x| < 0.84375, [0.84375, 1.25),
# [1.25, 1/0.35), [1/0.35, 28); error < 1 ulp there), every piece computed and selected;
# the two tail pieces share one evaluation with their coefficients selected
ERX = 8.45062911510467529297e-01
PP = (1.28379167095512558561e-01, -3.25042107247001499370e-01, -2.84817495755985104766e-02,
      -5.77027029648944159157e-03, -2.37630166566501626084e-05)
QQ = (3.97917223959155352819e-01, 6.50222499887672944485e-02, 5.08130628187576562776e-03,
      1.32494738004321644526e-04, -3.96022827877536812320e-06)
PA = (-2.36211856075265944077e-03, 4.14856118683748331666e-01, -3.72207876035701323847e-01,
      3.18346619901161753674e-01, -1.10894694282396677476e-01, 3.54783043256182359371e-02,
      -2.16637559486879084300e-03)
QA = (1.06420880400844228286e-01, 5.40397917702171048937e-01, 7.18286544141962662868e-02,
      1.26171219808761642112e-01, 1.36370839120290507362e-02, 1.19844998467991074170e-02)
RA = (-9.86494403484714822705e-03, -6.93858572707181764372e-01, -1.05586262253232909814e+01,
      -6.23753324503260060396e+01, -1.62396669462573470355e+02, -1.84605092906711035994e+02,
      -8.12874355063065934246e+01, -9.81432934416914548592e+00)
SA = (1.96512716674392571292e+01, 1.37657754143519042600e+02, 4.34565877475229228821e+02,
      6.45387271733267880336e+02, 4.29008140027567833386e+02, 1.08635005541779435134e+02,
      6.57024977031928170135e+00, -6.04244152148580987438e-02)
RB = (-9.86494292470009928597e-03, -7.99283237680523006574e-01, -1.77579549177547519889e+01,
      -1.60636384855821916062e+02, -6.37566443368389627722e+02, -1.02509513161107724954e+03,
      -4.83519191608651397019e+02, 0.0)
SB = (3.03380607434824582924e+01, 3.25792512996573918826e+02, 1.53672958608443695994e+03,
      3.19985821950859553908e+03, 2.55305040643316442583e+03, 4.74528541206955367215e+02,
      -2.24409524465858183362e+01, 0.0)
HIGH_WORD = -4294967296  # int64 mask keeping the upper 32 bits


@inline
def erf_small(x):
    """(pp/qq)(x*x): erf(x) = x + x * it on |x| < 0.84375."""
    z = x * x
    r = PP[0] + z * (PP[1] + z * (PP[2] + z * (PP[3] + z * PP[4])))
    s = 1.0 + z * (QQ[0] + z * (QQ[1] + z * (QQ[2] + z * (QQ[3] + z * QQ[4]))))
    return r / s


@inline
def erf_mid(ax):
    """erf(ax) - ERX on [0.84375, 1.25)."""
    s = ax - 1.0
    p = PA[0] + s * (PA[1] + s * (PA[2] + s * (PA[3] + s * (PA[4] + s * (PA[5] + s * PA[6])))))
    q = 1.0 + s * (QA[0] + s * (QA[1] + s * (QA[2] + s * (QA[3] + s * (QA[4] + s * QA[5])))))
    return p / q


@inline
def erfc_tail(ax):
    """erfc(ax) for ax in [1.25, 28] (clamped by the callers)."""
    s = 1.0 / (ax * ax)
    a = ax < 2.857142857142857  # 1/0.35
    r = (RA[7] if a else RB[7])
    r = (RA[6] if a else RB[6]) + s * r
    r = (RA[5] if a else RB[5]) + s * r
    r = (RA[4] if a else RB[4]) + s * r
    r = (RA[3] if a else RB[3]) + s * r
    r = (RA[2] if a else RB[2]) + s * r
    r = (RA[1] if a else RB[1]) + s * r
    r = (RA[0] if a else RB[0]) + s * r
    q = (SA[7] if a else SB[7])
    q = (SA[6] if a else SB[6]) + s * q
    q = (SA[5] if a else SB[5]) + s * q
    q = (SA[4] if a else SB[4]) + s * q
    q = (SA[3] if a else SB[3]) + s * q
    q = (SA[2] if a else SB[2]) + s * q
    q = (SA[1] if a else SB[1]) + s * q
    q = (SA[0] if a else SB[0]) + s * q
    q = 1.0 + s * q
    z = from_bits(as_bits(ax) & HIGH_WORD)  # z*z and -z*z - 0.5625 are exact
    return exp(-z * z - 0.5625) * exp((z - ax) * (z + ax) + r / q) / ax


@inline
def erf(x):
    x = np.float64(x)
    ax = abs(x)
    small = x + x * erf_small(x)  # keeps -0.0
    at = 1.25 if ax < 1.25 else ax
    at = 6.0 if at > 6.0 else at  # erf rounds to +-1 from 6 on
    big = ERX + erf_mid(ax) if ax < 1.25 else 1.0 - erfc_tail(at)
    big = -big if x < 0.0 else big
    res = small if ax < 0.84375 else big
    return x if x != x else res


@inline
def erfc(x):
    x = np.float64(x)
    ax = abs(x)
    xy = x * erf_small(x)
    small = 1.0 - (x + xy) if x < 0.25 else 0.5 - (xy + (x - 0.5))
    m = erf_mid(ax)
    mid = (1.0 - ERX) - m if x >= 0.0 else 1.0 + (ERX + m)
    at = 1.25 if ax < 1.25 else ax
    at = 28.0 if at > 28.0 else at  # erfc(28) underflows to 0
    t = erfc_tail(at)
    tail = t if x > 0.0 else 2.0 - t
    big = mid if ax < 1.25 else tail
    res = small if ax < 0.84375 else big
    return x if x != x else res


# sin, cos: Cody-Waite reduction by pi/2 in three 33-bit pieces (fdlibm's e_rem_pio2.c
# medium case, all three steps always taken: r as y0 + y1 to ~120 bits of pi/2) for
# |x| < TRIG_BOUND, then FreeBSD's k_sin.c / k_cos.c kernels (< 1 ulp on |r| <= pi/4), the
# quadrant chosen by selects. Larger finite |x| need Payne-Hanek: the vector body returns x
# itself there (|x| > 1 marks it, as no sine does) and the kernel recomputes the marked
# elements with libm after its loop (``fixup``), so the loop stays vectorised.
INV_PIO2 = 6.36619772367581382433e-01
PIO2_1 = 1.57079632673412561417e+00  # 33 bits: k * PIO2_1 is exact for |k| < 2**20
PIO2_1T = 6.07710050650619224932e-11
PIO2_2 = 6.07710050630396597660e-11
PIO2_2T = 2.02226624879595063154e-21
PIO2_3 = 2.02226624871116645580e-21
PIO2_3T = 8.47842766036889956997e-32
TRIG_BOUND = 1647099.0  # 2**20 * pi/2, fdlibm's medium-case bound
S1, S2, S3, S4, S5, S6 = (-1.66666666666666324348e-01, 8.33333333332248946124e-03,
                          -1.98412698298579493134e-04, 2.75573137070700676789e-06,
                          -2.50507602534068634195e-08, 1.58969099521155010221e-10)
C1, C2, C3, C4, C5, C6 = (4.16666666666666019037e-02, -1.38888888888741095749e-03,
                          2.48015872894767294178e-05, -2.75573143513906633035e-07,
                          2.08757232129817482790e-09, -1.13596475577881948265e-11)


@inline
def reduce_pio2(x):
    """(k, y0, y1): x = k pi/2 + y0 + y1, |y0 + y1| <= pi/4 (|x| < TRIG_BOUND)."""
    kf = (x * INV_PIO2 + SHIFT) - SHIFT
    t = x - kf * PIO2_1  # exact (Sterbenz)
    w = kf * PIO2_1T
    r = t - w
    w = kf * PIO2_2
    r = t - w
    w = kf * PIO2_2T - ((t - r) - w)
    t = r
    w = kf * PIO2_3
    r = t - w
    w = kf * PIO2_3T - ((t - r) - w)
    y0 = r - w
    return to_int(kf), y0, (r - y0) - w


@inline
def sin_kernel(x, y):
    """sin(x + y), |x + y| <= pi/4, |y| tiny (FreeBSD k_sin.c)."""
    z = x * x
    w = z * z
    r = S2 + z * (S3 + z * S4) + z * w * (S5 + z * S6)
    v = z * x
    return x - ((z * (0.5 * y - v * r) - y) - v * S1)


@inline
def cos_kernel(x, y):
    """cos(x + y), |x + y| <= pi/4, |y| tiny (FreeBSD k_cos.c)."""
    z = x * x
    w = z * z
    r = z * (C1 + z * (C2 + z * C3)) + w * w * (C4 + z * (C5 + z * C6))
    hz = 0.5 * z
    w = 1.0 - hz
    return w + (((1.0 - w) - hz) + (z * r - x * y))


@inline
def trig_far(x):
    """|x| too large for ``reduce_pio2`` and finite: the element libm recomputes."""
    ax = abs(x)
    return (ax >= TRIG_BOUND) & (ax < INF)


@inline
def trig(x, shift):
    """sin(x) for shift 0, cos(x) for shift 1: cos(x) = sin(x + pi/2), one quadrant on."""
    x = np.float64(x)
    k, y0, y1 = reduce_pio2(x)
    k = k + shift
    s = sin_kernel(y0, y1)
    c = cos_kernel(y0, y1)
    v = c if (k & 1) != 0 else s
    v = -v if (k & 2) != 0 else v
    return x if trig_far(x) else v


@inline
def sin(x):
    return trig(x, 0)


@inline
def cos(x):
    return trig(x, 1)


# pow: x**y = exp(y log|x|) with log|x| as a double-double (hi + lo, ~2**-70 relative):
# log(x) = k ln2 + log(c) + log1p(r), c the centre of one of 128 subintervals of the
# mantissa, r = z/c - 1 exact (1/c rounded to 12 bits; z split so each product is exact),
# log(c) and ln2 as double-doubles from a table (a gather: no division, unlike fdlibm's
# e_pow.c, which was 2-3x slower here); y times it by Dekker's exact product (no FMA), then
# exp of the double-double by ``reduce_ln2``'s reduction and ``expm1_poly``. The special
# cases (zeros, infinities, NaN, negative bases) are C99's, which NumPy and PyTensor follow.
LOG_TABLE_BITS = 7
LOG_OFF = 0x3FE6955500000000  # mantissas z in [0.7056, 1.4112), centred on 1
TWO64 = 18446744073709551616.0
SPLIT = 134217729.0  # 2**27 + 1: Veltkamp's split into 26-bit halves


def _f64(bits: int) -> float:
    return struct.unpack("<d", struct.pack("<q", bits))[0]


def _log_table() -> tuple[np.ndarray, np.ndarray, np.ndarray, float, float]:
    """(1/c rounded to 12 bits, log(c) rounded to a multiple of 2**-43, its tail) per
    subinterval, and ln2 as a 40-bit head (k ln2_hi + log(c) is exact for |k| < 2**11)
    and tail; computed at import with ``decimal`` (50 digits)."""
    ctx = decimal.Context(prec=50)
    n = 1 << LOG_TABLE_BITS
    invc, logc, tail = np.empty(n), np.empty(n), np.empty(n)

    def head(v: decimal.Decimal, ulp: float) -> float:
        return float(ctx.multiply(ctx.divide(v, decimal.Decimal(ulp)).to_integral_value(),
                                  decimal.Decimal(ulp)))

    for i in range(n):
        lo = _f64(LOG_OFF + (i << (52 - LOG_TABLE_BITS)))
        hi = _f64(LOG_OFF + ((i + 1) << (52 - LOG_TABLE_BITS)))
        m, e = math.frexp(2.0 / (lo + hi))
        ic = 1.0 if lo <= 1.0 < hi else math.ldexp(round(m * 4096), e - 12)
        exact = ctx.minus(ctx.ln(decimal.Decimal(ic)))
        invc[i], logc[i] = ic, head(exact, 2.0**-43)
        tail[i] = float(ctx.subtract(exact, decimal.Decimal(logc[i])))
    ln2 = ctx.ln(decimal.Decimal(2))
    ln2_hi = head(ln2, 2.0**-40)
    return invc, logc, tail, ln2_hi, float(ctx.subtract(ln2, decimal.Decimal(ln2_hi)))


INVC, LOGC, LOGC_TAIL, LN2_HI40, LN2_LO40 = _log_table()


@inline
def log_dd(x):
    """(hi, lo): log(x) = hi + lo to ~2**-70 absolute, for a positive finite x."""
    tiny = x < MIN_NORMAL
    ix = as_bits(x * TWO52 if tiny else x)
    tmp = ix - LOG_OFF
    i = (tmp >> (52 - LOG_TABLE_BITS)) & ((1 << LOG_TABLE_BITS) - 1)
    kd = to_float((tmp >> 52) - (52 if tiny else 0))
    z = from_bits(ix - (tmp & -4503599627370496))  # ix - (tmp & 0xfff << 52): z ~ 1
    invc = INVC[i]
    zhi = from_bits(as_bits(z) & -4096)  # 41 bits: zhi * invc and zlo * invc are exact
    rhi = zhi * invc - 1.0  # exact (Sterbenz)
    rlo = (z - zhi) * invc
    r = rhi + rlo  # r + rerr = z / c - 1 exactly (TwoSum)
    b = r - rhi
    rerr = (rhi - (r - b)) + (rlo - b)
    t1 = kd * LN2_HI40 + LOGC[i]  # exact
    t2 = t1 + r  # t2 + lo2 = t1 + r exactly (TwoSum)
    b = t2 - t1
    lo2 = (t1 - (t2 - b)) + (r - b)
    rh = from_bits(as_bits(r) & -134217728)  # 26 bits: rh * rh is exact
    arh2 = -0.5 * (rh * rh)
    hi = t2 + arh2
    lo4 = (t2 - hi) + arh2  # |t2| >= |arh2|
    lo3 = -0.5 * (r - rh) * (r + rh)  # the rest of -r*r/2
    p = r * r * r * (1.0 / 3 + r * (-0.25 + r * (0.2 + r * (
        -1.0 / 6 + r * (1.0 / 7 + r * (-0.125 + r * (1.0 / 9)))))))  # |r| < 2**-7.5
    lo = (kd * LN2_LO40 + LOGC_TAIL[i]) + lo2 + lo3 + lo4 + p + rerr
    y = hi + lo
    return y, (hi - y) + lo


@inline
def two_prod(a, b):
    """(p, e): a * b = p + e exactly (Dekker; |a|, |b| < 2**995)."""
    p = a * b
    c = SPLIT * a
    ah = c - (c - a)
    al = a - ah
    c = SPLIT * b
    bh = c - (c - b)
    bl = b - bh
    return p, ((ah * bh - p) + ah * bl + al * bh) + al * bl


@inline
def exp_dd(h, lo):
    """exp(h + lo), |lo| <= 2**-40 |h|: inf and 0 beyond the thresholds, as ``exp``."""
    lo = lo if (h > -746.0) & (h < 710.0) else 0.0
    h = -746.0 if h < -746.0 else h
    h = 710.0 if h > 710.0 else h
    kf, r = reduce_ln2(h)
    return ldexp(1.0 + expm1_poly(r + lo), kf)


@inline
def is_integral(y):
    """y is an integer (a NaN is not, an infinity is)."""
    a = abs(y)
    return (a >= TWO52) | (((a + TWO52) - TWO52) == a)


@inline
def pow(x, y):
    x, y = np.float64(x), np.float64(y)
    ax = abs(x)
    ay = abs(y)
    lh, lt = log_dd(ax if (ax > 0.0) & (ax < INF) else 1.0)
    yc = y if ay < TWO64 else (TWO64 if y > 0.0 else -TWO64)  # |y| beyond: saturates
    yc = yc if ay < INF else 0.0  # and NaN
    eh, el = two_prod(yc, lh)
    res = exp_dd(eh, el + yc * lt)
    y_int = is_integral(y)
    odd = y_int & (is_integral(0.5 * y) == False)  # noqa: E712 (a select, not a branch)
    # |x| 0 or inf: 0 or inf as y's sign says; y +-inf: 0, 1 or inf as |x| says
    res = (INF if (ax == 0.0) != (y > 0.0) else 0.0) if (ax == 0.0) | (ax == INF) else res
    res = (1.0 if ax == 1.0 else (INF if (ax < 1.0) != (y > 0.0) else 0.0)) if ay == INF \
        else res
    res = -res if (as_bits(x) < 0) & odd else res
    # exact where C99 allows it (fdlibm's cases): x**1, x**2, x**-1, x**0.5 (not of -0, -inf)
    res = x if y == 1.0 else res
    res = x * x if y == 2.0 else res
    res = 1.0 / x if y == -1.0 else res
    res = math.sqrt(x) if (y == 0.5) & (as_bits(x) >= 0) else res
    res = NAN if (x < 0.0) & (x > -INF) & (y_int == False) else res  # noqa: E712
    res = NAN if (x != x) | (y != y) else res
    return 1.0 if (y == 0.0) | (x == 1.0) else res


# -- float32: the same algorithms in float32 arithmetic (Cephes' expf/logf polynomials), so
# a loop widens to twice the float64 lanes (8 on AVX2, 16 on AVX-512, 4 on SSE2 and NEON).
# Every constant is a float32 and every integer an int32: one float64 or int64 operation
# would halve the lanes. Bit tricks as above, with 1.5 * 2**23 as the rounding shift.
F0, F1, FHALF = np.float32(0.0), np.float32(1.0), np.float32(0.5)
F_SHIFT = np.float32(12582912.0)  # 1.5 * 2**23
F_SHIFT_BITS = np.int32(0x4B400000)
F_LOG2E = np.float32(LOG2E)
F_LN2_HI = np.float32(0.693359375)  # 9 bits: k * F_LN2_HI is exact for |k| < 2**15
F_LN2_LO = np.float32(-2.12194440e-4)
F_INF, F_NAN = np.float32(INF), np.float32(NAN)
F_MIN_NORMAL = np.float32(1.17549435e-38)
F_TWO23, F_23 = np.float32(8388608.0), np.float32(23.0)
F_TWO24, F_30, F_10, F2 = (np.float32(c) for c in (2.0**24, 30.0, 10.0, 2.0))
F_EXPM1_LO = np.float32(-17.5)
F_SQRT_HALF_BITS = np.int32(0x3F3504F3)
#: beyond these expf is 0 (below 2**-150) or inf (above FLT_MAX), rounded so by ``ldexpf``
F_EXP_LO, F_EXP_HI = np.float32(-104.0), np.float32(89.0)
I127, I23 = np.int32(127), np.int32(23)
#: Cephes' expf: expm1(r) = r + r*r*P(r) on |r| <= ln2/2
EP0, EP1, EP2, EP3, EP4, EP5 = (np.float32(c) for c in (
    5.0000001201e-1, 1.6666665459e-1, 4.1665795894e-2, 8.3334519073e-3, 1.3981999507e-3,
    1.9875691500e-4))
#: Cephes' logf: log(1 + f) = f - f*f/2 + f**3 P(f) on [sqrt(1/2) - 1, sqrt(2) - 1)
LP0, LP1, LP2, LP3, LP4, LP5, LP6, LP7, LP8 = (np.float32(c) for c in (
    3.3333331174e-1, -2.4999993993e-1, 2.0000714765e-1, -1.6668057665e-1, 1.4249322787e-1,
    -1.2420140846e-1, 1.1676998740e-1, -1.1514610310e-1, 7.0376836292e-2))


@inline
def as_bits32(x):
    """The IEEE bits of a float32 as int32 (a bitcast)."""
    return np.float32(x).view(np.int32)


@inline
def from_bits32(i):
    return np.int32(i).view(np.float32)


@inline
def to_int32(xf):
    """An integral float32 ``xf`` (|xf| < 2**22) as int32, with no conversion instruction."""
    return np.int32(as_bits32(xf + F_SHIFT) - F_SHIFT_BITS)


@inline
def to_float32(k):
    """An int32 ``k`` (|k| < 2**22) as float32, with no conversion instruction."""
    return from_bits32(np.int32(k + F_SHIFT_BITS)) - F_SHIFT


@inline
def pow2f(kf):
    """2**kf for an integral float32 kf in [-126, 127]."""
    return from_bits32(np.int32((to_int32(kf) + I127) << I23))


@inline
def ldexpf(p, kf):
    """p * 2**kf for an integral kf in [-252, 254], rounded once even into subnormals."""
    k1 = (kf * FHALF + F_SHIFT) - F_SHIFT
    return p * pow2f(k1) * pow2f(kf - k1)


@inline
def expm1_polyf(r):
    """expm1(r) for |r| <= ln2/2 (Estrin's scheme, as ``expm1_poly``)."""
    r2 = r * r
    q = ((EP0 + EP1 * r) + (EP2 + EP3 * r) * r2) + (EP4 + EP5 * r) * (r2 * r2)
    return r + r2 * q


@inline
def expf(x):
    x = np.float32(x)
    x = F_EXP_LO if x < F_EXP_LO else x  # NaN passes both unchanged
    x = F_EXP_HI if x > F_EXP_HI else x
    kf = (x * F_LOG2E + F_SHIFT) - F_SHIFT
    r = (x - kf * F_LN2_HI) - kf * F_LN2_LO
    return ldexpf(F1 + expm1_polyf(r), kf)


@inline
def split_exponentf(x):
    """(k, m): x = m * 2**k, m in [sqrt(1/2), sqrt(2)), for a positive normal float32."""
    ix = as_bits32(x)
    k = np.int32(ix - F_SQRT_HALF_BITS) >> I23
    return to_float32(k), from_bits32(np.int32(ix - (k << I23)))


@inline
def log_kernelf(kf, f, c):
    """log(2**k * (1 + f)) + c for f in [sqrt(1/2) - 1, sqrt(2) - 1) and a tiny c."""
    z = f * f
    z2 = z * z
    p = (((LP0 + LP1 * f) + (LP2 + LP3 * f) * z)
         + ((LP4 + LP5 * f) + (LP6 + LP7 * f) * z) * z2 + LP8 * (z2 * z2))
    return (f + ((f * z * p + (kf * F_LN2_LO + c)) - FHALF * z)) + kf * F_LN2_HI


@inline
def logf(x):
    x = np.float32(x)
    tiny = x < F_MIN_NORMAL
    kf, m = split_exponentf(x * F_TWO23 if tiny else x)
    kf = kf - F_23 if tiny else kf
    res = log_kernelf(kf, m - F1, F0)  # m - 1 is exact
    res = res if x < F_INF else x  # inf, nan
    res = -F_INF if x == F0 else res
    return F_NAN if x < F0 else res


@inline
def log1pf(x):
    """As ``log1p``: u = 1 + x, its rounding error passed to the kernel as c, by Fast2Sum
    with the larger operand first (``log1p``'s choice by k loses it when 1 < u - x < 1 +
    ulp(1): 2.0 ulp, 0.8 with this)."""
    x = np.float32(x)
    u = F1 + x
    kf, m = split_exponentf(u)
    c = (x - (u - F1)) if x < F1 else (F1 - (u - x))
    c = c / u if u < F_TWO24 else F0
    small = kf == F0
    res = log_kernelf(kf, x if small else m - F1, F0 if small else c)
    res = res if x < F_INF else x
    res = x if x == F0 else res  # keeps -0.0
    res = -F_INF if x == -F1 else res
    return F_NAN if x < -F1 else res


@inline
def expm1f(x):
    """As ``expm1``; below -17.5 expm1 rounds to -1 (2**-k's factor stays in range)."""
    x = np.float32(x)
    xc = F_EXPM1_LO if x < F_EXPM1_LO else x
    xc = F_EXP_HI if xc > F_EXP_HI else xc
    kf = (xc * F_LOG2E + F_SHIFT) - F_SHIFT
    r = (xc - kf * F_LN2_HI) - kf * F_LN2_LO
    nk = -kf if kf < F_30 else -F_30  # 1 - 2**-k is exact for |k| <= 24, and 1 beyond
    res = ldexpf(expm1_polyf(r) + (F1 - pow2f(nk)), kf)
    return x if x == F0 else res  # keeps -0.0


@inline
def tanhf(x):
    """As ``tanh`` on |x|, the sign restored (for x < 0, e / (e + 2) doubles expm1's
    relative error: 2.5 ulp, 1.x this way); tanh(10) rounds to 1 in float32."""
    x = np.float32(x)
    ax = abs(x)
    ax = F_10 if ax > F_10 else ax
    e = expm1f(ax + ax)
    t = e / (e + F2)
    t = -t if x < F0 else t
    return x if x == F0 else t  # keeps -0.0


@inline
def softplusf(x):
    """As ``softplus``: max(x, 0) + log1p(exp(-|x|))."""
    x = np.float32(x)
    return (x if x > F0 else F0) + log1pf(expf(-abs(x)))


@inline
def sigmoidf(x):
    """1 / (1 + e) for x >= 0, e / (1 + e) below, e = exp(-|x|): one division."""
    x = np.float32(x)
    e = expf(-abs(x))
    return (F1 if x >= F0 else e) / (F1 + e)


#: ops with a float32 body above (the others compute float32 in float64: one rounding)
F32_BODIES = {"exp": expf, "expm1": expm1f, "log": logf, "log1p": log1pf, "sigmoid": sigmoidf,
               "softplus": softplusf, "tanh": tanhf}


# -- libm or vector body, chosen per target ---------------------------------------------------

#: what numba's own JIT sees for ``LIBM_SYMBOL`` (vector bodies everywhere); shipped and
#: JIT-compiled kernels get the target's constant from ``generator.link`` instead
_jit_mask = ctypes.c_int64(0)


def link_symbol() -> None:
    """Resolve ``LIBM_SYMBOL`` in llvmlite's JIT, where numba finalises every kernel."""
    import llvmlite.binding as llvm

    llvm.add_symbol(LIBM_SYMBOL, ctypes.addressof(_jit_mask))


link_symbol()


@intrinsic
def use_libm(typingctx, bit_t):
    """Bit ``bit`` of the external ``int64 aotk_libm_ops``: a load that O3 folds once the
    linker has made the global a constant."""

    def codegen(context, builder, sig, args):
        i64 = ir.IntType(64)
        try:
            gv = builder.module.get_global(LIBM_SYMBOL)
        except KeyError:
            gv = ir.GlobalVariable(builder.module, i64, LIBM_SYMBOL)
            gv.linkage = "external"
        bit = context.cast(builder, args[0], sig.args[0], types.int64)
        masked = builder.and_(builder.load(gv), builder.shl(ir.Constant(i64, 1), bit))
        return builder.icmp_unsigned("!=", masked, ir.Constant(i64, 0))

    return types.boolean(bit_t), codegen


def _libm_sigmoid(x):
    """The vector body's form over libm's exp (one exp, one division, as the plain
    ``1 / (1 + exp(-x))`` before this module, which gave 0 instead of the subnormal
    results below -709.78 and lost float32 accuracy the same way below -88.7).

    ``s`` or ``e * s`` is chosen by arithmetic on the sign bit (``h``: 1.0 where it is set,
    exact products, the same bits as a select; -0.0 gives e = 1): SSE2 has no select of
    doubles on a float32 comparison, and LLVM branched on the sign in loops it did not
    widen (strided float32 rows on the baseline: 2.2x slower than before this module)."""
    e = math.exp(-abs(x))
    s = 1.0 / (1.0 + e)
    h = to_float((as_bits(x) >> 63) & 1)
    return s * (e * h + (1.0 - h))


def _libm_log1p(x):
    """log(u) + c / u over libm's ``log``: u = 1 + x rounded, c its rounding error (TwoSum,
    exact), log1p(x) = log(u + c) = log(u) + c / u to within (c / u)**2 / 2 (< 2**-106).
    glibc's ``log`` (table-driven, no division, no data-dependent branch) makes this 0.9x
    two SSE2 lanes of the vector body and 0.5x glibc's ``log1p`` (fdlibm's: a division, and
    branches the predictor learns) at 1e6 and on fresh inputs, 0.85x on a repeated 1e3
    array (benchmarks/RESULTS.md, "Sixth pass" and "Seventh pass"); within 1.5 ulp
    (README). The correction is dropped where it is NaN rather than where u is out of
    range: the same results, but a test of u's range became a 64-bit integer compare,
    which SSE2 emulates in a dozen instructions (1.01-1.09x glibc's ``log1p`` then)."""
    u = 1.0 + x
    b = u - 1.0
    c = (1.0 - (u - b)) + (x - b)
    d = c / u  # NaN exactly where u is 0 (x = -1), inf or NaN: no correction there
    r = math.log(u) + (d if d == d else 0.0)
    return x if x == 0.0 else r  # keeps -0.0


libm_log1p = inline(_libm_log1p)


def _libm_softplus(x):
    """The vector body's form over libm's ``exp`` and ``log`` (``_libm_log1p``): no branch
    a repeated input array teaches the predictor, unlike PyTensor's piecewise form over
    glibc's ``log1p`` (the body before this module, which it agrees with to rounding)."""
    return (x if x > 0.0 else 0.0) + libm_log1p(math.exp(-abs(x)))


#: the libm bodies the kernels had before this module, sigmoid's made stable, log1p and
#: softplus over ``log`` (float32 operands call the float libm functions, as then)
LIBM = {
    "exp": lambda x: math.exp(x), "expm1": lambda x: math.expm1(x),
    "log": lambda x: math.log(x), "log1p": _libm_log1p,
    "sigmoid": _libm_sigmoid, "softplus": _libm_softplus,
    "tanh": lambda x: math.tanh(x), "erf": lambda x: math.erf(x),
    "erfc": lambda x: math.erfc(x), "sin": lambda x: math.sin(x),
    "cos": lambda x: math.cos(x), "pow": lambda x, y: x**y,
}

#: ops whose vector body returns a marked value for some inputs (``Fixup``): sin and cos
#: of finite |x| >= TRIG_BOUND return x itself, which no sine or cosine can be
FIXUPS = {"sin": (lambda v: abs(v) > 1.0, lambda v: math.sin(np.float64(v))),
          "cos": (lambda v: abs(v) > 1.0, lambda v: math.cos(np.float64(v)))}


def body(name: str, marked: bool = False, dtype: str | None = None) -> Callable:
    """The scalar body of op ``name`` computed in ``dtype`` (plain Python, as every
    ``ScalarOp`` body): libm's on targets that list it in ``libm_ops`` (for that dtype),
    the vector one elsewhere, in float32 arithmetic for float32 where ``F32_BODIES`` has
    one. ``marked``: ops in
    ``FIXUPS`` return their marker where the vector body cannot answer, and the caller
    (the elemwise template's loops) runs ``fixup`` after its loop; otherwise the body
    itself calls libm there (a branch in the loop: correct, but no longer vectorised)."""
    vec = F32_BODIES.get(name) if dtype == "float32" else None
    vec, libm, bit = vec or globals()[name], inline(LIBM[name]), libm_bit(name, dtype)
    if name in FIXUPS and not marked:
        mark, fix = (inline(f) for f in FIXUPS[name])
        whole = vec

        def vec(x):
            v = whole(x)
            return fix(v) if mark(v) else v

        vec = inline(vec)
    if name == "pow":
        def f2(x, y):
            if use_libm(bit):
                return libm(x, y)
            return vec(x, y)

        return f2

    def f(x):
        if use_libm(bit):
            return libm(x)
        return vec(x)

    return f


def fixup(name: str) -> tuple[Callable, Callable] | None:
    """(mark, fix), numba-callable, for an op in ``FIXUPS``: ``fix(v)`` is the result where
    the marked body gave ``v`` with ``mark(v)``."""
    return tuple(inline(f) for f in FIXUPS[name]) if name in FIXUPS else None


def vector_path(name: str, dtype: str | None = None) -> Callable:
    """``() -> bool``, numba-callable: op ``name`` in ``dtype`` runs its vector body on this
    target (the elemwise template then blocks strided rows into contiguous ones)."""
    bit = libm_bit(name, dtype)

    def f():
        return not use_libm(bit)

    return inline(f)
