"""Only the installed library and this user's own JIT cache make this process run code.

Each case plants code where the runtime looks for it, somewhere another user could have
written it: a cache or library owned by another uid (made by a child process running as
``nobody``), group- or other-writable directories and files, symlinks out of the tree, a
directory swapped for a symlink between its check and its use. The planted JIT entry has a
valid trailer for the kernel's symbol and holds a real, working object with a marker appended,
so that only the ownership rule can stop it: each case shows that no object with the marker
reaches the linker and the kernel is compiled fresh into a private directory, with one
warning line naming the path and the reason. A planted library carries a manifest whose
checksums match it, and is refused before the loader maps it.
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest

from aotkernels import jit, jit_link, library
from aotkernels.signature import Signature

#: an nd2 kernel the session library lacks: always a JIT kernel
SIG = Signature("elemwise", "mul", ("float64", "float64"), "float64", "nd", 2)
MARK = b"PLANTED!" * 8
NOBODY = 65534
#: where other users can create files (read before any test moves tempfile's directory)
TMP = tempfile.gettempdir()
as_root = pytest.mark.skipif(os.geteuid() != 0, reason="acting as another uid needs root")


def _trust():
    """``aotkernels.trust``, or None on a runtime without it (so that these tests fail on
    their assertions there, not on an import)."""
    try:
        return importlib.import_module("aotkernels.trust")
    except ImportError:
        return None


def as_nobody(path: Path, data: bytes) -> None:
    """Write ``path`` (and its missing parents) from a process running as uid/gid 65534:
    another user's files, as they would really appear (a shell: this interpreter may live
    where that user cannot read)."""
    subprocess.run(["/bin/sh", "-c", 'mkdir -p "$(dirname "$1")" && cat > "$1"', "sh",
                    str(path)], input=data, check=True, user=NOBODY, group=NOBODY,
                   extra_groups=[], cwd="/")
    assert path.stat().st_uid == NOBODY


@pytest.fixture
def shared():
    """A directory like /tmp (world-writable, sticky) where another user can plant files:
    pytest's own tmp_path is private to root."""
    d = Path(tempfile.mkdtemp(prefix="aotk-shared-", dir=TMP))
    d.chmod(0o1777)
    yield d
    shutil.rmtree(d)


@pytest.fixture(scope="module")
def real_object(tmp_path_factory) -> tuple[str, bytes]:
    """(symbol, object) of SIG, compiled as the JIT compiles it."""
    from aotkernels.kernels import template_hash

    out = tmp_path_factory.mktemp("obj") / "mul.o"
    subprocess.run([sys.executable, "-m", "aotkernels.generator.host", SIG.key, str(out)],
                   check=True)
    return SIG.symbol(template_hash(SIG.family)), out.read_bytes()


@pytest.fixture
def planted(real_object) -> bytes:
    """A cache entry for SIG's symbol that passes every check but ownership: a working
    object (marker appended) under a valid trailer."""
    symbol, obj = real_object
    return jit.seal(symbol, obj + MARK)


@pytest.fixture
def planted_shared(real_object) -> bytes:
    """The same for the entry's shared object: one linked from the real object."""
    symbol, obj = real_object
    shared = jit_link.link(obj, symbol)
    assert shared is not None, "no C compiler to link with"
    return jit.seal(symbol, shared + MARK, jit._SO_MAGIC)


@pytest.fixture
def runtime(aot_lib, monkeypatch, caplog, tmp_path) -> list[bytes]:
    """A fresh JIT state (no memo, zero counters, a new private directory under tmp_path);
    returns the list of the bytes of every object handed to a linker (llvmlite's, or the
    system linker making a shared object) and every shared object loaded."""
    monkeypatch.setattr(jit, "_fns", {})
    monkeypatch.setattr(jit, "stats", {"compiled": 0, "loaded": 0})
    monkeypatch.setattr(jit, "_warned", set(), raising=False)
    trust = _trust()
    if trust is not None:
        monkeypatch.setattr(trust, "_private", {})
    (tmp_path / "tmp").mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    mapped: list[bytes] = []

    def spy(fn):
        def call(data: bytes, symbol: str):
            mapped.append(data)
            return fn(data, symbol)
        return call

    monkeypatch.setattr(jit, "_load_object", spy(jit._load_object))
    monkeypatch.setattr(jit_link, "link", spy(jit_link.link))
    monkeypatch.setattr(jit_link, "load", spy(jit_link.load))
    caplog.set_level(logging.WARNING, logger="aotkernels")
    return mapped


def run_kernel() -> None:
    """SIG through the JIT, with its numbers checked."""
    from aotkernels.call import Geometry, Prepared

    x = np.arange(24.0).reshape(4, 6)[:, ::2]
    out = np.empty(x.shape)
    Prepared(SIG, jit.function(SIG), "jit", Geometry.broadcast([x, x], out)).run([x, x, out])
    np.testing.assert_array_equal(out, x * x)


def warnings_(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "aotkernels"]


def assert_compiled_privately(mapped, caplog, tmp_path, named: Path, words: str) -> None:
    assert jit.stats == {"compiled": 1, "loaded": 0}
    assert mapped and not any(MARK in obj for obj in mapped)  # the planted code never ran
    (line,) = warnings_(caplog)
    assert f"{named} {words}" in line and "compiling into" in line, line
    # not the system linker's stub's directory, made there if this test linked first
    (private,) = [p for p in (tmp_path / "tmp").glob("aotkernels-*")
                  if not (p / "stub.c").exists()]
    assert private.stat().st_mode & 0o777 == 0o700
    assert [p.name for p in private.glob("aotk_*.o")] == [f"{jit_symbol()}.o"]


def jit_symbol() -> str:
    from aotkernels.kernels import template_hash

    return SIG.symbol(template_hash(SIG.family))


# -- the JIT cache: entries another user could have written --------------------------------

def _ours(root: Path, d: Path, e: Path, entry: bytes) -> None:
    d.mkdir(parents=True, mode=0o700)
    root.chmod(0o700)
    e.write_bytes(entry)
    e.chmod(0o600)


def foreign_root(root, d, e, entry, elsewhere):
    as_nobody(e, entry)  # nobody made the cache root, its folder and the entry
    return root, "is owned by uid 65534"


def foreign_dir(root, d, e, entry, elsewhere):
    root.mkdir(mode=0o777)
    root.chmod(0o777)  # once open to anyone, then closed: nobody's folder stays
    as_nobody(e, entry)
    root.chmod(0o700)
    return d, "is owned by uid 65534"


def foreign_entry(root, d, e, entry, elsewhere):
    d.mkdir(parents=True)
    d.chmod(0o777)
    as_nobody(e, entry)
    d.chmod(0o700)
    root.chmod(0o700)
    return e, "is owned by uid 65534"


def group_writable_root(root, d, e, entry, elsewhere):
    _ours(root, d, e, entry)
    root.chmod(0o770)
    return root, "is writable by group (mode 770)"


def others_writable_dir(root, d, e, entry, elsewhere):
    _ours(root, d, e, entry)
    d.chmod(0o707)
    return d, "is writable by others (mode 707)"


def group_writable_entry(root, d, e, entry, elsewhere):
    _ours(root, d, e, entry)
    e.chmod(0o660)
    return e, "is writable by group (mode 660)"


def symlinked_entry(root, d, e, entry, elsewhere):
    d.mkdir(parents=True, mode=0o700)
    (elsewhere / e.name).write_bytes(entry)  # our own file, but outside the cache
    e.symlink_to(elsewhere / e.name)
    return e, "is a symbolic link"


def symlinked_dir(root, d, e, entry, elsewhere):
    root.mkdir(mode=0o700)
    (elsewhere / d.name).mkdir(mode=0o700)
    (elsewhere / d.name / e.name).write_bytes(entry)
    d.symlink_to(elsewhere / d.name)
    return d, "is a symbolic link"


ENTRY_CASES = {
    "cache root owned by another uid": pytest.param(foreign_root, marks=as_root),
    "cache folder owned by another uid": pytest.param(foreign_dir, marks=as_root),
    "entry owned by another uid": pytest.param(foreign_entry, marks=as_root),
    "group-writable cache root": group_writable_root,
    "other-writable cache folder": others_writable_dir,
    "group-writable entry": group_writable_entry,
    "entry is a symlink": symlinked_entry,
    "cache folder is a symlink": symlinked_dir,
}


@pytest.mark.parametrize("kind", [".o", ".so"])
@pytest.mark.parametrize("plant", ENTRY_CASES.values(), ids=list(ENTRY_CASES))
def test_a_planted_entry_is_never_loaded(plant, kind, runtime, planted, planted_shared, shared,
                                         caplog, tmp_path, monkeypatch):
    root = shared / "cache"
    monkeypatch.setenv("AOT_CACHE_DIR", str(root))
    d = jit.cache_dir()
    e = d / f"{jit_symbol()}{kind}"
    entry = planted if kind == ".o" else planted_shared
    elsewhere = shared / "elsewhere"
    elsewhere.mkdir(mode=0o700)
    named, words = plant(root, d, e, entry, elsewhere)
    run_kernel()
    assert_compiled_privately(runtime, caplog, tmp_path, named, words)
    assert e.read_bytes() == entry  # left alone, not overwritten through a link


def foreign_lock(d: Path, lock: Path, elsewhere: Path):
    d.chmod(0o777)
    as_nobody(lock, b"")
    d.chmod(0o700)
    return "is owned by uid 65534"


def symlinked_lock(d: Path, lock: Path, elsewhere: Path):
    lock.symlink_to(elsewhere / "victim")  # opened with O_CREAT, it would create this
    return "is a symbolic link"


@pytest.mark.parametrize("plant", [pytest.param(foreign_lock, marks=as_root), symlinked_lock],
                         ids=["lock owned by another uid", "lock is a symlink"])
def test_a_lock_file_that_is_not_ours_sends_the_compile_elsewhere(plant, runtime, shared,
                                                                  caplog, tmp_path,
                                                                  monkeypatch):
    monkeypatch.setenv("AOT_CACHE_DIR", str(shared / "cache"))
    d = jit.cache_dir()
    d.mkdir(parents=True, mode=0o700)
    elsewhere = shared / "elsewhere"
    elsewhere.mkdir(mode=0o700)
    lock = d / f".{jit_symbol()}.lock"
    words = plant(d, lock, elsewhere)
    d.parent.chmod(0o700)
    run_kernel()
    assert_compiled_privately(runtime, caplog, tmp_path, lock, words)
    assert not (d / f"{jit_symbol()}.o").exists() and not (elsewhere / "victim").exists()


def foreign_misses(d: Path, misses: Path, elsewhere: Path):
    d.chmod(0o777)
    as_nobody(misses, b"elemwise/planted\n")
    d.chmod(0o700)
    return "is owned by uid 65534"


def symlinked_misses(d: Path, misses: Path, elsewhere: Path):
    misses.symlink_to(elsewhere / "victim")
    return "is a symbolic link"


@pytest.mark.parametrize("plant", [pytest.param(foreign_misses, marks=as_root),
                                   symlinked_misses],
                         ids=["misses.txt owned by another uid", "misses.txt is a symlink"])
def test_misses_are_appended_only_to_our_own_file(plant, runtime, shared, caplog,
                                                   monkeypatch):
    """misses.txt holds no code: the kernel is cached as usual, the miss is not recorded."""
    monkeypatch.setenv("AOT_CACHE_DIR", str(shared / "cache"))
    d = jit.cache_dir()
    d.mkdir(parents=True, mode=0o700)
    elsewhere = shared / "elsewhere"
    elsewhere.mkdir(mode=0o700)
    misses = d / "misses.txt"
    words = plant(d, misses, elsewhere)
    d.parent.chmod(0o700)
    before = misses.read_bytes() if not misses.is_symlink() else None
    run_kernel()
    assert jit.stats == {"compiled": 1, "loaded": 0}
    assert jit.unseal(jit_symbol(), (d / f"{jit_symbol()}.o").read_bytes())
    (line,) = warnings_(caplog)
    assert f"{misses} {words}" in line and "not recording misses" in line, line
    assert not (elsewhere / "victim").exists()
    if before is not None:
        assert misses.read_bytes() == before


# -- check-then-use races, made deterministic through the check itself ----------------------

def _hook_after_check(monkeypatch, when: Path, action) -> None:
    """Run ``action`` once, right after ``trust.check_fd`` accepted ``when``."""
    trust = _trust()
    assert trust is not None, "the runtime has no aotkernels.trust"
    check, done = trust.check_fd, []

    def hooked(fd, path, root_ok=False):
        check(fd, path, root_ok)
        if Path(path) == when and not done:
            done.append(action())

    monkeypatch.setattr(trust, "check_fd", hooked)


def test_a_folder_swapped_for_a_symlink_after_the_root_was_checked(
        runtime, planted, shared, caplog, tmp_path, monkeypatch):
    root = shared / "cache"
    monkeypatch.setenv("AOT_CACHE_DIR", str(root))
    d = jit.cache_dir()
    d.mkdir(parents=True, mode=0o700)
    root.chmod(0o700)
    evil = shared / "evil"
    evil.mkdir(mode=0o700)
    (evil / f"{jit_symbol()}.o").write_bytes(planted)

    def swap():
        d.rename(shared / "old")
        d.symlink_to(evil)

    _hook_after_check(monkeypatch, root, swap)
    run_kernel()
    assert_compiled_privately(runtime, caplog, tmp_path, d, "is a symbolic link")


def test_an_entry_replaced_after_its_check_is_read_from_the_checked_file(
        runtime, real_object, planted, shared, caplog, monkeypatch):
    symbol, obj = real_object
    root = shared / "cache"
    monkeypatch.setenv("AOT_CACHE_DIR", str(root))
    d = jit.cache_dir()
    e = d / f"{symbol}.o"
    _ours(root, d, e, jit.seal(symbol, obj))

    def replace():
        (d / "new").write_bytes(planted)
        os.replace(d / "new", e)

    _hook_after_check(monkeypatch, e, replace)
    run_kernel()
    assert jit.stats == {"compiled": 0, "loaded": 1} and not warnings_(caplog)
    assert runtime[0] == obj  # the bytes of the file that was checked, linked
    assert not any(MARK in data for data in runtime)
    assert e.read_bytes() == planted  # the path names the other file by now


# -- where the cache is, and what info says ------------------------------------------------

def test_the_default_cache_follows_xdg_without_platformdirs_and_is_private(
        runtime, tmp_path, monkeypatch):
    monkeypatch.delenv("AOT_CACHE_DIR", raising=False)
    monkeypatch.setitem(sys.modules, "platformdirs", None)  # importing it fails
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    assert jit.cache_dir().parent == tmp_path / "home" / ".cache" / "aotkernels"
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/path")  # not absolute: ignored
    assert jit.cache_dir().parent == tmp_path / "home" / ".cache" / "aotkernels"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    d = jit.cache_dir()
    assert d.parent == tmp_path / "xdg" / "aotkernels"
    run_kernel()
    assert jit.stats == {"compiled": 1, "loaded": 0}
    modes = {p.name: p.stat().st_mode & 0o777 for p in [d.parent, d, *d.iterdir()]}
    assert modes == {"aotkernels": 0o700, d.name: 0o700, f"{jit_symbol()}.o": 0o600,
                     f"{jit_symbol()}.so": 0o600, f".{jit_symbol()}.lock": 0o600,
                     "misses.txt": 0o600}


INFO = ("import sys\n"
        "for name in sys.argv[1:]:\n"
        "    sys.modules[name] = None  # not installed\n"
        "from aotkernels.__main__ import main\n"
        "main(['info', '--json'])\n")


def _info(env: dict, *missing: str) -> dict:
    res = subprocess.run([sys.executable, "-c", INFO, *missing], env=env,
                         capture_output=True, text=True, check=True)
    return json.loads(res.stdout)


def test_info_names_the_cache_or_why_there_is_none(aot_lib, tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "AOT_CACHE_DIR"}
    env["XDG_CACHE_HOME"] = str(tmp_path / "xdg")
    report = _info(env, "platformdirs")  # as installed with [pytensor] only
    assert report["jit_cache"].startswith(str(tmp_path / "xdg" / "aotkernels" / "abi"))
    assert report["jit_cached_kernels"] == 0
    open_to_all = tmp_path / "open"
    open_to_all.mkdir()
    open_to_all.chmod(0o777)
    report = _info(dict(env, AOT_CACHE_DIR=str(open_to_all)))
    assert report["jit_cache"] is None
    assert report["jit_no_cache"].startswith(
        f"{open_to_all} is writable by group and others (mode 777); misses compile into a "
        "private directory"), report
    # installed without [jit]: kernels already cached load (as shared objects, no LLVM)
    report = _info(env, "llvmlite", "llvmlite.binding", "numba")
    assert report["jit_cache"] and report["jit_no_compiler"].startswith(
        "numba is not installed: cached kernels load"), report


# -- the library: AOT_LIBRARY_DIR ----------------------------------------------------------

@pytest.fixture
def lib_files(aot_lib) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in aot_lib.directory.iterdir() if p.is_file()}


def _so(lib_files) -> str:
    (name,) = [n for n in lib_files if n.endswith(".so")]
    return name


def _write(d: Path, files: dict[str, bytes]) -> None:
    d.mkdir(exist_ok=True)
    for name, data in files.items():
        (d / name).write_bytes(data)


def assert_refused(d: Path, words: str) -> None:
    with pytest.raises(library.LibraryError) as exc:
        library.load(d)
    assert words in str(exc.value) and "refusing the kernel library" in str(exc.value)
    assert str(d) not in Path("/proc/self/maps").read_text()  # never mapped


@as_root
def test_a_library_folder_of_another_uid_is_refused(lib_files, shared):
    d = shared / "lib"
    for name, data in lib_files.items():
        as_nobody(d / name, data)
    assert_refused(d, f"{d} is owned by uid 65534")


@as_root
@pytest.mark.parametrize("which", ["manifest.json", "library"])
def test_a_library_file_of_another_uid_is_refused(which, lib_files, shared):
    d = shared / "lib"
    name = "manifest.json" if which == "manifest.json" else _so(lib_files)
    _write(d, {n: b for n, b in lib_files.items() if n != name})
    d.chmod(0o777)
    as_nobody(d / name, lib_files[name])
    d.chmod(0o755)
    assert_refused(d, f"{d / name} is owned by uid 65534")


def test_writable_or_linked_library_files_are_refused(lib_files, aot_lib, tmp_path):
    d = tmp_path / "lib"
    so = _so(lib_files)
    _write(d, lib_files)
    d.chmod(0o775)
    assert_refused(d, f"{d} is writable by group (mode 775)")
    d.chmod(0o755)
    (d / so).chmod(0o646)
    assert_refused(d, f"{d / so} is writable by others (mode 646)")
    (d / so).unlink()
    (d / so).symlink_to(aot_lib.directory / so)  # even to the real library
    assert_refused(d, f"{d / so} is a symbolic link")


def test_a_refused_library_is_one_warning_and_the_jit_takes_over(lib_files, tmp_path):
    d = tmp_path / "lib"
    _write(d, lib_files)
    d.chmod(0o770)
    code = ("import json; import numpy as np; import aotkernels as ak\n"
            "from aotkernels import library\n"
            "x = np.linspace(-2, 2, 7)\n"
            "ok = bool(np.array_equal(ak.elemwise('add', x, x), x + x))\n"
            "maps = open('/proc/self/maps').read()\n"
            "print(json.dumps({'ok': ok, 'library': library.default_library() is not None,\n"
            "                  'mapped': library.library_dir().as_posix() in maps}))\n")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=dict(os.environ, AOT_LIBRARY_DIR=str(d)))
    assert res.returncode == 0, res.stderr
    lines = [ln for ln in res.stderr.splitlines() if ln.startswith("aotkernels:")]
    assert len(lines) == 1 and f"{d} is writable by group (mode 770)" in lines[0], lines
    assert lines[0].endswith("kernels will be JIT-compiled")
    assert json.loads(res.stdout) == {"ok": True, "library": False, "mapped": False}


@as_root
def test_a_root_owned_library_loads_for_another_user(lib_files, tmp_path, monkeypatch):
    """An install in site-packages is root's: another user's process loads it (this process
    plays uid 65534 to the checks), while root's cache is not that user's to load from."""
    d = tmp_path / "lib"
    _write(d, lib_files)
    monkeypatch.setattr(os, "geteuid", lambda: NOBODY)
    assert library.load(d).dll.aotk_abi_version() == library.ABI_VERSION
    trust = _trust()
    assert trust is not None, "the runtime has no aotkernels.trust"
    with pytest.raises(trust.Untrusted, match="is owned by uid 0, not by this user"):
        trust.open_dir(d)


def test_the_loader_maps_the_checked_file_not_what_its_path_names_later(
        lib_files, tmp_path, monkeypatch):
    d = tmp_path / "lib"
    so = _so(lib_files)
    _write(d, lib_files)

    def replace():
        (d / "junk").write_bytes(b"\x7fELF not a library")
        os.replace(d / "junk", d / so)

    _hook_after_check(monkeypatch, d / so, replace)
    lib = library.load(d)  # dlopen by path would now fail on the junk
    assert lib.dll.aotk_abi_version() == library.ABI_VERSION


def test_each_library_is_mapped_even_where_descriptor_numbers_repeat(lib_files, tmp_path):
    """The loader knows objects by the name they were opened under; /proc/self/fd/N names
    another file once N is reused, so each load must map its own file."""
    for i in range(3):
        d = tmp_path / f"lib{i}"
        _write(d, lib_files)
        library.load(d)
        assert str(d / _so(lib_files)) in Path("/proc/self/maps").read_text()
