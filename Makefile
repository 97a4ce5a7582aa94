# xemogpt: `make setup` then `make test`; `make train` runs the main job on generated data (CPU, no downloads).
SHELL := /bin/bash
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
RECIPE ?= recipes/xemogpt-tiny.yaml
RUN ?=
RESUME ?=
ARGS ?=
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false
export PYTHONUNBUFFERED := 1

.PHONY: ablate finetune gpu-check setup test test-fast train eval zoo lint bench bench-metrics bench-data clean help

help:
	@echo "make setup | test | train [RECIPE=...] [ARGS='key=value ...'] | eval [RUN=runs/...] | zoo | lint | bench"

# Idempotent: the stamp is rebuilt only when setup.cfg or constraints.txt change.
$(VENV)/.stamp: setup.cfg pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	# pip's own exit status decides (a filter such as grep -v would fail on pip's silence under -q).
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[dev]'
	touch $@

setup: $(VENV)/.stamp
	@$(BIN)/python -c "import xemogpt, torch, lightning; print('xemogpt ready: torch', torch.__version__, '| lightning', lightning.__version__)"

# One worker per core, a file per worker at a time (module fixtures stay in one process); each worker one thread.
test: setup
	$(BIN)/python -m pytest -q -n auto --dist loadfile --durations=15

test-fast: setup
	$(BIN)/python -m pytest -q -m "not slow"

train: setup
	$(BIN)/xemogpt train --recipe $(RECIPE) $(if $(RUN),--run-dir $(RUN)) $(if $(filter 1 yes true,$(RESUME)),--resume) $(ARGS)

eval: setup
	$(BIN)/xemogpt eval --checkpoint $(or $(RUN),runs/xemogpt-tiny) $(ARGS)

zoo: setup
	$(BIN)/xemogpt zoo $(ARGS)

lint: setup
	$(BIN)/ruff check src tests benchmarks

bench: setup
	$(BIN)/python benchmarks/bench_train.py

bench-metrics: setup
	$(BIN)/python benchmarks/bench_metrics.py

bench-data: setup
	$(BIN)/python benchmarks/bench_data.py

clean:
	rm -rf runs .pytest_cache .ruff_cache build dist src/*.egg-info

ablate: setup
	$(BIN)/xemogpt ablate $(ABLATION) $(ARGS)

finetune: setup
	$(BIN)/xemogpt finetune --recipe $(RECIPE) $(if $(RUN),--run-dir $(RUN)) $(ARGS)

gpu-check: setup
	$(BIN)/python scripts/gpu_check.py $(ARGS)
