# Resident register e-application: portal, back office and the bridge between them.
SHELL := /bin/bash
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
FLASK := $(BIN)/flask
STAMP := $(VENV)/.installed

.DEFAULT_GOAL := help

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-14s %s\n", $$1, $$2}'

$(STAMP): requirements.txt
	@command -v $(PY) >/dev/null || { echo "Python 3.11 is needed ($(PY) not found)"; exit 1; }
	test -d $(VENV) || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -r requirements.txt
	touch $(STAMP)

install: $(STAMP) translations ## Create .venv and install the pinned requirements

translations: $(STAMP) ## Compile the message catalogues
	@$(BIN)/pybabel -q compile -d translations -f

translations-update: $(STAMP) ## Extract new messages into the Japanese catalogue (then translate them)
	$(BIN)/pybabel extract -F babel.cfg -k _l -k lazy_gettext --no-location --sort-output -o translations/messages.pot .
	$(BIN)/pybabel update -i translations/messages.pot -d translations --no-fuzzy-matching --ignore-obsolete

migrate: install ## Migrate both databases to the latest revision
	$(FLASK) --app wsgi:portal_app db upgrade
	$(FLASK) --app wsgi:backoffice_app db upgrade

demo: migrate ## Seed demo residents, staff and a terminal code when the database is empty
	$(BIN)/python -m bridge.peers.jlis init
	$(FLASK) --app wsgi:backoffice_app demo

run: demo ## Set everything up; serve the portal at http://127.0.0.1:5000, the back office at http://localhost:5000/backoffice
	$(BIN)/python -m scripts.run

# `make serve`: each app under gunicorn on its own port (deploy/gunicorn.conf.py; docs/operations.md, "Serving").
# The back office's origin (COUNTER_ORIGIN, what a card signs at the counter) differs from the portal's by
# host name and port, so the two apps' cookies stay apart too. Relays and workers: `make relay`, `make worker`.
PORTAL_PORT ?= 8000
BACKOFFICE_PORT ?= 8001

serve: demo ## Serve with gunicorn: the portal at http://127.0.0.1:8000, the back office at http://localhost:8001
	@trap 'kill 0' INT TERM; \
	export SITE_ORIGIN="$${SITE_ORIGIN:-http://127.0.0.1:$(PORTAL_PORT)}" \
		COUNTER_ORIGIN="$${COUNTER_ORIGIN:-http://localhost:$(BACKOFFICE_PORT)}" \
		REDIS_URL="$${REDIS_URL:-redis://127.0.0.1:6379/0}"; \
	GUNICORN_BIND=127.0.0.1:$(PORTAL_PORT) $(BIN)/gunicorn -c deploy/gunicorn.conf.py wsgi:portal_app & \
	GUNICORN_BIND=127.0.0.1:$(BACKOFFICE_PORT) $(BIN)/gunicorn -c deploy/gunicorn.conf.py wsgi:backoffice_app & \
	wait

run-two-cities: demo ## Serve the portal with two back offices (Hanamaki, and Kitakami at http://127.0.0.1:5001)
	MUNICIPALITY_CODE=$${SECOND_MUNICIPALITY_CODE:-032069} BACKOFFICE_DATABASE_URL=$${SECOND_BACKOFFICE_DATABASE_URL:-} \
		$(FLASK) --app wsgi:backoffice_app db upgrade
	MUNICIPALITY_CODE=$${SECOND_MUNICIPALITY_CODE:-032069} BACKOFFICE_DATABASE_URL=$${SECOND_BACKOFFICE_DATABASE_URL:-} \
		$(FLASK) --app wsgi:backoffice_app demo --url http://127.0.0.1:$$(( $${PORT:-5000} + 1 ))
	$(BIN)/python -m scripts.run --two-cities

# The bridge in production-like form: one process per queue (docs/operations.md, "Relays and workers").
CODE ?= $(or $(MUNICIPALITY_CODE),032051)
PORTAL_QUEUES := status ack:portal
BACKOFFICE_QUEUES := intake:$(CODE) muni:$(CODE) ack:muni:$(CODE)

relay: install ## Run the relay of both apps (APP=portal|backoffice for one); Ctrl-C stops them
	@trap 'kill 0' INT TERM; \
	for app in $(or $(APP),portal backoffice); do $(FLASK) --app wsgi:$${app}_app relay & done; wait

worker: install ## One worker process per queue of both apps (APP=… QUEUE=… for one, CODE=032051); Ctrl-C stops them
	@trap 'kill 0' INT TERM; \
	if [ -n "$(QUEUE)" ]; then exec $(FLASK) --app wsgi:$(or $(APP),backoffice)_app worker --queue "$(QUEUE)"; fi; \
	for q in $(PORTAL_QUEUES); do $(FLASK) --app wsgi:portal_app worker --queue $$q & done; \
	for q in $(BACKOFFICE_QUEUES); do $(FLASK) --app wsgi:backoffice_app worker --queue $$q & done; \
	wait

node_modules/.installed: package.json package-lock.json
	@command -v npm >/dev/null || { echo "npm is needed for the accessibility checks (axe-core)"; exit 1; }
	npm ci --no-audit --no-fund --silent
	touch node_modules/.installed

services: ## Start PostgreSQL and Redis if stopped; install the suite's Debian packages as root, or name them
	@bash scripts/services.sh

test: services install node_modules/.installed ## Run the whole suite (sets up PostgreSQL, Redis, Chromium first)
	$(BIN)/pytest

lint: install ## ruff over the project, mypy (strict) over core/ and bridge/
	$(BIN)/ruff check .
	$(BIN)/mypy

check-migrations: install ## Prove models and migrations agree on a scratch SQLite database
	$(BIN)/python -m scripts.check_migrations

bench-seed: install ## Time loading 300,000 residents into PostgreSQL (median of 3)
	bash bench/seed.sh

bench: install ## Measure speed against same-run baselines (see docs/performance.md)
	$(BIN)/python -m bench.run $(BENCH_ARGS)

requirements.txt: requirements.in
	$(BIN)/pip-compile -q --strip-extras --output-file requirements.txt requirements.in

.PHONY: help services install translations translations-update migrate demo run serve run-two-cities test lint check-migrations bench-seed bench relay worker
