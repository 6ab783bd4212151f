"""Models outside the corpus (tests/corpus/wild.py): logp+dlogp per call in modes AOT and
NUMBA, in one process per model, interleaved rounds (``bench_corpus.py``'s steady state).

    python benchmarks/bench_wild.py censored_gamma_truncated_t [more models] [--rounds 30]

Runs in build/pymc-venv (PyMC 5.28, PyTensor 2.38) on build/full-lib if it exists, else
build/test-lib (its misses JIT-compiled once into a fresh cache, before timing). Reported per
mode: the best round's time per call and the median round's; the ratio AOT/NUMBA of both.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import tempfile

from bench_corpus import ROOT, STEADY, library

WILD = STEADY.replace("from tests.corpus import MODELS, logp_dlogp, points",
                      "from tests.corpus import logp_dlogp, points\n"
                      "from tests.corpus.wild import MODELS")


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("models", nargs="+")
    p.add_argument("--rounds", type=int, default=30)
    p.add_argument("--python", default=str(ROOT / "build" / "pymc-venv" / "bin" / "python"))
    args = p.parse_args()
    lib, about = library()
    print(f"library: {about}; load average {os.getloadavg()}")
    with tempfile.TemporaryDirectory() as tmp:
        env = dict(os.environ, AOT_LIBRARY_DIR=str(lib), AOT_CACHE_DIR=f"{tmp}/aot",
                   NUMBA_CACHE_DIR=f"{tmp}/numba", PYTENSOR_FLAGS=f"base_compiledir={tmp}/pt",
                   OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1")
        for name in args.models:
            res = subprocess.run([args.python, "-c", WILD, name, str(args.rounds), "AOT,NUMBA"],
                                 cwd=ROOT, env=env, capture_output=True, text=True)
            if res.returncode:
                raise SystemExit(res.stderr[-3000:])
            out = json.loads(res.stdout.strip().splitlines()[-1])
            s = out["steady"]
            print(f"{name}: AOT best {s['AOT']['best'] * 1e6:.1f} us, median "
                  f"{s['AOT']['median'] * 1e6:.1f}; NUMBA best {s['NUMBA']['best'] * 1e6:.1f} us,"
                  f" median {s['NUMBA']['median'] * 1e6:.1f}; AOT/NUMBA best "
                  f"{s['AOT']['best'] / s['NUMBA']['best']:.2f}, median "
                  f"{s['AOT']['median'] / s['NUMBA']['median']:.2f}; agree {out['agree']:.1e}; "
                  f"load average {os.getloadavg()}")


if __name__ == "__main__":
    main()
