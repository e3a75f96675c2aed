# The user's front door. `make help` lists every target.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.DEFAULT_GOAL := help
.PHONY: help install test data

help: ## List every target with one line each
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z0-9_-]+:.*## / {printf "  %-18s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

install: $(STAMP) ## Create .venv and install the package editable with test extras

$(STAMP): setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -e ".[test]"
	touch $@

test: install ## Run the test suite (full-data tests run when DATASETS_MIRROR is set)
	$(PY) -m pytest -q

data: install ## Fetch, verify and extract spa-eng, IMDb and JSB Chorales into datasets/
	$(PY) -m datafiles spa-eng imdb jsb
