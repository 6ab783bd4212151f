"""The target table: every CPU target a library can be built for, and how to pick one.

One entry per shipped library. ``level`` is the x86-64 micro-architecture level the CPU
must reach (``aotk_x86_level()`` in the C shim answers at load time); 0 means another
architecture. The generator builds from this table and the runtime chooses from it.
"""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass


@dataclass(frozen=True)
class Target:
    name: str
    arch: str  # platform.machine() of hosts that can run it
    triple: str
    cpu: str
    features: str = ""
    level: int = 0
    #: ops whose kernels call libm here instead of ``kernels/vecmath.py`` (an op, or
    #: ``op:float64`` / ``op:float32`` for one dtype): at two SSE2 lanes glibc's scalar code
    #: (FMA variants chosen at run time) beats the float64 polynomials of exp, log, sigmoid
    #: and, against glibc's float32 code, of float32 sin and cos (float32 exp, log,
    #: sigmoid have float32 bodies at four lanes, which win), and float64 log1p and
    #: softplus, whose libm forms use glibc's table-driven ``log``; ``pow`` (~300 vector
    #: instructions a lane group) gains only at AVX-512's eight lanes, and there in float64
    #: only (benchmarks/RESULTS.md, "Vector math"); a JIT kernel makes the choice of the
    #: target its process loaded, so AOT and JIT give the same bits
    libm_ops: tuple[str, ...] = ()

    def calls_libm(self, op: str, dtype: str) -> bool:
        """Op ``op`` computed in ``dtype`` calls libm here (``libm_ops`` entries are an op,
        for both dtypes, or ``op:float64`` / ``op:float32``)."""
        return op in self.libm_ops or f"{op}:{dtype}" in self.libm_ops

    @property
    def library(self) -> str:
        return f"libaotkernels_{self.name}.so"


TARGETS: dict[str, Target] = {t.name: t for t in [
    Target("x86_64", "x86_64", "x86_64-unknown-linux-gnu", "x86-64", level=1,
           libm_ops=("exp:float64", "log:float64", "log1p:float64", "sigmoid:float64",
                     "softplus:float64", "erf", "erfc", "pow", "sin:float32", "cos:float32")),
    Target("x86_64_v3", "x86_64", "x86_64-unknown-linux-gnu", "x86-64-v3", level=3,
           libm_ops=("pow",)),
    Target("x86_64_v4", "x86_64", "x86_64-unknown-linux-gnu", "x86-64-v4", "-prefer-256-bit",
           level=4, libm_ops=("pow:float32",)),
    Target("aarch64", "aarch64", "aarch64-unknown-linux-gnu", "generic", libm_ops=("pow",)),
]}

#: What ``build-kernels`` builds when no ``--targets`` is given: the baseline of this machine.
DEFAULT_TARGETS = {"x86_64": ("x86_64",), "aarch64": ("aarch64",)}


def host_arch() -> str:
    return platform.machine()


def host_level() -> int:
    """x86-64 micro-architecture level of this CPU (0 elsewhere), from NumPy's CPU probe.

    NumPy's probe also checks that the OS saves the wide registers. The library's own probe
    (``aotk_x86_level`` in the C shim) cross-checks it once a library is open.
    """
    if host_arch() != "x86_64":
        return 0
    try:
        from numpy._core._multiarray_umath import __cpu_features__ as feats
    except ImportError:  # numpy < 2
        from numpy.core._multiarray_umath import __cpu_features__ as feats
    return max([1] + [lvl for lvl in (2, 3, 4) if feats.get(f"X86_V{lvl}")])


def default_targets() -> tuple[str, ...]:
    return DEFAULT_TARGETS.get(host_arch(), ())


def native_targets() -> tuple[str, ...]:
    """The best target the build machine itself runs (``--targets native``)."""
    usable = [t for t in TARGETS.values() if t.arch == host_arch() and t.level <= host_level()]
    return (max(usable, key=lambda t: t.level).name,) if usable else ()


def jit_target(loaded: str | None) -> str | None:
    """The target whose choices (``libm_ops``) a JIT-compiled kernel makes: ``loaded``, the
    target of the library the process runs, so JIT and AOT kernels give the same bits; with
    no library, ``AOT_CPU_TARGET`` or the best target this CPU runs."""
    if loaded:
        return loaded
    forced = os.environ.get("AOT_CPU_TARGET")
    if forced in TARGETS:
        return forced
    best = native_targets()
    return best[0] if best else None
