"""PyTensor's own test file in mode AOT against modes C and NUMBA: wall time and peak RSS.

    python benchmarks/bench_pytensor_tests.py [--tests tests/tensor/rewriting/test_basic.py]
                                              [--modes AOT,C,NUMBA] [--tag rel-3.0.7]
                                              [--calls 3]

PyTensor's tests are not in its PyPI sdist: they come from a git mirror of PyTensor
(``--mirror``, default ``/work/.mirror/pymc-devs+pytensor/repo``, a bare repository),
``git archive <tag> tests conftest.py`` into ``build/pt-tests``; without the mirror the script
says so and exits. Each mode runs the file twice with pytest in fresh processes on one set
of new caches (cold: empty PyTensor compiledir, numba cache, aotkernels JIT and graph
caches; warm: the second run on what the first left). Mode AOT is made the default by a
pytest plugin that calls ``aotkernels.pytensor.use_as_default()`` (``PYTENSOR_FLAGS`` cannot
name it); C is ``linker=cvm`` with ``mode=FAST_RUN``, NUMBA ``mode=NUMBA``. In mode AOT a
test that names ``FAST_RUN`` still gets PyTensor 3's NUMBA (and imports numba); ``AOT-all``
makes ``FAST_RUN`` mode AOT too, as C's run makes it the C VM (``linker=cvm``). The plugin
writes the pytest process's CPU time and peak RSS (``ru_maxrss``: mode C's compiler
children are not counted), the outcome counts, and whether numba and llvmlite were
imported. Run with the interpreter whose PyTensor matches the tag (``.venv``: PyTensor
3.0.7). ``--calls 3``: in mode AOT every call of a function that updates nothing is made
three times on copies of its arguments (record, plan, replay), and a later call whose
outputs are not the first's, bit for bit, fails the test (a function that changed a shared
value in place is called once); the warm run's count of such calls is printed.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MIRROR = Path("/work/.mirror/pymc-devs+pytensor/repo")

PLUGIN = r'''
"""Loaded with -p: mode AOT as the default (AOT_PT_MODE=AOT); peak RSS and outcomes."""
import json, os, resource, sys

if os.environ.get("AOT_PT_MODE", "").startswith("AOT"):
    import aotkernels.pytensor as am
    am.use_as_default()
    if os.environ["AOT_PT_MODE"] == "AOT-all":  # as linker=cvm does for C's run
        from pytensor.compile.mode import predefined_modes
        predefined_modes["FAST_RUN"] = am.AOT

_CALLS = int(os.environ.get("AOT_PT_CALLS", "1"))
if _CALLS > 1 and os.environ.get("AOT_PT_MODE", "").startswith("AOT"):
    import copy
    import numpy as np
    from pytensor.tensor.basic import AllocEmpty

    from aotkernels.pytensor.function import AOTFunction

    _plain_call = AOTFunction.__call__
    _replays = {"functions": 0, "calls": 0}

    def _same(a, b):
        if isinstance(a, (list, tuple)):
            return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
        if isinstance(a, (np.ndarray, np.generic)):
            a, b = np.asarray(a), np.asarray(b)
            return (a.dtype == b.dtype and a.shape == b.shape
                    and np.array_equal(a, b, equal_nan=a.dtype.kind in "fc"))
        return True  # sparse matrices, None, Python objects: not compared

    def _replayed_call(self, *args, **kwargs):
        """The call again ``_CALLS - 1`` times on copies of its arguments (the first
        records, the second plans, the rest replay the plan): each must give the first
        call's outputs, bit for bit. Functions that update shared state (or change it in
        place) or return uninitialised memory (``AllocEmpty``) are called once, as the
        test does."""
        if (self.maker.fgraph.update_mapping or kwargs
                or any(getattr(i, "update", None) is not None for i in self.maker.inputs)
                or any(isinstance(n.op, AllocEmpty) for n in self.maker.fgraph.apply_nodes)):
            return _plain_call(self, *args, **kwargs)
        shared = [c for i, c in zip(self.maker.inputs, self.input_storage)
                  if getattr(i, "shared", False)]
        state = copy.deepcopy([c.data for c in shared])
        kept = copy.deepcopy(args)
        first = _plain_call(self, *args)
        if not _same(state, [c.data for c in shared]):
            return first  # it changed a shared value in place (accept_inplace): not a replay
        want = copy.deepcopy(first)
        _replays["functions"] += 1
        out = first
        for k in range(1, _CALLS):
            out = _plain_call(self, *copy.deepcopy(kept))
            _replays["calls"] += 1
            if not _same(want, out):
                raise AssertionError(f"aotkernels: call {k + 1} of a mode-AOT function gave "
                                     f"other outputs than the first: {want!r} != {out!r}")
        return out

    AOTFunction.__call__ = _replayed_call

_counts = {}
_failed = []


def pytest_runtest_logreport(report):
    if report.when == "call" or report.outcome != "passed":
        _counts[report.outcome] = _counts.get(report.outcome, 0) + 1
    if report.outcome == "failed":
        _failed.append(report.nodeid.split("::", 1)[-1])


def pytest_sessionfinish(session, exitstatus):
    with open(os.environ["AOT_PT_REPORT"], "w") as f:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        json.dump({"rss": usage.ru_maxrss / 1024, "cpu": usage.ru_utime + usage.ru_stime,
                   "counts": _counts, "failed": _failed,
                   "replays": globals().get("_replays"),
                   "imported": [m for m in ("numba", "llvmlite") if m in sys.modules]}, f)
'''

FLAGS = {"AOT": "", "AOT-all": "", "C": "mode=FAST_RUN,linker=cvm",
         "NUMBA": "mode=NUMBA"}


def checkout(mirror: Path, tag: str, dest: Path) -> None:
    """``git archive`` the tag's tests into ``dest`` (once per tag)."""
    stamp = dest / f".{tag}"
    if stamp.exists():
        return
    dest.mkdir(parents=True, exist_ok=True)
    archive = subprocess.run(["git", f"--git-dir={mirror}", "archive", tag, "tests",
                              "conftest.py"], capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)
    stamp.touch()


def run(python: str, mode: str, tests: str, cwd: Path, env: dict, scratch: Path) -> dict:
    report = scratch / f"report-{mode}.json"
    report.unlink(missing_ok=True)
    env = dict(env, AOT_PT_MODE=mode, AOT_PT_REPORT=str(report),
               PYTENSOR_FLAGS=",".join(f for f in (FLAGS[mode], env["PYTENSOR_FLAGS"]) if f))
    t = time.perf_counter()
    res = subprocess.run([python, "-m", "pytest", "-q", "-p", "aotk_pt_plugin", "--no-header",
                          "-p", "no:cacheprovider", tests],
                         cwd=cwd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t
    out = json.loads(report.read_text()) if report.exists() else {"rss": float("nan"),
                                                                  "counts": {}}
    out.update(wall=wall, summary=res.stdout.strip().splitlines()[-1] if res.stdout else "")
    return out


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--tests", default="tests/tensor/rewriting/test_basic.py")
    p.add_argument("--modes", default="AOT,C,NUMBA")
    p.add_argument("--tag", default="rel-3.0.7")
    p.add_argument("--mirror", type=Path, default=MIRROR)
    p.add_argument("--python", default=sys.executable)
    p.add_argument("--lib", type=Path, default=None,
                   help="kernel library for mode AOT (default: $AOT_LIBRARY_DIR)")
    p.add_argument("--calls", type=int, default=1,
                   help="mode AOT: make every call of a function without updates N times, "
                        "each on copies of its arguments, and fail the test if a later call's "
                        "outputs differ from the first's (record, plan, replay)")
    args = p.parse_args()
    if not (args.mirror / "HEAD").exists():
        print(f"skipped: no PyTensor git mirror at {args.mirror} (PyTensor's tests are not "
              "in its sdist; pass --mirror DIR, a clone of pymc-devs/pytensor)")
        return
    dest = ROOT / "build" / "pt-tests"
    checkout(args.mirror, args.tag, dest)
    version = subprocess.run([args.python, "-c", "import pytensor; print(pytensor.__version__)"],
                             capture_output=True, text=True, check=True).stdout.strip()
    with tempfile.TemporaryDirectory(prefix="aotk-pttests-") as d:
        scratch = Path(d)
        (scratch / "aotk_pt_plugin.py").write_text(PLUGIN)
        base = dict(os.environ, PYTHONPATH=os.pathsep.join(
            [str(scratch), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep))
        if args.lib:
            base["AOT_LIBRARY_DIR"] = str(args.lib.resolve())
        base["AOT_PT_CALLS"] = str(args.calls)
        print(f"# {args.tests} ({args.tag}), PyTensor {version}, {time.strftime('%Y-%m-%d %H:%M')}"
              f", {platform.machine()}, {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}\n")
        print("| mode | cold s | warm s | cold CPU s | warm CPU s | peak RSS cold MiB | peak RSS "
              "warm MiB | warm imports | warm outcomes |")
        print("|---|---|---|---|---|---|---|---|---|")
        failures = {}
        for mode in args.modes.split(","):
            caches = scratch / mode
            env = dict(base, PYTENSOR_FLAGS=f"base_compiledir={caches / 'pytensor'}",
                       NUMBA_CACHE_DIR=str(caches / "numba"), AOT_CACHE_DIR=str(caches / "aot"),
                       AOT_GRAPH_CACHE_DIR=str(caches / "graphs"))
            cold = run(args.python, mode, args.tests, dest, env, scratch)
            warm = run(args.python, mode, args.tests, dest, env, scratch)
            print(f"| {mode} | {cold['wall']:.1f} | {warm['wall']:.1f} | "
                  f"{cold.get('cpu', float('nan')):.1f} | {warm.get('cpu', float('nan')):.1f} | "
                  f"{cold['rss']:.0f} | "
                  f"{warm['rss']:.0f} | {', '.join(warm.get('imported', [])) or 'none'} | "
                  f"{warm['summary']} |", flush=True)
            failures[mode] = warm.get("failed", [])
            if warm.get("replays"):
                print(f"\n{mode}: {warm['replays']['functions']} calls made "
                      f"{args.calls} times ({warm['replays']['calls']} repeats)")
        for mode, failed in failures.items():
            print(f"\n{mode} failed (warm): {', '.join(failed) or 'none'}")
        print(f"\nload average at the end: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
