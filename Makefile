# Two commands for a newcomer: `make run` (the whole stack, foreground) and
# `make test` (the whole suite). Both install whatever is missing first.
SHELL := /bin/bash
.DEFAULT_GOAL := help
PY := .venv/bin/python
VENV := .venv/.installed-stamp
NODE_DEPS := frontend/node_modules/.installed-stamp
FRONTEND_BUILD := frontend/dist/manifest.json
FRONTEND_SOURCES := $(shell find frontend/src -type f 2>/dev/null) frontend/vite.config.ts frontend/tsconfig.json

.PHONY: help run test install services database migrate seed frontend lint typecheck test-python test-frontend browser clean

help:
	@echo "make run    install what is missing, migrate, seed, start the stack (Ctrl-C stops it)"
	@echo "make test   the whole test suite: lint, types, frontend, backend, end-to-end"

$(VENV): pyproject.toml
	test -x .venv/bin/python || python3 -m venv .venv
	.venv/bin/pip install --quiet --disable-pip-version-check -e ".[dev]"
	touch $@

.env:
	@printf 'ARBOR_SECRET_KEY=%s\nARBOR_DEBUG=true\nARBOR_DEMO_HINTS=true\n' \
	  "$$(python3 -c 'import secrets; print(secrets.token_urlsafe(48))')" > .env
	@echo "Wrote .env with a fresh secret key."

$(NODE_DEPS): frontend/package.json frontend/package-lock.json
	cd frontend && npm ci --no-audit --no-fund --loglevel=error
	touch $@

$(FRONTEND_BUILD): $(NODE_DEPS) $(FRONTEND_SOURCES)
	cd frontend && npm run build --silent

install: $(VENV) .env frontend
frontend: $(FRONTEND_BUILD)

services:
	@scripts/ensure-services.sh

database: services $(VENV) .env
	@$(PY) scripts/ensure_database.py

migrate: database
	$(PY) manage.py migrate --noinput

seed: migrate
	$(PY) manage.py seed_demo

run: install seed
	@mkdir -p .run
	@echo "Arbor: http://127.0.0.1:8000/  (log in as alice / alice-arbor-demo)"
	.venv/bin/honcho start -c worker=$${ARBOR_WORKER_PROCESSES:-1}

# Debian's Chromium drives the end-to-end tests; no browser download is needed.
browser:
	@test -x /usr/bin/chromium || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }

lint: $(VENV)
	.venv/bin/ruff format --check .
	.venv/bin/ruff check .

typecheck: $(VENV)
	.venv/bin/mypy webapp inference

test-frontend: $(NODE_DEPS)
	cd frontend && npm test --silent

test-python: install services browser
	.venv/bin/pytest -q

test: lint typecheck test-frontend test-python

clean:
	rm -rf .venv frontend/node_modules frontend/dist staticfiles .run
