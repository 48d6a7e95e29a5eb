# kervan: `make run` serves the embedded default, `make test` runs the whole suite.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
UV := $(VENV)/bin/uv
UV_VERSION := 0.9.30
KERVAN_DATABASE_URL ?= sqlite+aiosqlite:///./var/kervan.db
export KERVAN_DATABASE_URL

# Re-install when the lock files or the kernel sources change.
KERNEL_SOURCES := $(wildcard native/*.pyx native/*.pxd) setup.py
INSTALLED := $(VENV)/.installed

.PHONY: run test check bench install build clean lock format

$(PY):
	$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "kervan needs Python 3.11+"'
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q "uv==$(UV_VERSION)"

$(INSTALLED): $(PY) requirements.lock requirements-dev.lock pyproject.toml $(KERNEL_SOURCES)
	$(UV) pip install -q --python $(PY) -r requirements-dev.lock
	# Two BlurHash baselines, `blurhash` (pure Python) and `blurhash-python` (C), both ship
	# blurhash/__init__.py and a parallel install lets either win. The C one must own it (its
	# public encode is compared; the pure one stays reachable as blurhash.blurhash).
	$(UV) pip install -q --python $(PY) --reinstall --no-deps \
		"$$(grep -m1 '^blurhash-python==' requirements-dev.lock)"
	$(UV) pip install -q --python $(PY) --no-deps --no-build-isolation -e .
	$(PY) setup.py -q build_ext --inplace
	touch $(INSTALLED)

install: $(INSTALLED)

build: $(INSTALLED)
	$(PY) setup.py -q build_ext --inplace

run: $(INSTALLED)
	mkdir -p var
	$(VENV)/bin/kervan migrate
	$(VENV)/bin/kervan serve

# Most of the suite waits on servers, sockets and subprocesses, not the CPU: two workers (each
# with its own database, Redis namespace and helper servers) halve the wall time on 2 cores.
# Each test file stays on one worker, so module fixtures (apps, processes) start once.
TEST_WORKERS ?= 2
test: $(INSTALLED)
	$(VENV)/bin/pytest -q -n $(TEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

check: $(INSTALLED)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

format: $(INSTALLED)
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

bench: $(INSTALLED)
	mkdir -p bench/results
	$(PY) -m bench $(BENCH_ARGS)

lock: $(PY)
	$(UV) pip compile pyproject.toml --python-version 3.11 -q -o requirements.lock
	$(UV) pip compile pyproject.toml --extra test --extra bench --extra dev \
		-c requirements.lock --python-version 3.11 -q -o requirements-dev.lock

clean:
	rm -rf build var native/*.c native/*.so native/*.html .pytest_cache .mypy_cache .ruff_cache
