# login-etl: `make run` loads a queue into Postgres locally, `make test` runs every test.
# Both set everything up on a fresh machine that has Python 3.11+ and make.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
# aws-sam-cli pins its own boto3 and friends: it lives in a venv of its own.
SAM_CLI_VERSION := 1.170.0
TOOLS       := .venv-tools
SAM         := $(TOOLS)/bin/sam
TOOLS_STAMP := $(TOOLS)/.installed-stamp
SAM_BUILT   := .aws-sam/build/template.yaml
FUNCTION_SOURCES := $(shell find src/login_etl -name '*.py') requirements.txt template.yaml
EVENT ?= events/sqs-batch.json
# `make invoke` builds and runs the function for this machine's instruction set (no emulation);
# ARCH=arm64 or ARCH=x86_64 names one. Each has its own build folder, so neither overwrites the
# other nor `make build`'s (arm64: what is deployed).
HOST_ARCH := $(if $(filter aarch64 arm64,$(shell uname -m)),arm64,x86_64)
ARCH ?= $(HOST_ARCH)
INVOKE_BUILT = .aws-sam/invoke-$(ARCH)/build/template.yaml
# `make deploy`: the samconfig.toml environment (dev or prod), extra template parameters
# (PARAMS="Name=value ..."), and sam deploy options (ARGS).
ENV ?= dev
# samconfig.toml's parameter_overrides of environment $1 for command $2 (the command's own, else
# the environment's global ones). Given on the command line, --parameter-overrides replaces
# samconfig's whole: what PARAMS or ARCH add is appended to these.
samconfig_overrides = $(shell $(TOOLS)/bin/python -c 'import sys, tomlkit; env = tomlkit.parse(open("samconfig.toml").read())[sys.argv[1]]; section = lambda name: env.get(name, {}).get("parameters", {}); print(section(sys.argv[2]).get("parameter_overrides") or section("global").get("parameter_overrides", ""))' $(1) $(2))
export SAM_CLI_TELEMETRY := 0

.DEFAULT_GOAL := help
.PHONY: help install run test test-unit test-sam-local lint check clean clean-sam-local build invoke bench \
        bench-instructions bench-refusals bench-ledger build-LoginEtlFunction \
        deploy deploy-guided

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-16s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml requirements.txt
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "login-etl needs Python 3.11+ (set PYTHON=python3.x)")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP) $(TOOLS_STAMP)  ## create .venv (function + dev tools) and .venv-tools (SAM CLI)

$(TOOLS_STAMP):
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/python -m pip install --quiet --upgrade pip
	$(TOOLS)/bin/python -m pip install --quiet aws-sam-cli==$(SAM_CLI_VERSION)
	@touch $(TOOLS_STAMP)

$(SAM_BUILT): $(TOOLS_STAMP) $(FUNCTION_SOURCES)
	$(SAM) build

build: $(SAM_BUILT)  ## sam build: the Lambda artifact in .aws-sam/build (manylinux wheels, no Docker)

deploy: $(SAM_BUILT)  ## sam deploy to samconfig's ENV=dev|prod (PARAMS="Name=value ...", ARGS=...)
	$(SAM) deploy --config-env $(ENV) \
	  $(if $(PARAMS),--parameter-overrides "$(call samconfig_overrides,$(ENV),deploy) $(PARAMS)") $(ARGS)

deploy-guided: $(SAM_BUILT)  ## sam deploy --guided: asks for the parameters, saves them in samconfig's ENV
	$(SAM) deploy --guided --config-env $(ENV) $(ARGS)

$(INVOKE_BUILT): $(TOOLS_STAMP) $(FUNCTION_SOURCES)
	$(if $(filter arm64 x86_64,$(ARCH)),,$(error ARCH is arm64 or x86_64, not '$(ARCH)'))
	LAMBDA_ARCH=$(ARCH) $(SAM) build --config-env local --build-dir $(dir $@) \
	  --parameter-overrides Architecture=$(ARCH)

invoke: $(INVOKE_BUILT)  ## sam local invoke for this machine's ARCH, against docker-compose's LocalStack (Docker; EVENT=...)
	AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1 \
	  $(SAM) local invoke --config-env local --template-file $(INVOKE_BUILT) --event $(EVENT) \
	  --parameter-overrides "$(call samconfig_overrides,local,local_invoke) Architecture=$(ARCH)"

run: $(STAMP)  ## start a local stack, send sample messages, load them through the handler (ARGS=...)
	$(BIN)/login-etl run $(ARGS)

test-unit: $(STAMP)  ## the fast lane: pure unit tests, no stack and no build (under a minute)
	$(BIN)/pytest tests/function/unit tests/test_layout.py $(ARGS)

test: $(STAMP) $(SAM_BUILT)  ## unit, integration (real Postgres + moto server), end-to-end, artifact
	$(BIN)/pytest $(ARGS)

test-sam-local: $(STAMP) $(TOOLS_STAMP)  ## sam local invoke of every event in a Lambda container (root: starts Docker)
	$(BIN)/python -m login_etl_local.sam_local --sam $(SAM) --python $(LAMBDA_PYTHON) -- $(ARGS)

bench: $(STAMP) $(SAM_BUILT)  ## cost per message (CPU, GB-s) vs the serial floor and a typical handler, interleaved; cold start, RSS, instructions (.bench/; ARGS=--record: docs/)
	$(BIN)/python -m pip install --quiet -e '.[bench]'
	$(BIN)/python -m benchmarks.benchmark $(ARGS)

bench-instructions: $(STAMP)  ## instructions per message of the handler and the floor's parts (valgrind callgrind)
	$(BIN)/python -m benchmarks.instructions $(ARGS)

bench-ledger: $(STAMP)  ## the prune in a steady state vs the previous design, the writer beside it (ARGS="--sizes 0,10000000,50000000 --cycles 6")
	$(BIN)/python -m benchmarks.ledger $(ARGS)

bench-refusals: $(STAMP)  ## 10,000-record batches with 0 / 1 / 100 / 5,000 rows refused by the table
	$(BIN)/python -m benchmarks.refusals $(ARGS)

lint: $(STAMP) $(TOOLS_STAMP)  ## ruff, ruff format, mypy --strict, cfn-lint, sam validate --lint, actionlint
	$(BIN)/ruff check src benchmarks tests
	$(BIN)/ruff format --check src benchmarks tests
	$(BIN)/mypy
	$(BIN)/cfn-lint template.yaml
	$(SAM) validate --lint --region us-east-1
	$(BIN)/actionlint .github/workflows/*.yml

check: lint test  ## lint + test (CI then runs test-sam-local and run)

clean:  ## remove the virtualenv and caches
	rm -rf $(VENV) $(TOOLS) .pytest_cache .mypy_cache .ruff_cache .hypothesis .aws-sam build dist src/*.egg-info

clean-sam-local:  ## remove test-sam-local's cache (engine data root: the Lambda base image)
	rm -rf "$${XDG_CACHE_HOME:-$$HOME/.cache}/login-etl/sam-local"

# --- Lambda artifact: SAM's `BuildMethod: makefile` calls this with ARTIFACTS_DIR set. -------
# The tests call it too, with the local Python and platform, to import and run the artifact.
LAMBDA_PYTHON   ?= 3.12
# The template's Architecture parameter: arm64 in AWS; `make invoke` and `make test-sam-local`
# set the host's.
LAMBDA_ARCH     ?= arm64
LAMBDA_PLATFORM ?= manylinux2014_$(if $(filter x86_64,$(LAMBDA_ARCH)),x86_64,aarch64)
# The Lambda Python runtime provides boto3; bundling it would add ~25 MB (see docs/deploying.md).
RUNTIME_PROVIDED := boto3 botocore s3transfer urllib3

build-LoginEtlFunction:
	$(PYTHON) -m pip install --quiet --disable-pip-version-check --no-compile --upgrade \
	  --requirement requirements.txt --target "$(ARTIFACTS_DIR)" \
	  --platform $(LAMBDA_PLATFORM) --implementation cp --python-version $(LAMBDA_PYTHON) \
	  --only-binary=:all:
	cd "$(ARTIFACTS_DIR)" && rm -rf bin $(foreach p,$(RUNTIME_PROVIDED),$(p) $(p)-*.dist-info)
	cp -R src/login_etl "$(ARTIFACTS_DIR)/"
	if [ -d certs ]; then cp -R certs "$(ARTIFACTS_DIR)/"; fi  # the RDS CA bundle: docs/deploying.md
	find "$(ARTIFACTS_DIR)" -name __pycache__ -prune -exec rm -rf {} +
