# The two commands a newcomer needs: `make demo` and `make test`.
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo demo-tools test test-fast lint typecheck pytest install tools clean native

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[dev]'
	touch $(STAMP)

# The hot modules compiled (gossip/_native.py); rebuilt when a source changes, used
# only while they match the sources.
NATIVE := build/native/manifest.json
$(NATIVE): $(STAMP) $(wildcard gossip/*.py simulations/*.py) scripts/build_native.py
	$(BIN)/python scripts/build_native.py
	touch -c $(NATIVE)

native: $(NATIVE)

install: $(STAMP) $(NATIVE)

tools: install
	bash scripts/setup-tools

# The demo needs the local chain (anvil) and, for its task, a container engine; not
# the test suite's other tools.
demo-tools: install
	bash scripts/setup-tools demo

demo: demo-tools
	$(BIN)/sonm-p2p demo $(DEMO_ARGS)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: install
	$(BIN)/mypy

# two processes: tests/conftest.py says which files share one
PYTEST_WORKERS ?= 2

pytest: tools
	PATH="$(CURDIR)/.tools/bin:$$PATH" $(BIN)/python -m pytest -n $(PYTEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

test: lint typecheck pytest

# For local runs only: the same checks, minus the tests marked slow (multi-process
# networks, the attack simulation). CI runs `make test`, slow tests included.
test-fast:
	$(MAKE) test PYTEST_ARGS='-m "not slow" $(PYTEST_ARGS)'

clean:
	rm -rf $(VENV) .tools build .pytest_cache .mypy_cache .ruff_cache
