# Every target creates and uses a local .venv by itself.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Azurite (Microsoft's Azure Storage emulator, from npm) for the Azure Blob Storage tests;
# installed here, never globally. Without npm its tests skip and say so.
AZURITE := .tools/azurite/node_modules/.bin/azurite-blob
AZURITE_VERSION := 3.35.0

.PHONY: install test lint format demo docs bench bench-quick clean

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

$(AZURITE):
	@if command -v npm >/dev/null; then \
	  npm install --prefix .tools/azurite azurite@$(AZURITE_VERSION) --no-audit --no-fund \
	    --loglevel=error; \
	else echo "npm not found: Azurite is not installed, the Azure Blob Storage tests will skip" >&2; fi

test: install $(AZURITE)
	$(BIN)/python -m pytest -q

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

demo: install
	$(BIN)/runflow batch sample_manifests/catalog.csv --sandbox --out runflow-output

docs: install
	$(BIN)/cog -r docs/cli.md

bench: install
	$(BIN)/python -m bench

bench-quick: install
	$(BIN)/python -m bench --quick

clean:
	rm -rf $(VENV) .tools runflow-output .pytest_cache .mypy_cache .ruff_cache
