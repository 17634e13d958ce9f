# Two commands for a fresh machine: `make demo` and `make test`. Each creates .venv on first use.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin

.PHONY: demo test lint wheel-check bench docs tutorial clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# Stamp files: reinstall only when pyproject.toml changes.
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --editable .
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --editable '.[test]'
	touch $@ $(VENV)/.installed

demo: $(VENV)/.installed runs/demo/model.npz  ## train the default network on MNIST (once), print its test accuracy, write its report
	$(BIN)/scratchcnn report runs/demo

# Trained once: a second `make demo` keeps the run (train refuses to overwrite one); rm -r runs/demo to retrain.
runs/demo/model.npz: | $(VENV)/.installed
	$(BIN)/scratchcnn train --out runs/demo

# SCIPY_ARRAY_API: lets scikit-learn's estimator checks include their array-API one.
test: $(VENV)/.installed-test  ## run the test suite
	SCIPY_ARRAY_API=1 $(BIN)/python -m pytest

lint: $(VENV)/.installed-test  ## ruff, the import layering (import-linter) and the explorer's JavaScript syntax
	$(BIN)/ruff check .
	$(BIN)/lint-imports
	for script in src/scratchcnn/viz/assets/*.js; do node --check "$$script" || exit 1; done

# What users get: build the wheel, install it (not editable) in a fresh venv, run the commands from it.
wheel-check: $(VENV)/.installed-test  ## build the wheel and run train, explore and report from an install of it
	tools/wheel_check.sh $(BIN)/python

bench: $(VENV)/.installed  ## seconds per 10 000-record epoch at batch sizes 1 and 32; each command's time and memory
	$(BIN)/python benchmarks/epoch_time.py
	$(BIN)/python benchmarks/startup.py

docs: $(VENV)/.installed  ## rewrite the README's layout and command-line reference from the code
	$(BIN)/python tools/readme.py

$(VENV)/.installed-notebook: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --editable '.[notebook]'
	touch $@ $(VENV)/.installed

tutorial: $(VENV)/.installed-notebook  ## open docs/tutorial.ipynb in JupyterLab (data: SCRATCHCNN_DATA=DIR make tutorial)
	$(BIN)/jupyter lab docs/tutorial.ipynb

clean:
	rm -rf $(VENV) runs dist build .pytest_cache .ruff_cache .hypothesis src/*.egg-info
