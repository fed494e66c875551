# Two commands do all the set-up on a fresh machine:
#   make demo   the product on 127.0.0.1 with demo data and the local outbox
#   make test   lint, type checks and the whole test suite
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo test lint typecheck pytest bench clean

# Reinstall only when the package's dependencies change.
$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP)

# The demo runs on its own SQLite database with the outbox as provider, on a clock that
# starts at the next weekday's working morning (US Eastern) and runs 60 times faster, so
# that a day of outreach plays out in minutes. Ctrl-C stops it.
# Another port: make demo DEMO_PORT=8100 (or WEB_PORT=8100 make demo); the messages'
# unsubscribe links and webhook addresses name it too.
DEMO_PORT ?= $(if $(WEB_PORT),$(WEB_PORT),8000)
DEMO_ENV := DATABASE_URL=sqlite:///./var/demo.db OUTBOX_PATH=var/outbox.jsonl \
	SMS_PROVIDER=outbox VOICE_PROVIDER=outbox EMAIL_PROVIDER=outbox ENVIRONMENT=development \
	PUBLIC_BASE_URL=http://127.0.0.1:$(DEMO_PORT)
DEMO_SPEED ?= 60

demo: $(STAMP)
	@mkdir -p var
	$(DEMO_ENV) $(BIN)/outreach init --demo
	@echo
	@echo "outreach is starting with 300 demo accounts. Look here:"
	@echo "  the outbox (every message):  tail -f var/outbox.jsonl"
	@echo "  the web UI:                  http://127.0.0.1:$(DEMO_PORT)/ (the users and password above)"
	@echo "  the web app's health:        http://127.0.0.1:$(DEMO_PORT)/healthz"
	@echo "  an account's decisions:      $(DEMO_ENV) $(BIN)/outreach compliance decisions --account DEMO-00002"
	@echo "  why, in plain words:         $(DEMO_ENV) $(BIN)/outreach compliance explain --account DEMO-00002"
	@echo
	$(DEMO_ENV) $(BIN)/outreach run --speed $(DEMO_SPEED) --port $(DEMO_PORT) \
		--start "$$($(BIN)/python -m outreach.demo_clock)" --plan-every 10 --dispatch-every 2

lint: $(STAMP)
	$(BIN)/ruff check outreach tests bench
	$(BIN)/ruff format --check outreach tests bench

typecheck: $(STAMP)
	$(BIN)/mypy

pytest: $(STAMP)
	$(BIN)/pytest

test: lint typecheck pytest

bench: $(STAMP)
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
