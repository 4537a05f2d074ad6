# Each target that needs the virtualenv builds it first, so `make run` or `make test`
# alone works on a fresh clone.
# Settings from .env, when there is one (copy .env.example), each only where the
# environment and the command line do not set it already: `PORT=4106 make run` wins.
ifneq (,$(wildcard .env))
-include .env.mk
export
endif

.DEFAULT_GOAL := install
.env.mk: .env
	sed -E 's/^([A-Za-z_][A-Za-z0-9_]*)=/\1 ?= /' .env > $@

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
E2E_STAMP := $(VENV)/.installed-e2e
PG_STAMP := $(VENV)/.installed-postgres
PROD_STAMP := $(VENV)/.installed-prod
BENCH_STAMP := $(VENV)/.installed-bench
PORT ?= 4000
WORKERS ?= 4
THREADS ?= 16
GUNICORN_OPTIONS = --workers $(WORKERS) --worker-class gthread --threads $(THREADS)
# The PostgreSQL driver, only when a PostgreSQL database is named.
POSTGRES = $(if $(findstring postgres,$(DATABASE_URL) $(TEST_DATABASE_URL)),$(PG_STAMP))


.PHONY: install run sandbox serve reencrypt test fuzz bench e2e screenshots lint fmt clean clean-data

install: $(STAMP)

$(STAMP): requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements.txt
	touch $(STAMP)

$(PG_STAMP): $(STAMP) requirements-postgres.txt
	$(BIN)/pip install --quiet -r requirements-postgres.txt
	touch $(PG_STAMP)

$(BENCH_STAMP): $(PROD_STAMP) requirements-bench.txt
	$(BIN)/pip install --quiet -r requirements-bench.txt
	touch $(BENCH_STAMP)

$(PROD_STAMP): $(STAMP) requirements-prod.txt
	$(BIN)/pip install --quiet -r requirements-prod.txt
	touch $(PROD_STAMP)

run: install $(POSTGRES)
	$(BIN)/python fitbit_oauth_app.py

# One stand-in alone, as a server of its own (PROVIDER=google for Google's), on
# SANDBOX_PORT; like `make run`, it takes the app's settings from .env.
SANDBOX_PORT ?= 4001
sandbox: install
	$(BIN)/python -m sandbox --port $(SANDBOX_PORT)

# The same app under gunicorn: $(WORKERS) processes sharing the database, each with
# $(THREADS) threads, since a page waits on Fitbit. In sandbox mode Fitbit is the stand-in
# in this same server, and each page view holds one thread while its calls need another.
serve: install $(PROD_STAMP) $(POSTGRES)
	PORT=$(PORT) $(BIN)/gunicorn $(GUNICORN_OPTIONS) --bind localhost:$(PORT) \
		'fitbit_oauth_app:app_from_env()'

# Every token and cached answer sealed again with the newest key of TOKEN_ENCRYPTION_KEYS
# (put a new key first, keep the old ones after it, run this, then drop them): says how many
# rows changed. Safe while the app serves, and a second run changes nothing.
reencrypt: install $(POSTGRES)
	$(BIN)/python -m tools.reencrypt

# With TEST_DATABASE_URL (a PostgreSQL database that may be wiped), the database tests run on
# PostgreSQL too; `.ci/with-postgres make test` makes a throwaway one.
test: install $(PROD_STAMP) $(POSTGRES)
	$(BIN)/pytest

# The storm of tests/test_storm.py at full size: hostile requests at every route, real
# sign-ins among them, two browsers kept signed in. `make test` sends 800 per dialect; this
# sends FUZZ_REQUESTS (12,000) per dialect. And tests/test_lifecycle.py's lives of users:
# `make test` runs 8 of 30 steps per dialect, the same each time; this runs LIFE_EXAMPLES
# (100) of LIFE_STEPS (40). Both are picked by FUZZ_SEED, a new one each run unless given:
# `make fuzz FUZZ_SEED=7` sends the same storm and lives again.
FUZZ_REQUESTS ?= 12000
LIFE_EXAMPLES ?= 100
LIFE_STEPS ?= 40
FUZZ_SEED ?= $(shell date +%s)
fuzz: install $(PROD_STAMP)
	FUZZ_REQUESTS=$(FUZZ_REQUESTS) FUZZ_SEED=$(FUZZ_SEED) LIFE_EXAMPLES=$(LIFE_EXAMPLES) \
		LIFE_STEPS=$(LIFE_STEPS) $(BIN)/pytest tests/test_storm.py tests/test_lifecycle.py \
		--hypothesis-seed=$(FUZZ_SEED)

# What a page costs against a bare Werkzeug app under the same gunicorn. wrk comes from
# Debian's package where it can be installed; without it, tools/bench.py uses its own client.
bench: install $(BENCH_STAMP)
	@command -v wrk >/dev/null || [ "$$(id -u)" != 0 ] || \
		{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk; } \
		>/dev/null 2>&1 || true
	$(BIN)/python -m tools.bench

# Headless Chromium from Debian (apt-get install chromium); nothing downloads a browser.
$(E2E_STAMP): $(STAMP) requirements-e2e.txt
	$(BIN)/pip install --quiet -r requirements-e2e.txt
	touch $(E2E_STAMP)

e2e: $(E2E_STAMP)
	$(BIN)/pytest -m browser

# The same, writing the README's screenshots in docs/screenshots.
screenshots: $(E2E_STAMP)
	WRITE_SCREENSHOTS=1 $(BIN)/pytest -m browser

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

fmt: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

# The virtualenv and the tools' caches; nothing of anyone's.
clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis .env.mk
	find . -name __pycache__ -type d -prune -exec rm -rf {} +

# Start over: the app's and the stand-ins' SQLite files, and the key kept beside them.
DATA_FILES = $(wildcard fitbit_app.db* fitbit_sandbox*.db* token_encryption.key)
clean-data:
	@if [ -n "$(DATA_FILES)" ]; then echo "Deleting $(DATA_FILES): everyone signed in here is forgotten."; rm -f $(DATA_FILES); else echo "No data to delete."; fi
