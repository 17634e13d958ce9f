# Two commands for a fresh machine: `make demo` and `make test`. Each creates .venv on first use.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin

.PHONY: demo test lint bench docs clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# Stamp files: reinstall only when pyproject.toml changes.
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --editable .
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --editable '.[test]'
	touch $@ $(VENV)/.installed

demo: $(VENV)/.installed  ## train the default network on MNIST, print its test accuracy, write its report
	$(BIN)/scratchcnn train --out runs/demo
	$(BIN)/scratchcnn report runs/demo

# SCIPY_ARRAY_API: lets scikit-learn's estimator checks include their array-API one.
test: $(VENV)/.installed-test  ## run the test suite
	SCIPY_ARRAY_API=1 $(BIN)/python -m pytest

lint: $(VENV)/.installed-test
	$(BIN)/ruff check .

bench: $(VENV)/.installed  ## seconds per 10 000-record epoch at batch sizes 1 and 32
	$(BIN)/python benchmarks/epoch_time.py

docs: $(VENV)/.installed  ## rewrite the README's command-line reference from the commands' --help
	$(BIN)/python tools/readme_cli.py

clean:
	rm -rf $(VENV) runs .pytest_cache .ruff_cache .hypothesis src/*.egg-info
