# keysweep — `make run` and `make test` work on a fresh machine with Python 3.11+.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: install run test lint bench clean

install: $(STAMP)

# pip's whole output goes to $(VENV)/install.log; the screen gets a line per package.
$(STAMP): pyproject.toml
	@echo "install: keysweep and its dependencies into $(VENV) (about a minute the first time)"
	$(PYTHON) -m venv $(VENV)
	@$(PY) deploy/local/pip_progress.py $(VENV)/install.log -- $(PY) -m pip install --progress-bar off --upgrade pip
	@$(PY) deploy/local/pip_progress.py $(VENV)/install.log -- $(PY) -m pip install --progress-bar off -e '.[test]'
	touch $(STAMP)

# The whole service locally: key service, GitHub simulator (unless
# KEYSWEEP_GITHUB_TOKENS is set), workers, scheduler and a live monitor.
run: install
	VENV=$(VENV) bash deploy/local/run.sh

lint: install
	$(VENV)/bin/ruff check scanner workers tests bench

test: install lint
	$(PY) -m pytest -q -n 2

# Benchmarks run from a regular (non-editable) install, as users have it.
BENCH_VENV := .venv-bench
bench:
	$(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/python -m pip install --quiet '.[bench,test]'
	$(BENCH_VENV)/bin/python bench/engine.py
	$(BENCH_VENV)/bin/python bench/history.py
	$(BENCH_VENV)/bin/python bench/hook.py
	$(BENCH_VENV)/bin/python bench/pipeline.py
	$(BENCH_VENV)/bin/python bench/intake.py

clean:
	rm -rf $(VENV) $(BENCH_VENV) .pytest_cache build *.egg-info
