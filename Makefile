# Quick start: `make demo` (serve the demo on SQLite) and `make test` (the whole suite).
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
HOST   ?= 127.0.0.1
PORT   ?= 5000

.PHONY: demo test install lint check-migrations bench clean

$(BIN)/flask: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $(BIN)/flask

install: $(BIN)/flask

demo: install
	AR_ENV=demo $(BIN)/flask --app wsgi db upgrade
	AR_ENV=demo $(BIN)/flask --app wsgi demo
	@echo ""
	@echo "  AR Ops demo: http://$(HOST):$(PORT)/   (Ctrl+C stops it)"
	@echo ""
	AR_ENV=demo $(BIN)/flask --app wsgi run --host $(HOST) --port $(PORT)

test: install
	$(BIN)/python -m pytest -n 2 $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check provider clients worklists sla portal tests bench wsgi.py
	$(BIN)/mypy

check-migrations: install
	$(BIN)/python -m tests.migration_check

clean:
	rm -rf $(VENV) instance/*.db instance/*.db-*
