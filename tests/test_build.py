"""The built library: self-contained, exporting exactly its manifest; the build's checks."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from aotkernels import library
from aotkernels.generator.compile import IRCache, _compile_task, compile_all, symbol_of
from aotkernels.signature import Signature

SHIM_EXPORTS = {"aotk_abi_version", "aotk_x86_level", "aotk_set_blas", "aotk_blas_kind",
                "aotk_set_lapack", "aotk_lapack_bound", "aotk_set_special",
                "aotk_run_steps", "aotk_max_operands", "aotk_nutpie_logp", "aotk_nutpie_expand",
                "aotk_nutpie_swap", "aotk_run_call"}


def dynamic_symbols(path, *flags) -> set[str]:
    out = subprocess.run(["nm", "-D", *flags, str(path)], capture_output=True, text=True,
                         check=True).stdout
    return {line.split()[-1] for line in out.splitlines() if line.strip()}


def test_library_needs_only_libc_and_libm(aot_lib):
    dyn = subprocess.run(["readelf", "-d", str(aot_lib.path)], capture_output=True,
                         text=True, check=True).stdout
    needed = {line.split("[")[1].rstrip("]") for line in dyn.splitlines() if "(NEEDED)" in line}
    assert needed <= {"libc.so.6", "libm.so.6"}, needed
    out = subprocess.run(["nm", "-D", "--undefined-only", str(aot_lib.path)],
                         capture_output=True, text=True, check=True).stdout
    strong = {line.split()[-1] for line in out.splitlines() if line.split()[0] == "U"}
    undefined = {line.split()[-1] for line in out.splitlines()}
    assert all("@GLIBC" in s for s in strong), strong  # weak CRT hooks (w) are optional
    assert not [s for s in undefined if s.startswith(("NRT", "numba", "Py", "_Py"))]


def test_exports_are_exactly_the_manifest(aot_lib):
    exported = dynamic_symbols(aot_lib.path, "--defined-only")
    assert exported == set(aot_lib.kernels.values()) | SHIM_EXPORTS


def test_ir_cache_skips_compiled_kernels(tmp_path):
    sigs = [Signature("elemwise", "add", ("int32", "int32"), "int32", "flat", 1),
            Signature("elemwise", "neg", ("float32",), "float32", "nd", 2)]
    seen = []
    first = list(compile_all(sigs, 1, IRCache(tmp_path), lambda d, t, c: seen.append(c)))
    assert seen[-1] == 0 and [k.symbol for k in first] == [symbol_of(s) for s in sigs]
    seen.clear()
    second = list(compile_all(sigs, 1, IRCache(tmp_path), lambda d, t, c: seen.append(c)))
    assert seen == [2] and [k.ir for k in second] == [k.ir for k in first]


def test_editing_one_template_rebuilds_only_its_family(tmp_path, monkeypatch):
    """Symbols hash their family's sources: an edit renames (so recompiles) only them."""
    from aotkernels import kernels

    for path in Path(kernels.__file__).parent.glob("*.py"):
        (tmp_path / path.name).write_bytes(path.read_bytes())
    monkeypatch.setattr(kernels, "_HERE", tmp_path)
    kernels.template_hash.cache_clear()
    before = {f: kernels.template_hash(f) for f in kernels.FAMILIES}
    with open(tmp_path / "axis.py", "a") as f:
        f.write("\n# an edit\n")
    kernels.template_hash.cache_clear()
    after = {f: kernels.template_hash(f) for f in kernels.FAMILIES}
    kernels.template_hash.cache_clear()
    assert {f for f in before if before[f] != after[f]} == {"axis"}


def test_linked_chunks_are_cached(tmp_path):
    from aotkernels.generator.stage import stage

    sigs = [Signature("elemwise", "add", ("int32", "int32"), "int32", "flat", 1)]
    quiet = lambda *_: None  # noqa: E731
    first = stage(sigs, ["x86_64"], tmp_path / "a", 1, tmp_path / "cache", log=quiet)
    second = stage(sigs, ["x86_64"], tmp_path / "b", 1, tmp_path / "cache", log=quiet)
    assert first.linked_chunks == {"x86_64": (1, 1)}
    assert second.linked_chunks == {"x86_64": (0, 1)} and second.cached == 1
    obj = "x86_64.0.o"
    assert (tmp_path / "a" / obj).read_bytes() == (tmp_path / "b" / obj).read_bytes()


def test_a_failing_kernel_names_its_signature():
    bad = Signature("elemwise", "round_half_to_even", ("int64",), "int64", "flat", 1)
    err = _compile_task(bad)
    assert "elemwise/round_half_to_even/i8->i8/flat1" in str(err)
    assert "only float" in str(err)


def test_symbols_follow_the_templates():
    sig = Signature("elemwise", "add", ("float64", "float64"), "float64", "nd", 3)
    assert sig.symbol("a") != sig.symbol("b")
    assert Signature.from_key(sig.key) == sig


def test_cli_rejects_unknown_ops():
    res = subprocess.run([sys.executable, "-m", "aotkernels.build_tools.cli", "--ops", "nope"],
                         capture_output=True, text=True)
    assert res.returncode != 0 and "unknown ops: nope" in res.stderr


@pytest.fixture
def lib_copy(aot_lib, tmp_path):
    d = tmp_path / "lib"
    shutil.copytree(aot_lib.directory, d)
    return d


def _edit_manifest(directory, **changes):
    path = directory / "manifest.json"
    m = json.loads(path.read_text())
    m.update(changes)
    path.write_text(json.dumps(m))


def test_stale_or_foreign_libraries_are_refused(lib_copy):
    assert library.load(lib_copy).kernels
    _edit_manifest(lib_copy, families={"elemwise": "0" * 16})
    with pytest.raises(library.LibraryError, match="stale"):
        library.load(lib_copy)
    _edit_manifest(lib_copy, abi=999)
    with pytest.raises(library.LibraryError, match="ABI 999"):
        library.load(lib_copy)


def _load_in_subprocess(directory) -> str:
    """Load in a child: if a check were missing, the loader's SIGBUS would kill only it."""
    code = ("import sys; from aotkernels import library\n"
            "try:\n    library.load(sys.argv[1]); print('LOADED')\n"
            "except library.LibraryError as e:\n    print(e)")
    res = subprocess.run([sys.executable, "-c", code, str(directory)], capture_output=True,
                         text=True)
    assert res.returncode == 0, f"interpreter died: {res.returncode} {res.stderr[-500:]}"
    return res.stdout.strip()


def test_damaged_libraries_are_refused_before_loading(lib_copy):
    so = next(lib_copy.glob("*.so"))
    good = so.read_bytes()
    assert _load_in_subprocess(lib_copy) == "LOADED"
    so.write_bytes(good[: len(good) // 3])
    assert "truncated" in _load_in_subprocess(lib_copy)
    so.write_bytes(good[:-1] + bytes([good[-1] ^ 1]))
    assert "checksum" in _load_in_subprocess(lib_copy)
    so.unlink()
    assert "cannot load" in _load_in_subprocess(lib_copy)
    assert "manifest.json missing" in _load_in_subprocess(lib_copy / "nowhere")


def test_forcing_a_target(lib_copy, monkeypatch):
    monkeypatch.setenv("AOT_CPU_TARGET", "x86_64")
    assert library.load(lib_copy).reason == "forced by AOT_CPU_TARGET"
    monkeypatch.setenv("AOT_CPU_TARGET", "x86_64_v4")
    with pytest.raises(library.LibraryError, match="not in this library"):
        library.load(lib_copy)


def test_info_cli(aot_lib):
    import os

    env = dict(os.environ, AOT_LIBRARY_DIR=str(aot_lib.directory))
    res = subprocess.run([sys.executable, "-m", "aotkernels", "info", "--json"], env=env,
                         capture_output=True, text=True, check=True)
    info = json.loads(res.stdout)
    assert info["kernels"] == len(aot_lib.kernels) and info["target"] == aot_lib.target
    text = subprocess.run([sys.executable, "-m", "aotkernels", "info"], env=env,
                          capture_output=True, text=True, check=True).stdout
    assert "kernels:" in text and aot_lib.target in text


def test_from_usage_turns_a_miss_into_a_prebuilt_kernel(tmp_path):
    """A miss recorded by one process is prebuilt by the next build-kernels --from-usage."""
    import os

    env = dict(os.environ, AOT_CACHE_DIR=str(tmp_path / "jit"),
               AOT_LIBRARY_DIR=str(tmp_path / "none"))
    miss = ("import numpy as np, aotkernels as ak; from aotkernels import resolve\n"
            "x = np.ones((4, 6), np.float32)[:, ::2]\n"
            "ak.elemwise('tanh', x); print(resolve('tanh', x)[1])")
    first = subprocess.run([sys.executable, "-c", miss], env=env, capture_output=True,
                           text=True, check=True)
    assert first.stdout.split()[-1] == "jit"
    (misses,) = (tmp_path / "jit").glob("*/misses.txt")
    lib = tmp_path / "lib"
    subprocess.run([sys.executable, "-m", "aotkernels.build_tools.cli", "--ops", "add",
                    "--dtypes", "f4", "--max-ndim", "1", "--from-usage", str(misses),
                    "--no-wheel", "--out", str(lib), "--quiet"], check=True)
    env["AOT_LIBRARY_DIR"] = str(lib)
    env["AOT_DISABLE_JIT"] = "1"
    second = subprocess.run([sys.executable, "-c", miss], env=env, capture_output=True,
                            text=True, check=True)
    assert second.stdout.split()[-1] == "aot"


def test_one_architecture_per_build():
    """x86 and aarch64 libraries need two compilers and two wheels: refused before compiling."""
    res = subprocess.run([sys.executable, "-m", "aotkernels.build_tools.cli", "--no-wheel",
                          "--targets", "x86_64,aarch64", "--ops", "add"],
                         capture_output=True, text=True)
    assert res.returncode != 0 and "mixes architectures" in res.stderr
    assert "Traceback" not in res.stderr


def test_a_missing_cross_compiler_is_named(tmp_path):
    """Without aarch64-linux-gnu-gcc on PATH the build says what to install, at once."""
    env = dict(os.environ, PATH=str(Path(sys.executable).parent))
    res = subprocess.run([sys.executable, "-m", "aotkernels.build_tools.cli", "--no-wheel",
                          "--targets", "aarch64", "--ops", "add", "--out", str(tmp_path)],
                         capture_output=True, text=True, env=env)
    assert res.returncode != 0 and "aarch64-linux-gnu-gcc" in res.stderr
    assert "setup_cross.sh" in res.stderr and "Traceback" not in res.stderr
