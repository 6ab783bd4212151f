"""Load the prebuilt kernel library for this CPU: numpy and ctypes only, never numba.

The libraries and ``manifest.json`` live in ``aotkernels/_lib`` inside the wheel, or in
``$AOT_LIBRARY_DIR``. The manifest is checked before anything is called: its ABI version
and template hashes must match this package, and its target must run on this CPU. Any
problem raises ``LibraryError`` with one clear line; ``default_library()`` turns that into a
logged warning and the runtime JIT-compiles what it needs instead.

Before any of that, the directory, the manifest and the library must be owned by this user
or root and writable by no one else (``aotkernels.trust``): the manifest's checksum is only
worth what its writer is. They are checked and read through descriptors, and the loader
maps the very file that was checked (``/proc/self/fd``), not whatever its path names later.
"""

from __future__ import annotations

import ctypes
import hashlib
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

from aotkernels import trust
from aotkernels.process import ForkSafeLock
from aotkernels.signature import ABI_VERSION, Signature
from aotkernels.targets import TARGETS, host_arch, host_level

log = logging.getLogger("aotkernels")

#: ``int32 kernel(void **data, const int64 *shapes, const int64 *strides)``
KERNEL_FN = ctypes.CFUNCTYPE(ctypes.c_int32, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p)

PACKAGE_LIB_DIR = Path(__file__).resolve().parent / "_lib"


class LibraryError(RuntimeError):
    """The kernel library is missing, damaged, stale or cannot run on this machine."""


def library_dir() -> Path:
    env = os.environ.get("AOT_LIBRARY_DIR")
    return Path(env).resolve() if env else PACKAGE_LIB_DIR


def _refused(exc: trust.Untrusted) -> LibraryError:
    return LibraryError(f"refusing the kernel library: {exc}")


def _open_dir(directory: Path) -> int:
    """A descriptor of the library directory, checked: owned by this user or root and
    writable by no one else."""
    try:
        return trust.open_dir(directory, root_ok=True)
    except FileNotFoundError:
        raise LibraryError(f"no kernel library in {directory} (manifest.json missing)") from None
    except trust.Untrusted as exc:
        raise _refused(exc) from None
    except OSError as exc:
        raise LibraryError(f"cannot open {directory}: {exc.strerror}") from None


def _open_file(dir_fd: int, path: Path) -> int:
    """A descriptor of a file of the library, checked like its directory (never a symlink)."""
    try:
        return trust.open_file(dir_fd, path.name, path, root_ok=True)
    except trust.Untrusted as exc:
        raise _refused(exc) from None


def read_manifest(directory: Path, dir_fd: int | None = None) -> dict:
    """The checked manifest in ``directory`` (read through ``dir_fd`` if it is open)."""
    path = directory / "manifest.json"
    fd = _open_dir(directory) if dir_fd is None else dir_fd
    try:
        mfd = _open_file(fd, path)
        try:
            manifest = json.loads(trust.read_fd(mfd))
        finally:
            os.close(mfd)
    except FileNotFoundError:
        raise LibraryError(f"no kernel library in {directory} (manifest.json missing)") from None
    except (OSError, ValueError) as exc:
        raise LibraryError(f"unreadable manifest {path}: {exc}") from None
    finally:
        if dir_fd is None:
            os.close(fd)
    if manifest.get("abi") != ABI_VERSION:
        raise LibraryError(f"{path} has kernel ABI {manifest.get('abi')}, this runtime "
                           f"needs {ABI_VERSION}: rebuild the library")
    _check_templates(manifest, path)
    return manifest


def _check_templates(manifest: dict, path: Path) -> None:
    """Refuse a library built from other templates than the ones installed beside it."""
    from aotkernels.kernels import FAMILIES, template_hash

    for family, digest in manifest.get("families", {}).items():
        if family not in FAMILIES:
            raise LibraryError(f"{path} has unknown kernel family {family!r}")
        if template_hash(family) != digest:
            raise LibraryError(f"{path} is stale: the {family} templates changed since it "
                               "was built (rebuild with build-kernels)")


@dataclass
class Library:
    """One loaded kernel library: its manifest and symbol table, resolved lazily."""

    directory: Path
    target: str
    reason: str
    manifest: dict
    dll: ctypes.CDLL
    blas: str = "none"  # what the BLAS trampolines call (``bind_blas``)
    special: bool = False  # its SciPy slot table is filled (``aotkernels.special.bind``)
    lapack: str = "none"  # what the LAPACK trampolines call (``bind_lapack``)
    kernels: dict[str, str] = field(init=False)
    #: ``find``'s memo: its arguments -> (Signature, fn) or (None, None)
    _choices: dict = field(default_factory=dict, init=False, repr=False)
    _fns: dict = field(default_factory=dict, init=False, repr=False)
    _executor: tuple | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        self.kernels = self.manifest["kernels"]

    @property
    def path(self) -> Path:
        return self.directory / library_file(self.manifest, self.target)

    def find(self, family: str, op: str, ins: tuple[str, ...], out: str, ndim: int,
             flat: bool = False, pads: bool = True):
        """(Signature, ctypes function) of the best shipped kernel for operands of collapsed
        rank ``ndim`` (``Signature.candidates``), or (None, None); memoised."""
        key = (family, op, ins, out, ndim, flat, pads)
        hit = self._choices.get(key)
        if hit is None:
            hit = None, None
            for sig in Signature.candidates(family, op, ins, out, ndim, flat, pads):
                fn = self.function(sig.key)
                if fn is not None:
                    hit = sig, fn
                    break
            self._choices[key] = hit
        return hit

    def executor(self):
        """(``aotk_run_steps``, the most operands one of its steps takes), both exported by
        the C shim, or None for a library built before them (plans are then off)."""
        if self._executor is None:
            run = getattr(self.dll, "aotk_run_steps", None)
            limit = getattr(self.dll, "aotk_max_operands", None)
            if run is None or limit is None:
                self._executor = ()
            else:
                run.argtypes = [ctypes.c_int64, ctypes.c_void_p, ctypes.c_void_p,
                                ctypes.c_void_p]
                run.restype = ctypes.c_int32
                self._executor = (run, limit())
        return self._executor or None

    def call_runner(self):
        """``aotk_run_call`` (a plan's call with its arrays' roots read in C), or None for a
        library built before it (``Plan.fast_path`` then sets the roots from Python)."""
        run = getattr(self.dll, "aotk_run_call", None)
        if run is not None:
            run.argtypes, run.restype = [ctypes.c_void_p], ctypes.c_int32
        return run

    def function(self, key: str):
        """The kernel for a signature key as a ctypes function, or None if not shipped.

        A symbol the manifest lists but the library lacks is found here, before any call:
        one warning, and that kernel is treated as not shipped (JIT-compiled instead).
        """
        fn = self._fns.get(key)
        if fn is None:
            symbol = self.kernels.get(key)
            if symbol is None:
                return None
            try:
                fn = KERNEL_FN((symbol, self.dll))
            except AttributeError:
                log.warning("aotkernels: %s lacks %s listed in its manifest; that kernel will "
                            "be JIT-compiled", self.path, symbol)
                self.kernels = {k: v for k, v in self.kernels.items() if k != key}
                return None
            self._fns[key] = fn
        return fn


def library_file(manifest: dict, target: str) -> str:
    """The file name of ``target``'s library (``lib<name>_<target>.so``, as staged)."""
    return next(t["library"] for t in manifest["targets"] if t["name"] == target)


def choose_target(manifest: dict) -> tuple[str, str]:
    """(target name, why) for this machine, honouring ``AOT_CPU_TARGET``."""
    shipped = {t["name"] for t in manifest["targets"]}
    forced = os.environ.get("AOT_CPU_TARGET")
    level = host_level()
    if forced:
        t = TARGETS.get(forced)
        if t is None or forced not in shipped:
            raise LibraryError(f"AOT_CPU_TARGET={forced} is not in this library "
                               f"(has {', '.join(sorted(shipped))})")
        if t.arch != host_arch() or t.level > level:
            raise LibraryError(f"AOT_CPU_TARGET={forced} cannot run on this CPU "
                               f"({host_arch()}, x86-64 level {level})")
        return forced, "forced by AOT_CPU_TARGET"
    usable = [TARGETS[n] for n in shipped
              if n in TARGETS and TARGETS[n].arch == host_arch() and TARGETS[n].level <= level]
    if not usable:
        raise LibraryError(f"no library for this CPU ({host_arch()}) among "
                           f"{', '.join(sorted(shipped))}")
    best = max(usable, key=lambda t: t.level)
    return best.name, f"best of {len(usable)} usable target(s) for x86-64 level {level}"


#: ELF e_machine values, to name what a foreign library was built for
_ELF_MACHINES = {3: "i386", 8: "mips", 20: "ppc", 21: "ppc64", 22: "s390x", 40: "arm",
                 62: "x86_64", 183: "aarch64", 243: "riscv"}
#: what a library for each architecture must be: (ELF class 2 = 64-bit, data 1 = LSB, machine)
_ELF_HEADERS = {"x86_64": (2, 1, 62), "aarch64": (2, 1, 183)}


def check_elf(path: Path, data: bytes, arch: str) -> None:
    """The file is a 64-bit little-endian ELF for ``arch``: a foreign one is named, not mapped."""
    if len(data) < 20 or data[:4] != b"\x7fELF":
        raise LibraryError(f"cannot load {path}: not an ELF shared library")
    cls, order = data[4], data[5]
    machine = int.from_bytes(data[18:20], "little" if order == 1 else "big")
    if (cls, order, machine) != _ELF_HEADERS.get(arch):
        what = _ELF_MACHINES.get(machine, f"machine {machine}")
        bits = {1: "32", 2: "64"}.get(cls, "?")
        raise LibraryError(f"cannot load {path}: built for {what} ({bits}-bit ELF), "
                           f"this is {arch}")


def verify_file(path: Path, entry: dict, arch: str | None = None,
                data: bytes | None = None) -> None:
    """ELF header, size and SHA-256 as sealed at install time, checked before the loader
    maps the file (``data``: its bytes, if already read)."""
    if "sha256" not in entry:
        raise LibraryError(f"manifest has no checksum for {path.name} (not an installed build)")
    try:
        data = path.read_bytes() if data is None else data
    except OSError as exc:
        raise LibraryError(f"cannot load {path}: {exc.strerror}") from None
    check_elf(path, data, arch or host_arch())
    if len(data) != entry["bytes"]:
        raise LibraryError(f"cannot load {path}: {len(data)} bytes, manifest says "
                           f"{entry['bytes']} (truncated or replaced)")
    if hashlib.sha256(data).hexdigest() != entry["sha256"]:
        raise LibraryError(f"cannot load {path}: checksum differs from the manifest (modified)")


#: names this process gave the loader, which hands back the object it loaded under a name
_dlopened: set[str] = set()


def dlopen_fd(fd: int, path: Path | str) -> ctypes.CDLL:
    """Map the checked file itself, through its descriptor: its path may name another file
    by now. The loader hands back the object it already loaded under a name, so a
    descriptor number that named an earlier object is dup'ed to an unused one."""
    if not os.path.isdir("/proc/self/fd"):  # no /proc: the path, as checked just before
        return ctypes.CDLL(str(path))
    held: list[int] = []
    try:
        name = f"/proc/self/fd/{fd}"
        while name in _dlopened:
            held.append(os.dup(fd))
            name = f"/proc/self/fd/{held[-1]}"
        dll = ctypes.CDLL(name)
        _dlopened.add(name)
        return dll
    finally:
        for h in held:
            os.close(h)


def load(directory: Path | None = None) -> Library:
    directory = Path(directory) if directory else library_dir()
    dir_fd = _open_dir(directory)
    try:
        manifest = read_manifest(directory, dir_fd)
        target, reason = choose_target(manifest)
        path = directory / library_file(manifest, target)
        try:
            fd = _open_file(dir_fd, path)
        except OSError as exc:
            raise LibraryError(f"cannot load {path}: {exc.strerror}") from None
    finally:
        os.close(dir_fd)
    try:
        try:
            data = trust.read_fd(fd)
        except OSError as exc:
            raise LibraryError(f"cannot load {path}: {exc.strerror}") from None
        verify_file(path, next(t for t in manifest["targets"] if t["name"] == target),
                    TARGETS[target].arch, data)
        dll = dlopen_fd(fd, path)
    except OSError as exc:
        raise LibraryError(f"cannot load {path}: {exc}") from None
    finally:
        os.close(fd)
    try:
        abi, probed = dll.aotk_abi_version(), dll.aotk_x86_level()
    except AttributeError:
        raise LibraryError(f"{path} is not an aotkernels library") from None
    if abi != ABI_VERSION:
        raise LibraryError(f"{path} reports ABI {abi}, its manifest and runtime {ABI_VERSION}")
    # the shim is built for the baseline, so its probe is safe to call in any library
    if probed < TARGETS[target].level:
        raise LibraryError(f"{path} needs x86-64 level {TARGETS[target].level}; the CPU "
                           f"probe in the library says {probed}")
    lib = Library(directory, target, reason, manifest, dll)
    bind_blas(lib)
    bind_lapack(lib)
    return lib


def bind_blas(lib: Library, prefer: str | None = None) -> str:
    """Point the library's BLAS trampolines at a BLAS in this process (``blas_source``)."""
    from aotkernels import blas_source

    kind, fns, lib.blas = blas_source.find(prefer)
    set_blas = getattr(lib.dll, "aotk_set_blas", None)
    if set_blas is None:  # built before the blas family: nothing calls a trampoline
        lib.blas = "none (library without BLAS kernels)"
    elif set_blas(kind, *[ctypes.c_void_p(f) for f in fns]) != 0:
        raise LibraryError(f"{lib.path} refused the BLAS binding ({lib.blas})")
    return lib.blas


def bind_lapack(lib: Library, prefer: str | None = None) -> str:
    """Point the library's LAPACK trampolines at SciPy's LAPACK (``lapack_source``)."""
    from aotkernels import lapack_source

    fns, lib.lapack = lapack_source.find(prefer)
    set_lapack = getattr(lib.dll, "aotk_set_lapack", None)
    if set_lapack is None:  # built before the lapack family: nothing calls a trampoline
        lib.lapack = "none (library without LAPACK kernels)"
    elif set_lapack(ctypes.c_int32(len(fns)), (ctypes.c_void_p * len(fns))(*fns)) != 0:
        raise LibraryError(f"{lib.path} refused the LAPACK binding ({lib.lapack})")
    return lib.lapack


_default: list = []
_lock = ForkSafeLock()


def default_library() -> Library | None:
    """The library for this process, loaded once; None (with one warning) if unusable."""
    if not _default:
        with _lock:
            if not _default:
                try:
                    lib = load()
                except LibraryError as exc:
                    log.warning("aotkernels: %s; kernels will be JIT-compiled", exc)
                    lib = None
                _default.append(lib)
    return _default[0]


#: user catalogs' libraries: family -> directory (``bind``), and what loading it gave
_bound: dict[str, Path] = {}
_bound_libs: dict[str, Library | None] = {}


def bind(family: str, directory: Path) -> None:
    """Take ``family``'s kernels from the library in ``directory`` (a user catalog's wheel
    binds its ``_lib``); other families keep using ``default_library()``."""
    with _lock:
        _bound[family] = Path(directory)
        _bound_libs.pop(family, None)


def library_for(family: str) -> Library | None:
    """The library holding ``family``'s kernels, loaded once; None (one warning) if unusable."""
    directory = _bound.get(family)
    if directory is None:
        return default_library()
    if family not in _bound_libs:
        with _lock:
            if family not in _bound_libs:
                try:
                    lib = load(directory)
                except LibraryError as exc:
                    log.warning("aotkernels: %s; %s kernels will be JIT-compiled", exc, family)
                    lib = None
                _bound_libs[family] = lib
    return _bound_libs[family]
