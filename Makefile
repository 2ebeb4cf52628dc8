# Quick start: `make demo` (serve the demo on SQLite) and `make test` (the whole suite).
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
HOST   ?= 127.0.0.1
PORT   ?= 5000

.PHONY: demo test install a11y-deps lint check-migrations bench clean

$(BIN)/flask: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $(BIN)/flask

install: $(BIN)/flask

# axe-core for the accessibility tests, from the npm registry into tests/a11y/node_modules (pinned by its
# package-lock.json; npm's cache kept beside it, so nothing global is needed or touched).
A11Y := tests/a11y
$(A11Y)/node_modules/axe-core/axe.min.js: $(A11Y)/package.json $(A11Y)/package-lock.json
	npm ci --prefix $(A11Y) --no-audit --no-fund --update-notifier=false --cache $(CURDIR)/$(A11Y)/.npm-cache
	touch $@

a11y-deps:
	@if command -v npm >/dev/null; then $(MAKE) --no-print-directory $(A11Y)/node_modules/axe-core/axe.min.js; \
	else echo "npm is not installed: the accessibility tests (tests/a11y) will be skipped"; fi

demo: install
	AR_ENV=demo $(BIN)/flask --app wsgi db upgrade
	AR_ENV=demo $(BIN)/flask --app wsgi demo
	@echo ""
	@echo "  AR Ops demo: http://$(HOST):$(PORT)/   (Ctrl+C stops it)"
	@echo ""
	AR_ENV=demo $(BIN)/flask --app wsgi run --host $(HOST) --port $(PORT)

test: install a11y-deps
	$(BIN)/python -m pytest -n 2 $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check provider clients worklists sla portal tests bench wsgi.py
	$(BIN)/mypy

check-migrations: install
	$(BIN)/python -m tests.migration_check

clean:
	rm -rf $(VENV) instance/*.db instance/*.db-* $(A11Y)/node_modules $(A11Y)/.npm-cache
