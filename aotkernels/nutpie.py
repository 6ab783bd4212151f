"""nutpie on aotkernels: a PyMC model sampled by nutpie's Rust NUTS on C plans.

    import aotkernels.nutpie
    compiled = aotkernels.nutpie.compile_pymc_model(model)   # no numba compile
    trace = nutpie.sample(compiled, chains=4)

nutpie's numba backend compiles the model's logp+gradient and expand functions with numba
(tens of seconds); here the same functions (nutpie's own graph builder) compile in mode
AOT, run until they have plans, and the plans become nutpie's C callbacks
(``aotk_nutpie_logp`` / ``aotk_nutpie_expand``, ``pytensor.cplan``): each of nutpie's
chain threads calls them with no Python and no GIL. Fused kernels (``pytensor.fusion``)
the library or the JIT cache holds are in the plans at once; those compiled in the
background replace the plans when they arrive, between two calls, while nutpie samples
(``cplan.when_fused``, ``Model.replace``). A model whose plan keeps a node in
Python falls back, with one warning naming the node, to nutpie's Python-callback path
(``nutpie.compiled_pyfunc.from_pyfunc``) on the same mode-AOT functions. Needs nutpie
0.16 (``pip install aotkernels[nutpie]``); shared data (``pm.Data``) is taken as it is at
compile time: after ``pm.set_data``, compile again.
"""

from __future__ import annotations

import dataclasses
import threading
import warnings
from contextlib import contextmanager
from typing import Any

import numpy as np
import pytensor
from nutpie import compile_pymc
from nutpie.compiled_pyfunc import from_pyfunc

from aotkernels import model_cache
from aotkernels.process import freeze_once
from aotkernels.pytensor import AOT, graph_cache, lean_rewriting
from aotkernels.pytensor.cplan import Model, NotExportable, entry_points, export
from aotkernels.pytensor.graph_cache import CachedMode
from aotkernels.pytensor.linker import without_c_backend

__all__ = ["CompiledPlanModel", "compile_pymc_model"]


@dataclasses.dataclass(frozen=True)
class CompiledPlanModel(compile_pymc.CompiledPyMCModel):
    """nutpie's compiled PyMC model with aotkernels plans as its C functions: nutpie reads
    ``compiled_logp_func.address``, ``compiled_expand_func.address`` and
    ``user_data.ctypes.data``; ``plans`` keeps what they point to alive."""

    plans: Any = None

    def with_data(self, **updates):
        raise NotImplementedError("the plans hold the shared data of compile time: set the "
                                  "data with pm.set_data and compile the model again")


@dataclasses.dataclass(frozen=True)
class Address:
    """What nutpie reads of a numba cfunc."""

    address: int


def compile_pymc_model(model, *, var_names=None, initial_points=None, jitter_rvs=None,
                       default_initialization_strategy: str = "support_point"):
    """``nutpie.compile_pymc_model(model)`` on aotkernels: the model's logp+gradient and
    expand functions in mode AOT, sampled through their C plans (see the module docstring).
    The keywords are nutpie's. The other functions PyMC and nutpie compile on the way
    (initial points, shapes) get mode AOT too, and PyTensor's C VM is not imported: in a
    fresh process either would compile C for seconds. PyMC's and nutpie's graph building
    (the logp graph, ``pytensor.grad``) runs with ``lean_rewriting``'s shortcuts too: a
    gradient through batched linear algebra builds shapes with ``infer_static_shape``,
    whose own rewrite of each was 0.1-0.3 s of an LKJ model's compile."""
    freeze_once()
    with aot_default(), lean_rewriting.rewriting():
        return compile_model(model, var_names, initial_points, jitter_rvs,
                             default_initialization_strategy)


#: ``aot_default`` changes process-wide settings: one compile at a time
_DEFAULTS_LOCK = threading.RLock()


@contextmanager
def aot_default():
    """Mode AOT as the default, no C VM, PyMC's compiles through the graph cache, and
    PyTensor's compile-time stack traces for the duration (one thread at a time: each
    saves and restores what the others change).

    PyTensor records where each new variable was made (``tag.trace``, a walk of the
    stack: ``traceback__limit`` frames) except while it compiles, where it keeps
    ``traceback__compile_limit`` (0 by default). Everything here is compiling, but PyMC's
    logp graph, ``pytensor.grad`` and nutpie's graph rewrites run outside PyTensor's
    compile, and those walks were about a tenth of an LKJ model's ``compile_pymc_model``
    (benchmarks/RESULTS.md, session 12): the compile-time limit applies to them too.
    Their traces would name PyMC's and nutpie's code, not the user's; set
    ``traceback__compile_limit`` to keep some, as for PyTensor's own compile."""
    with _DEFAULTS_LOCK:
        old = pytensor.config.mode
        pytensor.config.mode = AOT
        limit = pytensor.config.traceback__compile_limit
        try:
            with (without_c_backend(), pymc_compiles_cached(),
                  pytensor.config.change_flags(traceback__limit=limit)):
                yield
        finally:
            pytensor.config.mode = old


@contextmanager
def pymc_compiles_cached():
    """``pymc.pytensorf.compile`` (through which PyMC and nutpie compile every function:
    logp+gradient, expand, initial points) adds PyMC's rewrites by rebuilding the mode as a
    plain ``Mode(linker=..., optimizer=query)``, which drops mode AOT's graph cache, so each
    process rewrote those graphs anew: most of the time to the first draw. For the duration
    every such mode is a ``CachedMode`` with the same linker and query (the cache stores
    what the query's rewrites make, whatever the linker; initial points keep PyMC's
    FAST_COMPILE)."""
    import pymc.pytensorf as pf

    plain = pf.Mode

    def mode(linker=None, optimizer="default", **kwargs):
        return CachedMode(linker=linker, optimizer=optimizer, **kwargs)

    pf.Mode = mode
    try:
        yield
    finally:
        pf.Mode = plain


@contextmanager
def builder_shortcuts(point_fn):
    """What nutpie's graph builder does before any compile, made cheaper for the duration
    (the same graphs come out): its ``rewrite_graph`` of the logp graph goes through the
    graph cache (``graph_cache.rewrite_graph``: a later process skips canonicalize and
    stabilize, and multipledispatch's first ordering of ``unify``'s table); its
    ``_compute_shapes`` takes the initial point from ``point_fn`` (the one PyMC's
    initial-point function this compile has made already) instead of compiling another
    (only shapes are read from it)."""
    import pytensor.graph

    plain_rewrite, plain_shapes = pytensor.graph.rewrite_graph, compile_pymc._compute_shapes

    def compute_shapes(model):
        import pymc.initial_point as ip

        plain_make = ip.make_initial_point_fn
        ip.make_initial_point_fn = lambda **kwargs: point_fn
        try:
            return plain_shapes(model)
        finally:
            ip.make_initial_point_fn = plain_make

    pytensor.graph.rewrite_graph = graph_cache.rewrite_graph
    compile_pymc._compute_shapes = compute_shapes
    try:
        yield
    finally:
        pytensor.graph.rewrite_graph = plain_rewrite
        compile_pymc._compute_shapes = plain_shapes


def compile_model(model, var_names, initial_points, jitter_rvs,
                  default_initialization_strategy):
    """``compile_pymc_model`` inside ``aot_default``: nutpie's functions from the model
    cache (``model_cache``: no logp graph, gradient or initial-point expression built) or
    built by nutpie's graph builder, which a miss records for the next process."""
    if default_initialization_strategy == "support_point" and jitter_rvs is None:
        jitter_rvs = set(model.free_RVs)
    options = dict(var_names=None if var_names is None else list(var_names),
                   initial_points=initial_points, jitter_rvs=jitter_rvs,
                   default_initialization_strategy=default_initialization_strategy)
    key = model_cache.key_of(model, options)
    made = None if key is None else model_cache.lookup(key, model, from_entry)
    if made is not None:
        return finish(model, *made)
    with model_cache.recording(model, key) as calls:
        point_fn, made = build(model, **options)
    if key is not None:
        model_cache.remember(key, calls, facts(model, made))
    return finish(model, *made)


def build(model, var_names, initial_points, jitter_rvs, default_initialization_strategy):
    """(PyMC's initial-point function, nutpie's ``_make_functions`` result) from the graphs
    PyMC and nutpie build."""
    from pymc.initial_point import make_initial_point_fn

    point_fn = make_initial_point_fn(model=model, overrides=initial_points,
                                     default_strategy=default_initialization_strategy,
                                     jitter_rvs=jitter_rvs, return_transformed=True)
    # nutpie's own builder, so the graphs are exactly those its numba backend compiles;
    # 0.16.9 (Python >= 3.12) added the names of reparameterized values
    with builder_shortcuts(point_fn):
        made = compile_pymc._make_functions(
            model, mode=AOT, compute_grad=True, join_expanded=True,
            pymc_initial_point_fn=locked(point_fn), var_names=var_names)
    return point_fn, made


def locked(point_fn):
    """``point_fn`` one call at a time: nutpie calls it from its chain threads."""
    lock = threading.Lock()

    def locked_point_fn(seed):
        with lock:
            return point_fn(seed)
    return locked_point_fn


def facts(model, made) -> dict:
    """What a model-cache hit needs besides the three functions: ``_make_functions``'s
    sizes, shapes and names, and the names PyMC's initial-point function gives its
    values (its closure's, made the same way)."""
    from pymc.util import get_transformed_name

    names = []
    for rv in model.free_RVs:
        transform = model.rvs_to_transforms[rv]
        names.append(rv.name if transform is None else get_transformed_name(rv.name,
                                                                            transform))
    n_dim, n_expanded, _, _, _, shape_info = made[:6]
    return {"n_dim": n_dim, "n_expanded": n_expanded, "shape_info": shape_info,
            "rest": tuple(made[6:]), "point_names": names, "n_free": len(model.free_RVs)}


def from_entry(entry):
    """``_make_functions``'s result from a model-cache hit: PyMC's seeded initial-point
    function (``make_initial_point_fn``'s ``inner``: reseed the function's generators, name
    its values) wrapped as nutpie wraps it. Raises for an entry that does not fit: not
    three functions, or an initial point of other shapes (nutpie's wrapper checks them)."""
    from pymc.pytensorf import find_rng_nodes, reseed_rngs

    if len(entry.functions) != 3:
        raise ValueError(f"{len(entry.functions)} functions, not 3")
    point, logp_fn, expand_fn = entry.functions
    f = entry.facts
    rngs = find_rng_nodes(point.maker.fgraph.outputs)
    names = f["point_names"]

    def point_fn(seed, *args, **kwargs):
        reseed_rngs(rngs, seed)
        return dict(zip(names, point(*args, **kwargs)))

    all_names, _, all_shapes = f["shape_info"]
    n = f["n_free"]
    initial_point_fn = compile_pymc._rv_dict_to_flat_array_wrapper(
        locked(point_fn), names=all_names[:n], shapes=all_shapes[:n])
    initial_point_fn(0)
    return (f["n_dim"], f["n_expanded"], logp_fn, expand_fn, initial_point_fn,
            f["shape_info"], *f["rest"])


def finish(model, *made):
    """nutpie's compiled model on C plans (or its Python-callback fallback) from
    ``_make_functions``'s result."""
    n_dim, n_expanded, logp_fn, expand_fn, initial_point_fn, shape_info = made[:6]
    reparameterized = made[6] if len(made) > 6 else None
    dims, coords = compile_pymc._prepare_dims_and_coords(
        model, shape_info, *([] if reparameterized is None else [reparameterized]))
    x0 = initial_point_fn(0)
    entries = entry_points()
    try:
        if entries is None:
            raise NotExportable("the kernel library has no plan entry points")
        plans = Model(exported("logp", logp_fn, x0, (1, n_dim)),
                      exported("expand", expand_fn, x0, (n_expanded,)), entries)
        plans.fuse_later()  # fused kernels still compiling replace the plans when they come
    except NotExportable as exc:
        warnings.warn(f"aotkernels.nutpie: {exc}; nutpie calls the mode-AOT functions from "
                      "Python instead", RuntimeWarning, stacklevel=4)
        return python_model(n_dim, logp_fn, expand_fn, initial_point_fn, shape_info,
                            reparameterized, dims, coords)
    fields = dict(
        _n_dim=n_dim, dims=dims, _coords=coords,
        _shapes={name: tuple(shape) for name, _, shape in zip(*shape_info)},
        compiled_logp_func=Address(plans.logp_address),
        compiled_expand_func=Address(plans.expand_address),
        initial_point_func=initial_point_fn, shared_data={}, shared_var_keys={},
        user_data=plans.user_data, n_expanded=n_expanded, shape_info=shape_info,
        logp_func=logp_fn, expand_func=expand_fn, reparameterized_names=reparameterized,
        plans=plans)
    known = {f.name for f in dataclasses.fields(CompiledPlanModel)}
    return CompiledPlanModel(**{k: v for k, v in fields.items() if k in known})


def exported(what: str, fn, x0: np.ndarray, sizes: tuple[int, ...]):
    """``cplan.export``, naming the function in its refusal."""
    try:
        return export(fn, x0, sizes)
    except NotExportable as exc:
        raise NotExportable(f"the {what} function: {exc}") from None


def python_model(n_dim, logp_fn, expand_fn, initial_point_fn, shape_info, reparameterized,
                 dims, coords):
    """nutpie's Python-callback model on the mode-AOT functions. A function's kernels
    release the GIL, so another chain could enter it mid-call: a lock serialises them."""
    lock = threading.Lock()
    names, slices, shapes = shape_info

    def make_logp_fn():
        def logp(x, **shared):
            with lock:
                value, grad = logp_fn(x)
            return float(value), np.array(grad, dtype=np.float64, order="C")
        return logp

    def make_expand_fn(seed1, seed2, chain):
        def expand(x, **shared):
            with lock:
                (joined,) = expand_fn(x)
            return {name: np.array(joined[s], dtype=np.float64).reshape(shape)
                    for name, s, shape in zip(names, slices, shapes)}
        return expand

    extra = {} if reparameterized is None else {"reparameterized_names": reparameterized}
    return from_pyfunc(ndim=n_dim, make_logp_fn=make_logp_fn, make_expand_fn=make_expand_fn,
                       expanded_dtypes=[np.dtype(np.float64)] * len(names),
                       expanded_shapes=shapes, expanded_names=names,
                       make_initial_point_fn=initial_point_fn, dims=dict(dims), coords=coords,
                       **extra)  # a copy: nutpie adds the dims it makes up to the dict it gets
