"""JIT objects as shared objects: linked once by the system compiler, loaded by ``dlopen``.

Loading an object with llvmlite costs a process ``import llvmlite.binding`` and a target
machine (0.4-0.6 s, +88 MiB of peak RSS: the 160 MB ``libllvmlite.so`` relocated), which a
process that only *loads* cached kernels (a warm start, a sampler's fused kernels) need not
pay. So each JIT object is also linked, once, into a shared object of its own (``cc
-shared``, with the few symbols the C shim gives library kernels: numba's gamma helpers and
the ``aotk_special`` table), sealed and cached next to the object by ``aotkernels.jit``;
later processes map it from memory (``memfd_create``, then ``dlopen`` of that descriptor:
the bytes that were verified, not whatever a path names later). Without a compiler, or
where the link or the load fails, the object is loaded with llvmlite as before.
"""

from __future__ import annotations

import atexit
import ctypes
import logging
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from aotkernels import special
from aotkernels.kernels.scalar_ops import SPECIAL_SLOTS, TABLE_SYMBOL
from aotkernels.library import dlopen_fd

log = logging.getLogger("aotkernels")

#: what library kernels get from the C shim (``build_tools/shim/aotk_shim.c``)
STUB = f"""#include <math.h>
#define HIDDEN __attribute__((visibility("hidden")))
HIDDEN double numba_gamma(double x) {{ return tgamma(x); }}
HIDDEN float numba_gammaf(float x) {{ return tgammaf(x); }}
void *{TABLE_SYMBOL}[{SPECIAL_SLOTS}];
"""

_handles: list = []  # the loaded objects: they own the code
_stub_object: list = []  # the compiled stub (None: it did not compile), once tried
_problems: set[str] = set()  # reasons already logged


def _note(why: str) -> None:
    if why not in _problems:
        _problems.add(why)
        log.info("aotkernels: JIT kernels load with llvmlite (%s)", why)


def compiler() -> str | None:
    """``$CC`` or ``cc``, if it is on the path."""
    return shutil.which(os.environ.get("CC") or "cc")


def _stub(cc: str) -> Path | None:
    """``STUB`` compiled once per process, in a private directory that the process which
    made it removes at exit (a forked child keeps using it, and leaves it alone)."""
    if _stub_object:
        return _stub_object[0]
    d = Path(tempfile.mkdtemp(prefix="aotkernels-"))  # 0700, ours
    atexit.register(_remove, d, os.getpid())
    (d / "stub.c").write_text(STUB)
    ok = _run([cc, "-c", "-fPIC", "-O2", "-o", str(d / "stub.o"), str(d / "stub.c")],
              "the stub")
    _stub_object.append(d / "stub.o" if ok else None)  # a failure is not retried
    return _stub_object[0]


def _remove(d: Path, owner: int) -> None:
    if os.getpid() == owner:
        shutil.rmtree(d, ignore_errors=True)


def _run(argv: list[str], what: str) -> bool:
    try:
        res = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    except (OSError, subprocess.TimeoutExpired) as exc:
        _note(f"{argv[0]}: {exc}")
        return False
    if res.returncode:
        _note(f"linking {what}: {(res.stderr.strip().splitlines() or ['failed'])[-1]}")
    return res.returncode == 0


def link(obj: bytes, symbol: str) -> bytes | None:
    """The shared object of one JIT object, or None (no compiler, or the link failed:
    noted once). ``-z defs``: a symbol nothing here defines fails the link, not a load."""
    if not hasattr(os, "memfd_create"):
        _note("no memfd_create here")
        return None
    cc = compiler()
    if cc is None:
        _note("no C compiler on the path to link them")
        return None
    stub = _stub(cc)
    if stub is None:
        return None
    with tempfile.TemporaryDirectory(prefix="aotkernels-") as scratch:  # 0700, ours
        d = Path(scratch)
        (d / "k.o").write_bytes(obj)
        if not _run([cc, "-shared", "-o", str(d / "k.so"), str(d / "k.o"), str(stub), "-lm",
                     "-Wl,-z,defs", "-Wl,-Bsymbolic", "-Wl,-s"], symbol):
            return None
        return (d / "k.so").read_bytes()


def load(data: bytes, symbol: str) -> int | None:
    """Map a verified shared object from memory; its kernel's address (None if it does not
    load here: noted once, and the caller loads the object with llvmlite)."""
    fd = os.memfd_create(symbol, os.MFD_CLOEXEC)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        try:
            dll = dlopen_fd(fd, symbol)
        except OSError as exc:
            _note(f"dlopen: {exc}")
            return None
    finally:
        os.close(fd)
    try:
        addr = ctypes.cast(getattr(dll, symbol), ctypes.c_void_p).value
        table = (ctypes.c_void_p * SPECIAL_SLOTS).in_dll(dll, TABLE_SYMBOL)
    except (AttributeError, ValueError):
        return None
    special.add_table(table)
    _handles.append(dll)
    return addr
