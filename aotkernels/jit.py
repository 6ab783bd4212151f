"""Kernels missing from the library: compiled once from the same template, cached on disk.

A miss compiles the signature exactly as ``build-kernels`` would (``generator.compile``,
then ``generator.link`` for this host's CPU), in a child process (``generator.host``) so
numba never enters this one, into an object file under the per-user cache directory, named
by the same symbol as an AOT kernel would be. This and any later process load that object
with llvmlite's in-memory linker: no numba import, no compilation. Every miss
is appended to ``misses.txt`` so the next ``build-kernels --from-usage`` can ship it.

``AOT_DISABLE_JIT=1`` turns a miss into ``KernelNotAvailable``.
"""

from __future__ import annotations

import hashlib
import os
import threading
from pathlib import Path

from aotkernels.library import KERNEL_FN
from aotkernels.signature import ABI_VERSION, Signature

#: Counters for this process (tests and ``info`` read them).
stats = {"compiled": 0, "loaded": 0}

_lock = threading.RLock()
_engines: list = []  # kept alive: they own the loaded code
_fns: dict[str, object] = {}


class KernelNotAvailable(LookupError):
    """No prebuilt kernel for a signature, and JIT compilation is disabled or impossible."""


def jit_disabled() -> bool:
    return os.environ.get("AOT_DISABLE_JIT", "") not in ("", "0")


def cache_dir() -> Path:
    """Per-user cache, one folder per ABI and host CPU (objects are tuned for it)."""
    root = os.environ.get("AOT_CACHE_DIR")
    if root is None:
        import platformdirs

        root = platformdirs.user_cache_dir("aotkernels")
    import llvmlite.binding as llvm

    cpu = f"{llvm.get_host_cpu_name()}|{llvm.get_host_cpu_features().flatten()}"
    return Path(root) / f"abi{ABI_VERSION}-{hashlib.sha256(cpu.encode()).hexdigest()[:12]}"


def _libm_aliases() -> dict[str, int]:
    """numba's helper names for libm functions, bound to libm as the C shim does."""
    import ctypes.util

    libm = ctypes.CDLL(ctypes.util.find_library("m"))
    return {"numba_gamma": ctypes.cast(libm.tgamma, ctypes.c_void_p).value,
            "numba_gammaf": ctypes.cast(libm.tgammaf, ctypes.c_void_p).value}


def _load_object(obj: bytes, symbol: str) -> int:
    """Map one object into executable memory; return its entry point's address.

    One MCJIT engine per object: with several objects in one engine, a kernel loaded after
    another computed wrong results here (llvmlite 0.47), while each object alone is correct.
    """
    import llvmlite.binding as llvm

    from aotkernels.generator.link import host_machine

    if not _engines:
        for name, addr in _libm_aliases().items():
            llvm.add_symbol(name, addr)
    tm = host_machine()
    engine = llvm.create_mcjit_compiler(llvm.parse_assembly(f'target triple = "{tm.triple}"'),
                                        tm)
    engine.add_object_file(llvm.ObjectFileRef.from_data(obj))
    engine.finalize_object()
    _engines.append(engine)
    return engine.get_function_address(symbol)


def _compile_object(sig: Signature, path: Path) -> bytes:
    import importlib.util
    import subprocess
    import sys

    if importlib.util.find_spec("numba") is None:
        raise KernelNotAvailable(f"no prebuilt kernel for {sig.key}; install "
                                 "aotkernels[jit] to compile it on demand")
    path.parent.mkdir(parents=True, exist_ok=True)
    res = subprocess.run([sys.executable, "-m", "aotkernels.generator.host", sig.key, str(path)],
                         capture_output=True, text=True)
    if res.returncode:
        err = (res.stderr.strip().splitlines() or ["no output"])[-1]
        raise KernelNotAvailable(f"JIT compilation of {sig.key} failed: {err}")
    stats["compiled"] += 1
    return path.read_bytes()


def _record_miss(directory: Path, sig: Signature) -> None:
    try:
        with open(directory / "misses.txt", "a") as f:
            f.write(sig.key + "\n")
    except OSError:
        pass  # the record is a hint for the next build, never a reason to fail a call


def function(sig: Signature):
    """The kernel for ``sig`` as a ctypes function: from the disk cache, else compiled."""
    key = sig.key
    if jit_disabled():  # before the memo: "disabled" means no JIT kernel runs at all
        raise KernelNotAvailable(f"no prebuilt kernel for {key} and AOT_DISABLE_JIT is set")
    fn = _fns.get(key)
    if fn is not None:
        return fn
    with _lock:
        fn = _fns.get(key)
        if fn is not None:
            return fn
        try:
            import llvmlite.binding  # noqa: F401
        except ImportError:
            raise KernelNotAvailable(f"no prebuilt kernel for {key}; install "
                                     "aotkernels[jit] to compile it on demand") from None
        from aotkernels.kernels import template_hash

        symbol = sig.symbol(template_hash(sig.family))
        directory = cache_dir()
        path = directory / f"{symbol}.o"
        try:
            obj = path.read_bytes()
        except FileNotFoundError:
            obj = None
        if obj is None:
            obj = _compile_object(sig, path)
            _record_miss(directory, sig)
        else:
            stats["loaded"] += 1
        addr = _load_object(obj, symbol)
        if not addr:
            raise KernelNotAvailable(f"JIT object {path} lacks {symbol}; delete it to rebuild")
        fn = KERNEL_FN(addr)
        _fns[key] = fn
        return fn
