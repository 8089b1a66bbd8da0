# memlab — set-up, demo, tests, lint, benchmarks. `make demo` and `make test` install on demand.
VENV    ?= .venv
PY      := $(VENV)/bin/python
PIP     := $(VENV)/bin/pip
STAMP   := $(VENV)/.installed
# glibc malloc tuning: 1.3–1.65x faster CPU training here (see README, bench/train_step.py)
export GLIBC_TUNABLES ?= glibc.malloc.mmap_max=0:glibc.malloc.trim_threshold=68719476736
export HF_HUB_OFFLINE ?= 1
export WANDB_MODE ?= offline
export WANDB_SILENT ?= true
export TOKENIZERS_PARALLELISM ?= false

.PHONY: install demo demo-language test test-full lint format bench clean

install: $(STAMP)

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q torch==2.13.0          # CPU build from local disk first: no CUDA build is pulled
	$(PIP) install -q -e '.[dev]'
	touch $(STAMP)

demo: install                                 ## train a TinyMem model, measure memorization, unlearn it
	$(PY) -m memlab.demo

demo-language: install                        ## the language counterpart (offline corpus)
	$(PY) -m memlab.train experiment=demo_language

test: install                                 ## the default suite (<= 5 min on 2 cores)
	$(PY) -m pytest -q

test-full: install                            ## everything, slow tests included
	$(PY) -m pytest -q -m "slow or not slow"

lint: install                                 ## ruff + the layers contract (import-linter)
	$(VENV)/bin/ruff check memlab tests bench
	$(VENV)/bin/ruff format --check memlab tests bench
	$(VENV)/bin/lint-imports

format: install
	$(VENV)/bin/ruff format memlab tests bench
	$(VENV)/bin/ruff check --fix memlab tests bench

bench: install                                ## speed benchmarks (ratios against in-process baselines)
	$(PY) bench/memorization_eval.py
	$(PY) bench/train_step.py

clean:
	rm -rf outputs/runs outputs/multirun outputs/cache
