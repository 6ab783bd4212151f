"""A cache keyed by the PyMC model: a warm process skips building its logp graph and gradient.

With the graph cache warm, most of what is left of ``aotkernels.nutpie.compile_pymc_model``
is PyMC building the graphs it compiles: ``Model.logp`` (the logprob IR and its rewrites,
multipledispatch ordering its tables on first use), ``pytensor.grad``, the initial-point
expression, and nutpie's shapes. The graph cache cannot help there: it is keyed by a graph
that only exists once they are built. This cache is keyed by the model itself
(``model_key``) and stores the graphs handed to ``pymc.pytensorf.compile`` (the initial
point's, the logp+gradient's, the expand function's: inputs, outputs, givens, the mode's
name), plus what nutpie's compiled model needs besides (sizes, names, slices, shapes). A hit
unpickles those graphs and makes the same ``compile`` calls, so the functions come out of
the graph cache exactly as after a miss, and sample the same.

The key is a canonical walk (``graph_cache.Walk``) of the model's graph: its free and
observed random variables, deterministics and potentials in order, with their names; each
free variable's value variable (name, type), transform (class and attributes, a variable
among them as its graph; an interval's bounds as the graph its bounds function gives on the
variable's inputs), initial-value
strategy and total size; the observed values (constants by bytes); the shared variables it
reads (``pm.Data``, dimension lengths) by type and value bytes, random generators by type
only (the functions reseed their own); the model's ``check_bounds`` and the enclosing
model context's; the options of ``compile_pymc_model``; the config flags rewrites read; the
versions of PyTensor, PyMC, nutpie, NumPy, Python and aotkernels, and of every package
whose classes the walk named. A model with anything the walk cannot name (a transform
holding a function, an initial value given as a variable, a shared value that is not an
array) is compiled normally and not cached. Shared variables of the model (and clones of
them, which share their storage) are stored as references (their position in the walk) and
bound to this model's on a hit; a graph reading any other non-random shared variable is not
stored (its value is not in the key).

Entries (``KEY.model``) live in the graph cache's directory under its rules
(``graph_cache.read_sealed``/``write_sealed``: this user's own files only, one atomic
rename, sealed with a hash): a damaged, stale or foreign entry, or one whose graphs do not
fit this model, is one warning line and a normal compile, which stores a good entry.
``AOT_MODEL_CACHE=0`` turns it off (as does ``AOT_GRAPH_CACHE=0``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import logging
import os
import pickle
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import numpy as np
from pytensor.compile.builders import OpFromGraph
from pytensor.compile.sharedvalue import SharedVariable
from pytensor.configdefaults import config
from pytensor.graph.basic import Constant, Variable
from pytensor.graph.traversal import graph_inputs
from pytensor.tensor.random.type import RandomType

from aotkernels.pytensor import graph_cache
from aotkernels.pytensor.graph_cache import Uncachable

log = logging.getLogger("aotkernels")

#: entry format: part of every key
FORMAT = 1
MAGIC = b"AOTKMOD1"
SUFFIX = ".model"

T = TypeVar("T")

#: counters for this process (tests and benchmarks read them)
stats = {"hits": 0, "misses": 0, "stored": 0, "uncachable": 0, "rejected": 0}


def enabled() -> bool:
    """False when ``AOT_MODEL_CACHE`` (or the graph cache, ``AOT_GRAPH_CACHE``) is off."""
    return graph_cache.enabled() and os.environ.get(
        "AOT_MODEL_CACHE", "1").strip().lower() not in ("0", "false", "no", "off")


def versions() -> str:
    """The graph cache's versions plus this format's, PyMC's and nutpie's."""
    pkgs = "|".join(f"{p}={getattr(sys.modules.get(p), '__version__', None)}"
                    for p in ("pymc", "nutpie"))
    return f"{graph_cache.versions()}|model_format={FORMAT}|{pkgs}"


# --- the key ---------------------------------------------------------------------------

@dataclasses.dataclass
class Key:
    """A model's cache key, the model's shared variables in the walk's order and its
    transforms in its variables' order (what the stored graphs refer to by position)."""

    digest: str
    shared: list[SharedVariable]
    transforms: list = dataclasses.field(default_factory=list)


def model_key(model, options: dict[str, Any]) -> Key:
    """The key of compiling ``model`` with ``compile_pymc_model``'s ``options``; raises
    ``Uncachable`` for what the walk cannot name."""
    from pymc.logprob.transforms import IntervalTransform, Transform
    from pymc.model import modelcontext

    walk = graph_cache.Walk()
    outputs: list[Variable] = []

    def out(v) -> int:
        outputs.append(v)
        return len(outputs) - 1

    def value_form(v):
        if isinstance(v, Variable):
            raise Uncachable(f"{v} is a variable")
        return walk.canon(v)

    def transform_form(t, rv):
        if t is None:
            return None
        if not isinstance(t, Transform):
            raise Uncachable(f"transform {t!r}")
        attrs = []
        for name, v in sorted(vars(t).items()):
            if name == "args_fn" and isinstance(t, IntervalTransform):
                bounds = t.args_fn(*rv.owner.inputs)
                v = tuple(("var", out(b)) if isinstance(b, Variable) else value_form(b)
                          for b in bounds)
            elif isinstance(v, Variable):  # CholeskyCovPacked's diagonal's indices
                v = ("var", out(v))
            elif isinstance(v, Transform):
                v = transform_form(v, rv)
            elif isinstance(v, (list, tuple)) and v and all(isinstance(x, Transform) for x in v):
                v = tuple(transform_form(x, rv) for x in v)
            else:
                v = value_form(v)
            attrs.append((name, v))
        return (walk.name(type(t)), tuple(attrs))

    roles = []
    total_sizes = getattr(model, "rvs_to_total_sizes", {})  # gone in PyMC 5.2x
    free = list(model.free_RVs)
    for rv in free:
        value = model.rvs_to_values[rv]
        roles.append(("free", out(rv), value.name, walk.text(value.type),
                      transform_form(model.rvs_to_transforms.get(rv), rv),
                      value_form(model.rvs_to_initial_values.get(rv)),
                      value_form(total_sizes.get(rv))))
    for rv in model.observed_RVs:
        roles.append(("observed", out(rv), out(model.rvs_to_values[rv]),
                      transform_form(model.rvs_to_transforms.get(rv), rv),
                      value_form(total_sizes.get(rv))))
    roles += [("deterministic", out(v)) for v in model.deterministics]
    roles += [("potential", out(v)) for v in model.potentials]

    # the graph's shared variables, then the model's others (dimension lengths the value
    # variables' shapes read, data): stored graphs may refer to those too
    shared: list[SharedVariable] = []
    for v in [*graph_inputs(outputs), *model.dim_lengths.values(), *model.data_vars]:
        if isinstance(v, SharedVariable) and not any(v is w for w in shared):
            shared.append(v)
    leaves = shared + [v for v in graph_inputs(outputs)
                       if not isinstance(v, (SharedVariable, Constant))]

    def shared_value(v) -> str:
        if not isinstance(v, SharedVariable):
            return ""
        if isinstance(v.type, RandomType):
            return " rng"
        value = v.get_value(borrow=True)
        if not isinstance(value, (np.ndarray, np.generic)):
            raise Uncachable(f"shared variable {v} holds a {type(value).__name__}")
        return f" value={walk.canon(value)!r}"

    try:
        context = modelcontext(None)
    except TypeError:
        context = None
    if not all(isinstance(k, str) for k in (options.get("initial_points") or {})):
        raise Uncachable("initial points keyed by variables")
    jitter = options.get("jitter_rvs")
    if jitter is not None:
        if not all(any(r is rv for rv in free) for r in jitter):
            raise Uncachable("jitter_rvs holds a variable that is not a free one")
        jitter = sorted(k for k, rv in enumerate(free) if any(r is rv for r in jitter))
    parts = [versions(),
             repr(sorted((f, getattr(config, f, None)) for f in graph_cache.CONFIG_FLAGS)),
             f"check_bounds={model.check_bounds} context="
             f"{None if context is None else (context is model, context.check_bounds)}",
             repr(walk.canon({k: v for k, v in options.items() if k != "jitter_rvs"})),
             f"jitter={jitter}"]
    parts += walk.graph(leaves, outputs, shared_value)
    parts.append(repr(roles))
    parts.append("packages " + ",".join(
        f"{p}={getattr(sys.modules.get(p), '__version__', None)}" for p in sorted(walk.packages)))
    transforms: list = []
    for rv in free + list(model.observed_RVs):
        t = model.rvs_to_transforms.get(rv)
        if t is not None and not any(t is u for u in transforms):
            transforms.append(t)
    return Key(hashlib.sha256("\n".join(parts).encode()).hexdigest(), shared, transforms)


def key_of(model, options: dict[str, Any]) -> Key | None:
    """``model_key``, or None when the cache is off or the model has no key."""
    if not enabled():
        return None
    try:
        return model_key(model, options)
    except Exception as exc:  # Uncachable, or a graph or transform that fails to walk
        stats["uncachable"] += 1
        log.debug("aotkernels: model cache: not caching this model: %s", exc)
        return None


# --- recording what a miss compiles ----------------------------------------------------

@dataclasses.dataclass
class Call:
    """One ``pymc.pytensorf.compile`` call, stored and replayed: its graphs (inputs,
    outputs, keywords) pickled when the call was made, which is the graph that compile
    keyed (rewriting may rename shared constants afterwards), the mode's name, and whether
    it ran inside the model's context (``check_bounds``)."""

    graphs: bytes
    mode: str | None
    in_model: bool


@contextmanager
def recording(model, key: Key | None) -> Iterator[list[Call | None]]:
    """Record every ``pymc.pytensorf.compile`` call (PyMC's initial point imports it by
    name, nutpie at call time) for the duration, when there is a ``key``; a call the cache
    cannot replay (an unnamed mode, other keywords, a graph that does not pickle or reads a
    shared variable not in the key) is recorded as None."""
    import pymc.initial_point
    import pymc.pytensorf as pf
    from pymc.model import modelcontext

    calls: list[Call | None] = []
    if key is None:
        yield calls
        return
    plain = pf.compile

    def compile(inputs, outputs, random_seed=None, mode=None, **kwargs):
        try:
            context = modelcontext(None)
        except TypeError:
            context = None
        name = mode_name(mode)
        ok = (random_seed is None and set(kwargs) <= {"givens"} and
              (name is not None or mode is None) and context in (None, model))
        graphs = pickled((inputs, outputs, kwargs), key) if ok else None
        calls.append(None if graphs is None else Call(graphs, name, context is model))
        return plain(inputs, outputs, random_seed=random_seed, mode=mode, **kwargs)

    pf.compile = pymc.initial_point.compile = compile
    try:
        yield calls
    finally:
        pf.compile = pymc.initial_point.compile = plain


def modes() -> dict[str, Any]:
    """The modes a stored call can name: PyTensor's predefined ones and mode AOT."""
    from pytensor.compile.mode import predefined_modes

    from aotkernels.pytensor import AOT

    return {"AOT": AOT, **predefined_modes}


def mode_name(mode) -> str | None:
    if isinstance(mode, str):
        return mode
    return next((name for name, m in modes().items() if m is mode), None)


# --- entries ---------------------------------------------------------------------------

@dataclasses.dataclass
class Entry:
    """What a hit gives back: the replayed functions (in call order) and the facts nutpie's
    compiled model needs."""

    functions: list
    facts: dict


_warned: set[str] = set()


def _warn_once(message: str) -> None:
    if message not in _warned:
        _warned.add(message)
        log.warning("aotkernels: model cache: %s", message)


#: class -> whether it is a ``SharedVariable`` class
_SHARED_CLASSES: dict[type, bool] = {}


class _Pickler(graph_cache.GraphPickler):
    """Graphs with the model's shared variables as references: (position in the key's walk,
    type, 0 for the variable itself or n for the n-th clone of it, which shares its storage:
    PyMC's initial-point graph reads clones); the model's transforms (which the key walked;
    an interval's holds a local function) by their position too."""

    def __init__(self, buffer, key: Key) -> None:
        super().__init__(buffer, protocol=pickle.HIGHEST_PROTOCOL)
        self.index = {id(v.container): k for k, v in enumerate(key.shared)}
        self.transforms = {id(t): k for k, t in enumerate(key.transforms)}
        self.shared = key.shared
        self.clones: dict[int, int] = {}
        self.foreign: list[SharedVariable] = []

    def reducer_override(self, obj):
        """``OpFromGraph`` without the gradient Ops it cached, which are local functions
        (nothing on a hit differentiates again; an emptied cache is rebuilt on demand)."""
        if isinstance(obj, OpFromGraph):
            func, args, state, *rest = obj.__reduce_ex__(pickle.HIGHEST_PROTOCOL)
            if isinstance(state, dict):
                state = dict(state, _lop_op_cache={}, _rop_op_cache=None)
            return (func, args, state, *rest)
        return super().reducer_override(obj)

    def persistent_id(self, obj):
        """Called for every object pickled (some 50,000 per model): the class test is
        cached per class (``isinstance`` on PyTensor's ABCs is a Python-level call)."""
        k = self.transforms.get(id(obj))
        if k is not None:
            return ("transform", k, type(obj).__name__, 0)
        cls = type(obj)
        shared = _SHARED_CLASSES.get(cls)
        if shared is None:
            shared = _SHARED_CLASSES[cls] = issubclass(cls, SharedVariable)
        if shared:
            k = self.index.get(id(obj.container))
            if k is not None:
                if obj is self.shared[k]:
                    return ("shared", k, obj.type, 0)
                n = self.clones.setdefault(id(obj), len(self.clones) + 1)
                return ("shared", k, obj.type, n)
            if not isinstance(obj.type, RandomType):
                self.foreign.append(obj)
        return None


class _Unpickler(pickle.Unpickler):
    def __init__(self, buffer, key: Key) -> None:
        super().__init__(buffer)
        self.shared = key.shared
        self.transforms = key.transforms
        self.clones: dict[int, SharedVariable] = {}

    def persistent_load(self, pid):
        kind, k, type_, n = pid
        if kind == "transform":
            if not 0 <= k < len(self.transforms) or type(self.transforms[k]).__name__ != type_:
                raise ValueError(f"transform {k} of the entry is not this model's")
            return self.transforms[k]
        if kind != "shared" or not 0 <= k < len(self.shared) or self.shared[k].type != type_:
            raise ValueError(f"shared variable {k} of the entry is not this model's")
        if n == 0:
            return self.shared[k]
        if n not in self.clones:
            self.clones[n] = self.shared[k].clone()
        return self.clones[n]


def pickled(graphs, key: Key) -> bytes | None:
    """``graphs`` pickled with the model's shared variables as references, or None."""
    try:
        buffer = io.BytesIO()
        pickler = _Pickler(buffer, key)
        pickler.dump(graphs)
    except (pickle.PicklingError, TypeError, AttributeError, RecursionError) as exc:
        log.debug("aotkernels: model cache: not storing %s: %s", key.digest, exc)
        return None
    if pickler.foreign:
        log.debug("aotkernels: model cache: not storing %s: the graphs read %s, which is not "
                  "the model's", key.digest, pickler.foreign[0])
        return None
    return buffer.getvalue()


def remember(key: Key, calls: list[Call | None], facts: dict) -> bool:
    """Store the recorded ``calls`` and ``facts`` under ``key``; False if not stored."""
    if not calls or any(c is None for c in calls):
        return False
    payload = {"key": key.digest, "versions": versions(), "calls": calls, "facts": facts}
    try:
        data = pickle.dumps(payload, protocol=pickle.HIGHEST_PROTOCOL)
    except (pickle.PicklingError, TypeError, AttributeError, RecursionError) as exc:
        log.debug("aotkernels: model cache: not storing %s: %s", key.digest, exc)
        return False
    if len(data) > graph_cache.MAX_ENTRY or not graph_cache.write_sealed(
            key.digest + SUFFIX, key.digest, data, MAGIC):
        return False
    stats["stored"] += 1
    return True


def lookup(key: Key, model, use: Callable[[Entry], T]) -> T | None:
    """``use(entry)`` of the entry of ``key`` with its calls replayed
    (``pymc.pytensorf.compile`` on the stored graphs, bound to ``model``'s shared
    variables), or None: missing, or unusable (one warning), which includes ``use``
    raising: an entry that does not fit."""
    import pymc.pytensorf as pf

    path = graph_cache.cache_dir() / (key.digest + SUFFIX)
    try:
        found = graph_cache.read_sealed(path.name, key.digest, MAGIC)
        if found is None:
            return _miss()
        payload = pickle.loads(found[0])
        graphs = [_Unpickler(io.BytesIO(call.graphs), key).load()
                  for call in payload["calls"]]
    except ValueError as exc:
        return _reject(path, f"is damaged or not this model's ({exc})")
    except Exception as exc:  # a class renamed or gone since it was written
        return _reject(path, f"is stale ({type(exc).__name__}: {exc})")
    if payload.get("key") != key.digest:
        return _reject(path, "belongs to another model")
    if payload.get("versions") != versions():
        return _reject(path, "was written by other versions")
    try:
        known = modes()
        functions = []
        for call, (inputs, outputs, kwargs) in zip(payload["calls"], graphs):
            mode = None if call.mode is None else known.get(call.mode, call.mode)
            if call.in_model:
                with model:
                    fn = pf.compile(inputs, outputs, mode=mode, **kwargs)
            else:
                fn = pf.compile(inputs, outputs, mode=mode, **kwargs)
            functions.append(fn)
        result = use(Entry(functions, payload["facts"]))
    except Exception as exc:
        return _reject(path, f"does not fit this model ({type(exc).__name__}: {exc})")
    stats["hits"] += 1
    return result


def _miss() -> None:
    stats["misses"] += 1
    return None


def _reject(path, why: str) -> None:
    stats["rejected"] += 1
    stats["misses"] += 1
    _warn_once(f"entry {path} {why}; compiling the model again")
    return None
