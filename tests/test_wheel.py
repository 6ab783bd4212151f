"""The packaging path end to end: build-kernels -> wheel -> pip into a fresh venv without numba."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

USE = r"""
import importlib.util, json, sys
import numpy as np
import aotkernels as ak
from aotkernels.families.elemwise import resolve
assert importlib.util.find_spec("numba") is None, "numba must not be installed here"
assert importlib.util.find_spec("scipy") is None, "scipy must not be installed here"
x = np.linspace(-4, 4, 1000).reshape(10, 100)
y = x.astype(np.float32)[:, ::3]
e = np.exp(x - x.max(1, keepdims=True))
checks = {
    "add": np.array_equal(ak.elemwise("add", x, x[0]), x + x[0]),
    "exp": np.allclose(ak.elemwise("exp", x[::-1]), np.exp(x[::-1]), rtol=1e-13),
    "sigmoid_f4": np.allclose(ak.elemwise("sigmoid", y), 1 / (1 + np.exp(-y)), rtol=1e-6),
    "gemm": np.allclose(ak.dot(x, x.T), x @ x.T, rtol=1e-12),
    "softmax": np.allclose(ak.softmax(x, axis=1), e / e.sum(1, keepdims=True), rtol=1e-13),
}
lib = ak.default_library()
print(json.dumps({"checks": checks, "source": resolve("exp", x)[1],
                  "library": lib.path.name, "blas": lib.blas,
                  "numba_imported": "numba" in sys.modules}))
"""


def _build_wheel(out: Path, *extra: str) -> Path:
    res = subprocess.run(
        [sys.executable, "-m", "aotkernels.build_tools.cli", "--ops",
         "add,exp,sigmoid,gemm,softmax",
         "--dtypes", "f8,f4", "--max-ndim", "2", "--jobs", "2", "--out", str(out),
         "--cache-dir", str(ROOT / "build" / "ir-cache"), *extra],
        capture_output=True, text=True)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "library KB" in res.stdout  # the summary table
    (whl,) = out.glob("*.whl")
    return whl


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    return _build_wheel(tmp_path_factory.mktemp("wheels"))


@pytest.fixture(scope="module")
def repaired(tmp_path_factory) -> Path:
    """The same wheel through ``build-kernels --repair`` (auditwheel repair)."""
    return _build_wheel(tmp_path_factory.mktemp("repaired"), "--repair")


def test_wheel_is_one_per_platform(wheel):
    assert wheel.name.startswith("aotkernels-") and "-py3-none-linux_x86_64" in wheel.name
    names = zipfile.ZipFile(wheel).namelist()
    assert "aotkernels/_lib/libaotkernels_x86_64.so" in names
    assert "aotkernels/_lib/manifest.json" in names
    assert "aotkernels/kernels/elemwise.py" in names  # templates ship for the JIT fallback
    manifest = json.loads(zipfile.ZipFile(wheel).read("aotkernels/_lib/manifest.json"))
    # elementwise ops x dtypes x (flat, nd1, nd2), softmax x dtypes x (nd1, nd2), gemm x dtypes
    assert len(manifest["kernels"]) == 3 * 2 * 3 + 2 * 2 + 2


def test_auditwheel_finds_it_manylinux(wheel):
    """Only libc/libm symbols, the newest exp/log/pow@GLIBC_2.29: manylinux_2_31 (auditwheel
    has no 2_29 policy). A higher tag means a new libc/libm dependency crept in."""
    from aotkernels.build_tools.repair import show

    tag = show(wheel)
    assert tag.startswith("manylinux_2_") and tag.endswith("_x86_64"), tag
    assert int(tag.split("_")[2]) <= 31, tag


def test_repair_retags_without_touching_the_libraries(wheel, repaired):
    assert repaired.name.startswith("aotkernels-0.1.0-py3-none-manylinux_2_")
    assert repaired.name.endswith("_x86_64.whl")
    assert [p.name for p in repaired.parent.glob("*.whl")] == [repaired.name]
    lib = "aotkernels/_lib/libaotkernels_x86_64.so"
    # byte for byte: the installed manifest's size and SHA-256 must still hold
    assert zipfile.ZipFile(repaired).read(lib) == zipfile.ZipFile(wheel).read(lib)


def test_repair_needs_a_wheel():
    res = subprocess.run([sys.executable, "-m", "aotkernels.build_tools.cli", "--no-wheel",
                          "--repair", "--ops", "add"], capture_output=True, text=True)
    assert res.returncode != 0 and "--repair repairs a wheel" in res.stderr


def test_installs_and_runs_without_numba(repaired, tmp_path):
    """The repaired wheel (what would be published) installs and runs without numba."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    py = venv / "bin" / "python"
    pip = subprocess.run([str(py), "-m", "pip", "install", "-q", str(repaired)],
                         capture_output=True, text=True)
    assert pip.returncode == 0, pip.stderr[-3000:]
    env = {k: v for k, v in os.environ.items() if k not in ("AOT_LIBRARY_DIR", "PYTHONPATH")}
    env["AOT_DISABLE_JIT"] = "1"
    res = subprocess.run([str(py), "-c", USE], capture_output=True, text=True, env=env,
                         cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-3000:]
    report = json.loads(res.stdout.strip().splitlines()[-1])
    assert all(report["checks"].values()), report
    assert report["source"] == "aot" and report["numba_imported"] is False
    assert report["library"] == "libaotkernels_x86_64.so"
    assert report["blas"].startswith("numpy's libscipy_openblas"), report  # no scipy here
