# Two commands on a fresh machine: `make demo` runs the default experiment, `make test` the test suite.
# Each bootstraps .venv first (about 5 minutes the first time, nothing after).
PY      := .venv/bin/python
STAMP   := .venv/.installed
TORCH   := torch==2.14.1 torchvision==0.29.1 torchaudio==2.11.0
# torchsort compiles its CUDA kernel where nvcc exists; these flags keep that build working.
CUDA_HOME ?= $(if $(wildcard /usr/local/cuda-13.0),/usr/local/cuda-13.0,/usr/local/cuda)
export CUDA_HOME
export TORCH_CUDA_ARCH_LIST ?= 8.0;9.0

.PHONY: venv root-pth demo lint test test-fast bench paper clean

# pip installs only the library (softstep); the research code (data/, extractors/, experiments/, benchmarks/)
# is imported from the checkout. ROOT_PTH, a .pth file in the environment's site-packages holding this
# checkout's root, puts the root on sys.path, so `python scripts/<name>.py` works from any directory
# (docs/layout.md, "Imports from the checkout"). `make root-pth PY=python` writes it into another environment (conda).
ROOT_PTH := softstep-checkout.pth
WRITE_ROOT_PTH = $(PY) -c 'import pathlib, sys, sysconfig; p = pathlib.Path(sysconfig.get_path("purelib"), sys.argv[1]); p.write_text(sys.argv[2] + "\n"); print("wrote", p, "->", sys.argv[2])' $(ROOT_PTH) "$(CURDIR)"

venv: $(STAMP)
$(STAMP): requirements.txt pyproject.toml
	python3 -m venv .venv
	$(PY) -m pip install -q --upgrade pip wheel setuptools
	$(PY) -m pip install -q $(TORCH)
	$(PY) -m pip install -q --no-build-isolation torchsort==0.1.10
	$(PY) -m pip install -q -r requirements.txt
	$(PY) -m pip install -q faiss-cpu==1.15.1  # optional for users (softstep[faiss]); its tests run in CI
	$(PY) -m pip install -q --no-deps --no-build-isolation -e .
	$(WRITE_ROOT_PTH)
	touch $(STAMP)

root-pth:
	$(WRITE_ROOT_PTH)

# The default experiment for all six heads, ten splits each, then a Table-1-style comparison.
demo: venv
	$(PY) run.py -m experiment=demo
	$(PY) scripts/make_tables.py --results-root results/demo --out results/demo/tables --no-tuning
	cat results/demo/tables/table1.md

# ruff's lint and format checks (configured in pyproject.toml); CI runs them before the tests.
lint: venv
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

test: venv
	$(PY) -m pytest -q -m "" tests

test-fast: venv
	$(PY) -m pytest -q -m "not slow and not slurm" tests

# Every table and figure from the result files under RESULTS (default results/).
RESULTS ?= results
paper: venv
	$(PY) scripts/make_tables.py --results-root $(RESULTS) --hparams-from paper --compare-paper
	$(PY) scripts/make_figures.py --results-root $(RESULTS) --figure3-from results/figure3_surfaces_raw.npz

# The head benchmark (about 10 minutes on 2 cores) into results/benchmarks/scratch/heads.md; --write replaces the committed table.
bench: venv
	$(PY) -m benchmarks.heads

clean:
	rm -rf .venv
