# Two commands on a fresh machine:
#   make run    set up, export the encoder once, run the embedded demo (no servers)
#   make test   install everything, start Kafka + Cassandra (deploy/local), run the whole suite
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/python -m pip
STAMP  := $(VENV)/.installed

.PHONY: run test test-data venv install install-all encoder lint typecheck servers-up servers-down bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip

$(VENV)/.installed-run: pyproject.toml | $(BIN)/python
	$(PIP) install -q -e '.[export]'
	touch $@

$(STAMP): pyproject.toml | $(BIN)/python
	$(PIP) install -q -e '.[export,kafka,cassandra,bench,eval,dev]'
	touch $@

install: $(VENV)/.installed-run
install-all: $(STAMP)

encoder: $(VENV)/.installed-run
	$(BIN)/interest-stream export-encoder --precision fp32
	$(BIN)/interest-stream export-encoder --precision int8

run: encoder
	$(BIN)/interest-stream run

# The `data` tests read the licensed data sets beside the checkout (../shared/data, or
# $$INTEREST_STREAM_LAB_DATA), which a plain clone does not have: `make test-data` runs them.
PYTEST_ARGS ?= -m "not data"

test: $(STAMP) encoder lint
	bash deploy/local/test-with-servers $(BIN)/python -m pytest $(PYTEST_ARGS)

test-data: $(STAMP) encoder
	$(BIN)/python -m pytest -m data

# mypy reads the installed names (interest_stream.*) through links to the four folders.
TYPECHECK := .typecheck/interest_stream

# Every shell script: deploy/**/*.sh, the deploy/local commands and CI's entry point.
SHELL_SCRIPTS = $(sort $(shell find deploy -name '*.sh' -not -path '*/.cache/*') \
	$(shell grep -lE '^\#!/usr/bin/env (ba)?sh' deploy/local/* .ci/*))

lint: $(STAMP)
	@mkdir -p $(TYPECHECK)
	@for d in streams encoders store schemas; do ln -sfn ../../$$d $(TYPECHECK)/$$d; done
	$(BIN)/ruff check . && $(BIN)/ruff format --check . && $(BIN)/mypy && $(BIN)/lint-imports
	$(BIN)/shellcheck --external-sources --source-path=SCRIPTDIR $(SHELL_SCRIPTS)
	$(BIN)/mkdocs build --strict --quiet

# The readiness probes use kafka-python and cassandra-driver from the venv.
servers-up: $(STAMP)
	deploy/local/up

servers-down:
	deploy/local/down

bench: $(STAMP) encoder
	$(BIN)/interest-stream bench encoder

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .typecheck .site
