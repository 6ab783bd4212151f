"""Wheel projects written on the fly, so ``build-kernels`` needs no checkout.

scikit-build-core builds a wheel from a directory with a ``pyproject.toml`` and a CMake
project. In a checkout that is the checkout itself; otherwise (``pip install
"aotkernels[build]"``) this module writes one: the CMake project and the C shim that ship
inside the package (``aotkernels/build_tools/cmake``, ``.../shim``), the Python package(s)
to put in the wheel, and a ``pyproject.toml`` naming them. Two kinds:

* ``runtime_project``: the aotkernels wheel itself, from the installed package and its
  installed metadata (dependencies, extras, the ``build-kernels`` script);
* ``catalog_project``: a user catalog's wheel (``build-kernels --catalog``): a package named
  by the user holding the catalog's module and an ``__init__`` that binds it to the
  libraries installed beside it.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import json
import re
import shutil
from pathlib import Path

import aotkernels

HERE = Path(__file__).resolve().parent
#: what the wheel's CMake build needs, copied into every written project
BUILD_FILES = ("cmake", "shim", "toolchains")
SUBPACKAGES = ("kernels", "generator", "build_tools")
_IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc", "_lib")


def _toml(value) -> str:
    """A TOML value (strings, lists and inline tables of them): JSON's spelling is TOML's."""
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{json.dumps(k)} = {_toml(v)}" for k, v in value.items()) + " }"
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return json.dumps(value)


def write(directory: Path, name: str, version: str, packages: dict[str, Path],
          dependencies: list[str], *, optional: dict[str, list[str]] | None = None,
          scripts: dict[str, str] | None = None, summary: str = "") -> Path:
    """A fresh project in ``directory``: ``packages`` (import name -> source dir) are copied
    in; the wheel is ``py3-none-<platform>`` and its CMake project the shipped one."""
    if directory.exists():
        shutil.rmtree(directory)
    directory.mkdir(parents=True)
    for sub in BUILD_FILES:
        shutil.copytree(HERE / sub, directory / "aotk_build" / sub, ignore=_IGNORE)
    for pkg, src in packages.items():
        shutil.copytree(src, directory / pkg, ignore=_IGNORE)
    lines = [
        "[build-system]",
        'requires = ["scikit-build-core==1.1.2"]',
        'build-backend = "scikit_build_core.build"',
        "",
        "[project]",
        f"name = {_toml(name)}",
        f"version = {_toml(version)}",
        f"description = {_toml(summary)}",
        'requires-python = ">=3.10"',
        f"dependencies = {_toml(dependencies)}",
    ]
    if optional:
        lines += ["", "[project.optional-dependencies]"]
        lines += [f"{_toml(k)} = {_toml(v)}" for k, v in optional.items()]
    if scripts:
        lines += ["", "[project.scripts]"] + [f"{_toml(k)} = {_toml(v)}"
                                              for k, v in scripts.items()]
    lines += [
        "",
        "[tool.scikit-build]",
        'cmake.version = ">=3.25"',
        'cmake.source-dir = "aotk_build/cmake"',
        'wheel.py-api = "py3"',
        f"wheel.packages = {_toml(list(packages))}",
        "",
    ]
    (directory / "pyproject.toml").write_text("\n".join(lines))
    return directory


def _tree(directory: Path) -> Path:
    """The installed aotkernels package as one tree (an editable install keeps its
    subpackages in other folders: they are gathered here)."""
    root = Path(aotkernels.__file__).resolve().parent
    shutil.copytree(root, directory, ignore=_IGNORE)
    for sub in SUBPACKAGES:
        src = Path(importlib.import_module(f"aotkernels.{sub}").__file__).resolve().parent
        if src != root / sub:
            shutil.copytree(src, directory / sub, ignore=_IGNORE, dirs_exist_ok=True)
    return directory


def runtime_project(directory: Path) -> Path:
    """The aotkernels wheel's project, from what is installed."""
    meta = importlib.metadata.metadata("aotkernels")
    deps, optional = [], {}
    for req in meta.get_all("Requires-Dist") or []:
        spec, _, marker = req.partition(";")
        extra = re.search(r"""extra\s*==\s*["']([^"']+)["']""", marker)
        if extra:
            optional.setdefault(extra.group(1), []).append(spec.strip())
        else:
            deps.append(req.strip())
    scripts = {ep.name: ep.value for ep in importlib.metadata.entry_points(group="console_scripts")
               if ep.dist is not None and ep.dist.name == "aotkernels"}
    tree = _tree(directory.parent / f"{directory.name}-tree")
    try:
        return write(directory, "aotkernels", meta["Version"], {"aotkernels": tree}, deps,
                     optional=optional, scripts=scripts, summary=meta.get("Summary", ""))
    finally:
        shutil.rmtree(tree)


_INIT = '''"""{name}: kernels compiled ahead of time by aotkernels from {module}.py.

Each function checks its operands, then runs the kernel of the best CPU level this machine
supports from the libraries beside it (``info()`` says which; ``AOT_CPU_TARGET`` forces one).
"""

from pathlib import Path

from {name} import {module} as catalog_module
from {name}.{module} import {functions}

CATALOG = catalog_module.{attr}
CATALOG.bind(Path(__file__).resolve().parent / "_lib")
info = CATALOG.info
__version__ = {version!r}
__all__ = [{names}, "info"]
'''

_MAIN = '''"""``python -m {name} info``: the library this process would use, and what it holds."""

import json
import sys

from {name} import info

if sys.argv[1:] not in ([], ["info"]):
    raise SystemExit("usage: python -m {name} info")
print(json.dumps(info(), indent=1))
'''


def catalog_project(directory: Path, catalog, module, name: str, version: str) -> Path:
    """A user catalog's wheel project: package ``name`` = the catalog's module + glue."""
    from aotkernels.user import Array, Elementwise

    attr = next(k for k, v in vars(module).items() if v is catalog)
    functions = sorted(k for k, v in vars(module).items()
                       if isinstance(v, (Elementwise, Array)) and v.catalog is catalog)
    if not functions:
        raise ValueError(f"{module.__name__} declares no function in catalog {catalog.name}")
    stem = Path(catalog.file).stem
    pkg = directory.parent / f"{directory.name}-pkg"
    if pkg.exists():
        shutil.rmtree(pkg)
    pkg.mkdir(parents=True)
    try:
        shutil.copyfile(catalog.file, pkg / f"{stem}.py")
        (pkg / "__init__.py").write_text(_INIT.format(
            name=name, module=stem, attr=attr, functions=", ".join(functions),
            version=version, names=", ".join(repr(f) for f in functions)))
        (pkg / "__main__.py").write_text(_MAIN.format(name=name))
        deps = ["numpy>=1.26", f"aotkernels=={aotkernels.__version__}"]
        return write(directory, name, version, {name: pkg}, deps,
                     summary=f"{name}: kernels from {stem}.py, compiled ahead of time")
    finally:
        shutil.rmtree(pkg)
