"""The shape of the code that the README's "How it works" promises: no private name crosses
a module boundary, the catalog needs no runtime, and every Op class is served through the
one registry."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ["aotkernels", "kernels", "generator", "build_tools"]


def _sources():
    for pkg in PACKAGES:
        yield from sorted((ROOT / pkg).rglob("*.py"))


def test_no_private_name_is_imported_across_modules():
    found = []
    for path in _sources():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("aotkernels"):
                found += [f"{path.relative_to(ROOT)}: {node.module}.{a.name}"
                          for a in node.names
                          if a.name.startswith("_") and not a.name.endswith("__")]
    assert not found, found


def test_the_catalog_loads_neither_the_library_nor_the_jit():
    code = ("import sys; from aotkernels.generator.catalog import catalog; catalog(); "
            "from aotkernels import library; "
            "print(library._default, sorted(m for m in sys.modules "
            "if m.split('.')[0] in ('numba', 'llvmlite')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "[] []", out


def test_every_family_has_one_record_and_one_runtime_module():
    from aotkernels.kernels import FAMILIES

    for name, family in FAMILIES.items():
        if family.origin is not None:  # a user catalog a test imported: the user template
            assert family.sources[0] == "user.py"
            continue
        assert (ROOT / "kernels" / family.sources[0]).stem == name
        assert (ROOT / "aotkernels" / "families" / f"{name}.py").exists(), name


def test_op_classes_dispatch_through_one_registry():
    pytest.importorskip("pytensor")
    from pytensor.compile.builders import OpFromGraph
    from pytensor.tensor.elemwise import CAReduce, Elemwise

    from aotkernels.pytensor.servers import serve

    for cls in (Elemwise, CAReduce, OpFromGraph):
        assert cls in serve.registry, cls
    assert serve.dispatch(object) is serve.registry[object]  # the fallback: perform
