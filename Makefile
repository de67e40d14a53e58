# Asclepius Desk: the two commands for a fresh machine are `make run` and `make test`.
#   make run    create .venv, install the app (builds llama-cpp-python once; pip caches the wheel),
#               prepare the embedded demo model, start the desktop app
#   make test   create .venv, install the app with the dev and quantize extras, run the whole suite
# Other targets: selftest, bench, screenshots, lint.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# Qt's runtime libraries (Debian names); installed only when missing and we are root.
QT_DEBS := libegl1 libgl1 libxkbcommon0 libfontconfig1 libdbus-1-3 libglib2.0-0

.PHONY: run test selftest bench screenshots lint sysdeps app-env test-env clean

sysdeps:
	@missing=""; for p in $(QT_DEBS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq $$missing; \
	  else echo "Qt needs these system packages:$$missing (sudo apt-get install$$missing)"; fi; \
	fi

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(VENV)/.app-installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -e .
	touch $@

$(VENV)/.test-installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -e '.[dev,quantize]'
	touch $@ $(VENV)/.app-installed

app-env: sysdeps $(VENV)/.app-installed
test-env: sysdeps $(VENV)/.test-installed

run: app-env
	$(BIN)/asclepius models list
	$(BIN)/asclepius gui

test: test-env
	$(BIN)/ruff check .
	QT_QPA_PLATFORM=offscreen $(BIN)/python -m pytest

selftest: app-env
	$(BIN)/asclepius selftest

# Not run by CI. The quantize benchmarks need a 13 GB fixture: see docs/benchmarks.md.
bench: test-env
	$(BIN)/python tests/bench/bench_engine.py --bandwidth
	$(BIN)/python tests/bench/bench_parallel.py --bandwidth
	$(BIN)/python tests/bench/bench_restart.py
	$(BIN)/python tests/bench/bench_store.py
	$(BIN)/python tests/bench/bench_netns.py
	$(BIN)/python tests/bench/bench_grounding.py
	$(BIN)/python tests/bench/bench_verify_gate.py
	QT_QPA_PLATFORM=offscreen $(BIN)/python tests/bench/bench_gui.py

screenshots: app-env
	QT_QPA_PLATFORM=offscreen $(BIN)/python -m app.qt.screenshots docs/screenshots

lint: test-env
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
