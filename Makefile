# The exchange's entry points. `make run` and `make test` set everything up themselves.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cat requirements.txt | cksum | cut -d' ' -f1)
export NUMBA_CACHE_DIR ?= $(CURDIR)/.numba_cache
# Test processes (pytest-xdist; each test file runs whole in one of them, on a test database of
# its own); 0 runs the suite in this process.
TEST_WORKERS ?= 2

.PHONY: setup run test fuzz stop bench clean

$(STAMP): requirements.txt
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11 or newer is needed (found %s); set PYTHON=python3.12 or similar." % sys.version.split()[0])'
	@echo "==> creating $(VENV) and installing requirements (about 20 s the first time)"
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV) || { echo "Could not create a virtualenv: install your distribution's python3-venv package."; exit 1; }
	@$(BIN)/python -m pip install -q --disable-pip-version-check --upgrade pip
	@$(BIN)/python -m pip install -q --disable-pip-version-check -r requirements.txt
	@rm -f $(VENV)/.installed-*
	@touch $(STAMP)

setup: $(STAMP)

run: setup
	@if [ -z "$$DATABASE_URL$$REDIS_URL" ] && [ "$$($(BIN)/python -m exchange.embedded running)" = no ]; then touch .venv/.stop-embedded; else rm -f .venv/.stop-embedded; fi
	@echo "==> migrating the database"
	@$(BIN)/python manage.py migrate --noinput -v0
	@echo "==> loading demo data"
	@DEMO_MODE=1 OPENING_AUCTION_SECONDS=$${OPENING_AUCTION_SECONDS:-20} $(BIN)/python manage.py seed_demo
	@$(BIN)/python manage.py collectstatic --noinput -v0
	@DEMO_MODE=1 SECURE_COOKIES=0 OPENING_AUCTION_SECONDS=$${OPENING_AUCTION_SECONDS:-20} $(BIN)/python manage.py run_exchange $$([ -f .venv/.stop-embedded ] && echo --stop-embedded)

stop:
	@if [ -f .data/run.pid ]; then kill -TERM $$(cat .data/run.pid) 2>/dev/null || true; sleep 2; fi
	@if [ -x $(BIN)/python ]; then $(BIN)/python -m exchange.embedded stop; fi

test: setup
	@$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

# The long schemathesis run (tests/test_api_fuzz.py): every operation, three callers, at least 10,000 requests.
fuzz: setup
	@FUZZ_EXAMPLES=$${FUZZ_EXAMPLES:-40} FUZZ_MIN_REQUESTS=$${FUZZ_MIN_REQUESTS:-10000} FUZZ_LOG=$${FUZZ_LOG:-.data/fuzz-server.log} $(BIN)/python -m pytest -q -s -p no:logging tests/test_api_fuzz.py $(PYTEST_ARGS)

bench: setup
	@for f in bench/*.py; do $(BIN)/python $$f || exit 1; done

clean: stop
	rm -rf $(VENV) .data .numba_cache
