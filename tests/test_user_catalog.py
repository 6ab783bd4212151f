"""User catalogs end to end: build-kernels from an installed package, the user's own wheel
for three x86-64 levels, installed and run without numba, differentially against NumPy.

One venv holds only the installed aotkernels (its dependencies come from the dev venv
through a ``.pth`` line: nothing of the checkout is importable there); it builds the
aotkernels wheel and the catalog's wheel from a folder outside the checkout. A second,
fresh venv installs both wheels with pip (no numba) and runs the catalog's kernels.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
CATALOG = Path(__file__).resolve().parent / "user_catalog.py"
TARGETS = "x86_64,x86_64_v3,x86_64_v4"

USE = r"""
import importlib.util, json, os, sys
import numpy as np
import usercat
from aotkernels import KernelError, KernelNotAvailable
assert importlib.util.find_spec("numba") is None, "numba must not be installed here"

def huber(x, d):
    a = np.abs(x)
    return np.where(a <= d, 0.5 * x * x, d * (a - 0.5 * d))

def raises(exc, fn, *args, **kw):
    try:
        fn(*args, **kw)
    except exc as e:
        return str(e)
    return None

rng = np.random.default_rng(0)
x = rng.normal(0, 3, (40, 60))
d = np.abs(rng.normal(1, 0.5, (40, 1)))
out = np.empty_like(x)
ro = np.empty_like(x); ro.flags.writeable = False
y = usercat.huber(x, d, out=out)
c, k = usercat.clip_count(x[0], 1.0, out=(np.empty(60), np.empty(1, np.int64)))
checks = {
    "flat": np.allclose(usercat.huber(x.ravel(), 1.5), huber(x.ravel(), 1.5), rtol=1e-14),
    "broadcast_out": y is out and np.allclose(out, huber(x, d), rtol=1e-14),
    "strided": np.allclose(usercat.huber(x[::-2, 1::3], d[::-2]), huber(x[::-2, 1::3], d[::-2]),
                           rtol=1e-14),
    "int32": np.array_equal(usercat.huber(np.arange(-5, 5, dtype=np.int32), np.int32(2)),
                            huber(np.arange(-5, 5), 2).astype(np.int32)),
    "cast": np.allclose(usercat.huber(np.arange(-5, 5, dtype=np.int8), 1.5),
                        huber(np.arange(-5.0, 5.0), 1.5), rtol=1e-14),
    "reduce": all(np.allclose(usercat.logaddexp.reduce(x, axis=a), np.logaddexp.reduce(x, axis=a),
                              rtol=1e-13) for a in (0, 1)),
    "reduce_all": np.isclose(usercat.logaddexp.reduce(x[:, ::2]),
                             np.logaddexp.reduce(x[:, ::2].ravel()), rtol=1e-13),
    "matvec": np.allclose(usercat.matvec(x, x[0]), x @ x[0], rtol=1e-12),
    "two_outputs": np.array_equal(c, np.minimum(x[0], 1.0)) and k[0] == (x[0] > 1).sum(),
}
errors = {
    "dtype": raises(TypeError, usercat.huber, x.astype(np.complex128), 1.0),
    "readonly": raises(ValueError, usercat.huber, x, 1.0, out=ro),
    "rank": raises(ValueError, usercat.matvec, x[0], x[0]),
    "no_out": raises(TypeError, usercat.clip_count, x[0], 1.0),
    "bounds": raises(KernelError, usercat.matvec, x, x[0, :10]),
    "unlisted": raises(KernelNotAvailable, usercat.huber, x.reshape(2, 20, 60)[:, ::3, ::2], 1.0),
}
checks = {k: bool(v) for k, v in checks.items()}
print(json.dumps({"checks": checks, "errors": errors, "info": usercat.info(),
                  "source": usercat.huber.resolve(x, d)[1],
                  "numba_imported": "numba" in sys.modules}))
"""


def _run(cmd, **kw) -> subprocess.CompletedProcess:
    res = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, **kw)
    assert res.returncode == 0, (res.stdout[-2000:], res.stderr[-4000:])
    return res


def _venv(path: Path) -> Path:
    _run([sys.executable, "-m", "venv", path])
    return path / "bin" / "python"


@pytest.fixture(scope="module")
def wheels(tmp_path_factory) -> dict:
    """The runtime-only aotkernels wheel (pip, from the checkout) installed in venv A, which
    builds an aotkernels wheel and the catalog's wheel outside the checkout."""
    tmp = tmp_path_factory.mktemp("user")
    _run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
          "-w", tmp / "runtime", ROOT])
    (runtime,) = (tmp / "runtime").glob("aotkernels-*.whl")
    py = _venv(tmp / "venv-a")
    site = _run([py, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"])
    (Path(site.stdout.strip()) / "dev_deps.pth").write_text(sysconfig.get_paths()["purelib"])
    _run([py, "-m", "pip", "install", "-q", "--no-deps", runtime])
    work = tmp / "elsewhere"
    work.mkdir()
    shutil.copy(CATALOG, work / "user_catalog.py")
    env = {k: v for k, v in os.environ.items() if k not in ("AOT_LIBRARY_DIR", "PYTHONPATH")}
    env["AOT_CACHE_DIR"] = str(tmp / "cache")  # its scratch and IR cache go here
    build = tmp / "venv-a" / "bin" / "build-kernels"
    _run([build, "--ops", "add", "--dtypes", "f8", "--max-ndim", "1", "--jobs", "2",
          "--out", "aot", "-q"], cwd=work, env=env)
    _run([build, "--catalog", "user_catalog.py", "--targets", TARGETS, "--max-ndim", "2",
          "--jobs", "2", "--out", "user", "--cache-dir", ROOT / "build" / "ir-cache", "-q"],
         cwd=work, env=env)
    return {"aot": next((work / "aot").glob("*.whl")), "user": next((work / "user").glob("*.whl")),
            "scratch": tmp / "cache" / "build", "env": env}


def test_the_build_runs_outside_a_checkout(wheels):
    assert wheels["aot"].name == "aotkernels-0.1.0-py3-none-linux_x86_64.whl"
    names = zipfile.ZipFile(wheels["aot"]).namelist()
    assert "aotkernels/_lib/libaotkernels_x86_64.so" in names
    assert "aotkernels/build_tools/cmake/CMakeLists.txt" in names  # builds need no checkout
    assert (wheels["scratch"] / "ir-cache").is_dir()  # scratch in the user's cache


def test_the_user_wheel_is_named_and_holds_three_levels(wheels):
    assert wheels["user"].name == "usercat-1.2.3-py3-none-linux_x86_64.whl"
    z = zipfile.ZipFile(wheels["user"])
    manifest = json.loads(z.read("usercat/_lib/manifest.json"))
    assert [t["library"] for t in manifest["targets"]] == [
        f"libusercat_{t}.so" for t in TARGETS.split(",")]
    assert set(manifest["families"]) == {"usercat"}
    # huber: 2 dtypes x (flat, nd1, nd2); logaddexp: 3 + reduce nd1, nd2; 2 array kernels
    assert len(manifest["kernels"]) == 6 + 5 + 2
    assert "usercat/user_catalog.py" in z.namelist()


def test_installs_and_runs_without_numba(wheels, tmp_path):
    py = _venv(tmp_path / "venv-b")
    _run([py, "-m", "pip", "install", "-q", wheels["aot"], wheels["user"]])
    env = dict(wheels["env"], AOT_DISABLE_JIT="1")
    report = json.loads(_run([py, "-c", USE], env=env, cwd=tmp_path).stdout.splitlines()[-1])
    assert all(report["checks"].values()), report["checks"]
    errors = report["errors"]
    assert all(errors.values()), errors
    assert "unsupported dtype complex128" in errors["dtype"]
    assert "matvec raised" in errors["bounds"]
    assert "usercat/huber/f8,f8->f8/nd3" in errors["unlisted"]
    info = report["info"]
    from aotkernels.targets import host_level

    best = {1: "x86_64", 2: "x86_64", 3: "x86_64_v3", 4: "x86_64_v4"}[host_level()]
    assert info["target"] == best and info["library"].endswith(f"libusercat_{best}.so")
    assert info["targets"] == TARGETS.split(",") and info["kernels"] == 13
    assert report["source"] == "aot" and report["numba_imported"] is False
    forced = dict(env, AOT_CPU_TARGET="x86_64")
    cli = json.loads(_run([py, "-m", "usercat", "info"], env=forced, cwd=tmp_path).stdout)
    assert cli["target"] == "x86_64" and cli["reason"] == "forced by AOT_CPU_TARGET"
    report = json.loads(_run([py, "-c", USE], env=forced, cwd=tmp_path).stdout.splitlines()[-1])
    assert all(report["checks"].values()) and report["info"]["target"] == "x86_64"


def test_a_signature_not_built_is_jit_compiled_from_the_module(jit_cache, monkeypatch):
    """From source, with no library: the kernel is JIT-compiled from the same module."""
    monkeypatch.syspath_prepend(str(CATALOG.parent))
    import user_catalog

    x = np.linspace(-4, 4, 48).reshape(2, 4, 6)[:, ::-1, ::2]
    got = user_catalog.huber(x, 1.5)
    a = np.abs(x)
    np.testing.assert_allclose(got, np.where(a <= 1.5, 0.5 * x * x, 1.5 * (a - 0.75)),
                               rtol=1e-14)
    assert user_catalog.huber.resolve(x, 1.5) == (user_catalog.huber.resolve(x, 1.5)[0], "jit")
    with pytest.raises(TypeError, match="huber takes 2 inputs"):
        user_catalog.huber(x)
    with pytest.raises(ValueError, match="declared twice"):
        user_catalog.cat.elemwise("f8(f8)")(user_catalog.huber.py_func)


def test_bad_declarations_are_refused():
    from aotkernels.user import Catalog

    with pytest.raises(ValueError, match="invalid catalog name"):
        Catalog("elemwise")
    cat = Catalog("badcat")
    with pytest.raises(ValueError, match="unknown dtype 'f9'"):
        cat.elemwise("f9(f8)")(lambda x: x)
    with pytest.raises(ValueError, match="inputs -> outputs"):
        cat.array("f8[:](f8[:])")(lambda x, o: None)
    with pytest.raises(ValueError, match="needs a signature 'T.T, T.'"):
        cat.elemwise("f8(f8)", identity=0.0, name="neg")(lambda x: -x)
    ident = cat.elemwise("i4(i4)", name="ident")(lambda x: x)
    with pytest.raises(TypeError, match=r"ident has no signature for inputs \(float64\)"):
        ident(np.ones(3))  # float64 does not convert to int32 safely
