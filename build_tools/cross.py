"""Which machine a set of targets is for, and how CMake links it from this one.

A library set (one manifest) and a wheel (one platform tag) are for one architecture, and
one CMake build has one C compiler: so every ``build-kernels`` run is for one architecture.
The host's own architecture links with the host's compiler; another one links with
Debian's GNU cross toolchain through a CMake toolchain file in ``build_tools/toolchains``
(installed by ``build_tools/setup_cross.sh``, which ``make setup`` runs).
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path

from aotkernels.targets import TARGETS, host_arch

TOOLCHAIN_DIR = Path(__file__).resolve().parent / "toolchains"

#: architecture -> GNU triplet of Debian's cross toolchain (``<triplet>-gcc``, sysroot
#: ``/usr/<triplet>``)
GNU_TRIPLETS = {"x86_64": "x86_64-linux-gnu", "aarch64": "aarch64-linux-gnu"}


class CrossBuildError(ValueError):
    """The targets cannot be linked together, or the cross toolchain is missing."""


def target_arch(targets: Sequence[str]) -> str:
    """The one architecture of ``targets``; mixing architectures is refused."""
    unknown = [t for t in targets if t not in TARGETS]
    if unknown:
        raise CrossBuildError(f"unknown targets {', '.join(unknown)}; known: "
                              f"{', '.join(TARGETS)}")
    arches = sorted({TARGETS[t].arch for t in targets})
    if len(arches) != 1:
        by_arch = "; ".join(f"{a}: {', '.join(t for t in targets if TARGETS[t].arch == a)}"
                            for a in arches)
        raise CrossBuildError(
            f"--targets mixes architectures ({by_arch}): a library set and its wheel are "
            "for one platform, so run build-kernels once per architecture")
    return arches[0]


def toolchain_file(arch: str) -> Path | None:
    """The CMake toolchain file that links ``arch`` here; None for the host's own arch."""
    if arch == host_arch():
        return None
    triplet = GNU_TRIPLETS.get(arch)
    path = TOOLCHAIN_DIR / f"{triplet}.cmake"
    if triplet is None or not path.is_file():
        raise CrossBuildError(f"cannot link {arch} libraries on {host_arch()}: no "
                              f"toolchain file for it in {TOOLCHAIN_DIR}")
    if shutil.which(f"{triplet}-gcc") is None:
        raise CrossBuildError(
            f"linking {arch} libraries needs the cross compiler {triplet}-gcc: run "
            "build_tools/setup_cross.sh as root (make setup does), or apt-get install "
            f"gcc-{triplet} libc6-dev-{_debian_arch(arch)}-cross")
    return path


def wheel_platform(arch: str) -> str:
    """The wheel's platform tag (before auditwheel), as a native build would write it."""
    return f"linux_{arch}"


def _debian_arch(arch: str) -> str:
    return {"x86_64": "amd64", "aarch64": "arm64"}.get(arch, arch)
