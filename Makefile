# The two commands of the README: `make run` and `make test`.
VENV    := .venv
PY      := $(VENV)/bin/python
PIP     := $(VENV)/bin/pip
HOST    ?= 127.0.0.1
PORT    ?= 8000
# The test suite runs against PostgreSQL; override for another server.
TEST_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/test
TEST_REDIS_URL    ?= redis://127.0.0.1:6379/15

.PHONY: run test test-deps services lint bench clean

$(VENV)/.installed: pyproject.toml
	@test -x $(PY) || python3 -m venv $(VENV)
	@$(PIP) install -q --upgrade pip
	$(PIP) install -q -e '.[test]'
	@touch $@

## make run: install, migrate the embedded SQLite database, bootstrap the demo PKI, serve on :8000
## (nginx in front of gunicorn: scripts/serve.py; the settings of both are in README "Serving")
run: $(VENV)/.installed
	@scripts/install-run-deps.sh
	@mkdir -p var
	$(PY) manage.py migrate --noinput -v0
	$(PY) manage.py collectstatic --noinput -v0
	$(PY) manage.py init
	@echo "Serving on http://$(HOST):$(PORT)/ and https://$(HOST):$$(($(PORT) + 443))/ (client certificate: var/superadmin.p12)  (Ctrl-C to stop)"
	$(PY) scripts/serve.py --host $(HOST) --port $(PORT) --workers 2

## make test: install what the tests need (Debian packages too), start PostgreSQL/Redis if needed, run everything
## (bytecode is written even where PYTHONDONTWRITEBYTECODE is set: each worker and each of the suite's many
## manage.py/gunicorn processes would otherwise compile the project, and pytest re-rewrite every test module)
test: $(VENV)/.installed test-deps services
	DATABASE_URL=$(TEST_DATABASE_URL) PKI_TEST_REDIS_URL=$(TEST_REDIS_URL) PYTHONDONTWRITEBYTECODE= \
		$(PY) -m pytest -n 2 --dist loadgroup -p no:cacheprovider --durations=40 $(PYTEST_ARGS)

test-deps: $(VENV)/.installed
	@scripts/install-test-deps.sh $(PY)

services:
	@scripts/ensure-services.sh

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .

bench: $(VENV)/.installed services
	DATABASE_URL=$(TEST_DATABASE_URL) $(PY) benchmarks/issue_throughput.py
	DATABASE_URL=$(TEST_DATABASE_URL) $(PY) benchmarks/crl_build.py

clean:
	rm -rf $(VENV) staticfiles .pytest_cache
