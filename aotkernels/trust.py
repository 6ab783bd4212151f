"""Who may make this process run code: the installed library, the user's own cache, nothing else.

The kernel library and the JIT cache hold native code that this process maps and runs. Their
checksums (the manifest's SHA-256, the trailer of a cache entry) find damage, not intent:
whoever can write a file can write its checksum too. So a file is read only if it, and every
directory from the configured root down to it, is owned by this user (or root, for the
installed library) and writable by no one else: the rule ssh applies to its keys.

Every check is ``fstat`` on the descriptor that is then read, and nothing below the root is
reached through a symbolic link, so a file or directory swapped between the check and the
read is refused instead of followed. The root itself is opened as configured (a symlink in
``$AOT_CACHE_DIR`` or ``~/.cache`` is the user's own choice) and then checked like the rest.
"""

from __future__ import annotations

import atexit
import contextlib
import errno
import os
import shutil
import stat
import tempfile
from collections.abc import Iterable
from pathlib import Path

#: the mode bits that let someone other than the owner change a file or a directory's entries
_SHARED_WRITE = stat.S_IWGRP | stat.S_IWOTH


class Untrusted(Exception):
    """A path this process must not take code from; ``str()`` names it and says why."""

    def __init__(self, path: str | os.PathLike, reason: str) -> None:
        super().__init__(f"{path} {reason}")
        self.path, self.reason = Path(path), reason


def check_fd(fd: int, path: str | os.PathLike, root_ok: bool = False) -> None:
    """The one ownership rule: raise ``Untrusted`` unless the open ``fd`` (shown as ``path``)
    is owned by this user (or by root, with ``root_ok``) and writable by no one else."""
    st = os.fstat(fd)
    me = os.geteuid()
    if st.st_uid != me and not (root_ok and st.st_uid == 0):
        who = "this user or root" if root_ok and me != 0 else "this user"
        raise Untrusted(path, f"is owned by uid {st.st_uid}, not by {who} (uid {me})")
    if st.st_mode & _SHARED_WRITE:
        who = " and ".join(w for bit, w in ((stat.S_IWGRP, "group"), (stat.S_IWOTH, "others"))
                           if st.st_mode & bit)
        raise Untrusted(path, f"is writable by {who} (mode {stat.S_IMODE(st.st_mode):o})")


def _open_at(dir_fd: int | None, name: str | os.PathLike, path: Path, flags: int,
             mode: int = 0o600) -> int:
    """``os.open`` that never follows a symlink in the last component: one is ``Untrusted``."""
    try:
        return os.open(name, flags | os.O_NOFOLLOW | os.O_CLOEXEC, mode, dir_fd=dir_fd)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise Untrusted(path, "is a symbolic link") from None
        if exc.errno == errno.ENOTDIR and flags & os.O_DIRECTORY:
            # O_DIRECTORY | O_NOFOLLOW reports a symlink to a directory as "not a directory"
            st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
            kind = "a symbolic link" if stat.S_ISLNK(st.st_mode) else "not a directory"
            raise Untrusted(path, f"is {kind}") from None
        raise


def open_dir(root: str | os.PathLike, below: Iterable[str] = (), create: bool = False,
             root_ok: bool = False) -> int:
    """A descriptor of ``root/below...`` with every directory on the way checked
    (``check_fd``); each name in ``below`` is opened relative to its checked parent and never
    through a symlink. With ``create``, missing directories are made private (0700).
    Raises ``Untrusted``, or ``OSError`` (``FileNotFoundError`` without ``create``)."""
    path = Path(root)
    if create:
        os.makedirs(path, mode=0o700, exist_ok=True)
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        check_fd(fd, path, root_ok)
        for name in below:
            path = path / name
            if create:
                with contextlib.suppress(FileExistsError):
                    os.mkdir(name, 0o700, dir_fd=fd)
            sub = _open_at(fd, name, path, os.O_RDONLY | os.O_DIRECTORY)
            os.close(fd)
            fd = sub
            check_fd(fd, path, root_ok)
    except BaseException:
        os.close(fd)
        raise
    return fd


def open_file(dir_fd: int, name: str, path: str | os.PathLike, flags: int = os.O_RDONLY,
              mode: int = 0o600, root_ok: bool = False) -> int:
    """A descriptor of the regular file ``name`` in the checked directory ``dir_fd`` (shown
    as ``path``), opened without following a symlink and checked on that descriptor; a file
    it creates gets ``mode``. Raises ``Untrusted`` or ``OSError``."""
    fd = _open_at(dir_fd, name, Path(path), flags, mode)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise Untrusted(path, "is not a regular file")
        check_fd(fd, path, root_ok)
    except BaseException:
        os.close(fd)
        raise
    return fd


def read_fd(fd: int) -> bytes:
    """Everything in the file open as ``fd`` (from its start), leaving ``fd`` open."""
    with open(fd, "rb", closefd=False) as f:
        f.seek(0)
        return f.read()


_private: dict[int, Path] = {}


def private_dir() -> Path:
    """This process's own temporary directory (0700, removed at exit): where the JIT
    compiles when the configured cache cannot be trusted. A forked child makes its own."""
    pid = os.getpid()
    if pid not in _private:
        d = Path(tempfile.mkdtemp(prefix="aotkernels-"))
        atexit.register(lambda: os.getpid() == pid and shutil.rmtree(d, ignore_errors=True))
        _private[pid] = d
    return _private[pid]
