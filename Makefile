# login-etl: `make run` loads a queue into Postgres locally, `make test` runs every test.
# Both set everything up on a fresh machine that has Python 3.11+ and make.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.DEFAULT_GOAL := help
.PHONY: help install run test lint check clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml requirements.txt
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "login-etl needs Python 3.11+ (set PYTHON=python3.x)")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP)  ## create .venv with the function and the dev tools

run: $(STAMP)  ## start a local stack, send sample messages, load them through the handler (ARGS=...)
	$(BIN)/login-etl run $(ARGS)

test: $(STAMP)  ## unit, integration (real Postgres + moto server) and end-to-end tests
	$(BIN)/pytest $(ARGS)

lint: $(STAMP)  ## ruff, ruff format, mypy --strict, cfn-lint
	$(BIN)/ruff check src tests
	$(BIN)/ruff format --check src tests
	$(BIN)/mypy
	$(BIN)/cfn-lint template.yaml

check: lint test  ## everything CI runs

clean:  ## remove the virtualenv and caches
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis .aws-sam build dist src/*.egg-info
