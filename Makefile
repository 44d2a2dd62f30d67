# Two commands for a fresh clone: `make demo` and `make test`.
# Each creates .venv from pyproject.toml when it is missing or older than pyproject.toml.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
DEMO_DIR := demo
DEMO_TRACES ?= 3000

.PHONY: demo test test-slow bench clean venv chromium

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(PY) cli.py sample --traces $(DEMO_TRACES) --out $(DEMO_DIR)/sample --seed 7 --overwrite
	$(PY) cli.py ingest $(DEMO_DIR)/sample --db $(DEMO_DIR)/warehouse.duckdb --config all --name sample
	$(PY) cli.py build --db $(DEMO_DIR)/warehouse.duckdb
	$(PY) cli.py report --db $(DEMO_DIR)/warehouse.duckdb --out $(DEMO_DIR)/report.html
	@echo "report: $(abspath $(DEMO_DIR)/report.html)"

test: $(STAMP) chromium
	$(PY) -m pytest -q -m "not slow"

# The report's browser test drives Debian's chromium (never `playwright install`): install it when missing.
# Without apt-get (or root) this only says how; the browser test then fails with the same advice.
chromium:
	@command -v chromium >/dev/null 2>&1 || { \
	  if command -v apt-get >/dev/null 2>&1; then \
	    echo "installing chromium (Debian package) for the report's browser test"; \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
	      || echo "could not install chromium: run 'apt-get install -y chromium' as root" >&2; \
	  else echo "chromium is missing: install Debian's chromium package (apt-get install -y chromium)" >&2; fi; }

test-slow: $(STAMP)
	$(PY) -m pytest -q -m slow

bench: $(STAMP)
	$(PY) bench/run.py

clean:
	rm -rf $(VENV) $(DEMO_DIR) .pytest_cache .hypothesis
