# The project's commands. `make up` brings the service up on this machine; `make test` runs every
# test (and is exactly what CI runs). See README.md.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3.11
VENV := $(CURDIR)/.venv
export PATH := $(VENV)/bin:$(PATH)
export ANSIBLE_CONFIG := $(CURDIR)/ansible.cfg
# Debian's configurable-http-proxy finds its modules there when `node` is not Debian's own.
export NODE_PATH := /usr/share/nodejs

.PHONY: help
help: ## List the commands.
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-14s %s\n", $$1, $$2}'

.PHONY: host-deps
host-deps: ## Install the Debian packages that building and testing need (idempotent).
	scripts/install-host-deps

.PHONY: venv
venv: $(VENV)/.installed ## Create .venv with the pinned toolchain, the orchestrator and the front door.
$(VENV)/.installed: requirements-dev.txt orchestrator/pyproject.toml frontdoor/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -r requirements-dev.txt
	touch $@

.PHONY: images
images: host-deps venv ## Build the Debian base and the slim workshop image (reuses fresh ones).
	ansible-playbook playbooks/images.yml

.PHONY: images-full
images-full: host-deps venv ## Build the full workshop image: Python, R and Octave kernels.
	ansible-playbook playbooks/images.yml -e workshop_image_flavor=full

.PHONY: lint
lint: venv ## ruff, mypy (strict: both packages, tests/support), yamllint and ansible-lint (production profile).
	ruff check .
	ruff format --check .
	cd orchestrator && mypy
	mypy --strict tests/support
	cd frontdoor && mypy
	yamllint --strict .
	ansible-lint

.PHONY: test
test: host-deps venv images lint ## Run every test: unit, integration, Molecule scenarios.
	scripts/run-tests

.PHONY: test-browser
test-browser: host-deps venv images ## Browser tests of the visitor's pages (headless Chromium).
	pytest tests/e2e

.PHONY: test-reliability
test-reliability: host-deps venv images ## Faults repeated, load (200 visitors, 500 spawns): 20-30 min.
	pytest tests/reliability -m slow

.PHONY: up
up: host-deps venv ## Build the images, provision a local node with site.yml, print its URL.
	scripts/dev-up

.PHONY: down
down: venv ## Remove the local node of `make up` and everything it holds.
	ansible-playbook playbooks/local-node.yml -e local_node_state=absent

.PHONY: check-up
check-up: host-deps venv ## Prove `make up`: a notebook runs code, a second run changes nothing, `make down`.
	scripts/check-up

.PHONY: bench
bench: host-deps venv images ## Run the benchmarks and print their tables.
	python bench/run.py

.PHONY: bench-room
bench-room: host-deps venv images ## A room of 1, 10, 50 (and 1, 10 in headless Chromium) clicks one link: click -> `5*4`, warm kernels on/off (~15 min).
	python bench/room.py

.PHONY: bench-page
bench-page: host-deps venv images ## What a browser's first page load costs its notebook server, by request (~3 min).
	python bench/page_load.py

.PHONY: bench-peer
bench-peer: host-deps venv images ## Side by side with JupyterHub + DockerSpawner (its own venv; ~30 min).
	python bench/peer/run.py

.PHONY: clean
clean: ## Remove every container, network and image that tests and `make up` left behind.
	scripts/clean-test-leftovers
