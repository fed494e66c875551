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

demo: $(STAMP)
	$(BIN)/outreach init
	$(BIN)/outreach demo-data --count 300
	$(BIN)/outreach templates sync --publish --author demo
	@echo
	@echo "Demo data ready (the database is named above). Look around:"
	@echo "  $(BIN)/outreach accounts show DEMO-00002"
	@echo "  $(BIN)/outreach templates preview overdue --channel sms --tone firm --account DEMO-00002"
	@echo "  $(BIN)/outreach cadences show standard"
	@echo "  $(BIN)/outreach config"

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
