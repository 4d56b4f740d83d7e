# Preference Arena: `make run` serves the site with demo models on the embedded default
# (SQLite, in-process workers; no services needed); `make test` runs the test suite.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: run test venv lint format bench worker beat clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -e '.[dev]'
	touch $@

venv: $(VENV)/.installed

run: venv
	DEBUG=$${DEBUG:-1} $(PY) manage.py migrate --noinput
	DEBUG=$${DEBUG:-1} $(PY) manage.py seed_demo --if-empty
	@echo "Preference Arena on http://$(HOST):$(PORT)/  (Ctrl-C stops it)"
	DEBUG=$${DEBUG:-1} $(PY) -m uvicorn config.asgi:application --host $(HOST) --port $(PORT) --ws-ping-interval 20

test: venv
	$(VENV)/bin/pytest $(PYTEST_ARGS)

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: venv
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

# Production-style processes against DATABASE_URL / REDIS_URL (see docker/compose.yml).
worker: venv
	$(VENV)/bin/celery -A config worker -Q default,stream -P threads -c 32 --loglevel INFO

beat: venv
	$(VENV)/bin/celery -A config beat --loglevel INFO -s var/celerybeat-schedule

clean:
	rm -rf var/arena.sqlite3* var/staticfiles var/test-logs var/screenshots
