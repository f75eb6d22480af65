# Parley — the two commands of the README, and their helpers.
#   make demo   bring up Kafka + FerretDB and every service, then simulate a month (parley simulate)
#   make test   install everything the tests need and run them (they start their own servers)
# Both install what they need on a fresh machine (virtualenv, Python packages, Kafka jars,
# FerretDB). Requires python3 >= 3.11, a JDK >= 17 with Maven, and Go >= 1.24.

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STACK  := $(PYTHON) deploy/local/stack.py

.PHONY: setup demo demo-story test unit typecheck stop status logs clean lint bench faults

$(VENV)/.installed: pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Parley needs Python 3.11 or newer; python3 is " + sys.version.split()[0])'
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

setup: $(VENV)/.installed
	$(STACK) install
	sh deploy/local/ensure_chromium.sh
	@test -f var/models/complaint-classifier.joblib || $(PY) -m services.investigation.train

# the main job: `parley simulate` — the stack, every service on one accelerated clock, a month of
# DEMO_COMPLAINTS real complaints in about five minutes, the evaluation report (docs/cli.md#simulate)
DEMO_COMPLAINTS ?= 200
demo: setup
	$(PY) -m deploy.cli.main simulate --complaints $(DEMO_COMPLAINTS) $(DEMO_ARGS)

# the older walk-through: six complaints, one case negotiated by script, on the real clock
demo-story: setup
	$(STACK) start
	$(PY) -m deploy.local.services start
	$(PY) -m deploy.local.demo

test: setup
	$(PY) -m mypy shared
	$(PY) -m pytest

typecheck: $(VENV)/.installed
	$(PY) -m mypy shared

unit: $(VENV)/.installed
	$(PY) -m pytest tests/unit

stop:
	-$(PY) -m deploy.local.services stop
	$(STACK) stop

status:
	$(STACK) status; $(PY) -m deploy.local.services status

lint: $(VENV)/.installed
	$(PY) -m ruff check .

clean: stop
	rm -rf .parley var

# its own Kafka + FerretDB (+ PostgreSQL) on ports 19xxx and .parley/bench-stack, stopped at the end;
# BENCH_ARGS=--quick for a short check (see bench/README.md)
$(VENV)/.bench-installed: $(VENV)/.installed pyproject.toml
	$(PY) -m pip install --quiet -e '.[dev,bench]'
	touch $@

bench: setup $(VENV)/.bench-installed
	$(PY) -m bench.run $(BENCH_ARGS)

# 10,000 real complaints through intake and investigation (2 workers each) while workers,
# the broker and the database are killed; audits loss, duplicates and dead letters (bench/faults.py).
# Its own servers on ports 18xxx and .parley/faults-stack; FAULTS_ARGS="--complaints 1000" for a short run
faults: setup
	$(PY) -m bench.faults $(FAULTS_ARGS)
