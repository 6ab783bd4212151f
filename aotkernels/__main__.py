"""``python -m aotkernels``: ``info`` tells which library this process uses and what is in
it; ``coverage SCRIPT`` runs a PyTensor script in mode AOT and reports, node by node, what
ran on prebuilt kernels, JIT kernels, NumPy views or PyTensor's own implementation."""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
from collections import Counter

from aotkernels import jit
from aotkernels.library import LibraryError, library_dir, load
from aotkernels.signature import ABI_VERSION, Signature


def info() -> dict:
    report = {"abi": ABI_VERSION, "library_dir": str(library_dir()), "jit_disabled":
              jit.jit_disabled()}
    try:
        lib = load()
    except LibraryError as exc:
        report.update(library=None, error=str(exc))
    else:
        sigs = [Signature.from_key(k) for k in lib.kernels]
        report.update(
            library=str(lib.path), target=lib.target, reason=lib.reason,
            targets=[t["name"] for t in lib.manifest["targets"]],
            generator=lib.manifest.get("generator"), numba=lib.manifest.get("numba"),
            kernels=len(sigs), families=dict(Counter(s.family for s in sigs)),
            ops=dict(sorted(Counter(s.op for s in sigs).items())), blas=lib.blas,
            lapack=lib.lapack)
    report.update(jit_cache=None, jit_no_cache=None)
    try:
        directory = jit.cache_dir()
    except ImportError:  # a CPU only LLVM can name (no /proc/cpuinfo)
        report["jit_no_cache"] = "llvmlite is not installed (pip install aotkernels[jit])"
    except RuntimeError as exc:  # no home directory to put it in
        report["jit_no_cache"] = f"{exc}; misses compile into a private directory per process"
    else:
        problem = jit.cache_problem(directory)
        if problem:
            report["jit_no_cache"] = (f"{problem}; misses compile into a private directory "
                                      "per process")
        else:
            report["jit_cache"] = str(directory)
            report["jit_cached_kernels"] = len(list(directory.glob("*.o")))
    if report["jit_cache"] and importlib.util.find_spec("numba") is None:
        report["jit_no_compiler"] = ("numba is not installed: cached kernels load, other "
                                     "misses raise KernelNotAvailable (pip install "
                                     "aotkernels[jit])")
    return report


def coverage(script: str, args: list[str], verbose: bool) -> int:
    """Run ``script`` with PyTensor's default mode set to AOT; report every function."""
    import runpy

    import aotkernels.pytensor as am

    am.use_as_default()
    am.record_linkers(True)
    sys.argv = [script, *args]
    try:
        runpy.run_path(script, run_name="__main__")
    finally:
        linkers = am.record_linkers(False)
    total: Counter = Counter()
    for i, linker in enumerate(linkers):
        rows = am.coverage(linker)
        counts = Counter(source for _, source in rows)
        total.update(counts)
        print(f"function {i}: {len(rows)} nodes: {_fmt(counts)}")
        plan = am.plan_summary(linker)
        if plan is not None:
            print(f"  plan (from the 2nd call of a geometry): {_fmt(plan)}")
        for node, source in rows if verbose else []:
            print(f"  {source:<9}{node[:110]}")
    computing = sum(total.values()) - total["view"]
    kernels = total["aot"] + total["jit"]
    share = f"{100 * total['aot'] / computing:.0f}%" if computing else "n/a"
    print(f"total: {len(linkers)} functions, {sum(total.values())} nodes: {_fmt(total)}; "
          f"prebuilt kernels ran {share} of the {computing} computing nodes "
          f"({kernels} on kernels with JIT)")
    return 0


def _fmt(counts: Counter) -> str:
    return ", ".join(f"{k} {v}" for k, v in counts.most_common())


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m aotkernels")
    sub = p.add_subparsers(dest="cmd", required=True)
    sub.add_parser("info", help="library path, target, ABI and kernel counts").add_argument(
        "--json", action="store_true")
    cov = sub.add_parser("coverage", help="run a PyTensor script in mode AOT and report "
                                          "where each node ran")
    cov.add_argument("-v", "--verbose", action="store_true", help="one line per node")
    cov.add_argument("script")
    cov.add_argument("args", nargs=argparse.REMAINDER)
    args = p.parse_args(argv)
    if args.cmd == "coverage":
        return coverage(args.script, args.args, args.verbose)
    report = info()
    if args.json:
        print(json.dumps(report, indent=1))
        return 0
    if report["library"] is None:
        print(f"library:  none ({report['error']})")
    else:
        print(f"library:  {report['library']}")
        print(f"target:   {report['target']} ({report['reason']}; shipped: "
              f"{', '.join(report['targets'])})")
        print(f"ABI:      {report['abi']}  generator {report['generator']}  "
              f"numba {report['numba']}")
        fams = ", ".join(f"{f} {n}" for f, n in report["families"].items())
        print(f"kernels:  {report['kernels']} ({fams})")
        print("by op:    " + ", ".join(f"{o} {n}" for o, n in report["ops"].items()))
        print(f"BLAS:     {report['blas']}")
        print(f"LAPACK:   {report['lapack']}")
    if report["jit_cache"]:
        jit_line = f"cache {report['jit_cache']} ({report['jit_cached_kernels']} kernels)"
        if "jit_no_compiler" in report:
            jit_line += f"; {report['jit_no_compiler']}"
    else:
        jit_line = f"no cache: {report['jit_no_cache']}"
    print(f"JIT:      {'disabled' if report['jit_disabled'] else 'enabled'}; {jit_line}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
