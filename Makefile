# The two commands a new user needs: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
DEV_ENV := DJANGO_ENV=development

.PHONY: run test test-fast lint format bench soak migrate shell clean test-browser sdk-wheel

$(PY):
	@$(PYTHON) -c 'import sys; sys.exit("Python 3.11+ is required" if sys.version_info < (3, 11) else 0)'
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

$(VENV)/.runtime: requirements.txt | $(PY)
	$(PIP) install --quiet -r requirements.txt
	@touch $@

$(VENV)/.dev: requirements.txt requirements-dev.txt | $(PY)
	$(PIP) install --quiet -r requirements-dev.txt
	@touch $@ $(VENV)/.runtime

run: $(VENV)/.runtime  ## migrate SQLite, seed demo data, serve web + worker + beat on 127.0.0.1:8000
	$(DEV_ENV) $(PY) manage.py migrate --noinput
	$(DEV_ENV) $(PY) manage.py seed_demo
	$(DEV_ENV) $(PY) scripts/run.py

test: $(VENV)/.dev  ## the whole suite (PostgreSQL + Redis when reachable; CI=true requires them)
	$(PY) -m pytest $(PYTEST_ARGS)

test-fast: $(VENV)/.dev  ## the inner loop: all but the tests marked slow (e2e, browser, faults, schemathesis)
	$(PY) -m pytest -m "not slow" $(PYTEST_ARGS)

test-browser: $(VENV)/.dev  ## only the headless-Chromium staff flows (make test runs them too)
	$(PY) -m pytest tests/browser $(PYTEST_ARGS)

sdk-wheel: $(VENV)/.dev  ## build the agent SDK's wheel (sdk/python) and install it in place of the checkout's copy
	rm -rf var/sdk-dist
	$(PY) -m build sdk/python --outdir var/sdk-dist
	$(PIP) install --quiet --force-reinstall --no-deps var/sdk-dist/agentops_client-*.whl

lint: $(VENV)/.dev
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: $(VENV)/.dev
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

bench: $(VENV)/.dev  ## gunicorn + PostgreSQL + Redis under load; writes bench/results.json and bench/README.md
	$(PY) bench/run.py

soak: $(VENV)/.dev  ## 50 agents for 60 s with nothing lost, long schemathesis, fault tests; writes docs/RELIABILITY.md
	$(PY) bench/soak.py

migrate: $(VENV)/.runtime
	$(DEV_ENV) $(PY) manage.py migrate

shell: $(VENV)/.runtime
	$(DEV_ENV) $(PY) manage.py shell

clean:
	rm -rf var staticfiles .pytest_cache .ruff_cache sdk/python/build sdk/python/src/*.egg-info
