"""aarch64 cross-build: an aarch64 library and wheel made on this machine, run under qemu.

The library's kernels run under ``qemu-aarch64`` through ``tests/harness/aotk_call.c``
(cross-compiled here), called with the geometry the runtime itself computes
(``aotkernels.call.Geometry``), and their outputs are compared with NumPy. Needs Debian's
cross toolchain and qemu-user, which ``make setup`` installs (``build_tools/setup_cross.sh``).
"""

from __future__ import annotations

import ctypes
import os
import shutil
import subprocess
import zipfile
from pathlib import Path

import numpy as np
import pytest

from aotkernels import library
from aotkernels.call import Geometry
from aotkernels.families import reduce as reductions
from aotkernels.generator.catalog import catalog
from aotkernels.signature import Signature

ROOT = Path(__file__).resolve().parent.parent
HARNESS = Path(__file__).resolve().parent / "harness" / "aotk_call.c"
SYSROOT = Path("/usr/aarch64-linux-gnu")
OPS, DTYPES = ["add", "exp", "sum", "max"], ["f8", "f4"]


def _missing() -> str | None:
    tools = [t for t in ("aarch64-linux-gnu-gcc", "aarch64-linux-gnu-readelf", "qemu-aarch64")
             if shutil.which(t) is None]
    if not (SYSROOT / "lib" / "libc.so.6").exists():
        tools.append(f"{SYSROOT}/lib/libc.so.6")
    return ", ".join(tools) or None


pytestmark = pytest.mark.skipif(
    _missing() is not None,
    reason=f"aarch64 cross tools missing ({_missing()}): build_tools/setup_cross.sh installs "
           "them as root with apt-get (make setup runs it)")


def _build(out: Path, wheel: bool) -> dict:
    from aotkernels.build_tools.cli import build

    return build(catalog(OPS, DTYPES, max_ndim=2), ["aarch64"], out, wheel=wheel,
                 jobs=os.cpu_count() or 1, cache_dir=ROOT / "build" / "ir-cache", quiet=True)


@pytest.fixture(scope="module")
def aarch64_lib() -> Path:
    out = ROOT / "build" / "test-aarch64-lib"
    summary = _build(out, wheel=False)
    assert summary["arch"] == "aarch64" and summary["library_bytes"]["aarch64"] > 0
    return out


@pytest.fixture(scope="module")
def harness(tmp_path_factory) -> Path:
    exe = tmp_path_factory.mktemp("harness") / "aotk_call"
    res = subprocess.run(["aarch64-linux-gnu-gcc", "-O2", "-Wall", "-Werror", "-o", str(exe),
                          str(HARNESS), "-ldl"], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    return exe


def _operand(a: np.ndarray) -> tuple[bytes, int]:
    """The bytes spanning every element of ``a`` and the offset of its first element."""
    if a.size == 0:
        return b"", 0
    lo = sum(min(0, (n - 1) * s) for n, s in zip(a.shape, a.strides))
    hi = sum(max(0, (n - 1) * s) for n, s in zip(a.shape, a.strides)) + a.itemsize
    return ctypes.string_at(a.ctypes.data + lo, hi - lo), -lo


class Harness:
    """Queue kernel calls, then run them all in one qemu process."""

    def __init__(self, exe: Path, lib: Path, work: Path):
        self.exe, self.lib, self.work = exe, lib, work
        self.kernels = library.read_manifest(lib)["kernels"]
        self.lines: list[str] = []
        self.outs: list[tuple[Path, np.ndarray]] = []

    def add(self, geo: Geometry, family: str, op: str, ins: list[np.ndarray],
            out: np.ndarray) -> int:
        """Queue ``op`` on ``ins`` into ``out`` (C-contiguous); returns the call's index."""
        dtypes = tuple(a.dtype.name for a in ins)
        sig = next(s for s in Signature.candidates(family, op, dtypes, out.dtype.name,
                                                   geo.ndim, geo.flat)
                   if s.key in self.kernels)
        shapes, strides = geo.arrays(sig)
        fields = [self.kernels[sig.key], str(len(ins) + 1), str(sig.ndim)]
        for i, a in enumerate([*ins, out]):
            raw, offset = _operand(a)
            path = self.work / f"c{len(self.lines)}_{i}.bin"
            path.write_bytes(raw)
            fields += [str(path), str(offset)]
        fields += [str(v) for v in shapes] + [str(v) for v in strides]
        self.lines.append(" ".join(fields))
        self.outs.append((path, out))
        return len(self.lines) - 1

    def run(self) -> tuple[str, list[np.ndarray]]:
        lib = self.lib / "libaotkernels_aarch64.so"
        res = subprocess.run(["qemu-aarch64", "-L", str(SYSROOT), str(self.exe), str(lib)],
                             input="\n".join(self.lines) + "\n", capture_output=True,
                             text=True, timeout=120)
        assert res.returncode == 0, res.stderr
        header, *statuses = res.stdout.splitlines()
        assert [int(s.split()[1]) for s in statuses] == [0] * len(self.lines)
        results = [np.frombuffer(path.read_bytes(), out.dtype).reshape(out.shape)
                   for path, out in self.outs]
        return header, results


def test_kernels_run_under_qemu_and_match_numpy(aarch64_lib, harness, tmp_path):
    rng = np.random.default_rng(5)
    h = Harness(harness, aarch64_lib, tmp_path)
    expect, tolerance = [], []

    def elemwise(op, ins, want, rtol):
        out = np.empty(np.broadcast_shapes(*[a.shape for a in ins]), want.dtype)
        h.add(Geometry.broadcast(ins, out), "elemwise", op, ins, out)
        expect.append(want)
        tolerance.append(rtol)

    def reduce(op, x, axis, want, rtol):
        _, a, _, acc = reductions.prepare(op, x, axis)
        h.add(Geometry.reduction(a, acc), "reduce", op, [a], acc)
        expect.append(want.reshape(acc.shape).astype(acc.dtype))
        tolerance.append(rtol)

    for dt, rtol in (("float64", 1e-15), ("float32", 1e-6)):
        x = rng.normal(size=(37, 41)).astype(dt)
        v = rng.normal(size=1000).astype(dt)
        elemwise("add", [v, v[::-1]], v + v[::-1], 0)                 # strided 1-d (nd1)
        elemwise("add", [v, v], v + v, 0)                              # contiguous (flat)
        elemwise("add", [x, x[0]], x + x[0], 0)                        # broadcast row (nd2)
        elemwise("add", [x[:, ::3], x[::-1, :14]], x[:, ::3] + x[::-1, :14], 0)
        elemwise("exp", [v], np.exp(v), 2 * rtol)                      # flat
        elemwise("exp", [x[::-1, ::2]], np.exp(x[::-1, ::2]), 2 * rtol)  # 2-d reversed
        # float32 sums accumulate in float64 (PyTensor), so both compare to float64 sums
        reduce("sum", v, None, v.astype("float64").sum(), 1e-12)
        reduce("sum", x, 0, x.astype("float64").sum(axis=0), 1e-12)
        reduce("sum", x, 1, x.astype("float64").sum(axis=1), 1e-12)
        y = x.copy()
        y[3, 5] = np.nan                                               # max propagates NaN
        reduce("max", y, 1, y.max(axis=1), 0)
        reduce("max", x, (0, 1), x.max(), 0)

    header, got = h.run()
    assert header.startswith("abi ") and header.endswith("x86_level 0")  # no x86 probe here
    assert len(got) == len(expect) == 2 * 11
    for g, e, rtol in zip(got, expect, tolerance):
        assert g.dtype == e.dtype
        np.testing.assert_allclose(g, e, rtol=rtol, atol=0)


def test_the_library_is_aarch64_and_needs_only_libc_and_libm(aarch64_lib):
    lib = aarch64_lib / "libaotkernels_aarch64.so"
    elf = subprocess.run(["aarch64-linux-gnu-readelf", "-hd", str(lib)], capture_output=True,
                         text=True, check=True).stdout
    assert "AArch64" in elf
    needed = {line.split("[")[1].rstrip("]") for line in elf.splitlines() if "(NEEDED)" in line}
    assert needed <= {"libc.so.6", "libm.so.6"}, needed


def test_this_machine_refuses_the_aarch64_library(aarch64_lib, monkeypatch):
    monkeypatch.delenv("AOT_CPU_TARGET", raising=False)
    with pytest.raises(library.LibraryError, match="no library for this CPU"):
        library.load(aarch64_lib)


def test_aarch64_wheel_has_the_aarch64_platform_tag(aarch64_lib, tmp_path):
    summary = _build(tmp_path, wheel=True)
    whl = Path(summary["wheel"])
    assert whl.name.endswith("-py3-none-linux_aarch64.whl"), whl.name
    with zipfile.ZipFile(whl) as z:
        assert "Tag: py3-none-linux_aarch64" in z.read(
            "aotkernels-0.1.0.dist-info/WHEEL").decode()
        # reproducible: the wheel's library is the one the --no-wheel build linked
        lib = z.read("aotkernels/_lib/libaotkernels_aarch64.so")
        assert lib == (aarch64_lib / "libaotkernels_aarch64.so").read_bytes()
    from aotkernels.build_tools.repair import show

    tag = show(whl)
    assert tag.startswith("manylinux_") and tag.endswith("_aarch64"), tag
