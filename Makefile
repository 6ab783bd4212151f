# Two entry points (see README):
#   make demo   build the kernel wheel for this machine, install it into a fresh venv, run it
#   make test   lint and run the test suite (what CI runs)
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
JOBS   ?= $(shell nproc)
STAMP  := $(VENV)/.installed

.PHONY: setup cross-tools test demo bench bench-pymc bench-corpus bench-samplers bench-pycc \
        check-wild check-generated check-float32 clean

# The development venv: pinned build stack (numba, llvmlite, scikit-build-core, cmake, ninja),
# PyTensor and the test tools, with aotkernels installed editable from this checkout.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q "scikit-build-core==1.1.2"
	$(BIN)/pip install -q --no-build-isolation -e ".[test]"
	touch $@

# PyMC's PyTensor line (2.38.x) in a second venv, for tests/test_pytensor2.py and bench-pymc.
PYMC_VENV  := build/pymc-venv
PYMC_STAMP := $(PYMC_VENV)/.installed
$(PYMC_STAMP): pyproject.toml
	$(PYTHON) -m venv $(PYMC_VENV)
	$(PYMC_VENV)/bin/pip install -q --upgrade pip
	$(PYMC_VENV)/bin/pip install -q "scikit-build-core==1.1.2"
	$(PYMC_VENV)/bin/pip install -q --no-build-isolation -e ".[pymc]"
	touch $@

setup: $(STAMP) $(PYMC_STAMP) cross-tools

# aarch64 cross compiler and qemu-user from Debian (root with apt-get; silent once installed).
cross-tools:
	@sh build_tools/setup_cross.sh

# One worker per core, each taking whole files (module fixtures build into fixed paths
# under build/); the session library is built once, under a lock (tests/conftest.py).
test: setup
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -n $(JOBS) --dist loadfile

demo: setup
	rm -f wheels/aotkernels-*.whl
	$(BIN)/build-kernels --jobs $(JOBS)
	rm -rf build/demo-venv
	$(PYTHON) -m venv build/demo-venv
	build/demo-venv/bin/pip install -q --upgrade pip
	build/demo-venv/bin/pip install -q "$$(ls wheels/aotkernels-*.whl)[pytensor]"
	build/demo-venv/bin/python examples/demo.py

# Benchmarks need the full library; build-kernels skips what its IR cache already has.
bench: setup
	$(BIN)/build-kernels --no-wheel --jobs $(JOBS) --out build/full-lib
	$(BIN)/python benchmarks/bench_elemwise.py
	$(BIN)/python benchmarks/bench_reduce.py
	$(BIN)/python benchmarks/bench_pytensor.py
	$(BIN)/python benchmarks/bench_overhead.py
	$(BIN)/python benchmarks/bench_levels.py

# numba.pycc against build-kernels --catalog (examples/user_kernels): builds both, times both.
bench-pycc: setup
	$(BIN)/python benchmarks/bench_pycc.py

# A hierarchical PyMC model's logp+dlogp in modes AOT, NUMBA and C, on PyTensor 2.38.x.
bench-pymc: setup
	$(BIN)/build-kernels --no-wheel --jobs $(JOBS) --out build/full-lib
	$(BIN)/python benchmarks/bench_pytensor.py --python $(PYMC_VENV)/bin/python --cases radon
	$(PYMC_VENV)/bin/python benchmarks/bench_overhead.py --cases radon

# The model corpus (tests/corpus) in modes AOT, NUMBA and C, on PyTensor 2.38.x with PyMC.
bench-corpus: setup
	$(BIN)/build-kernels --no-wheel --jobs $(JOBS) --out build/full-lib
	$(BIN)/python benchmarks/bench_corpus.py

# The second and third model registries (tests/corpus/wild.py, tests/corpus/generated.py:
# models drawn from seeds), all of each (CI checks their .CI subsets): mode AOT against
# PyTensor's Python linker with a coverage report, then nutpie's C plans; on the full
# library, so "jit" in the report is a kernel no wheel ships.
check-wild check-generated: check-%: setup
	$(BIN)/build-kernels --no-wheel --jobs $(JOBS) --out build/full-lib
	AOT_LIBRARY_DIR=build/full-lib $(PYMC_VENV)/bin/python -m tests.corpus.check \
	    --registry $* --jobs $(JOBS) --report
	AOT_LIBRARY_DIR=build/full-lib $(PYMC_VENV)/bin/python -m tests.corpus.samplers plan \
	    $$($(PYMC_VENV)/bin/python -c "from tests.corpus.$* import MODELS; print(*MODELS)")

# Every registry under floatX=float32 (check.py --float32).
check-float32: setup
	$(BIN)/build-kernels --no-wheel --jobs $(JOBS) --out build/full-lib
	for r in corpus wild generated; do AOT_LIBRARY_DIR=build/full-lib \
	    $(PYMC_VENV)/bin/python -m tests.corpus.check --registry $$r --float32 \
	    --jobs $(JOBS) --report || exit 1; done

# nutpie on C plans against nutpie's numba backend, and pm.sample in modes AOT/NUMBA/C.
bench-samplers: setup
	$(BIN)/build-kernels --no-wheel --jobs $(JOBS) --out build/full-lib
	$(BIN)/python benchmarks/bench_samplers.py

clean:
	rm -rf build $(VENV) wheels/*.whl
