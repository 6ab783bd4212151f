"""Samplers on the corpus: nutpie on C plans, and ``pm.sample`` in mode AOT.

    build/pymc-venv/bin/python -m tests.corpus.samplers plan MODEL ...
    build/pymc-venv/bin/python -m tests.corpus.samplers nutpie MODEL ...
    build/pymc-venv/bin/python -m tests.corpus.samplers pm MODEL ...
    build/pymc-venv/bin/python -m tests.corpus.samplers cache|million MODEL ...
    build/pymc-venv/bin/python -m tests.corpus.samplers swap|fused MODEL ...
    build/pymc-venv/bin/python -m tests.corpus.samplers model MODEL|toy[:VARIANT] ...

``plan``: ``aotkernels.nutpie.compile_pymc_model``; a model whose mode-AOT logp+gradient
plan (``pm.sample``'s function) has no Python item must sample from C (else the fallback is
a failure). The C logp and expand entries against the mode-AOT functions they come from (the
same kernels: bit for bit) and the logp against PyTensor's Python implementation of the
same graph (within RTOL, or the model's ``check.TOLERANCE``) at the initial point and
jittered ones, then 4 threads calling the
logp at once (each its own points, in another order) against sequential calls, bit for bit,
and the RSS after a second round. ``nutpie``: a short
nutpie run on the C plans against the same run on nutpie's Python-callback path over the
same mode-AOT functions, same seed: the draws must be identical (same numbers in, same
numbers out). ``cache``: ``compile_pymc_model``'s graph cache counters and the values it
computes (run it twice on one ``AOT_GRAPH_CACHE_DIR``). ``million``: 4 threads x 250,000
calls of one logp plan against sequential calls, RSS at each quarter. ``pm``: ``pm.sample`` with
``compile_kwargs={"mode": ...}`` in modes AOT and C, same seed; each variable's posterior
mean must agree within 5 Monte-Carlo standard errors. ``swap`` (``AOT_FUSION=1``, a JIT cache
without the model's fused kernels): plans exported unfused switch to fused ones while nutpie
and 4 threads call them. ``fused``: a later process exports them fused. One JSON line per
model and check. ``model``: ``compile_pymc_model``'s model cache (run it twice on one
``AOT_GRAPH_CACHE_DIR``): counters, graphs built, values and a short nutpie run's draws.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import threading
import time
import warnings

import numpy as np

from tests.corpus import reference
from tests.corpus.check import TOLERANCE, error, registry

RTOL = 1e-9
LOGP = ctypes.CFUNCTYPE(ctypes.c_int64, ctypes.c_uint64, ctypes.c_void_p, ctypes.c_void_p,
                        ctypes.c_void_p, ctypes.c_void_p)
EXPAND = ctypes.CFUNCTYPE(ctypes.c_int64, ctypes.c_uint64, ctypes.c_uint64, ctypes.c_void_p,
                          ctypes.c_void_p, ctypes.c_void_p)
THREADS, CALLS = 4, 2000
#: every model by name: the corpus's, the second registry's (``tests/corpus/wild.py``) and
#: the generated ones (``tests/corpus/generated.py``)
MODELS = {**registry("corpus")[0], **registry("wild")[0], **registry("generated")[0]}


def rss_mib() -> float:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS")) / 1024


def compile_quietly(model):
    """(compiled model, fallback warning or None)."""
    import aotkernels.nutpie

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        compiled = aotkernels.nutpie.compile_pymc_model(model)
    fallback = [str(w.message) for w in caught if "aotkernels.nutpie" in str(w.message)]
    return compiled, (fallback[0] if fallback else None)


def python_items(model) -> int:
    """Nodes left to Python in the plan of the model's mode-AOT logp+gradient (the function
    ``pm.sample`` compiles): the criterion for "must sample from C"."""
    import aotkernels.pytensor as am
    from tests.corpus import logp_dlogp, points

    f = logp_dlogp(model, "AOT")
    x = points(model, 1)[0]
    for _ in range(3):  # the third call of a geometry makes its plan
        f(x.copy())
    return (am.plan_summary(f) or {}).get("python", 0)


def check_plan(name: str) -> dict:
    """The C logp and expand entries against the mode-AOT functions they were exported from
    (the same kernels: bit for bit) and against PyTensor's Python implementation of the logp
    graph (within RTOL), at the initial point and jittered ones; then 4 threads at once."""
    model = MODELS[name]()
    items = python_items(model)
    compiled, fallback = compile_quietly(model)
    if fallback is not None:  # a Python item in the logp plan, or in the expand function's
        expand = "the expand function" in fallback  # (a sort in a Deterministic)
        return {"name": name, "check": "plan", "ok": (items > 0 or expand)
                and "runs in Python" in fallback, "c_plan": False, "python_items": items,
                "why": fallback}
    fn = LOGP(compiled.compiled_logp_func.address)
    expand = EXPAND(compiled.compiled_expand_func.address)
    ud = compiled.user_data.ctypes.data
    n, n_out = compiled.n_dim, compiled.n_expanded
    ref = reference(compiled.logp_func)

    def call(x, grad, logp):
        rc = fn(n, x.ctypes.data, grad.ctypes.data, logp.ctypes.data, ud)
        return rc, float(logp[0]), grad.copy()

    xs = [np.ascontiguousarray(x) for x in points_of(compiled)]
    worst, codes, differ = 0.0, [], []
    for k, x in enumerate(xs + bad_points(xs[0])):
        rc, lp, g = call(x, np.full(n, -7.0), np.full(1, -7.0))
        codes.append(rc)
        want = expected_code(compiled.logp_func, x)
        if rc != want[0]:
            differ.append(f"logp at point {k}: code {rc}, the mode-AOT function says {want[0]}")
        elif rc == 0 and (lp != want[1] or not np.array_equal(g, want[2])):
            differ.append(f"logp at point {k}")
        if k < len(xs):  # the good points: PyTensor's Python implementation too
            want_lp, want_g = ref(x)
            worst = max(worst, error(lp, want_lp), error(g, want_g)) if rc == 0 else (
                float("inf"))
            out = np.full(n_out, -7.0)
            rc = expand(n, n_out, x.ctypes.data, out.ctypes.data, ud)
            (want,) = compiled.expand_func(x.copy())
            if rc or not np.array_equal(out, np.ravel(want), equal_nan=True):
                differ.append(f"expand at point {k} (rc {rc})")
    # concurrency: every thread its own buffers and its own order over the points
    sequential = [call(x, np.empty(n), np.empty(1)) for x in xs]
    bad = []

    def worker(t):
        grad, logp = np.empty(n), np.empty(1)
        for i in range(CALLS):
            k = (i * (t + 1) + t) % len(xs)
            got = call(xs[k], grad, logp)
            want = sequential[k]
            if got[0] != want[0] or got[1] != want[1] and not (
                    np.isnan(got[1]) and np.isnan(want[1])) or not np.array_equal(
                    got[2], want[2], equal_nan=True):
                bad.append((t, i))
                return

    def round_():
        threads = [threading.Thread(target=worker, args=(t,)) for t in range(THREADS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

    round_()
    before = rss_mib()
    round_()
    growth = rss_mib() - before
    # a leaked arena (the root table at least, KBs with intermediates) per call would grow
    # RSS by tens of MiB over the round's 8,000 calls; 4 MiB leaves room for the allocator
    # and lazily loaded code under load (3 MiB was seen once at load 9, 0.01 alone)
    ok = worst <= TOLERANCE.get(name, (RTOL,))[0] and not differ and not bad and growth < 4.0
    return {"name": name, "check": "plan", "ok": bool(ok), "c_plan": True,
            "python_items": items, "steps": compiled.plans.logp.steps,
            "expand_steps": compiled.plans.expand.steps, "max_error": worst, "codes": codes,
            "differ": differ, "threads_mismatch": bad[:3], "calls": 2 * THREADS * CALLS,
            "rss_growth_mib": round(growth, 2)}


def points_of(compiled) -> list[np.ndarray]:
    """The initial point and jittered ones, in nutpie's order of the values."""
    x0 = compiled.initial_point_func(0)
    rng = np.random.default_rng(0)
    return [x0] + [x0 + rng.uniform(-s, s, x0.size) for s in (0.3, 1.0)]


def bad_points(x0: np.ndarray) -> list[np.ndarray]:
    """Points where a logp fails: a NaN, huge values (overflows, failing checks)."""
    nan, huge, tiny = x0.copy(), x0.copy(), np.full_like(x0, -1e300)
    nan[-1] = np.nan
    huge[0] = 1e300
    return [nan, huge, tiny]


def expected_code(logp_fn, x: np.ndarray) -> tuple:
    """What nutpie's numba backend returns where the function is ``logp_fn``: 1 if it
    raises (a check failed), 3 for a non-finite gradient, 4 for a non-finite logp, else 0;
    with the values."""
    try:
        lp, g = logp_fn(x.copy())
    except Exception:
        return 1, None, None
    if not np.all(np.isfinite(g)):
        return 3, None, None
    return (0 if np.isfinite(lp) else 4), float(lp), np.array(g)


def check_nutpie(name: str, draws: int = 100) -> dict:
    import nutpie

    import aotkernels.nutpie as an

    model = MODELS[name]()
    compiled, fallback = compile_quietly(model)
    if fallback is not None:
        return {"name": name, "check": "nutpie", "ok": True, "c_plan": False, "why": fallback}
    python = an.python_model(compiled.n_dim, compiled.logp_func, compiled.expand_func,
                             compiled.initial_point_func, compiled.shape_info,
                             getattr(compiled, "reparameterized_names", None), compiled.dims,
                             compiled.coords)
    kw = dict(chains=2, tune=draws, draws=draws, seed=1, progress_bar=False, cores=2)
    t = time.perf_counter()
    a = nutpie.sample(compiled, **kw)
    ta = time.perf_counter() - t
    t = time.perf_counter()
    b = nutpie.sample(python, **kw)
    tb = time.perf_counter() - t
    same = all(np.array_equal(a.posterior[v].values, b.posterior[v].values, equal_nan=True)
               for v in b.posterior.data_vars)
    return {"name": name, "check": "nutpie", "ok": bool(same), "c_plan": True,
            "seconds_c": round(ta, 2), "seconds_python": round(tb, 2),
            "vars": sorted(a.posterior.data_vars)}


def check_pm(name: str, draws: int = 300) -> dict:
    import pymc as pm

    import aotkernels.pytensor  # noqa: F401  (registers mode "AOT")

    traces, seconds = {}, {}
    for mode in ("AOT", "C"):
        t = time.perf_counter()
        with MODELS[name]():
            traces[mode] = pm.sample(draws=draws, tune=draws, chains=2, cores=1, random_seed=7,
                                     progressbar=False, compute_convergence_checks=False,
                                     compile_kwargs={"mode": mode})
        seconds[mode] = round(time.perf_counter() - t, 2)
    worst = 0.0
    for var in traces["C"].posterior.data_vars:
        a, c = traces["AOT"].posterior[var].values, traces["C"].posterior[var].values
        flat_a = a.reshape(-1, *a.shape[2:])
        flat_c = c.reshape(-1, *c.shape[2:])
        # a crude MCSE: sd / sqrt(draws / 10) allows for autocorrelation
        se = np.hypot(flat_a.std(0), flat_c.std(0)) / np.sqrt(flat_a.shape[0] / 10)
        z = np.abs(flat_a.mean(0) - flat_c.mean(0)) / np.maximum(se, 1e-12)
        worst = max(worst, float(np.max(z)))
    return {"name": name, "check": "pm", "ok": worst < 5, "max_z": round(worst, 2),
            "seconds": seconds}


def points_and_values(compiled) -> tuple[list, list]:
    """Three initial points of a compiled nutpie model and, per point, logp, the gradient
    and the expanded values, as floats."""
    xs = [compiled.initial_point_func(seed) for seed in range(3)]
    values = []
    for x in xs:
        lp, g = compiled.logp_func(x.copy())
        (e,) = compiled.expand_func(x.copy())
        values.append([float(lp), *map(float, g), *map(float, np.ravel(e))])
    return xs, values


def check_cache(name: str) -> dict:
    """``compile_pymc_model`` and what it computes, with the graph cache's counters: run
    twice on one cache directory, the second process must hit where the first stored, and
    give the same initial points, logp, gradient and expand values bit for bit."""
    from aotkernels.pytensor import graph_cache

    t = time.perf_counter()
    compiled, fallback = compile_quietly(MODELS[name]())
    seconds = time.perf_counter() - t
    xs, values = points_and_values(compiled)
    return {"name": name, "check": "cache", "ok": True, "c_plan": fallback is None,
            "stats": dict(graph_cache.stats), "seconds": round(seconds, 3),
            "points": [x.tolist() for x in xs], "values": values}


def toy(variant: str):
    """A small model for the model cache's misses: ``toy`` and variants differing from it
    in one thing the cache key must see: ``y`` (an observed value), ``n`` (the data's
    length), ``data`` (a ``pm.Data`` value), ``bound`` (only an ``Interval`` transform's
    upper bound, which the random variable's graph does not show)."""
    import pymc as pm
    from pymc.distributions.transforms import Interval

    n = 7 if variant == "n" else 6
    x = np.linspace(-1.0, 1.0, n)
    y = 0.5 + 2.0 * x + np.cos(np.arange(n))
    if variant == "y":
        y[2] += 0.25
    with pm.Model() as m:
        xd = pm.Data("x", x * (1.5 if variant == "data" else 1.0))
        s = pm.HalfNormal("s", 1.0)
        b = pm.Normal("b", 0.0, 1.0, transform=Interval(-3.0, 4.0 if variant == "bound"
                                                       else 3.0))
        pm.Normal("y", b * xd, s, observed=y)
    return m


def check_model(name: str) -> dict:
    """``compile_pymc_model`` with the model cache's and graph cache's counters, how often
    PyMC built the logp graph (``Model.logp``) and a gradient (``pytensor.grad``), the
    values the compiled model computes and a short nutpie run's draws: run twice on one
    cache directory, the second process must hit, build neither graph, and give the same
    numbers and draws. ``name``: a corpus model, or ``toy[:variant]`` (see ``toy``)."""
    import gc

    import nutpie
    import pymc as pm
    import pytensor.gradient

    from aotkernels import model_cache
    from aotkernels.pytensor import graph_cache

    model = toy(name.partition(":")[2]) if name.startswith("toy") else MODELS[name]()
    built = {"logp": 0, "grad": 0}

    def counted(what, fn):
        def wrapper(*args, **kwargs):
            built[what] += 1
            return fn(*args, **kwargs)
        return wrapper

    plain_logp, plain_grad = pm.Model.logp, pytensor.gradient.grad
    pm.Model.logp = counted("logp", plain_logp)
    pytensor.gradient.grad = counted("grad", plain_grad)
    try:
        compiled, fallback = compile_quietly(model)
    finally:
        pm.Model.logp, pytensor.gradient.grad = plain_logp, plain_grad
    xs, values = points_and_values(compiled)
    trace = nutpie.sample(compiled, chains=2, tune=30, draws=10, seed=5, progress_bar=False,
                          cores=1)
    draws = {v: trace.posterior[v].values.ravel().tolist()
             for v in sorted(trace.posterior.data_vars)}
    return {"name": name, "check": "model", "ok": True, "c_plan": fallback is None,
            "model_cache": dict(model_cache.stats), "graph_cache": dict(graph_cache.stats),
            "built": built, "points": [x.tolist() for x in xs], "values": values,
            "draws": draws, "frozen": gc.get_freeze_count()}


def check_million(name: str, per_thread: int = 250_000) -> dict:
    """4 threads x ``per_thread`` calls of one exported logp plan (nutpie's 4 chains for
    10^6 gradients): every result equal to the sequential one, RSS at each quarter."""
    compiled, fallback = compile_quietly(MODELS[name]())
    if fallback is not None:
        return {"name": name, "check": "million", "ok": False, "why": fallback}
    fn = LOGP(compiled.compiled_logp_func.address)
    ud, n = compiled.user_data.ctypes.data, compiled.n_dim
    xs = [np.ascontiguousarray(x) for x in points_of(compiled)]
    sequential = []
    for x in xs:
        g, lp = np.empty(n), np.empty(1)
        sequential.append((fn(n, x.ctypes.data, g.ctypes.data, lp.ctypes.data, ud), lp[0], g))
    bad, rss = [], [rss_mib()]

    def worker(t):
        g, lp = np.empty(n), np.empty(1)
        for i in range(per_thread):
            k = (i * (t + 1) + t) % len(xs)
            rc = fn(n, xs[k].ctypes.data, g.ctypes.data, lp.ctypes.data, ud)
            want = sequential[k]
            if rc != want[0] or lp[0] != want[1] or not np.array_equal(g, want[2]):
                bad.append((t, i))
                return
            if t == 0 and (i + 1) % (per_thread // 4 or 1) == 0:
                rss.append(rss_mib())

    t0 = time.perf_counter()
    threads = [threading.Thread(target=worker, args=(t,)) for t in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return {"name": name, "check": "million", "ok": not bad, "calls": THREADS * per_thread,
            "seconds": round(time.perf_counter() - t0, 1), "mismatches": bad[:3],
            "rss_mib": [round(r, 1) for r in rss]}


def c_values(compiled, xs) -> list:
    """(code, logp, gradient, expand values) of the C entries at each point."""
    fn = LOGP(compiled.compiled_logp_func.address)
    expand = EXPAND(compiled.compiled_expand_func.address)
    ud, n, n_out = compiled.user_data.ctypes.data, compiled.n_dim, compiled.n_expanded
    got = []
    for x in xs:
        g, lp, out = np.full(n, -7.0), np.full(1, -7.0), np.full(n_out, -7.0)
        rc = fn(n, x.ctypes.data, g.ctypes.data, lp.ctypes.data, ud)
        rce = expand(n, n_out, x.ctypes.data, out.ctypes.data, ud)
        got.append((rc, rce, lp[0], g, out))
    return got


def aot_values(compiled, xs) -> list:
    """The same from the mode-AOT functions the plans were exported from."""
    got = []
    for x in xs:
        lp, g = compiled.logp_func(x.copy())
        (e,) = compiled.expand_func(x.copy())
        got.append((0, 0, float(lp), np.array(g), np.ravel(e)))
    return got


def same(a: list, b: list) -> bool:
    return all(p[0] == q[0] and p[1] == q[1] and p[2] == q[2] and np.array_equal(p[3], q[3])
               and np.array_equal(p[4], q[4], equal_nan=True) for p, q in zip(a, b))


def fusion_state(compiled) -> dict:
    plans = compiled.plans
    return {"logp_fused": plans.logp.fused, "expand_fused": plans.expand.fused,
            "logp_steps": plans.logp.steps, "expand_steps": plans.expand.steps,
            "swaps": plans.swaps}


def check_swap(name: str, timeout: float = 300.0) -> dict:
    """Run with ``AOT_FUSION=1`` and a JIT cache without the model's fused kernels: the
    C plans are exported unfused, and replaced by fused ones when the background compile
    ends. Two compiles of the model: nutpie samples the first (started, paused once some
    draws are made, resumed after the swap, so the run crosses it) while 4 threads call
    the second's C logp across its swap. The C values before and after equal the mode-AOT
    functions' bit for bit, the threads see the same results throughout, and nutpie's
    draws equal those of the same run made again wholly on the fused plans."""
    import nutpie

    model = MODELS[name]()
    a, fallback = compile_quietly(model)
    b, _ = compile_quietly(model)
    if fallback is not None:
        return {"name": name, "check": "swap", "ok": False, "why": fallback}
    at_export = [fusion_state(a), fusion_state(b)]
    coming = [sum(p.pending is not None and p.pending[2] is not None
                  for p in (c.plans.logp, c.plans.expand)) for c in (a, b)]
    if any(c.plans.logp.pending is None or c.plans.logp.pending[2] is None for c in (a, b)):
        return {"name": name, "check": "swap", "ok": False, "at_export": at_export,
                "why": "the logp plan was exported with no fused kernels to come (is "
                       "AOT_FUSION=1 and the JIT cache without them?)"}
    kw = dict(chains=2, tune=1000, draws=20000, seed=3, progress_bar=False, cores=2)
    sampler = nutpie.sample(a, blocking=False, **kw)
    time.sleep(0.02)
    sampler.pause()
    crossed = a.plans.swaps == 0 and not finished(sampler)

    xs = [np.ascontiguousarray(x) for x in points_of(b)]
    want = aot_values(b, xs)
    before = c_values(b, xs)
    fn, ud, n = LOGP(b.compiled_logp_func.address), b.user_data.ctypes.data, b.n_dim
    bad, calls, stop = [], [0] * THREADS, threading.Event()

    def worker(t):
        g, lp = np.empty(n), np.empty(1)
        while not stop.is_set():
            k = calls[t] % len(xs)
            rc = fn(n, xs[k].ctypes.data, g.ctypes.data, lp.ctypes.data, ud)
            if rc != want[k][0] or lp[0] != want[k][2] or not np.array_equal(g, want[k][3]):
                bad.append((t, calls[t]))
                return
            calls[t] += 1
            if calls[t] % 200 == 0:  # leave the 2 cores' time to the compiler too
                time.sleep(0.001)

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(THREADS)]
    for t in threads:
        t.start()
    t0 = time.perf_counter()
    while ((b.plans.swaps < coming[1] or a.plans.swaps < coming[0])
           and time.perf_counter() - t0 < timeout):
        time.sleep(0.05)
    waited = time.perf_counter() - t0
    at_swap = sum(calls)
    time.sleep(0.5)  # calls on the fused plan
    stop.set()
    for t in threads:
        t.join()
    after = c_values(b, xs)
    for old in a.plans.retired:  # nutpie must go on through the new plans: a call of an
        old.struct.x_size = -1   # old one now fails (-1, "wrong sizes") at its entry
    sampler.resume()
    across = sampler.wait()
    again = nutpie.sample(a, **kw)
    draws_same = all(np.array_equal(across.posterior[v].values, again.posterior[v].values,
                                    equal_nan=True) for v in again.posterior.data_vars)
    fused = [fusion_state(a), fusion_state(b)]
    ok = (crossed and not bad and same(before, want) and same(after, want) and draws_same
          and all(f["swaps"] == n and f["logp_fused"] > 0 for f, n in zip(fused, coming))
          and sum(calls) > at_swap)
    return {"name": name, "check": "swap", "ok": bool(ok), "at_export": at_export,
            "fused": fused, "seconds_to_swap": round(waited, 2), "crossed": crossed,
            "thread_calls": sum(calls), "calls_after_swap": sum(calls) - at_swap,
            "mismatches": bad[:3], "values_before": same(before, want),
            "values_after": same(after, want), "draws_same": draws_same}


def finished(sampler) -> bool:
    """nutpie's ``is_finished``, which raises ``TimeoutError`` while the run goes on."""
    try:
        return bool(sampler.is_finished)
    except TimeoutError:
        return False


def check_fused(name: str) -> dict:
    """``compile_pymc_model`` in a process whose JIT cache holds the model's fused kernels
    (a ``swap`` run filled it): the plans are fused at export, with no swap to come, and
    compute the mode-AOT functions' values bit for bit (if some kernels are missing after
    all, it waits for their swap: ``ok`` says only whether the values are right)."""
    compiled, fallback = compile_quietly(MODELS[name]())
    if fallback is not None:
        return {"name": name, "check": "fused", "ok": False, "why": fallback}
    at_export = fusion_state(compiled)
    pending = [p.pending is not None and p.pending[2] is not None
               for p in (compiled.plans.logp, compiled.plans.expand)]
    t0 = time.perf_counter()
    while compiled.plans.swaps < sum(pending) and time.perf_counter() - t0 < 600:
        time.sleep(0.05)
    xs = [np.ascontiguousarray(x) for x in points_of(compiled)]
    good = same(c_values(compiled, xs), aot_values(compiled, xs))
    return {"name": name, "check": "fused", "ok": bool(good), "at_export": at_export,
            "pending_at_export": pending, "after": fusion_state(compiled)}


CHECKS = {"plan": check_plan, "nutpie": check_nutpie, "pm": check_pm, "cache": check_cache,
          "million": check_million, "swap": check_swap, "fused": check_fused,
          "model": check_model}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("check", choices=sorted(CHECKS))
    p.add_argument("models", nargs="+")
    args = p.parse_args(argv)
    failed = 0
    for name in args.models:
        try:
            result = CHECKS[args.check](name)
        except Exception as exc:  # a model that cannot compile or sample is a failure too
            result = {"name": name, "check": args.check, "ok": False,
                      "error": f"{type(exc).__name__}: {exc}"}
        failed += not result["ok"]
        print(json.dumps(result), flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
