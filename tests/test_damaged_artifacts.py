"""Damaged libraries, manifests and JIT cache entries: found before any call, one line, handled.

Each case runs in a child interpreter, as a user's next session would, so that a check that
is missing shows as a dead child (the loader or LLVM crashing on a bad file) instead of a
dead test runner. "Handled" means the child still computes the right numbers: with the
library refused, from the JIT (whose per-checkout cache compiles ``add`` once); with a JIT
entry refused, from a recompiled entry.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys

import pytest

from aotkernels import jit

CHILD = r"""
import json, sys
import numpy as np
import aotkernels as ak
from aotkernels import library
x = np.linspace(-2, 2, 7)
got = ak.elemwise("add", x, x)
print(json.dumps({"ok": bool(np.array_equal(got, x + x)),
                  "source": ak.resolve("add", x, x)[1],
                  "library": library.default_library() is not None}))
"""


def run_child(env_extra: dict, code: str = CHILD) -> tuple[dict, list[str]]:
    """(the child's report, its aotkernels log lines); fails if the child died."""
    env = dict(os.environ, **env_extra)
    res = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                         text=True)
    assert res.returncode >= 0, f"child killed by signal {-res.returncode}: {res.stderr}"
    assert res.returncode == 0, res.stderr
    lines = [ln for ln in res.stderr.splitlines() if ln.startswith("aotkernels:")]
    return json.loads(res.stdout.strip().splitlines()[-1]), lines


@pytest.fixture
def lib_copy(aot_lib, tmp_path):
    d = tmp_path / "lib"
    shutil.copytree(aot_lib.directory, d)
    return d


def _manifest(directory) -> dict:
    return json.loads((directory / "manifest.json").read_text())


def _write_manifest(directory, m: dict) -> None:
    (directory / "manifest.json").write_text(json.dumps(m))


def _replace_library(directory, data: bytes) -> None:
    """Install other bytes as the library and reseal the manifest for them, so that only
    the check under test can catch it (the checksum matches)."""
    m = _manifest(directory)
    (entry,) = m["targets"]
    (directory / entry["library"]).write_bytes(data)
    entry["bytes"], entry["sha256"] = len(data), hashlib.sha256(data).hexdigest()
    _write_manifest(directory, m)


def _elf_patch(data: bytes, cls: int, machine: int) -> bytes:
    b = bytearray(data)
    b[4] = cls
    b[18:20] = machine.to_bytes(2, "little")
    return bytes(b)


DAMAGE = {
    # name: (how, words the one log line must contain)
    "aarch64 ELF": (lambda d, so: _replace_library(d, _elf_patch(so, 2, 183)),
                    "built for aarch64 (64-bit ELF)"),
    "i386 ELF": (lambda d, so: _replace_library(d, _elf_patch(so, 1, 3)),
                 "built for i386 (32-bit ELF)"),
    "not an ELF": (lambda d, so: _replace_library(d, b"#!/bin/sh\necho hi\n" * 10),
                   "not an ELF"),
    "truncated": (lambda d, so: (d / _lib_name(d)).write_bytes(so[: len(so) // 2]),
                  "truncated"),
    "tampered": (lambda d, so: (d / _lib_name(d)).write_bytes(
        so[:5000] + bytes([so[5000] ^ 1]) + so[5001:]), "checksum"),
    "missing library": (lambda d, so: (d / _lib_name(d)).unlink(), "cannot load"),
    "missing manifest": (lambda d, so: (d / "manifest.json").unlink(),
                         "manifest.json missing"),
    "half-written manifest": (lambda d, so: (d / "manifest.json").write_text(
        (d / "manifest.json").read_text()[:100]), "unreadable manifest"),
    "wrong ABI version": (lambda d, so: _write_manifest(d, {**_manifest(d), "abi": 999}),
                          "ABI 999"),
    "stale templates": (lambda d, so: _write_manifest(
        d, {**_manifest(d), "families": {"elemwise": "0" * 16}}), "stale"),
}


def _lib_name(directory) -> str:
    return _manifest(directory)["targets"][0]["library"]


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_damaged_library_is_refused_in_one_line_and_the_jit_takes_over(damage, lib_copy):
    so = (lib_copy / _lib_name(lib_copy)).read_bytes()
    how, words = DAMAGE[damage]
    how(lib_copy, so)
    report, lines = run_child({"AOT_LIBRARY_DIR": str(lib_copy)})
    assert len(lines) == 1, lines
    assert words in lines[0] and lines[0].endswith("kernels will be JIT-compiled")
    assert report == {"ok": True, "source": "jit", "library": False}


def test_a_symbol_missing_from_the_library_falls_back_for_that_kernel_only(lib_copy):
    """The manifest lists a kernel the library does not export (a broken build): one line
    when that kernel is first needed, the JIT serves it, every other kernel stays AOT."""
    m = _manifest(lib_copy)
    m["kernels"]["elemwise/maximum/f8,f8->f8/flat1"] = "aotk_maximum_f8f8_f8_flat1_0000000000"
    _write_manifest(lib_copy, m)
    code = CHILD.replace('"add"', '"maximum"').replace("x + x", "np.maximum(x, x)").replace(
        '"library"', '"exp": ak.resolve("exp", x)[1], "library"')
    report, lines = run_child({"AOT_LIBRARY_DIR": str(lib_copy)}, code)
    assert len(lines) == 1 and "lacks aotk_maximum_f8f8_f8_flat1_0000000000" in lines[0], lines
    assert report == {"ok": True, "source": "jit", "exp": "aot", "library": True}


# -- JIT cache entries ----------------------------------------------------------------------

def test_cache_entries_verify_their_object():
    obj = b"\x7fELF" + bytes(range(200))
    entry = jit.seal("aotk_x", obj)
    assert jit.unseal("aotk_x", entry) == obj
    for bad, why in [(entry[:-1], "trailer"), (entry[:40], "trailer"), (b"", "shorter"),
                     (entry[:10] + b"\0" + entry[11:], "checksum"), (obj, "trailer")]:
        with pytest.raises(ValueError, match=why):
            jit.unseal("aotk_x", bad)
    with pytest.raises(ValueError, match="checksum"):
        jit.unseal("aotk_y", entry)  # another kernel's entry under this name


JIT_CHILD = r"""
import json, sys
import numpy as np
import aotkernels as ak
from aotkernels import jit
x = np.arange(24.0).reshape(4, 6)[:, ::2]         # an nd2 maximum: never in the test library
got = ak.elemwise("maximum", x, x)
print(json.dumps({"ok": bool(np.array_equal(got, np.maximum(x, x))), "stats": jit.stats,
                  "llvmlite": "llvmlite" in sys.modules}))
"""


@pytest.mark.parametrize("kind", [".o", ".so"])
def test_damaged_jit_entries_are_recompiled(aot_lib, jit_cache, kind):
    """A damaged object (its shared object gone) is compiled again; a damaged shared object
    is linked again from its object. One warning line each, the right numbers, a whole
    entry afterwards, and no llvmlite in the process that loads the shared object."""
    env = {"AOT_LIBRARY_DIR": str(aot_lib.directory), "AOT_CACHE_DIR": str(jit_cache)}
    report, lines = run_child(env, JIT_CHILD)
    assert report["stats"] == {"compiled": 1, "loaded": 0} and report["ok"] and not lines
    (entry,) = jit_cache.glob(f"*/aotk_maximum_*{kind}")
    magic = jit._SO_MAGIC if kind == ".so" else jit._MAGIC
    good = entry.read_bytes()
    bare = jit.unseal(entry.stem, good, magic)
    damages = {
        "half-written": (good[: len(good) // 2], "no trailer"),
        "empty": (b"", "shorter than its trailer"),
        "bit flip": (good[:100] + bytes([good[100] ^ 1]) + good[101:], "checksum differs"),
        "another kernel's": (jit.seal("aotk_other", bare, magic), "checksum differs"),
        "bare (no trailer)": (bare, "no trailer"),
    }
    again = "relinking" if kind == ".so" else "recompiling"
    stats = {"compiled": 0, "loaded": 1} if kind == ".so" else {"compiled": 1, "loaded": 0}
    for name, (data, words) in damages.items():
        entry.write_bytes(data)
        if kind == ".o":
            entry.with_suffix(".so").unlink()
        report, lines = run_child(env, JIT_CHILD)
        assert len(lines) == 1 and words in lines[0] and again in lines[0], (name, lines)
        assert report["stats"] == stats and report["ok"], name
        assert jit.unseal(entry.stem, entry.read_bytes(), magic)  # whole again
    report, lines = run_child(env, JIT_CHILD)
    assert report == {"ok": True, "stats": {"compiled": 0, "loaded": 1}, "llvmlite": False}
    assert not lines
    assert not [p.name for p in entry.parent.iterdir() if p.name.endswith((".tmp", ".raw"))]
