"""Kernels missing from the library: compiled once from the same template, cached on disk.

A miss compiles the signature exactly as ``build-kernels`` would (``generator.compile``,
then ``generator.link`` for this host's CPU), in a child process (``generator.host``) so
numba never enters this one, into an object file under the per-user cache directory, named
by the same symbol as an AOT kernel would be, and links it once into a shared object beside
it (``jit_link``): this and any later process map that with ``dlopen``, importing neither
numba nor llvmlite (where nothing can link, the object is loaded with llvmlite's in-memory
linker). Every miss is appended to ``misses.txt`` so the next ``build-kernels
--from-usage`` can ship it.

Entries are safe to share: each (``.o``, and ``.so`` with its own magic) is the object
followed by a trailer (magic, size, SHA-256 of symbol and object) and appears by one atomic
rename, so a reader sees a whole, verified entry or none; a damaged one (truncated,
modified, another kernel's) is reported in one warning line and compiled (a shared object:
linked) again. Processes compiling the same symbol take a per-symbol file lock:
one compiles, the others wait and load its entry. The in-process lock is renewed in a
forked child, which keeps every kernel its parent had loaded.

A checksum does not say who wrote the entry, so only this user's own files are read
(``aotkernels.trust``): the cache tree is created private (0700), and an entry, its lock and
``misses.txt`` are used only if they and every directory from the cache root down are owned
by this user and writable by no one else, checked on the descriptors that are then read,
never through a symlink. Anything else is one warning line naming the path and the reason,
and the kernel is compiled into a private directory of this process instead.

``AOT_DISABLE_JIT=1`` turns a miss into ``KernelNotAvailable``.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import hashlib
import logging
import os
import struct
from pathlib import Path

from aotkernels import jit_link, special, trust
from aotkernels.library import KERNEL_FN
from aotkernels.process import ForkSafeLock, atomic_write
from aotkernels.signature import ABI_VERSION, Signature
from aotkernels.targets import TARGETS, jit_target

#: Counters for this process (tests and ``info`` read them).
stats = {"compiled": 0, "loaded": 0}

_lock = ForkSafeLock(reentrant=True)
_engines: list = []  # kept alive: they own the loaded code
_fns: dict[str, object] = {}

log = logging.getLogger("aotkernels")

#: entry = object + trailer: magic, object size, sha256(symbol NUL object)
_MAGIC = b"AOTKJIT1"
_SO_MAGIC = b"AOTKSO01"  # the same trailer after a shared object (jit_link)
_TRAILER = struct.Struct(f"<{len(_MAGIC)}sQ32s")
#: a compile that takes longer than this is abandoned (its waiters then compile themselves)
COMPILE_TIMEOUT = 600
#: the niceness of the background compiler thread and of the processes it starts (Linux)
BACKGROUND_NICE = 19


class KernelNotAvailable(LookupError):
    """No prebuilt kernel for a signature, and JIT compilation is disabled or impossible."""


def jit_disabled() -> bool:
    return os.environ.get("AOT_DISABLE_JIT", "") not in ("", "0")


def cache_root() -> Path:
    """``$AOT_CACHE_DIR``, else the XDG rule: ``$XDG_CACHE_HOME`` (if absolute, as the spec
    says) or ``~/.cache``, then ``aotkernels``."""
    root = os.environ.get("AOT_CACHE_DIR")
    if root:
        return Path(root)
    xdg = os.environ.get("XDG_CACHE_HOME", "")
    return (Path(xdg) if os.path.isabs(xdg) else Path.home() / ".cache") / "aotkernels"


def target() -> str | None:
    """The target whose choice of libm or vector bodies JIT kernels make: that of the
    library this process loaded (``targets.jit_target``)."""
    from aotkernels.library import default_library

    lib = default_library()
    return jit_target(lib.target if lib is not None else None)


def host_cpu() -> str:
    """This CPU, as the cache's folder names it, read without LLVM (a process that only
    loads kernels never imports llvmlite): on Linux the first processor's vendor, family,
    model, stepping and flags in ``/proc/cpuinfo``; elsewhere LLVM's host CPU name and
    features, as objects are compiled for them."""
    try:
        with open("/proc/cpuinfo") as f:
            first = f.read().split("\n\n", 1)[0]
    except OSError:
        first = ""
    fields = {k.strip(): v.strip() for k, v in
              (line.split(":", 1) for line in first.splitlines() if ":" in line)}
    keys = (("vendor_id", "cpu family", "model", "stepping", "flags") if "flags" in fields
            else ("CPU implementer", "CPU architecture", "CPU variant", "CPU part", "Features"))
    ident = "|".join(f"{k}={fields[k]}" for k in keys if k in fields)
    if ident:
        return ident
    import llvmlite.binding as llvm

    return f"{llvm.get_host_cpu_name()}|{llvm.get_host_cpu_features().flatten()}"


def cache_dir() -> Path:
    """Per-user cache, one folder per ABI, entry format, host CPU (objects are tuned for
    it) and the ops calling libm (``target``); entries of the first, unverified format live
    in another folder."""
    root = cache_root()
    t = target()
    libm = ",".join(TARGETS[t].libm_ops) if t in TARGETS else ""
    cpu = f"{host_cpu()}|{_MAGIC}" + (f"|libm:{libm}" if libm else "")
    return root / f"abi{ABI_VERSION}-{hashlib.sha256(cpu.encode()).hexdigest()[:12]}"


def cache_problem(directory: Path) -> str | None:
    """Why this process would not use ``directory`` as its cache, or None if it would (a
    missing one is made private on the first miss). For ``info``: creates nothing."""
    try:
        os.close(trust.open_dir(directory.parent, [directory.name]))
    except FileNotFoundError:
        return None
    except (trust.Untrusted, OSError) as exc:
        return _why(exc)
    return None


def _why(exc: Exception) -> str:
    if isinstance(exc, OSError) and exc.filename:
        return f"{exc.filename}: {exc.strerror}"
    return str(exc)


_warned: set[str] = set()


def _warn_once(exc: Exception, then: str) -> None:
    """One line per path and reason, however many kernels meet it."""
    why = _why(exc)
    if why not in _warned:
        _warned.add(why)
        log.warning("aotkernels: JIT cache: %s; %s", why, then)


def _open_cache() -> tuple[int, Path]:
    """The cache directory as (descriptor, path), checked from its root down and made
    private (0700) where missing; this process's private directory if it cannot be trusted
    or made."""
    try:
        directory = cache_dir()
        return trust.open_dir(directory.parent, [directory.name], create=True), directory
    except (trust.Untrusted, OSError, RuntimeError) as exc:  # RuntimeError: no home directory
        _warn_once(exc, f"compiling into {trust.private_dir()} instead")
        return _open_private()


def _open_private() -> tuple[int, Path]:
    directory = trust.private_dir()
    try:
        return trust.open_dir(directory), directory
    except (trust.Untrusted, OSError) as exc:
        raise KernelNotAvailable(f"no directory to JIT-compile into: {_why(exc)}") from None


def _libm_aliases() -> dict[str, int]:
    """numba's helper names for libm functions, bound to libm as the C shim does."""
    import ctypes.util

    libm = ctypes.CDLL(ctypes.util.find_library("m"))
    return {"numba_gamma": ctypes.cast(libm.tgamma, ctypes.c_void_p).value,
            "numba_gammaf": ctypes.cast(libm.tgammaf, ctypes.c_void_p).value}


def _load_object(obj: bytes, symbol: str) -> int:
    """Map one object into executable memory with llvmlite (where ``jit_link`` cannot);
    return its entry point's address.

    One MCJIT engine per object: with several objects in one engine, a kernel loaded after
    another computed wrong results here (llvmlite 0.47), while each object alone is correct.
    """
    try:
        import llvmlite.binding as llvm
    except ImportError:
        raise KernelNotAvailable(f"cannot load {symbol} without a C compiler or llvmlite; "
                                 "install aotkernels[jit]") from None

    from aotkernels.generator.link import host_machine

    if not _engines:
        for name, addr in _libm_aliases().items():
            llvm.add_symbol(name, addr)
        special.link_symbol()
    tm = host_machine()
    engine = llvm.create_mcjit_compiler(llvm.parse_assembly(f'target triple = "{tm.triple}"'),
                                        tm)
    engine.add_object_file(llvm.ObjectFileRef.from_data(obj))
    engine.finalize_object()
    _engines.append(engine)
    return engine.get_function_address(symbol)


def _load_shared(dir_fd: int, path: Path, symbol: str) -> int | None:
    """The kernel from its cached shared object, if there is a good one that loads."""
    shared = _read_entry(dir_fd, path.with_suffix(".so"), symbol, magic=_SO_MAGIC)
    return None if shared is None else jit_link.load(shared, symbol)


def _link_new(dir_fd: int, path: Path, symbol: str, obj: bytes) -> bytes | None:
    """``obj`` (verified) linked into a shared object and cached next to it, or None where
    this host cannot link."""
    shared = jit_link.link(obj, symbol)
    if shared is not None:
        with contextlib.suppress(OSError):  # the cache is a saving, never a failure
            atomic_write(path.with_suffix(".so"), seal(symbol, shared, _SO_MAGIC),
                         dir_fd=dir_fd, mode=0o600)
    return shared


def _load_new(obj: bytes, shared: bytes | None, symbol: str) -> int:
    """The kernel's address: from its shared object if it loads, else from the object with
    llvmlite. Under ``_lock``."""
    addr = jit_link.load(shared, symbol) if shared is not None else None
    return addr or _load_object(obj, symbol)


def _digest(symbol: str, obj: bytes) -> bytes:
    return hashlib.sha256(symbol.encode() + b"\0" + obj).digest()


def seal(symbol: str, obj: bytes, magic: bytes = _MAGIC) -> bytes:
    """A cache entry: the object, then the trailer that lets a reader verify it (the graph
    cache seals its entries the same way, with its own 8-byte ``magic``)."""
    return obj + _TRAILER.pack(magic, len(obj), _digest(symbol, obj))


def unseal(symbol: str, entry: bytes, magic: bytes = _MAGIC) -> bytes:
    """The object in a cache entry; ``ValueError`` (why, in a few words) if damaged."""
    if len(entry) < _TRAILER.size:
        raise ValueError(f"{len(entry)} bytes, shorter than its trailer")
    found, size, digest = _TRAILER.unpack(entry[-_TRAILER.size:])
    obj = entry[:-_TRAILER.size]
    if found != magic:
        raise ValueError("no trailer (truncated or not written by aotkernels)")
    if size != len(obj):
        raise ValueError(f"{len(obj)} bytes of object, trailer says {size}")
    if digest != _digest(symbol, obj):
        raise ValueError(f"checksum differs (modified, or not {symbol})")
    return obj


def _read_entry(dir_fd: int, path: Path, symbol: str, warn: bool = True,
                magic: bytes = _MAGIC) -> bytes | None:
    """The verified object of an entry, or None if it is missing or damaged; an entry that
    is not this user's own raises ``trust.Untrusted``."""
    try:
        fd = trust.open_file(dir_fd, path.name, path)
        try:
            entry = trust.read_fd(fd)
        finally:
            os.close(fd)
    except FileNotFoundError:
        return None
    except OSError as exc:
        if warn:
            log.warning("aotkernels: JIT cache entry %s is unreadable (%s); recompiling it",
                        path, exc.strerror)
        return None
    try:
        return unseal(symbol, entry, magic)
    except ValueError as exc:
        if warn:
            log.warning("aotkernels: JIT cache entry %s is damaged (%s); %s it", path, exc,
                        "relinking" if magic == _SO_MAGIC else "recompiling")
        return None


@contextlib.contextmanager
def _file_lock(dir_fd: int, directory: Path, symbol: str):
    """Exclusive per-symbol lock across processes; released explicitly (a forked child may
    hold a copy of the descriptor) and by the kernel if the holder dies."""
    name = f".{symbol}.lock"
    fd = trust.open_file(dir_fd, name, directory / name, os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def _compile_object(sig: Signature, dir_fd: int, path: Path, symbol: str) -> bytes:
    return _compile_objects([(sig, symbol)], dir_fd)[sig.key]


def _compile_objects(todo: list[tuple[Signature, str]], dir_fd: int) -> dict[str, bytes]:
    """Compile (signature, symbol) pairs in one child process (numba is imported once) into
    entries of the checked directory ``dir_fd``; key -> object."""
    import importlib.util
    import subprocess
    import sys
    import tempfile

    from aotkernels.kernels import FAMILIES, program_json

    keys = ", ".join(sig.key for sig, _ in todo)
    if importlib.util.find_spec("numba") is None:
        raise KernelNotAvailable(f"no prebuilt kernel for {keys}; install "
                                 "aotkernels[jit] to compile it on demand")
    # user catalogs are imported by the child; programs (fused runs, scalar loops) travel
    # as data, one "family<TAB>JSON" a line
    catalogs = sorted({"=".join(FAMILIES[sig.family].origin) for sig, _ in todo
                       if FAMILIES[sig.family].origin})
    programs = "\n".join(f"{sig.family}\t{program_json(sig)}" for sig, _ in todo
                         if program_json(sig) is not None)
    env = {**os.environ, "AOT_PROGRAMS": programs} if programs else dict(os.environ)
    t = target()  # the child makes the loaded library's choice of libm or vector bodies
    if t:
        env["AOT_JIT_TARGET"] = t
    objs = {}
    with tempfile.TemporaryDirectory(prefix="aotkernels-") as scratch:  # 0700, ours
        raws = [Path(scratch) / f"{symbol}.raw" for _, symbol in todo]
        argv = [x for (sig, _), raw in zip(todo, raws) for x in (sig.key, str(raw))]
        try:
            with subprocess.Popen([sys.executable, "-m", "aotkernels.generator.host", *argv,
                                   *catalogs], stdout=subprocess.DEVNULL,
                                  stderr=subprocess.PIPE, text=True, env=env) as child:
                _children.add(child)  # a process that exits first stops it (_stop_children)
                try:
                    _, err = child.communicate(timeout=COMPILE_TIMEOUT)
                except subprocess.TimeoutExpired:
                    child.kill()
                    raise
                finally:
                    _children.discard(child)
            if child.returncode:
                err = (err.strip().splitlines() or ["no output"])[-1]
                raise KernelNotAvailable(f"JIT compilation of {keys} failed: {err}")
            for (sig, symbol), raw in zip(todo, raws):
                objs[sig.key] = obj = raw.read_bytes()
                # a private file (0600) in the checked directory: whole entries or none
                atomic_write(Path(f"{symbol}.o"), seal(symbol, obj), dir_fd=dir_fd, mode=0o600)
                stats["compiled"] += 1
        except subprocess.TimeoutExpired:
            raise KernelNotAvailable(f"JIT compilation of {keys} took over "
                                     f"{COMPILE_TIMEOUT} s") from None
    return objs


def _compile_once(sig: Signature, dir_fd: int, path: Path, symbol: str) -> bytes:
    """Compile under the per-symbol file lock, unless another process did meanwhile."""
    with _file_lock(dir_fd, path.parent, symbol):
        obj = _read_entry(dir_fd, path, symbol, warn=False)
        if obj is not None:
            stats["loaded"] += 1
            return obj
        obj = _compile_object(sig, dir_fd, path, symbol)
        _record_miss(dir_fd, path.parent, sig)
        return obj


def _record_miss(dir_fd: int, directory: Path, sig: Signature) -> None:
    """Append to ``misses.txt``, only if it is this user's own file."""
    try:
        fd = trust.open_file(dir_fd, "misses.txt", directory / "misses.txt",
                             os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    except trust.Untrusted as exc:
        _warn_once(exc, "not recording misses there")
        return
    except OSError:
        return  # the record is a hint for the next build, never a reason to fail a call
    try:
        from aotkernels.kernels import program_json

        line = sig.key
        program = program_json(sig)
        if program is not None:  # the key names a program the build must be given
            line += "\t" + program
        os.write(fd, (line + "\n").encode())
    except OSError:
        pass
    finally:
        os.close(fd)


def _cached_kernel(sig: Signature, symbol: str) -> int:
    """The kernel's address: from this user's cache (its shared object, else its object)
    or compiled into it; if the cache, an entry or its lock is not this user's own, from
    this process's private directory instead (one warning)."""
    for open_dir in (_open_cache, _open_private):
        dir_fd, directory = open_dir()
        path = directory / f"{symbol}.o"
        try:
            addr = _load_shared(dir_fd, path, symbol)
            if addr:
                stats["loaded"] += 1
                return addr
            obj = _read_entry(dir_fd, path, symbol)
            if obj is None:
                obj = _compile_once(sig, dir_fd, path, symbol)
            else:
                stats["loaded"] += 1
            addr = _load_new(obj, _link_new(dir_fd, path, symbol, obj), symbol)
            if not addr:  # verified, so this is a generator bug rather than a damaged file
                raise KernelNotAvailable(f"JIT object {path} lacks {symbol}")
            return addr
        except trust.Untrusted as exc:
            _warn_once(exc, f"compiling into {trust.private_dir()} instead")
        finally:
            os.close(dir_fd)
    raise KernelNotAvailable(f"no directory to JIT-compile {sig.key} into")


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
        from aotkernels.kernels import template_hash

        fn = KERNEL_FN(_cached_kernel(sig, sig.symbol(template_hash(sig.family))))
        _fns[key] = fn
        return fn


def in_cache(sigs: list[Signature]) -> bool:
    """Whether every kernel of ``sigs`` is loaded or has an entry in this user's cache:
    getting them is a load, not a compile (an exported sampler plan waits for such kernels,
    ``cplan.planned``). Opens nothing; an entry that fails its check later is compiled."""
    if jit_disabled():
        return False
    todo = [sig for sig in sigs if sig.key not in _fns]
    if not todo:
        return True
    try:
        directory = cache_dir()
    except ImportError:  # a CPU only llvmlite can name, and no llvmlite: nothing loads
        return False
    from aotkernels.kernels import template_hash

    return all((directory / f"{sig.symbol(template_hash(sig.family))}.o").is_file()
               for sig in todo)  # a shared object is made from its object


_children: set = set()  # compiler processes running now


@atexit.register
def _stop_children() -> None:
    """A process exiting does not wait for background compiles (it will not use them)."""
    for child in list(_children):
        with contextlib.suppress(OSError):
            child.kill()


_queue: list = []  # the background compiler's work queue, made with its thread
os.register_at_fork(after_in_child=_queue.clear)  # the thread is not in a forked child


def functions_later(sigs: list[Signature]):
    """A ``Future`` of the kernels for ``sigs`` (ctypes functions, in order), loaded from the
    cache or compiled, all missing ones in one child process, by one background (daemon)
    thread: the caller never waits for a compiler (fused kernels arrive this way). The
    future raises ``KernelNotAvailable`` (or ``trust.Untrusted``) where ``function``
    would."""
    import concurrent.futures
    import queue
    import threading

    future = concurrent.futures.Future()
    with _lock:
        if not _queue:
            _queue.append(queue.SimpleQueue())
            threading.Thread(target=_background, args=(_queue[0],), daemon=True,
                             name="aotkernels-jit").start()
        _queue[0].put((future, list(sigs)))
    return future


def _background(work) -> None:
    _yield_the_cpu()
    while True:
        future, sigs = work.get()
        if not future.set_running_or_notify_cancel():
            continue
        try:
            future.set_result(_load_all(sigs))
        except BaseException as exc:  # the future carries it to the plan
            future.set_exception(exc)


def _yield_the_cpu() -> None:
    """Make the calling (background) thread, and every compiler and linker process it
    starts, the lowest priority (Linux: a thread's nice value is its own, and a child
    inherits its thread's). Plans run unfused until these compiles end, while the process's
    other work, or its siblings' (``pm.sample``'s chains), should run at full speed on the
    same cores: at equal priority a compile took a third of the CPU from two sampling
    chains on two cores. An idle core still runs it at full speed (so does the core of a
    caller that waits for it, ``Plan.fuse(timeout)``); only busier work of the same user
    at normal priority slows it."""
    import sys
    import threading

    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError):
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), BACKGROUND_NICE)


def _load_all(sigs: list[Signature]) -> list:
    if jit_disabled():
        raise KernelNotAvailable("AOT_DISABLE_JIT is set")
    from aotkernels.kernels import template_hash

    symbols = {sig.key: sig.symbol(template_hash(sig.family)) for sig in sigs}
    todo = [sig for sig in sigs if sig.key not in _fns]
    dir_fd, directory = _open_cache()
    try:
        addrs, objs = {}, {}
        for sig in todo:
            path = directory / f"{symbols[sig.key]}.o"
            addr = _load_shared(dir_fd, path, symbols[sig.key])
            if addr:
                addrs[sig.key] = addr
                stats["loaded"] += 1
                continue
            obj = _read_entry(dir_fd, path, symbols[sig.key])
            if obj is not None:
                objs[sig.key] = obj
                stats["loaded"] += 1
        missing = [(sig, symbols[sig.key]) for sig in todo
                   if sig.key not in objs and sig.key not in addrs]
        if missing:  # one compile per batch across processes (forked sampler chains)
            batch = hashlib.sha256(" ".join(sym for _, sym in missing).encode()).hexdigest()
            with _file_lock(dir_fd, directory, f"batch-{batch[:16]}"):
                for sig, symbol in missing:
                    obj = _read_entry(dir_fd, directory / f"{symbol}.o", symbol, warn=False)
                    if obj is not None:
                        objs[sig.key] = obj
                again = [(sig, sym) for sig, sym in missing if sig.key not in objs]
                if again:
                    objs.update(_compile_objects(again, dir_fd))
                    for sig, _ in again:
                        _record_miss(dir_fd, directory, sig)
        shared = {key: _link_new(dir_fd, directory / f"{symbols[key]}.o", symbols[key], obj)
                  for key, obj in objs.items()}  # linked in this thread: no caller waits
    finally:
        os.close(dir_fd)
    with _lock:
        for key, obj in objs.items():
            addrs[key] = _load_new(obj, shared[key], symbols[key])
        for sig in todo:
            if sig.key not in _fns:
                if not addrs.get(sig.key):
                    raise KernelNotAvailable(f"JIT object for {sig.key} lacks its symbol")
                _fns[sig.key] = KERNEL_FN(addrs[sig.key])
        return [_fns[sig.key] for sig in sigs]
