# Two commands on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: install tools run test lint bench clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

install: $(BIN)/.installed

## The reference tools the tests compare against (file, 7z, tar, tshark, yara, readelf, redis):
## installed with apt-get when run as root on Debian, otherwise named with the command to install them.
tools:
	bash .ci/tools

## Install into .venv and start the server with embedded defaults (SQLite, ./data, local workers).
run: install
	$(BIN)/assay serve

## Check the reference tools, install the dev extras and run every test (ruff first).
test: tools install
	$(BIN)/ruff check assay tests bench
	$(BIN)/python -m pytest -q -p no:cacheprovider

lint: install
	$(BIN)/ruff check assay tests bench
	$(BIN)/ruff format --check assay tests bench

## Benchmarks (not tests): figures go to bench/RESULTS.md.
bench: install
	$(BIN)/python bench/ingest_e2e.py

clean:
	rm -rf $(VENV) data .pytest_cache
