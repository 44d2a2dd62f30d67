# Two commands for a fresh clone: `make demo` and `make test`.
# Each creates .venv from pyproject.toml when it is missing or older than pyproject.toml.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
DEMO_DIR := demo
DEMO_TRACES ?= 3000

.PHONY: demo test test-slow bench clean venv

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(PY) cli.py sample --traces $(DEMO_TRACES) --out $(DEMO_DIR)/sample --seed 7
	$(PY) cli.py ingest $(DEMO_DIR)/sample --db $(DEMO_DIR)/warehouse.duckdb --config all --name sample
	$(PY) cli.py build --db $(DEMO_DIR)/warehouse.duckdb

test: $(STAMP)
	$(PY) -m pytest -q -m "not slow"

test-slow: $(STAMP)
	$(PY) -m pytest -q -m slow

bench: $(STAMP)
	$(PY) bench/run.py

clean:
	rm -rf $(VENV) $(DEMO_DIR) .pytest_cache .hypothesis
