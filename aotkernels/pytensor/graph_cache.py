"""Mode AOT's cache of rewritten graphs: a second process skips PyTensor's rewriting.

With the kernels prebuilt, most of the time from ``pytensor.function`` to a first result
is PyTensor rewriting the graph (0.3-0.9 s for a logistic regression or a radon model),
and every process pays it again for the same model. A mode whose linker has
``graph_cache = True`` (mode AOT's, and every ``Mode`` built around it, as PyMC's
``compile`` builds one) gets ``CachedRewriter`` as its optimizer, which keys the incoming
graph, looks for a rewritten graph stored under that key and, on a hit, puts it in place
of the graph's outputs, built on this graph's own inputs; on a miss it runs PyTensor's
rewriter and stores what came out. Everything after (deep copies of outputs, the linker,
thunks, plans) is PyTensor's and aotkernels' normal path, so a hit behaves as a fresh
compile does.

The key (``graph_key``) is a canonical walk of the graph: each node's Op by its class and
props (nested Ops, types, functions by module and name, arrays by dtype, shape and bytes),
each input by position, type, name, whether it is shared (never its value) and whether
it is protected from inplace rewrites; constants by type and bytes; outputs in order and
the update mapping; then the mode's rewrite query, the rewrites other packages registered
in its database, the config flags rewrites read, and the PyTensor, NumPy, Python, aotkernels and ABI
versions. A graph with anything that cannot be named that way (an Op without props, a
lambda, a random generator constant) is compiled normally and not cached: no key is
better than a key that two different graphs could share.

An entry is the pickled rewritten graph (inputs replaced by bare variables of their types,
so no shared value is stored) followed by the JIT cache's trailer (magic, size, SHA-256 of
key and payload). Unpickling runs code, so entries are read only under the same rules as
the JIT cache (``aotkernels.trust``): this user's own 0600 files in a 0700 directory,
checked on the descriptor that is read, never through a symlink. Entries appear by one
atomic rename, so concurrent processes (and forked children) see a whole entry or none.
A damaged, foreign or stale entry, or an untrusted directory, is one warning line and a
normal compile (which writes a good entry). ``AOT_GRAPH_CACHE=0`` turns the cache off;
``AOT_GRAPH_CACHE_DIR`` moves it.
"""

from __future__ import annotations

import collections.abc
import enum
import functools
import hashlib
import io
import logging
import os
import pickle
import sys
import types
from pathlib import Path

import numpy as np
import pytensor
from pytensor.compile.mode import Mode
from pytensor.compile.sharedvalue import SharedVariable
from pytensor.configdefaults import config
from pytensor.graph.basic import Constant, clone_get_equiv
from pytensor.graph.destroyhandler import DestroyHandler
from pytensor.graph.fg import FunctionGraph
from pytensor.graph.rewriting.basic import GraphRewriter
from pytensor.graph.rewriting.db import RewriteDatabase, RewriteDatabaseQuery
from pytensor.link.basic import Linker
from pytensor.tensor.type import TensorType

from aotkernels import __version__ as AOTKERNELS_VERSION
from aotkernels import jit, trust
from aotkernels.process import atomic_write, freeze_once
from aotkernels.pytensor import lean_rewriting
from aotkernels.signature import ABI_VERSION

log = logging.getLogger("aotkernels")

#: entry format; part of every key and of the directory name
FORMAT = 1
MAGIC = b"AOTKGRF1"
#: entries larger than this (graphs carrying big constants) are not stored
MAX_ENTRY = 64 << 20
#: config flags that rewrites read (``blas__ldflags`` and ``cxx`` only matter to the
#: ``cxx_only`` and ``fusion`` rewrites, which the AOT linker excludes; reading them
#: would probe the toolchain)
CONFIG_FLAGS = ("floatX", "cast_policy", "on_opt_error", "on_shape_error",
                "check_stack_trace", "optimizer_excluding", "optimizer_including",
                "optimizer_requiring", "optdb__max_use_ratio", "optdb__position_cutoff",
                "tensor__insert_inplace_optimizer_validate_nb", "scan__allow_output_prealloc",
                "warn__ignore_bug_before", "cycle_detection")

#: attributes of Ops without props that are caches or follow from other attributes (the
#: inner graph): gradients made so far, frozen copies and hashes of the inner graph, the
#: inner function once compiled. Equal Ops differ in them, and they do not change rewriting.
UNKEYED = frozenset({"_lop_op_cache", "_rop_op_cache", "_frozen_lop", "_frozen_rop",
                     "_frozen_fgraph", "_hash_inner_graph", "_cmodule_key", "_fn", "fn"})

#: counters for this process (tests and benchmarks read them)
stats = {"hits": 0, "misses": 0, "stored": 0, "uncachable": 0, "rejected": 0}


class Uncachable(Exception):
    """Something in a graph or mode that the key cannot name canonically."""


def enabled() -> bool:
    """False when ``AOT_GRAPH_CACHE`` is ``0`` (or ``false``, ``no``, ``off``)."""
    return os.environ.get("AOT_GRAPH_CACHE", "1").strip().lower() not in ("0", "false", "no",
                                                                          "off")


def versions() -> str:
    """What makes a pickled graph and its rewriting valid: the versions it was made with,
    and the sources of aotkernels' own rewriting (``source_digest``)."""
    return (f"format={FORMAT}|pytensor={pytensor.__version__}|numpy={np.__version__}|"
            f"python={sys.version_info[0]}.{sys.version_info[1]}|"
            f"aotkernels={AOTKERNELS_VERSION}|abi={ABI_VERSION}|source={source_digest()}")


@functools.cache
def source_digest() -> str:
    """A hash of the modules that decide what mode AOT's rewriting makes and how graphs are
    stored (``aotkernels/pytensor/*.py``, ``model_cache.py``, ``nutpie.py``): a checkout
    edited, or reinstalled under the same version, must not read graphs the old code made
    (a fixed rewrite would otherwise stay unfixed for every graph cached before it)."""
    here = Path(__file__).resolve().parent
    h = hashlib.sha256()
    for path in sorted([*here.glob("*.py"), here.parent / "model_cache.py",
                        here.parent / "nutpie.py"]):
        h.update(path.name.encode() + b"\0")
        try:
            h.update(path.read_bytes())
        except OSError:  # a module not shipped: its absence is part of the digest
            h.update(b"-")
    return h.hexdigest()[:16]


def cache_dir() -> Path:
    """The entries' directory, one per set of ``versions()``: in ``$AOT_GRAPH_CACHE_DIR``
    if set, else beside the JIT cache's (``jit.cache_root()``)."""
    root = os.environ.get("AOT_GRAPH_CACHE_DIR")
    tag = hashlib.sha256(versions().encode()).hexdigest()[:12]
    name = f"graphs-pytensor{pytensor.__version__}-{tag}"
    return (Path(root) if root else jit.cache_root()) / name


# --- the key ---------------------------------------------------------------------------

_ATOMS = (type(None), bool, int, float, complex, str, bytes)


#: class -> its checked ``module:qualname`` (classes live as long as their module)
_names: dict[type, str] = {}
#: (dtype, shape) -> the text of that TensorType
_tensor_texts: dict[tuple, str] = {}


class _Walk:
    """One key computation: canonical forms memoised by object id for this walk only
    (``keep`` holds every memoised object, so no id is reused during the walk), and the
    top-level packages of every class and function named, whose versions join the key."""

    def __init__(self) -> None:
        self.memo: dict[int, object] = {}
        self.texts: dict[int, str] = {}
        self.keep: list = []
        self.packages: set[str] = set()

    def name(self, obj) -> str:
        """``module:qualname`` of a class or function, if that name finds this very object
        (a lambda, a local or a replaced object has no name another process could share)."""
        name = _names.get(obj) if isinstance(obj, type) else None
        if name is None:
            module = getattr(obj, "__module__", None)
            qualname = getattr(obj, "__qualname__", None)
            if not module or not qualname or "<" in qualname:
                raise Uncachable(f"{obj!r} has no importable name")
            found = sys.modules.get(module)
            for part in qualname.split("."):
                found = getattr(found, part, None)
            if found is not obj:
                raise Uncachable(f"{module}.{qualname} does not name {obj!r}")
            name = f"{module}:{qualname}"
            if isinstance(obj, type):
                _names[obj] = name
        self.packages.add(name.partition(".")[0].partition(":")[0])
        return name

    def canon(self, value, depth: int = 0):
        """A value made of atoms, tuples and strings only, equal for equal values in any
        process; ``Uncachable`` for what has no such form."""
        kind = type(value)
        if kind in _ATOMS:
            return value
        if depth > 16:
            raise Uncachable("nested too deep")
        key = id(value)
        if key in self.memo:
            return self.memo[key]
        form = self._form(value, kind, depth + 1)
        self.memo[key] = form
        self.keep.append(value)
        return form

    def _form(self, value, kind, depth):
        canon = self.canon
        if kind is tuple or kind is list:
            return (kind.__name__, *(canon(v, depth) for v in value))
        props = getattr(kind, "__props__", None)
        if isinstance(props, tuple):  # Ops and Types: equal props, equal objects
            return ("props", self.name(kind),
                    *((p, canon(getattr(value, p), depth)) for p in props))
        if kind is np.ndarray:
            if value.dtype.hasobject or value.dtype.fields:
                raise Uncachable(f"array of {value.dtype}")
            return ("ndarray", value.dtype.str, value.shape,
                    hashlib.sha256(np.ascontiguousarray(value).view(np.uint8)).hexdigest())
        if isinstance(value, np.generic):
            if value.dtype.hasobject or value.dtype.fields:
                raise Uncachable(f"scalar of {value.dtype}")
            return ("npscalar", value.dtype.str, value.tobytes())
        if isinstance(value, np.dtype):
            if value.fields or value.hasobject:
                raise Uncachable(f"dtype {value}")
            return ("dtype", value.str)
        if kind is slice:
            return ("slice", canon(value.start, depth), canon(value.stop, depth),
                    canon(value.step, depth))
        if isinstance(value, type):
            return ("class", self.name(value))
        if isinstance(value, (types.FunctionType, types.BuiltinFunctionType)):
            return ("function", self.name(value))
        if isinstance(value, np.ufunc):
            if getattr(np, value.__name__, None) is not value:
                raise Uncachable(f"ufunc {value!r}")
            return ("ufunc", value.__name__)
        if isinstance(value, enum.Enum):
            return ("enum", self.name(kind), value.name)
        if kind is dict or collections.abc.Mapping in kind.__mro__:  # not isinstance: an
            # ABC check walks every class registered as a Mapping (xarray's, ...), per class
            return ("map", self.name(kind), *sorted(
                (repr(canon(k, depth)), canon(v, depth)) for k, v in value.items()))
        if isinstance(value, (set, frozenset)):
            return ("set", kind.__name__, *sorted(repr(canon(v, depth)) for v in value))
        if isinstance(value, FunctionGraph):  # inner graphs (Scan, OpFromGraph)
            return ("graph", self.name(kind), *self.graph(value.inputs, value.outputs))
        if kind.__eq__ is not object.__eq__ and isinstance(getattr(value, "__dict__", None),
                                                           dict):
            # value semantics without props (PyTensor's scalar ops, type preferences, Scan,
            # OpFromGraph): every attribute, which is stricter than their __eq__, but caches
            return ("object", self.name(kind),
                    *sorted((k, canon(v, depth)) for k, v in vars(value).items()
                            if k not in UNKEYED))
        raise Uncachable(f"{kind.__module__}.{kind.__qualname__} has no canonical form")

    def graph(self, inputs, outputs, more=lambda v: "") -> list[str]:
        """A graph's lines: inputs by position, type and name (plus ``more(input)``), each
        node in a canonical order with its Op, inputs and outputs, constants by type and
        bytes, then the outputs. A variable that is none of these raises ``Uncachable``."""
        refs: dict[int, str] = {}
        parts = []
        for k, v in enumerate(inputs):
            refs[id(v)] = f"i{k}"
            parts.append(f"i{k} {self.text(v.type)} {v.name!r}{more(v)}")

        def ref(v) -> str:
            r = refs.get(id(v))
            if r is None:
                if not isinstance(v, Constant) or v.owner is not None:
                    raise Uncachable(f"{v} is neither an input, a constant nor computed")
                r = f"c({self.text(v.type)},{self.text(v.data)},{v.name!r})"
                refs[id(v)] = r
            return r

        for n, node in enumerate(_toposort(outputs)):
            ins = ",".join(ref(v) for v in node.inputs)
            outs = ",".join(f"{self.text(o.type)} {o.name!r}" for o in node.outputs)
            parts.append(f"n{n} {self.text(node.op)} ({ins}) -> ({outs})")
            for j, o in enumerate(node.outputs):
                refs[id(o)] = f"n{n}.{j}"
        parts.append("outputs " + ",".join(ref(v) for v in outputs))
        return parts

    def text(self, value) -> str:
        """``repr`` of the canonical form: the text hashed into the key."""
        text = self.texts.get(id(value))
        if text is None:
            if type(value) is TensorType:  # most of a graph's types: (dtype, shape) say all
                text = _tensor_texts.get((value.dtype, value.shape))
                if text is None:
                    text = _tensor_texts[(value.dtype, value.shape)] = repr(self.canon(value))
                self.packages.add("pytensor")
            else:
                text = repr(self.canon(value))
            self.texts[id(value)] = text
            self.keep.append(value)
        return text


#: public name of the walk: ``aotkernels.model_cache`` keys a PyMC model with it
Walk = _Walk


def _toposort(outputs) -> list:
    """Nodes in a canonical order: depth first from the outputs, inputs in order."""
    order, done = [], set()
    stack = [(o.owner, False) for o in reversed(outputs) if o.owner is not None]
    while stack:
        node, expanded = stack.pop()
        if node in done:
            continue
        if expanded:
            done.add(node)
            order.append(node)
            continue
        stack.append((node, True))
        stack.extend((v.owner, False) for v in reversed(node.inputs)
                     if v.owner is not None and v.owner not in done)
    return order


def graph_key(fgraph, mode: Mode) -> str:
    """The cache key of rewriting ``fgraph`` with ``mode``; raises ``Uncachable``."""
    walk = _Walk()
    protected = {id(v) for feature in getattr(fgraph, "_features", ())
                 for v in getattr(feature, "protected", ())}
    parts = [versions(), mode_key(mode, walk),
             f"destroy_handler={hasattr(fgraph, 'destroyers')}"]
    parts += walk.graph(fgraph.inputs, fgraph.outputs, lambda v: (
        f" shared={isinstance(v, SharedVariable)} protected={id(v) in protected}"))
    parts.append(f"updates {sorted((fgraph.update_mapping or {}).items())}")
    parts.append("packages " + ",".join(
        f"{p}={getattr(sys.modules.get(p), '__version__', None)}" for p in sorted(walk.packages)))
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def mode_key(mode: Mode, walk: _Walk | None = None) -> str:
    """What of a mode decides how it rewrites: its query, its linker's rewrite tags, the
    rewrites other packages registered in its database, the config flags rewrites read."""
    walk = walk or _Walk()
    linker = mode.linker
    flags = {f: getattr(config, f, None) for f in CONFIG_FLAGS}
    return repr((_query(mode._optimizer), walk.name(type(linker)),
                 tuple(getattr(linker, "incompatible_rewrites", ())),
                 tuple(getattr(linker, "required_rewrites", ())),
                 db_fingerprint(mode.optdb), sorted(flags.items())))


def _query(q) -> tuple:
    if not isinstance(q, RewriteDatabaseQuery):
        raise Uncachable(f"the mode's optimizer is {type(q).__name__}, not a query")
    if q.extra_rewrites:
        raise Uncachable("the query registers extra rewrites")
    return ("query", tuple(q.include), tuple(q.require), tuple(q.exclude),
            tuple(sorted((k, _query(v)) for k, v in q.subquery.items())),
            repr(q.position_cutoff))


def _origin(rewriter) -> str:
    """The module that defined a registered rewrite: its function's, else its class's."""
    for inner in (rewriter, getattr(rewriter, "node_rewriter", None)):
        fn = getattr(inner, "fn", None)
        if fn is not None:
            return getattr(fn, "__module__", None) or "?"
    return type(rewriter).__module__


#: id(database) -> (its tree's databases, their sizes, fingerprint)
_db_memo: dict[int, tuple[list, tuple, str]] = {}


def _sizes(dbs: list) -> tuple:
    return tuple((len(d._names), sum(map(len, d.__db__.values()))) for d in dbs)


def db_fingerprint(db: RewriteDatabase) -> str:
    """A hash of the rewrites other packages than PyTensor registered in ``db`` (and the
    databases inside it), with those packages' versions: importing PyMC adds rewrites to
    PyTensor's database, and a process that has them rewrites differently. PyTensor's own
    registrations follow from its version (lazily imported parts of PyTensor, such as
    ``pytensor.sparse``, register rewrites for their own Ops only). Recomputed when a
    registration changes the sizes of any database in the tree."""
    memo = _db_memo.get(id(db))
    if memo is not None and memo[0][0] is db and _sizes(memo[0]) == memo[1]:
        return memo[2]
    dbs, found, todo = [], set(), [db]
    while todo:
        d = todo.pop()
        if any(d is seen for seen in dbs):
            continue
        dbs.append(d)
        table = d.__db__
        for name in d._names:
            for m in table[name]:
                if isinstance(m, RewriteDatabase):
                    todo.append(m)
                    continue
                origin = _origin(m)
                package = origin.partition(".")[0]
                if package != "pytensor":
                    version = getattr(sys.modules.get(package), "__version__", None)
                    found.add((str(d.name), name, origin, str(version),
                               repr(getattr(d, "__position__", {}).get(name))))
        sub = getattr(d, "db", None)  # ProxyDB, TopoDB
        if isinstance(sub, RewriteDatabase):
            todo.append(sub)
    fingerprint = hashlib.sha256(repr(sorted(found)).encode()).hexdigest()
    _db_memo[id(db)] = (dbs, _sizes(dbs), fingerprint)
    return fingerprint


# --- entries ---------------------------------------------------------------------------

_warned: set[str] = set()


def _warn_once(message: str) -> None:
    if message not in _warned:
        _warned.add(message)
        log.warning("aotkernels: graph cache: %s", message)


def _open_dir(create: bool) -> tuple[int, Path] | None:
    """The checked entries' directory, or None (missing, or untrusted: one warning)."""
    try:
        directory = cache_dir()
        return trust.open_dir(directory.parent, [directory.name], create=create), directory
    except FileNotFoundError:
        return None
    except (trust.Untrusted, OSError, RuntimeError) as exc:  # RuntimeError: no home
        _warn_once(f"{jit._why(exc)}; compiling without it")
        return None


def read_sealed(name: str, key: str, magic: bytes) -> tuple[bytes, Path] | None:
    """The payload sealed under ``key`` in the entry file ``name`` of ``cache_dir()`` and
    its path, or None: missing, or unreadable (untrusted file or directory: one warning).
    Raises ``ValueError`` for a damaged entry (bad seal, size or hash). Shared with
    ``aotkernels.model_cache``, whose entries live beside the graphs under the same rules."""
    opened = _open_dir(create=False)
    if opened is None:
        return None
    dir_fd, directory = opened
    path = directory / name
    try:
        try:
            fd = trust.open_file(dir_fd, path.name, path)
        except FileNotFoundError:
            return None
        try:
            entry = trust.read_fd(fd)
        finally:
            os.close(fd)
    except (trust.Untrusted, OSError) as exc:
        _warn_once(f"{jit._why(exc)}; compiling without it")
        return None
    finally:
        os.close(dir_fd)
    return jit.unseal(key, entry, magic), path


def write_sealed(name: str, key: str, data: bytes, magic: bytes) -> bool:
    """Seal ``data`` under ``key`` into the entry file ``name`` (one atomic rename, 0600);
    False if it could not be (an untrusted or unwritable directory: one warning)."""
    opened = _open_dir(create=True)
    if opened is None:
        return False
    dir_fd, _ = opened
    try:
        atomic_write(Path(name), jit.seal(key, data, magic), dir_fd=dir_fd, mode=0o600)
    except OSError as exc:
        _warn_once(f"cannot write to {cache_dir()} ({exc.strerror}); not storing graphs")
        return False
    finally:
        os.close(dir_fd)
    return True


def load(key: str) -> dict | None:
    """The stored payload of ``key``, or None: missing, or unusable (one warning)."""
    path = cache_dir() / f"{key}.graph"
    try:
        found = read_sealed(path.name, key, MAGIC)
        if found is None:
            return None
        payload = pickle.loads(found[0])
    except ValueError as exc:
        return _reject(path, f"is damaged ({exc})")
    except Exception as exc:  # a class renamed or gone since it was written
        return _reject(path, f"is stale ({type(exc).__name__}: {exc})")
    if not isinstance(payload, dict) or payload.get("key") != key:
        return _reject(path, "belongs to another graph")
    if payload.get("versions") != versions():
        return _reject(path, "was written by other versions")
    return payload


def _reject(path: Path, why: str) -> None:
    stats["rejected"] += 1
    _warn_once(f"entry {path} {why}; compiling the graph again")
    return None


def _inner_graph(inputs: list, outputs: list, update_mapping) -> FunctionGraph:
    return FunctionGraph(inputs, outputs, clone=False, update_mapping=update_mapping)


class _GraphPickler(pickle.Pickler):
    """Inner graphs (of ``Scan``, ``OpFromGraph``) are stored as their Op made them: a
    ``FunctionGraph`` of the same variables, without the features that compiling the inner
    function attached to it, whose state PyTensor does not pickle whole (an unpickled
    ``ReplaceValidate`` has no history, and the next compile of that graph fails)."""

    def reducer_override(self, obj):
        if type(obj) is FunctionGraph:
            return _inner_graph, (list(obj.inputs), list(obj.outputs), obj.update_mapping)
        return NotImplemented


#: public name of the pickler: ``aotkernels.model_cache`` stores graphs with it
GraphPickler = _GraphPickler


def store(key: str, fgraph) -> bool:
    """Write the rewritten ``fgraph`` under ``key``; False if it could not be."""
    memo = {v: v.type(name=v.name) for v in fgraph.inputs}  # bare: no shared value
    equiv = clone_get_equiv(fgraph.inputs, fgraph.outputs, copy_inputs=False,
                            copy_orphans=True, memo=memo)
    payload = {"key": key, "versions": versions(),
               "inputs": [memo[v] for v in fgraph.inputs],
               "outputs": [equiv[v] for v in fgraph.outputs],
               "destroy_handler": hasattr(fgraph, "destroyers")}
    try:
        buffer = io.BytesIO()
        _GraphPickler(buffer, protocol=pickle.HIGHEST_PROTOCOL).dump(payload)
        data = buffer.getvalue()
    except (pickle.PicklingError, TypeError, AttributeError, RecursionError) as exc:
        log.debug("aotkernels: graph cache: not storing %s: %s", key, exc)
        return False
    if len(data) > MAX_ENTRY or not write_sealed(f"{key}.graph", key, data, MAGIC):
        return False
    stats["stored"] += 1
    return True


def _install(fgraph, payload: dict) -> None:
    """Make the stored graph ``fgraph``'s: its inputs become ``fgraph``'s (by position),
    its outputs replace ``fgraph``'s through the graph's own change/validate machinery, so
    the destroy handler and the protection of inputs see every node. Raises on a graph
    that does not fit; the caller reverts."""
    cached_in, cached_out = payload["inputs"], payload["outputs"]
    if len(cached_in) != len(fgraph.inputs) or len(cached_out) != len(fgraph.outputs):
        raise ValueError("its inputs or outputs differ in number")
    to_mine = {}
    for old, new in zip(cached_in, fgraph.inputs):
        if old.type != new.type:
            raise ValueError(f"input type {old.type} is not {new.type}")
        to_mine[old] = new
    for node in _toposort(cached_out):
        node.inputs = [to_mine.get(v, v) for v in node.inputs]
    outputs = [to_mine.get(v, v) for v in cached_out]
    clients = [fgraph.get_output_client(i)[0] for i in range(len(fgraph.outputs))]
    for client, new in zip(clients, outputs):
        fgraph.change_node_input(client, 0, new, reason="aotkernels_graph_cache")
    if payload["destroy_handler"]:  # attached once the old graph is gone: it sees the new
        fgraph.attach_feature(DestroyHandler())
    fgraph.validate()


class CachedRewriter(GraphRewriter):
    """The optimizer of a mode with a caching linker: a stored rewritten graph if there is one,
    else the mode's real rewriter (queried only then), whose result is stored."""

    def __init__(self, mode: Mode) -> None:
        self.mode = mode
        self._real = None

    @property
    def real(self) -> GraphRewriter:
        if self._real is None:
            self._real = _plain_optimizer.fget(self.mode)
        return self._real

    def __getattr__(self, name):  # profiles and printing ask the real rewriter
        if name.startswith("__") or name in ("mode", "_real"):
            raise AttributeError(name)
        return getattr(self.real, name)

    def add_requirements(self, fgraph) -> None:
        """The real rewriter adds its own, on a miss."""

    def print_profile(self, stream, prof, level: int = 0) -> None:
        """``config.profile_optimizer``'s report: the real rewriter's, or a hit's line."""
        if prof is None:
            print(f"{' ' * level}aotkernels graph cache: a hit, no rewriting", file=stream)
        else:
            self.real.print_profile(stream, prof, level)

    def apply(self, fgraph):
        freeze_once()
        key = None
        if enabled():
            try:
                key = graph_key(fgraph, self.mode)
            except Exception as exc:  # Uncachable, or an Op whose props fail to read
                stats["uncachable"] += 1
                log.debug("aotkernels: graph cache: not caching this graph: %s", exc)
            if key is not None and self._hit(fgraph, key):
                return None
            stats["misses"] += key is not None
        with lean_rewriting.rewriting(fgraph):
            result = self.real.rewrite(fgraph)  # its errors are the caller's
        if key is not None:
            try:
                store(key, fgraph)
            except Exception as exc:  # a cache never fails a compile
                log.debug("aotkernels: graph cache: not storing %s: %s", key, exc)
        return result

    def _hit(self, fgraph, key: str) -> bool:
        payload = load(key)
        if payload is None or not hasattr(fgraph, "checkpoint"):
            return False
        checkpoint = fgraph.checkpoint()
        try:
            _install(fgraph, payload)
        except Exception as exc:
            fgraph.revert(checkpoint)
            _reject(cache_dir() / f"{key}.graph", f"does not fit this graph ({exc})")
            return False
        stats["hits"] += 1
        return True


#: PyTensor's own ``Mode.optimizer``
_plain_optimizer = Mode.optimizer


def _optimizer(mode: Mode):
    """``Mode.optimizer`` for every mode: through the cache when the mode's linker asks for
    it (``graph_cache = True``: the AOT linker), else PyTensor's. A property of ``Mode``
    itself, not of a subclass, because libraries build their own ``Mode`` around mode AOT's
    linker: PyMC compiles every function with ``Mode(linker=mode.linker,
    optimizer=query)``, which a subclass of ``Mode`` would not survive."""
    if getattr(mode.linker, "graph_cache", False):
        return CachedRewriter(mode)
    return _plain_optimizer.fget(mode)


if Mode.optimizer is _plain_optimizer:  # once, even if this module is loaded again
    Mode.optimizer = property(_optimizer, doc=_plain_optimizer.__doc__)


class CachedMode(Mode):
    """A ``Mode`` whose rewriting goes through the graph cache whatever its linker; modes
    derived from it (``including``, ``excluding``, ``clone``) are ``CachedMode`` with their
    own query."""

    @property
    def optimizer(self):
        return CachedRewriter(self)


class _RewriteOnly(Linker):
    """The linker of ``rewrite_graph``'s mode: it links nothing and adds no rewrite to the
    query (every PyTensor linker requires ``minimum_compile``, which ``rewrite_graph``
    does not run)."""

    required_rewrites: tuple[str, ...] = ()
    incompatible_rewrites: tuple[str, ...] = ()

    def make_thunk(self, **kwargs):  # pragma: no cover - never linked
        raise NotImplementedError("a mode for rewriting only")


def rewrite_graph(graph, include=("canonicalize",), custom_rewrite=None, clone=False,
                  **kwargs):
    """``pytensor.graph.rewrite_graph`` through the cache: the same query on the same graph
    gives the stored result in a later process. PyMC-based samplers (nutpie's graph builder)
    rewrite the logp graph so before differentiating it, ahead of any compile: uncached it
    was the largest part of a warm start. Anything but variables and a plain query (a
    ``FunctionGraph``, a custom rewrite, other query keywords) goes to PyTensor's."""
    from pytensor.graph.basic import Variable
    from pytensor.graph.features import History, Validator
    from pytensor.graph.rewriting.utils import rewrite_graph as plain

    single = isinstance(graph, Variable)
    outputs = [graph] if single else graph
    if (custom_rewrite is not None or kwargs or not enabled() or isinstance(graph, FunctionGraph)
            or not all(isinstance(v, Variable) for v in outputs)):
        return plain(graph, include=include, custom_rewrite=custom_rewrite, clone=clone,
                     **kwargs)
    fgraph = FunctionGraph(outputs=list(outputs), clone=clone)
    fgraph.attach_feature(History())  # a hit installs through checkpoint and validate
    fgraph.attach_feature(Validator())
    mode = CachedMode(linker=_RewriteOnly(),
                      optimizer=RewriteDatabaseQuery(include=list(include)))
    mode.optimizer.rewrite(fgraph)
    return fgraph.outputs[0] if single else fgraph.outputs
