# meterpay — the two commands a new user needs are `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# Front-end libraries from the npm registry (package-lock.json), served by meterpay itself.
VENDOR := src/meterpay/web/console/static/vendor
ASSETS := $(VENDOR)/htmx.min.js $(VENDOR)/echarts.min.js

.PHONY: demo test lint bench setup assets migrate serve clean

setup: $(STAMP)

# Order-only: new assets are copied when the npm lock changes, without reinstalling Python.
$(STAMP): requirements.lock pyproject.toml | $(ASSETS)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements.lock
	$(BIN)/pip install --quiet --disable-pip-version-check --no-deps -e .
	touch $(STAMP)

assets: $(ASSETS)

# One npm install yields both files (a grouped target, GNU make 4.3+). No package has
# install scripts we need, so none is run.
$(ASSETS) &: package.json package-lock.json
	npm ci --ignore-scripts --no-audit --no-fund
	mkdir -p $(VENDOR)
	cp node_modules/htmx.org/dist/htmx.min.js node_modules/echarts/dist/echarts.min.js $(VENDOR)/

demo: $(STAMP)
	$(BIN)/meterpay demo

serve: $(STAMP)
	$(BIN)/meterpay serve

migrate: $(STAMP)
	$(BIN)/meterpay migrate

test: $(STAMP)
	$(BIN)/pytest

lint: $(STAMP)
	$(BIN)/ruff check src tests bench migrations
	$(BIN)/ruff format --check src tests bench migrations
	$(BIN)/mypy

bench: $(STAMP)
	$(BIN)/python -m bench.ingest
	$(BIN)/python -m bench.dtu
	$(BIN)/python -m bench.mqtt_ingest
	$(BIN)/python -m bench.control_latency
	$(BIN)/python -m bench.payment_notify
	$(BIN)/python -m bench.owner_balance

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis
	rm -rf node_modules $(VENDOR) test-artifacts
