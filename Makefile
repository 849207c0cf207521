# The front door: `make run` starts the whole system on SQLite, `make test` runs every test.
# Each target first makes sure the venv matches the requirement files (a no-op when unchanged).

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PACKAGES := libs/servicekit libs/auth services/users services/thoughts services/frontend services/tasks devtools
PACKAGE_FILES := $(foreach p,$(PACKAGES),$(p)/pyproject.toml)

.PHONY: run test lint typecheck pytest venv migrate clean bench

venv: $(STAMP)

$(STAMP): requirements/runtime.txt requirements/dev.txt requirements/constraints.txt $(PACKAGE_FILES)
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check \
		-c requirements/constraints.txt -r requirements/dev.txt \
		--config-settings editable_mode=compat $(foreach p,$(PACKAGES),-e $(p))
	@touch $(STAMP)

run: $(STAMP)
	$(BIN)/python -m devtools run

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy libs/servicekit/servicekit libs/auth/mythoughts_auth services/users/users_service \
		services/thoughts/thoughts_service services/frontend/frontend_service services/tasks/tasks_service devtools/devtools \
		bench/run.py

pytest: $(STAMP)
	$(BIN)/pytest -n 2 --dist loadfile

test: lint typecheck pytest

# The benchmark of bench/README.md: `make bench DB=postgresql` or `make bench DB=sqlite`
# (a million thoughts, loaded on first use); BENCH_ARGS passes more options, e.g. --quick.
DB ?= sqlite
bench: $(STAMP)
	$(BIN)/python bench/run.py --db $(DB) $(BENCH_ARGS)

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
