# Recommender systems with TensorFlow: every task the README names.
# Each target creates .venv from the exact pins in requirements.txt when it is missing.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
LAB_STAMP := $(VENV)/.lab-installed
CHAPTERS := $(sort $(wildcard chapters/*.ipynb))

.PHONY: help venv book test unit nbval expected full ladders seeds data lint format bench lab clean

help:
	@echo "make book   build the HTML book into _build/html from the committed outputs (offline)"
	@echo "make test   unit tests + every chapter notebook executed in subset mode (nbval)"
	@echo "make full   re-execute every chapter on the full data and save the outputs"
	@echo "make data   download the data sets into the cache"
	@echo "make lint   ruff over the package, tests and chapter sources"
	@echo "make format ruff-format the chapters' code at the page's width (80 columns)"
	@echo "make nbval  every chapter in subset mode, recorded metrics checked against tests/expected"
	@echo "make ladders  the measured rungs from the source's configurations (benchmarks/results/ladder_*.json)"
	@echo "make seeds  each neural headline model trained with several seeds (benchmarks/results/seeds_*.json)"
	@echo "make lab    JupyterLab on the chapters (installed into .venv on first use); each .md opens as a notebook"

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

# Tests run in TEST_JOBS processes (pytest-xdist; each test module, and each notebook, stays in
# one process), each with TEST_THREADS CPU threads: two of one thread each suit a 2-core machine.
# `make test TEST_JOBS=0` runs everything in this process. Each run's times (per test module and
# per chapter) go to .data/*.xml; `make test` prints them (recsys_helpers/book/suite_times.py).
TEST_JOBS ?= 2
TEST_THREADS ?= 1
PARALLEL := $(if $(filter 0,$(TEST_JOBS)),,-n $(TEST_JOBS) --dist loadscope)
TEST_ENV := RECSYS_THREADS=$(TEST_THREADS)

# pytest's exit status 5 ("collected no test") is not a failure here.
# The unit tests include the lab test (tests/test_lab.py), which needs the pinned Jupyter server.
unit: $(LAB_STAMP)
	mkdir -p .data
	$(TEST_ENV) $(BIN)/python -m pytest $(PARALLEL) --junitxml=.data/unit.xml tests || [ $$? -eq 5 ]

# Every chapter in subset mode (nbval); each glued number also goes to $(RECORD), and
# tests/check_subset_metrics.py compares the recorded metrics with tests/expected/.
RECORD := .data/subset_metrics.jsonl
nbval: $(STAMP)
	mkdir -p .data && rm -f $(RECORD)
	$(TEST_ENV) RECSYS_SUBSET=1 RECSYS_RECORD_FILE=$(abspath $(RECORD)) $(BIN)/python -m pytest --nbval-lax \
		--nbval-cell-timeout=900 -p no:cacheprovider $(PARALLEL) --junitxml=.data/nbval.xml $(CHAPTERS)
	RECSYS_RECORD_FILE=$(abspath $(RECORD)) $(BIN)/python -m pytest -p no:cacheprovider tests/check_subset_metrics.py

test: $(STAMP)
	$(MAKE) --no-print-directory unit
	$(MAKE) --no-print-directory nbval
	TEST_JOBS=$(TEST_JOBS) $(TEST_ENV) $(BIN)/python -m recsys_helpers.book.suite_times .data/unit.xml .data/nbval.xml

# After a deliberate change of a model: new expected subset-mode metrics from the last `make nbval`.
expected: $(STAMP)
	$(BIN)/python tests/check_subset_metrics.py $(RECORD)

# Re-execute chapters on the full data: all of them, or `make full ONLY="chapters/02_als.md"`.
full: $(STAMP)
	env -u RECSYS_SUBSET $(BIN)/python -m recsys_helpers.book.execute $(ONLY)

# The rungs from each source configuration to the chapters' models, on the full data (about 75
# minutes on 2 cores): all ladders, or `make ladders ONLY="bpr item_lstm"`. Re-execute the chapters.
ladders: $(STAMP)
	env -u RECSYS_SUBSET $(BIN)/python -m recsys_helpers.book.ladders $(ONLY)

# Each neural headline model (the chapter's configuration) trained once per seed on the full data
# and scored on validation with its chapter's protocol: benchmarks/results/seeds_<model>.json.
# All models, cheapest first, or `make seeds ONLY="sgd_mf bpr"`; seeds 42 1 2, or SEEDS="42 1 2 3 4".
seeds: $(STAMP)
	env -u RECSYS_SUBSET $(BIN)/python -m recsys_helpers.book.seeds $(ONLY) $(if $(SEEDS),--seeds $(SEEDS))

data: $(STAMP)
	$(BIN)/python -m recsys_helpers.datasets

lint: $(STAMP)
	$(BIN)/ruff check recsys_helpers tests benchmarks

# Chapters' code cells at the page's width; the notebooks keep their outputs (nothing is executed).
format: $(STAMP)
	$(BIN)/python -m recsys_helpers.book.style chapters/*.md
	for f in chapters/*.md; do $(BIN)/jupytext --update --to ipynb "$$f" -q; done

bench: $(STAMP)
	$(BIN)/python benchmarks/run.py $(if $(ONLY),--only $(ONLY))

# JupyterLab on the chapters, to run one cell by cell. The first run installs the exact pins of
# requirements-lab.txt into .venv (held to requirements.txt) and makes a double click open a chapter's
# MyST .md as a notebook (jupytext's documented `jupytext-config set-default-viewer`, written into
# the venv, not the home folder); jupytext's server extension pairs it with its .ipynb (outputs).
# `make lab LAB_ARGS="--port 8890 --no-browser"` passes options on.
$(LAB_STAMP): $(STAMP) requirements-lab.txt
	$(BIN)/python -m pip install --quiet -c requirements.txt -r requirements-lab.txt
	$(BIN)/jupytext-config --settings-file $(VENV)/etc/jupyter/labconfig/default_setting_overrides.json \
		set-default-viewer markdown myst
	touch $(LAB_STAMP)

lab: $(LAB_STAMP)
	$(BIN)/jupyter lab --ServerApp.ip=127.0.0.1 $(LAB_ARGS) chapters/

clean:
	rm -rf _build .pytest_cache
