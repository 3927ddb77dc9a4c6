SHELL := /bin/bash
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo test test-slow interop faults lint bench clean

install: $(STAMP)

$(STAMP): pyproject.toml
	@command -v $(PY) >/dev/null 2>&1 || { echo "error: $(PY) not found; set PY=/path/to/python3.11"; exit 1; }
	@echo "[1/3] creating $(VENV) with $(PY)"
	@test -x $(BIN)/python || $(PY) -m venv $(VENV)
	@echo "[2/3] upgrading pip"
	@$(BIN)/python -m pip install --quiet --upgrade pip
	@echo "[3/3] installing cotal-tui with textual, nats-py, nats-server and the test tools (a first install takes ~30 s)"
	@set -o pipefail; $(BIN)/python -m pip install -e '.[test]' 2>&1 \
		| awk '/^(Collecting|Installing collected|Successfully installed|ERROR|error)/ { print "      " $$0; fflush() }'
	@touch $(STAMP)
	@echo "installed: $(BIN)/cotal-tui"

demo: install
	$(BIN)/cotal-tui demo

test: install
	$(BIN)/python -m pytest -q

# The full fault suite (tests/faults): every scenario, three runs of the repeated ones (~15 min).
faults: install
	COTAL_FAULTS=full COTAL_FAULT_RUNS=3 $(BIN)/python -m pytest -q tests/faults

# The mixed-space suite against the reference builds in ../shared/reference (both 0.6.0 and 0.9.0),
# including the long cases `make test` leaves out. CI=true makes a missing reference a failure.
interop: install
	$(BIN)/python -m pytest tests/interop -q -m ""

# The long cases (node loss on a 3-node cluster, the three-machine recipe); `make test` skips them.
test-slow: install
	$(BIN)/python -m pytest -q -m slow

lint: install
	$(BIN)/ruff check cotal_tui tests bench
	$(BIN)/ruff format --check cotal_tui tests bench

bench: install
	$(BIN)/python bench/daemon.py
	$(BIN)/python bench/console.py
	$(BIN)/python bench/cluster.py

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
