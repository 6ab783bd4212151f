"""What keeps files and locks sound across processes: atomic writes, locks a fork renews.

Caches here (the build's IR and object caches, the JIT cache) are shared by concurrent
processes, so every file appears whole or not at all (``atomic_write``), and a process
forked while another thread held a lock gets a fresh one (``ForkSafeLock``) instead of
waiting forever on a copy nobody will release.
"""

from __future__ import annotations

import os
import threading
import weakref
from pathlib import Path


def atomic_write(path: Path, data: bytes | str) -> None:
    """Write ``data`` to ``path`` through a temporary file renamed over it: readers see the
    whole old file, the whole new one, or none."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        if isinstance(data, str):
            tmp.write_text(data)
        else:
            tmp.write_bytes(data)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


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
