# The two commands a new user needs: `make run` and `make test`. Both set up what they need.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
PORT ?= 8501

OIDC := tests/oidc
OIDC_STAMP := $(OIDC)/node_modules/.installed-stamp

.PHONY: run test lint format system-deps bench clean

$(STAMP): requirements.txt requirements-dev.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $(STAMP)

# Debian packages the tests use: Chromium (browser tests), PostgreSQL (store tests) and Node.js
# (the OIDC provider of the sign-in tests).
system-deps:
	@if ! command -v chromium >/dev/null || ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 \
		|| ! command -v npm >/dev/null; then \
		if [ "$$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi; \
		$$SUDO apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium postgresql nodejs npm >/dev/null; \
	fi

# The sign-in tests' OpenID Connect provider (node's oidc-provider), pinned by package-lock.json.
$(OIDC_STAMP): $(OIDC)/package.json $(OIDC)/package-lock.json
	cd $(OIDC) && npm ci --no-audit --no-fund --loglevel=error
	touch $(OIDC_STAMP)

run: $(STAMP)
	$(VENV)/bin/streamlit run app.py --server.port $(PORT) --server.address localhost \
		--server.headless true --browser.gatherUsageStats false

test: $(STAMP) system-deps
	$(MAKE) $(OIDC_STAMP)
	$(PY) -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

format: $(STAMP)
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache artifacts $(OIDC)/node_modules
