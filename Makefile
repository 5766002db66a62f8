# The two commands of the README: `make demo` and `make test`. Both set up what they need.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test test-fast lint system-deps bench install clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $@

install: $(BIN)/.installed

## Build the sample issue, import sample subscribers, send to a local outbox, serve the pages.
demo: install
	$(BIN)/mailer demo

## Install the Debian packages the tests need (Chromium, PostgreSQL if none answers; see README) and run every test.
test: system-deps install lint
	$(BIN)/python -m pytest -q

## Every test but the browser and slow ones, without touching system packages.
test-fast: install
	$(BIN)/python -m pytest -q -m "not browser and not slow"

## ruff over the code, tests and benchmarks; mypy --strict over mailer/ (settings in pyproject.toml).
lint: install
	$(BIN)/ruff check mailer bench tests
	$(BIN)/mypy

system-deps:
	bash .ci/system-deps test

## Benchmarks: print figures; see docs/performance.md. (Postfix only for its smtp-sink, unconfigured.)
bench: install
	bash .ci/system-deps bench
	$(BIN)/python bench/bench_startup.py
	$(BIN)/python bench/bench_render.py
	$(BIN)/python bench/bench_store.py
	$(BIN)/python bench/bench_send.py
	$(BIN)/python bench/bench_bounces.py
	$(BIN)/python bench/bench_schedule.py
	$(BIN)/python bench/bench_web.py

clean:
	rm -rf $(VENV) build demo test-artifacts .pytest_cache
