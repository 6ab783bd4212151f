"""The target table: every CPU target a library can be built for, and how to pick one.

One entry per shipped library. ``level`` is the x86-64 micro-architecture level the CPU
must reach (``aotk_x86_level()`` in the C shim answers at load time); 0 means another
architecture. The generator builds from this table and the runtime chooses from it.
"""

from __future__ import annotations

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

    @property
    def library(self) -> str:
        return f"libaotkernels_{self.name}.so"


TARGETS: dict[str, Target] = {t.name: t for t in [
    Target("x86_64", "x86_64", "x86_64-unknown-linux-gnu", "x86-64", level=1),
    Target("x86_64_v3", "x86_64", "x86_64-unknown-linux-gnu", "x86-64-v3", level=3),
    Target("x86_64_v4", "x86_64", "x86_64-unknown-linux-gnu", "x86-64-v4", "-prefer-256-bit",
           level=4),
    Target("aarch64", "aarch64", "aarch64-unknown-linux-gnu", "generic"),
]}

#: What ``build-kernels`` builds when no ``--targets`` is given: the baseline of this machine.
DEFAULT_TARGETS = {"x86_64": ("x86_64",), "aarch64": ("aarch64",)}


def host_arch() -> str:
    return platform.machine()


def default_targets() -> tuple[str, ...]:
    return DEFAULT_TARGETS.get(host_arch(), ())
