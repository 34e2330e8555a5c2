# Recommender systems with TensorFlow: every task the README names.
# Each target creates .venv from the exact pins in requirements.txt when it is missing.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
CHAPTERS := $(sort $(wildcard chapters/*.ipynb))

.PHONY: help venv book test unit nbval full data lint bench clean

help:
	@echo "make book   build the HTML book into _build/html from the committed outputs (offline)"
	@echo "make test   unit tests + every chapter notebook executed in subset mode (nbval)"
	@echo "make full   re-execute every chapter on the full data and save the outputs"
	@echo "make data   download the data sets into the cache"
	@echo "make lint   ruff over the package, tests and chapter sources"

$(STAMP): requirements.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 > /dev/null
	touch $(STAMP)

venv: $(STAMP)

book: $(STAMP)
	rm -rf _build/html
	$(BIN)/jupyter-book build . -W -n --keep-going

unit: $(STAMP)
	$(BIN)/python -m pytest tests

nbval: $(STAMP)
	RECSYS_SUBSET=1 $(BIN)/python -m pytest --nbval-lax --nbval-cell-timeout=900 -p no:cacheprovider $(CHAPTERS)

# pytest's exit status 5 ("collected no test") is not a failure here.
test: $(STAMP)
	$(BIN)/python -m pytest tests || [ $$? -eq 5 ]
	RECSYS_SUBSET=1 $(BIN)/python -m pytest --nbval-lax --nbval-cell-timeout=900 -p no:cacheprovider $(CHAPTERS) || [ $$? -eq 5 ]

# Re-execute chapters on the full data: all of them, or `make full ONLY="chapters/02_als.md"`.
full: $(STAMP)
	env -u RECSYS_SUBSET $(BIN)/python -m recsys_helpers.execute $(ONLY)

data: $(STAMP)
	$(BIN)/python -m recsys_helpers.data

lint: $(STAMP)
	$(BIN)/ruff check recsys_helpers tests benchmarks

bench: $(STAMP)
	$(BIN)/python benchmarks/run.py

clean:
	rm -rf _build .pytest_cache
