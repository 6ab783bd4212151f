"""``build-kernels``: compile a catalog, link a library per target, package a wheel.

    build-kernels --targets x86_64 --jobs 2 [--ops add,exp] [--dtypes f8,f4] [--max-ndim 2]
                  [--out wheels/] [--no-wheel] [--repair] [--cache-dir build/ir-cache]
    build-kernels --catalog mymodule [--name mykernels] --targets x86_64,x86_64_v3,x86_64_v4

Compilation runs in a process pool with an IR cache (a rebuild recompiles only kernels
whose template changed); linking is per target (``generator.link``); CMake links the
objects with the C shim, driven by scikit-build-core for a wheel, or directly with
``--no-wheel`` (which installs ``manifest.json`` and the libraries into ``--out``, the
layout ``AOT_LIBRARY_DIR`` expects). One run is for one architecture; another one than the
host's (``--targets aarch64`` on x86-64) cross-links with Debian's GNU toolchain
(``build_tools/cross.py``) and gets that platform's wheel tag.

Everything the build needs ships in the package (the CMake project and the shim), so it
runs from an installed ``aotkernels[build]`` as from a checkout; outside a checkout the
wheel's project is written on the fly (``build_tools/project.py``) and scratch files and
the IR cache go under the user's cache (``~/.cache/aotkernels/build``). ``--catalog``
builds a user's own kernels (``aotkernels.user``) into the user's own wheel.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib
import json
import os
import shutil
import subprocess
import sys
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

from aotkernels.build_tools.cross import (
    CrossBuildError,
    target_arch,
    toolchain_file,
    wheel_platform,
)
from aotkernels.signature import MAX_NDIM
from aotkernels.targets import TARGETS, default_targets, native_targets

#: the CMake project that links a stage (shipped in the package)
CMAKE_PROJECT = Path(__file__).resolve().parent / "cmake"


def checkout() -> Path | None:
    """This project's checkout, when aotkernels runs from one (an editable install)."""
    root = Path(__file__).resolve().parent.parent
    if (root / "pyproject.toml").is_file() and (root / "aotkernels" / "__init__.py").is_file():
        return root
    return None


def work_root() -> Path:
    """Scratch space and the IR cache: the checkout's ``build/``, else the user's cache."""
    root = checkout()
    if root is not None:
        return root / "build"
    from aotkernels.jit import cache_root

    return cache_root() / "build"


@dataclass(frozen=True)
class Package:
    """What a wheel is: its distribution (and import) name, version, and, for a user
    catalog, the catalog and its module (None: the aotkernels wheel)."""

    name: str = "aotkernels"
    version: str = ""
    catalog: object = None
    module: object = None


def _csv(value: str) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()]


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="build-kernels", description=__doc__.split("\n\n")[0])
    p.add_argument("--targets", type=_csv, default=None,
                   help=f"comma-separated, from {', '.join(TARGETS)}, or 'native' (the best "
                        f"this machine runs) (default: {','.join(default_targets())})")
    p.add_argument("--jobs", "-j", type=int, default=os.cpu_count() or 1,
                   help="compiler processes (default: all cores)")
    p.add_argument("--ops", type=_csv, default=None,
                   help="only these ops, of any family (add,exp,sum,softmax,gemm,take,...)")
    p.add_argument("--dtypes", type=_csv, default=None, help="only these dtypes (f8 or float64)")
    p.add_argument("--max-ndim", type=int, default=MAX_NDIM,
                   help=f"highest nd kernel rank (1-{MAX_NDIM})")
    p.add_argument("--from-usage", type=Path, default=None, metavar="FILE",
                   help="also build the signatures recorded in FILE (the JIT cache's "
                        "misses.txt, see python -m aotkernels info)")
    p.add_argument("--out", type=Path, default=None,
                   help="wheel directory (default: wheels/), or the library directory "
                        "with --no-wheel (default: build/lib)")
    p.add_argument("--no-wheel", action="store_true",
                   help="link the libraries into --out without packaging a wheel")
    p.add_argument("--repair", action="store_true",
                   help="run auditwheel repair on the wheel: it gets the manylinux tag "
                        "its libraries are compatible with (needs auditwheel, patchelf)")
    p.add_argument("--cache-dir", type=Path, default=None,
                   help="compiled-IR cache (default: build/ir-cache in a checkout, else "
                        "~/.cache/aotkernels/build/ir-cache)")
    p.add_argument("--catalog", default=None, metavar="MODULE",
                   help="build a user catalog instead of this project's: a module name "
                        "(importable from here) or a .py file declaring an "
                        "aotkernels.user.Catalog")
    p.add_argument("--name", default=None,
                   help="with --catalog: the wheel's distribution and package name "
                        "(default: the catalog's name)")
    p.add_argument("--version", default=None,
                   help="with --catalog: the wheel's version (default: the catalog's)")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    return p.parse_args(argv)


class Progress:
    """One status line on a terminal; a line per 10% in logs."""

    def __init__(self, enabled: bool):
        self.enabled = enabled
        self.tty = sys.stderr.isatty()
        self.t0 = time.perf_counter()
        self.last = -1

    def __call__(self, done: int, total: int, cached: int) -> None:
        if not self.enabled or total == 0:
            return
        pct = 100 * done // total
        if not self.tty and pct // 10 == self.last // 10 and done != total:
            return
        self.last = pct
        bar = "#" * (pct * 30 // 100)
        line = (f"compiling [{bar:<30}] {done}/{total} kernels ({cached} cached) "
                f"{time.perf_counter() - self.t0:5.1f}s")
        sys.stderr.write(("\r" if self.tty else "") + line + ("" if self.tty else "\n"))
        if self.tty and done == total:
            sys.stderr.write("\n")
        sys.stderr.flush()


def _run(cmd: list[str], cwd: Path) -> None:
    res = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    if res.returncode:
        sys.stderr.write(res.stdout[-4000:] + res.stderr[-4000:])
        raise SystemExit(f"build-kernels: command failed: {' '.join(cmd)}")


def _work_dir(kind: str, out: Path, arch: str = "") -> Path:
    """Per-output scratch dirs, so builds into different outputs can run side by side.

    The architecture and the CMake project are part of the key: a CMake build dir keeps its
    compiler and its source directory for good.
    """
    key = f"{CMAKE_PROJECT}|{out}|{arch}"
    return work_root() / kind / hashlib.sha256(key.encode()).hexdigest()[:10]


def _tools_path() -> str:
    """PATH with this interpreter's scripts first: ``pip install aotkernels[build]`` puts
    cmake and ninja there, and a venv's ``build-kernels`` runs without activating it."""
    return os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])


def link_with_cmake(stage: Path, out: Path, arch: str) -> None:
    build = _work_dir("cmake-lib", out, arch)
    toolchain = toolchain_file(arch)
    cmake = shutil.which("cmake", path=_tools_path()) or "cmake"
    ninja = shutil.which("ninja", path=_tools_path())
    _run([cmake, "-S", str(CMAKE_PROJECT), "-B", str(build), "-G", "Ninja",
          *([f"--toolchain={toolchain}"] if toolchain else []),
          *([f"-DCMAKE_MAKE_PROGRAM={ninja}"] if ninja else []),
          f"-DAOTK_STAGE_DIR={stage}", "-DAOTK_INSTALL_DIR=.",
          f"-DCMAKE_INSTALL_PREFIX={out}"], CMAKE_PROJECT)
    _run([cmake, "--build", str(build)], CMAKE_PROJECT)
    _run([cmake, "--install", str(build)], CMAKE_PROJECT)


def wheel_project(package: Package, out: Path) -> Path:
    """The directory scikit-build-core builds: the checkout for the aotkernels wheel in
    one, else a project written for this build (``build_tools/project.py``)."""
    from aotkernels.build_tools import project

    root = checkout()
    if package.catalog is None and root is not None:
        return root
    directory = _work_dir("project", out)
    if package.catalog is None:
        return project.runtime_project(directory)
    return project.catalog_project(directory, package.catalog, package.module, package.name,
                                   package.version)


def build_wheel(package: Package, stage: Path, out: Path, arch: str) -> Path:
    """Run scikit-build-core's PEP 517 hook (the same one pip calls) with our stage.

    Cross builds pass the toolchain file, and ``_PYTHON_HOST_PLATFORM`` (the variable
    cross-compiling setups set, which scikit-build-core's wheel tag honours) gives the
    wheel the target's platform tag while ``wheel.py-api`` keeps it ``py3-none``.
    """
    out.mkdir(parents=True, exist_ok=True)
    source = wheel_project(package, out)
    settings = {"cmake.define.AOTK_STAGE_DIR": str(stage),
                "cmake.define.AOTK_INSTALL_DIR": f"{package.name}/_lib",
                "build-dir": str(_work_dir("cmake-wheel", out, arch))}
    env = dict(os.environ, PATH=_tools_path())
    toolchain = toolchain_file(arch)
    if toolchain:
        settings["cmake.toolchain-file"] = str(toolchain)
        env["_PYTHON_HOST_PLATFORM"] = wheel_platform(arch).replace("_", "-", 1)
    hook = ("import json, sys; from scikit_build_core.build import build_wheel; "
            "print(build_wheel(sys.argv[1], json.loads(sys.argv[2])))")
    res = subprocess.run([sys.executable, "-c", hook, str(out), json.dumps(settings)],
                         cwd=source, capture_output=True, text=True, env=env)
    if res.returncode:
        sys.stderr.write(res.stdout[-6000:] + res.stderr[-6000:])
        raise SystemExit("build-kernels: wheel build failed")
    return out / res.stdout.strip().splitlines()[-1]


def _library_sizes(targets, out: Path, wheel: Path | None, prefix: str) -> dict[str, int]:
    names = {f"lib{prefix}_{t}.so": t for t in targets}
    if wheel is None:
        return {t: (out / lib).stat().st_size for lib, t in names.items()}
    with zipfile.ZipFile(wheel) as z:
        return {names[Path(i.filename).name]: i.file_size for i in z.infolist()
                if Path(i.filename).name in names}


def build(sigs, targets: list[str], out: Path, *, wheel: bool, jobs: int,
          cache_dir: Path | None, quiet: bool = False, repair: bool = False,
          package: Package = Package()) -> dict:
    """Stage, link and (optionally) package ``sigs`` as ``package``; returns the build
    report. Checks the architecture and its toolchain before compiling anything.
    """
    from aotkernels.generator.stage import stage

    if repair and not wheel:
        raise SystemExit("build-kernels: --repair repairs a wheel; it cannot go with --no-wheel")
    try:
        arch = target_arch(targets)
        toolchain_file(arch)
    except CrossBuildError as exc:
        raise SystemExit(f"build-kernels: {exc}") from None
    say = (lambda *_: None) if quiet else (lambda m: print(m, file=sys.stderr))
    say(f"build-kernels: {len(sigs)} kernels for {', '.join(targets)} with {jobs} jobs")
    out = out.resolve()
    stage_dir = _work_dir("stage", out).resolve()
    report = stage(sigs, targets, stage_dir, jobs, cache_dir, Progress(not quiet), say,
                   prefix=package.name)
    if report.failures:
        for err in report.failures:
            print(f"FAILED {err}", file=sys.stderr)
        raise SystemExit(f"build-kernels: {len(report.failures)} kernel(s) failed to compile")
    t1 = time.perf_counter()
    platform_tag = None
    if wheel:
        wheel_path = build_wheel(package, stage_dir, out, arch)
        if repair:
            from aotkernels.build_tools.repair import AuditwheelError, repair_wheel

            try:
                wheel_path, platform_tag = repair_wheel(wheel_path, out)
            except AuditwheelError as exc:
                raise SystemExit(f"build-kernels: {exc}") from None
    else:
        link_with_cmake(stage_dir, out, arch)
        wheel_path = None
    summary = {
        "kernels": report.kernels, "cached": report.cached,
        "compile_seconds": round(report.compile_seconds, 2),
        "link_seconds": {t: round(s, 2) for t, s in report.link_seconds.items()},
        "cmake_seconds": round(time.perf_counter() - t1, 2),
        "arch": arch,
        "library_bytes": _library_sizes(targets, out, wheel_path, package.name),
        "families": dict(report.families),
        "linked_chunks": report.linked_chunks,
        "wheel": str(wheel_path) if wheel_path else None,
        "manylinux": platform_tag,
        "output": str(wheel_path or out),
    }
    (out / "build-report.json").write_text(json.dumps(summary, indent=1))
    return summary


def print_summary(summary: dict) -> None:
    print(f"\n{'target':<12}{'kernels':>9}{'compile s':>11}{'link s':>9}{'library KB':>12}")
    for t, seconds in summary["link_seconds"].items():
        size = summary["library_bytes"].get(t, 0) / 1024
        print(f"{t:<12}{summary['kernels']:>9}{summary['compile_seconds']:>11.1f}"
              f"{seconds:>9.1f}{size:>12.0f}")
    families = ", ".join(f"{f}: {n}" for f, n in sorted(summary["families"].items()))
    linked = ", ".join(f"{t} {n} of {m}" for t, (n, m) in summary["linked_chunks"].items())
    print(f"families: {families}; {summary['cached']} compiled kernels from cache; "
          f"chunks linked: {linked} (the rest cached); cmake {summary['cmake_seconds']:.1f}s")
    if summary.get("manylinux"):
        print(f"auditwheel repair: {summary['manylinux']}")
    print(f"output: {summary['output']}")


def load_catalog(spec: str, name: str | None = None, version: str | None = None) -> Package:
    """Import the module ``spec`` (a name importable from the working directory, or a
    ``.py`` file) and take its ``aotkernels.user.Catalog``."""
    from aotkernels.user import Catalog

    path = Path(spec)
    if spec.endswith(".py") or path.is_file():
        sys.path.insert(0, str(path.resolve().parent))
        spec = path.stem
    else:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(spec)
    except ImportError as exc:
        raise SystemExit(f"build-kernels: cannot import catalog module {spec!r}: {exc}") from None
    found = [v for v in vars(module).values() if isinstance(v, Catalog)]
    if len(found) != 1:
        raise SystemExit(f"build-kernels: {spec} must declare exactly one "
                         f"aotkernels.user.Catalog (found {len(found)})")
    cat = found[0]
    pkg = name or cat.name
    if not pkg.isidentifier():
        raise SystemExit(f"build-kernels: --name {pkg!r} is not a Python identifier")
    return Package(pkg, version or cat.version, cat, module)


def main(argv=None) -> int:
    args = parse_args(argv)
    from aotkernels.generator.catalog import catalog

    targets = args.targets or list(default_targets())
    if "native" in targets:
        targets = [t for t in targets if t != "native"] + list(native_targets())
    if not targets:
        raise SystemExit("build-kernels: no target for this machine; pass --targets")
    if (args.name or args.version) and not args.catalog:
        raise SystemExit("build-kernels: --name and --version go with --catalog")
    package = Package() if args.catalog is None else load_catalog(args.catalog, args.name,
                                                                  args.version)
    families = None if package.catalog is None else [package.catalog.name]
    try:
        sigs = catalog(args.ops, args.dtypes, args.max_ndim, args.from_usage, families)
    except ValueError as exc:
        raise SystemExit(f"build-kernels: {exc}") from None
    if not sigs:
        raise SystemExit("build-kernels: the selection is empty")
    default_out = "build/lib" if args.no_wheel else "wheels"
    root = checkout()
    out = args.out or (root / default_out if root and package.catalog is None
                       else Path(default_out))
    cache_dir = args.cache_dir or work_root() / "ir-cache"
    summary = build(sigs, targets, out, wheel=not args.no_wheel, jobs=args.jobs,
                    cache_dir=cache_dir, quiet=args.quiet, repair=args.repair,
                    package=package)
    print_summary(summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
