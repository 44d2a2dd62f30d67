# Two commands for a fresh clone: `make demo` and `make test`.
# Each creates .venv from pyproject.toml when it is missing or older than pyproject.toml:
# `make demo` installs the package and its runtime dependencies only (the demo needs
# nothing else); `make test` adds the test extras (`dev`: pytest, playwright, ...; `spark`).

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
DEMO_STAMP := $(VENV)/.installed-demo
DEMO_DIR := demo
DEMO_TRACES ?= 3000

.PHONY: demo test test-slow bench docs clean venv chromium spark

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev,spark]'
	touch $(STAMP) $(DEMO_STAMP)

# The demo's venv: the runtime dependencies only. A venv made by `make test` has them already.
$(DEMO_STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e .
	touch $(DEMO_STAMP)

demo: $(DEMO_STAMP)
	$(PY) cli.py sample --traces $(DEMO_TRACES) --out $(DEMO_DIR)/sample --seed 7 --overwrite
	$(PY) cli.py ingest $(DEMO_DIR)/sample --db $(DEMO_DIR)/warehouse.duckdb --config all --name sample
	$(PY) cli.py build --db $(DEMO_DIR)/warehouse.duckdb
	$(PY) cli.py report --db $(DEMO_DIR)/warehouse.duckdb --out $(DEMO_DIR)/report.html
	@echo "report: $(abspath $(DEMO_DIR)/report.html)"

# --no-loadscope-reorder: xdist would otherwise hand out the files by their number of tests, not in the
# order tests/conftest.py puts them (the longest first).
# PYTHONDONTWRITEBYTECODE (set in some containers) would make every worker rewrite the tests' asserts
# and every `python cli.py` the tests start compile the package again: Python's own caches are kept.
PYTEST := env -u PYTHONDONTWRITEBYTECODE $(PY) -m pytest
test: $(STAMP) chromium spark
	$(PYTEST) -q -m "not slow" -n 2 --dist loadfile --no-loadscope-reorder

# The report's browser test drives Debian's chromium (never `playwright install`): install it when missing.
# Without apt-get (or root) this only says how; the browser test then fails with the same advice.
chromium:
	@command -v chromium >/dev/null 2>&1 || { \
	  if command -v apt-get >/dev/null 2>&1; then \
	    echo "installing chromium (Debian package) for the report's browser test"; \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
	      || echo "could not install chromium: run 'apt-get install -y chromium' as root" >&2; \
	  else echo "chromium is missing: install Debian's chromium package (apt-get install -y chromium)" >&2; fi; }

# The Spark parity test needs pyspark (the `spark` extra; a venv made before it was added lacks it)
# and Java 17+ (pyspark 4): install Debian's openjdk-17-jre-headless when `java` is missing.
spark: $(STAMP)
	@$(PY) -c 'import pyspark' 2>/dev/null || $(PY) -m pip install --quiet -e '.[dev,spark]'
	@command -v java >/dev/null 2>&1 || { \
	  if command -v apt-get >/dev/null 2>&1; then \
	    echo "installing Java 17 (openjdk-17-jre-headless) for the Spark parity test"; \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
	      openjdk-17-jre-headless >/dev/null) || echo "could not install Java: run 'apt-get install -y openjdk-17-jre-headless' as root" >&2; \
	  else echo "java is missing: install Java 17 or newer (Debian: openjdk-17-jre-headless)" >&2; fi; }

test-slow: $(STAMP)
	$(PYTEST) -q -m slow

# The generated references: docs/cli.md from each command's --help, docs/models.md from the model
# headers (docs/reference.py); tests/test_docs.py fails when either is stale.
docs: $(STAMP)
	$(PY) -m cogapp -r -I docs docs/cli.md docs/models.md

bench: $(STAMP)
	$(PY) bench/run.py

clean:
	rm -rf $(VENV) $(DEMO_DIR) .pytest_cache .hypothesis
