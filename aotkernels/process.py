"""What keeps files and locks sound across processes: atomic writes, locks a fork renews;
and the one process-wide setting aotkernels changes, the garbage collector's freeze.

Caches here (the build's IR and object caches, the JIT cache) are shared by concurrent
processes, so every file appears whole or not at all (``atomic_write``), and a process
forked while another thread held a lock gets a fresh one (``ForkSafeLock``) instead of
waiting forever on a copy nobody will release.
"""

from __future__ import annotations

import contextlib
import gc
import os
import threading
import weakref
from pathlib import Path


def atomic_write(path: Path, data: bytes | str, dir_fd: int | None = None,
                 mode: int = 0o644) -> None:
    """Write ``data`` to ``path`` through a new file renamed over it: readers see the whole
    old file, the whole new one, or none. With ``dir_fd``, ``path`` is a name in that
    (already checked) directory. The new file is created here (``O_EXCL``, never through a
    symlink), so nobody else holds it open."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    if isinstance(data, str):
        data = data.encode()
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                     mode, dir_fd=dir_fd)
    except FileExistsError:  # left by a dead process that had this pid and thread id
        os.unlink(tmp, dir_fd=dir_fd)
        return atomic_write(path, data, dir_fd, mode)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp, dir_fd=dir_fd)
        raise


class ForkSafeLock:
    """A (re-entrant, if asked) lock renewed in a forked child."""

    def __init__(self, reentrant: bool = False):
        self._factory = threading.RLock if reentrant else threading.Lock
        self._lock = self._factory()
        _LOCKS.add(self)

    def __enter__(self):
        return self._lock.__enter__()

    def __exit__(self, *exc):
        return self._lock.__exit__(*exc)

    def renew(self) -> None:
        self._lock = self._factory()


_LOCKS: weakref.WeakSet = weakref.WeakSet()


def _renew_all() -> None:
    for lock in list(_LOCKS):
        lock.renew()


os.register_at_fork(after_in_child=_renew_all)


#: whether ``freeze_once`` froze this process's objects already (two compiling threads
#: freeze once between them)
_frozen: list[bool] = []
_freezing = ForkSafeLock()


def freeze_once() -> None:
    """Once per process, at its first mode-AOT (or nutpie) compile, move every object alive
    now (mostly what importing PyMC, PyTensor and their dependencies made: ~300,000 objects)
    out of the garbage collector's full collections (``gc.freeze``). In a fresh process the
    first full collection came during the first compile's rewriting and scanned them all:
    0.15-0.4 s, half of a cold compile of a mid-sized model. Later full collections scan
    only what is newer, and forked children (``pm.sample``'s chains) leave those pages
    shared. The price: a reference cycle that is garbage now, or becomes garbage later among
    what is frozen, is never freed (once: later compiles freeze nothing).
    ``AOT_GC_FREEZE=0`` leaves the collector alone."""
    if _frozen:
        return
    with _freezing:
        if _frozen:
            return
        _frozen.append(True)
        if os.environ.get("AOT_GC_FREEZE", "1").strip().lower() not in ("0", "false", "no",
                                                                         "off"):
            gc.freeze()
