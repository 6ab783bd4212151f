"""Samplers on the corpus: nutpie on C plans, and ``pm.sample`` in mode AOT.

    build/pymc-venv/bin/python -m tests.corpus.samplers plan MODEL ...
    build/pymc-venv/bin/python -m tests.corpus.samplers nutpie MODEL ...
    build/pymc-venv/bin/python -m tests.corpus.samplers pm MODEL ...

``plan``: ``aotkernels.nutpie.compile_pymc_model``; if the model's plans run from C, the C
logp entry against PyTensor's Python implementation of the same graph at the corpus points,
then 4 threads calling it at once (each its own points, in another order) against
sequential calls, bit for bit, and the RSS after a second round. ``nutpie``: a short
nutpie run on the C plans against the same run on nutpie's Python-callback path over the
same mode-AOT functions, same seed: the draws must be identical (same numbers in, same
numbers out). ``pm``: ``pm.sample`` with ``compile_kwargs={"mode": ...}`` in modes AOT and
C, same seed; each variable's posterior mean must agree within 5 Monte-Carlo standard
errors. One JSON line per model and check.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import threading
import time
import warnings

import numpy as np

from tests.corpus import MODELS, reference
from tests.corpus.check import error

RTOL = 1e-9
LOGP = ctypes.CFUNCTYPE(ctypes.c_int64, ctypes.c_uint64, ctypes.c_void_p, ctypes.c_void_p,
                        ctypes.c_void_p, ctypes.c_void_p)
THREADS, CALLS = 4, 2000


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


def check_plan(name: str) -> dict:
    compiled, fallback = compile_quietly(MODELS[name]())
    if fallback is not None:
        return {"name": name, "check": "plan", "ok": True, "c_plan": False, "why": fallback}
    fn = LOGP(compiled.compiled_logp_func.address)
    ud = compiled.user_data.ctypes.data
    n = compiled.n_dim
    ref = reference(compiled.logp_func)

    def call(x, grad, logp):
        rc = fn(n, x.ctypes.data, grad.ctypes.data, logp.ctypes.data, ud)
        return rc, float(logp[0]), grad.copy()

    xs = [np.ascontiguousarray(x) for x in points_of(compiled)]
    worst, codes = 0.0, []
    for x in xs:
        grad, logp = np.empty(n), np.empty(1)
        rc, lp, g = call(x, grad, logp)
        codes.append(rc)
        want_lp, want_g = ref(x)
        if rc == 0:
            worst = max(worst, error(lp, want_lp), error(g, want_g))
        elif np.isfinite(want_lp) and np.all(np.isfinite(want_g)):
            worst = float("inf")  # an error code where Python found finite values
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
    ok = worst <= RTOL and not bad and growth < 2.0
    return {"name": name, "check": "plan", "ok": bool(ok), "c_plan": True,
            "steps": compiled.plans.logp.steps, "max_error": worst, "codes": codes,
            "threads_mismatch": bad[:3], "calls": 2 * THREADS * CALLS,
            "rss_growth_mib": round(growth, 2)}


def points_of(compiled) -> list[np.ndarray]:
    """The initial point and jittered ones, in nutpie's order of the values."""
    x0 = compiled.initial_point_func(0)
    rng = np.random.default_rng(0)
    return [x0] + [x0 + rng.uniform(-s, s, x0.size) for s in (0.3, 1.0)]


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


CHECKS = {"plan": check_plan, "nutpie": check_nutpie, "pm": check_pm}


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
