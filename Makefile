# icao-pki — the two commands of the README, and a few helpers.
#   make run   set everything up and serve the lifecycle API on the embedded default (./var/)
#   make test  install what the tests need and run the whole suite

SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEB_RUN := softhsm2 opensc openssl
DEB_TEST := $(DEB_RUN) openpace postgresql
export ICAO_PKI_DATA_DIR ?= $(CURDIR)/var

.PHONY: run test lint bench venv clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e ".[test]"
	@touch $(STAMP)

venv: $(STAMP)

run:
	@./.ci/ensure-debian-packages $(DEB_RUN)
	@$(MAKE) --no-print-directory venv
	$(BIN)/icao-pki hsm init
	$(BIN)/icao-pki serve --demo --host 127.0.0.1 --port 8000

test:
	@./.ci/ensure-debian-packages $(DEB_TEST)
	@$(MAKE) --no-print-directory venv
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q

lint: venv
	$(BIN)/ruff check .

bench: venv
	@for b in bench/*_bench.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) var .pytest_cache .ruff_cache .hypothesis
