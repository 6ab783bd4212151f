"""Check the corpus in mode AOT: every model's logp and gradient against PyTensor's Python
implementation of the same graph, plus where each node ran.

    build/pymc-venv/bin/python -m tests.corpus.check [--report] [--registry wild] [MODEL ...]
    build/pymc-venv/bin/python tests/corpus/check.py [--report] [MODEL ...]

Per model: compile ``logp_dlogp`` (what ``pm.sample`` compiles for NUTS) in mode AOT, and
run the same rewritten graph with PyTensor's Python linker as the reference (``reference``:
every node on its ``perform``; its docstring says why this reference and not FAST_COMPILE).
Evaluate at 3 points (the transformed initial point, two jittered ones), calling the AOT
function 3 times per point (the first call of the first point records and plans, every later
call replays the plan), and compare every call with the reference; with fusion on
(``AOT_FUSION=1``, the default outside the test suite), wait for the plan's fused kernels and
make the same calls again, whose values must also equal the unfused plan's bit for bit
(``fused_same_bits``). A model with a change after compiling (``wild.CHANGES``: new
``pm.Data`` values and length) is evaluated again after it, against a new reference.

``--registry wild`` checks the second registry (``tests/corpus/wild.py``: models outside
the corpus's distributions and ops) instead of the corpus; ``--registry generated`` the
third (``tests/corpus/generated.py``: regressions and hierarchies drawn from seeds).

``--float32`` builds every model with ``pytensor.config.floatX = "float32"`` (what users set
to halve memory traffic: PyMC's parameters, data and the sampler's vector become float32,
its integer data narrower integer types), the points rounded to float32, bound
``FLOAT32_RTOL``. A model PyMC itself cannot build or compile that way (with the Python
linker too) is reported as skipped, with PyMC's reason.

The error of a value is ``|aot - ref| / max(|ref|, 1)`` (relative, absolute below 1: gradient
components that cancel to about zero carry rounding of their larger terms), maximised over
logp, every gradient component, every point and call; non-finite values must match exactly.
``RTOL`` is the bound; ``TOLERANCE`` lists any model that needs more, with the reason.

Prints one JSON line per model (name, ok, max_error, coverage counts, plan kinds, python
plan items, ops off the prebuilt path, JIT compiles, JIT kernels outside the default catalog,
seconds) or, with ``--report``, a table.
Exit status 1 if any model mismatches or fails.
"""

from __future__ import annotations

import argparse
import functools
import importlib
import json
import subprocess
import sys
import time
import warnings
from collections import Counter
from pathlib import Path

import numpy as np

RTOL = 1e-9
#: ``--float32``: kernels and NumPy's float32 loops round alike only to a few ulps, which
#: sums of hundreds of terms and gradients through them grow
FLOAT32_RTOL = 1e-4
#: model -> (bound, why) for models whose kernels legitimately round differently
TOLERANCE: dict[str, tuple[float, str]] = {
    "latent_gp_poisson": (1e-6, "the whitened latent GP's Cholesky of an ExpQuad covariance "
                          "with 1e-6 jitter (condition number ~1e8) amplifies last-bit "
                          "differences: PyTensor's own C and NUMBA backends differ from its "
                          "Python linker by up to 3.6e-7 at the same jittered points"),
}
POINTS, CALLS = 3, 3
FUSION_WAIT = 600  # seconds to wait for a model's fused kernels (``AOT_FUSION=1``)
COMPUTING = ("aot", "jit", "numpy", "pytensor", "pending")


REGISTRIES = ("corpus", "wild", "generated")


def _corpus():
    if __package__:
        return importlib.import_module(__package__)
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run as a script
    return importlib.import_module("tests.corpus")


def registry(name: str) -> tuple[dict, dict]:
    """(models, changes after compiling) of a registry: ``corpus``, ``wild`` or
    ``generated``."""
    corpus = _corpus()
    if name == "corpus":
        return corpus.MODELS, {}
    module = importlib.import_module(f"{corpus.__name__}.{name}")
    return module.MODELS, module.CHANGES


def error(aot, ref) -> float:
    """Max ``|aot - ref| / max(|ref|, 1)`` over the elements; inf where non-finite values
    differ (NaN matches NaN, an infinity its own sign)."""
    aot, ref = np.asarray(aot, dtype=float), np.asarray(ref, dtype=float)
    if aot.shape != ref.shape:
        return float("inf")
    fin = np.isfinite(ref)
    same = (np.isnan(aot) & np.isnan(ref)) | (aot == ref)
    if not np.all(same[~fin]) or not np.all(np.isfinite(aot[fin])):
        return float("inf")
    if not fin.any():
        return 0.0
    return float(np.max(np.abs(aot[fin] - ref[fin]) / np.maximum(np.abs(ref[fin]), 1.0)))


def op_name(row: str) -> str:
    """The Op of a ``coverage`` row (``"node"`` or ``"outer / inner"``): the node's text up to
    its argument list (parentheses inside an Op's braces are part of its name)."""
    text = row.rsplit(" / ", 1)[-1]
    depth = 0
    for i, ch in enumerate(text):
        depth += {"{": 1, "}": -1}.get(ch, 0)
        if ch == "(" and depth == 0:
            return text[:i]
    return text


@functools.cache
def catalog_keys() -> frozenset:
    """Every signature the default catalog ships (a full wheel): a JIT kernel outside it is
    one no wheel has, unlike a kernel the session's smaller test library lacks."""
    from aotkernels.generator.catalog import catalog

    return frozenset(s.key for s in catalog())


def check(name: str, build, corpus, am, jit, change=None, float32: bool = False) -> dict:
    t0 = time.perf_counter()
    try:
        m = build()
    except Exception as exc:
        if not float32:
            raise
        return {"name": name, "ok": True, "skipped": f"PyMC cannot build it under "
                f"floatX=float32: {type(exc).__name__}: {exc}"[:300]}
    pts = corpus.points(m, POINTS)
    jit_before = dict(jit.stats)
    try:
        f = corpus.logp_dlogp(m, "AOT")
    except Exception as exc:
        if not float32:
            raise
        from pytensor.compile.mode import Mode

        try:  # a skip only if PyMC's compile fails without mode AOT too
            corpus.logp_dlogp(m, Mode(linker="py", optimizer="fast_run"))
        except Exception:
            return {"name": name, "ok": True, "skipped": f"PyMC cannot compile it under "
                    f"floatX=float32: {type(exc).__name__}: {exc}"[:300]}
        raise
    if float32:  # the function's own input dtype (float32): rounded once, here
        pts = [x.astype(f.maker.inputs[0].variable.type.dtype) for x in pts]
    t_aot = time.perf_counter()
    ref = corpus.reference(f)
    t_ref = time.perf_counter()
    worst, finite, fused, same_bits = 0.0, True, 0, True
    wants = [[np.array(v, copy=True) for v in ref(x.copy())] for x in pts]
    unfused: list = []  # per point, the last unfused call's values
    for fusing in (False, True):
        if fusing:  # the same calls again on the fused kernels, if fusion is on
            fused = am.wait_for_fusion(f, FUSION_WAIT)
            if not fused:
                break
        for k, (x, want) in enumerate(zip(pts, wants)):
            finite &= bool(np.isfinite(want[0]))
            for _ in range(CALLS):
                got = [np.array(v, copy=True) for v in f(x.copy())]
                worst = max(worst, *(error(g, w) for g, w in zip(got, want)))
            if not fusing:
                unfused.append(got)
            else:  # fused kernels compute the bits of the steps they replace
                same_bits &= all(np.array_equal(g, u, equal_nan=True)
                                 for g, u in zip(got, unfused[k]))
    if change is not None:  # what a user does next (pm.set_data): the same function again
        change(m)
        ref = corpus.reference(f)
        for x in pts:
            want = [np.array(v, copy=True) for v in ref(x.copy())]
            finite &= bool(np.isfinite(want[0]))
            for _ in range(CALLS):
                got = [np.array(v, copy=True) for v in f(x.copy())]
                worst = max(worst, *(error(g, w) for g, w in zip(got, want)))
    rows = am.coverage(f)
    cov = Counter(source for _, source in rows)
    plan = am.plan_summary(f)
    off = Counter(op_name(row) for row, source in rows if source in ("pytensor", "numpy"))
    bound, why = TOLERANCE.get(name, (RTOL, None))
    if float32:
        bound = max(bound, FLOAT32_RTOL)
    out = {"name": name, "ok": worst <= bound and same_bits, "max_error": worst, "rtol": bound,
           "fused_same_bits": same_bits,
           "finite": finite, "n": int(pts[0].size),
           "coverage": {k: cov.get(k, 0) for k in ("aot", "jit", "numpy", "pytensor", "view",
                                                  "pending")},
           "plan": dict(plan) if plan else None,
           "python_items": (plan or {}).get("python", 0) + (plan or {}).get("view (run)", 0),
           "fused_runs": fused,
           "off_path": dict(off.most_common()),
           "jit_compiled": jit.stats["compiled"] - jit_before["compiled"],
           "outside_catalog": [k for k in am.jit_signatures(f) if k not in catalog_keys()],
           "jit_loaded": jit.stats["loaded"] - jit_before["loaded"],
           "seconds": {"build_compile": round(t_aot - t0, 2), "reference": round(t_ref - t_aot, 2),
                       "total": round(time.perf_counter() - t0, 2)}}
    if why:
        out["tolerance_why"] = why
    return out


def report_table(results: list[dict]) -> str:
    lines = ["| model | computing nodes | prebuilt % | jit % | perform % | numpy % | views "
             "| python plan items | max error | ops off the prebuilt path "
             "| JIT kernels outside the catalog |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        if "skipped" in r:
            lines.append(f"| {r['name']} | skipped: {r['skipped'][:120]} ||||||||||")
            continue
        if "coverage" not in r:
            lines.append(f"| {r['name']} | failed: {r.get('error', '')[:80]} ||||||||||")
            continue
        c = r["coverage"]
        n = sum(c[k] for k in COMPUTING) or 1
        off = ", ".join(f"{k} x{v}" if v > 1 else k for k, v in r["off_path"].items())
        flag = "" if r["ok"] else " MISMATCH"
        lines.append(f"| {r['name']} | {n} | {100 * c['aot'] / n:.0f} | {100 * c['jit'] / n:.0f}"
                     f" | {100 * c['pytensor'] / n:.0f} | {100 * c['numpy'] / n:.0f} "
                     f"| {c['view']} | {r['python_items']} | {r['max_error']:.1e}{flag} "
                     f"| {off} | {', '.join(r.get('outside_catalog', []))} |")
    return "\n".join(lines)


def in_processes(names: list[str], jobs: int, echo: bool, extra=()) -> list[dict]:
    """Check ``names`` in ``jobs`` worker processes (this script, a share of the models
    each, round robin); results in ``names`` order."""
    procs = [subprocess.Popen([sys.executable, str(Path(__file__).resolve()), *extra,
                               *names[k::jobs]],
                              stdout=subprocess.PIPE, text=True) for k in range(jobs)]
    found = {}
    for proc in procs:
        out, _ = proc.communicate()
        for line in out.splitlines():
            if line.startswith("{"):
                r = json.loads(line)
                found[r["name"]] = r
    results = [found.get(n, {"name": n, "ok": False, "error": "no result from its worker"})
               for n in names]
    if echo:
        for r in results:
            print(json.dumps(r), flush=True)
    return results


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("models", nargs="*", help="model names (default: all)")
    p.add_argument("--report", action="store_true", help="print a table instead of JSON")
    p.add_argument("--jobs", type=int, default=1,
                   help="check the models in this many processes (default 1)")
    p.add_argument("--registry", choices=REGISTRIES, default="corpus",
                   help="which models: the corpus (default), tests/corpus/wild.py or "
                   "tests/corpus/generated.py")
    p.add_argument("--float32", action="store_true",
                   help="build the models with floatX=float32 (bound FLOAT32_RTOL)")
    args = p.parse_args(argv)
    warnings.filterwarnings("ignore")
    if args.float32:
        import pytensor

        pytensor.config.floatX = "float32"
    corpus = _corpus()
    models, changes = registry(args.registry)
    import aotkernels.pytensor as am
    from aotkernels import jit

    unknown = sorted(set(args.models) - set(models))
    if unknown:
        p.error(f"unknown models {unknown}; known: {', '.join(models)}")
    names = args.models or list(models)
    if args.jobs > 1:
        results = in_processes(names, args.jobs, not args.report,
                               ("--registry", args.registry) + ("--float32",) * args.float32)
    else:
        results = []
        for name in names:
            try:
                r = check(name, models[name], corpus, am, jit, changes.get(name), args.float32)
            except Exception as exc:  # a model that cannot compile or run is a failure too
                r = {"name": name, "ok": False, "error": f"{type(exc).__name__}: {exc}"[:2000]}
            results.append(r)
            if not args.report:
                print(json.dumps(r), flush=True)
    if args.report:
        print(report_table(results))
        bad = [r["name"] for r in results if not r["ok"]]
        skipped = [r["name"] for r in results if "skipped" in r]
        jits = sum(r.get("jit_compiled", 0) for r in results)
        print(f"\n{len(results) - len(bad) - len(skipped)}/{len(results) - len(skipped)} "
              "models match" + (f" ({len(skipped)} skipped)" if skipped else "")
              + (f"; mismatched: {', '.join(bad)}" if bad else "")
              + f"; {jits} kernels JIT-compiled in this run")
    return 0 if all(r["ok"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
