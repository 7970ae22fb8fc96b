# Two entry points for a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install run test bench clean

install: $(STAMP)

# (Re)install when pyproject changes; compile bytecode so ccxt imports in ~0.5 s, not ~3 s.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test]'
	$(BIN)/python -m compileall -q -j 0 $(VENV)/lib > /dev/null
	touch $(STAMP)

run: install
	$(BIN)/exgate db upgrade
	$(BIN)/exgate serve --sandbox --host 127.0.0.1 --port 8000

test: install
	$(BIN)/python -m pytest -q

bench: install
	$(BIN)/python bench/hot_path.py
	$(BIN)/python bench/cached_route.py
	$(BIN)/python bench/budget_overload.py
	$(BIN)/python bench/sandbox_throughput.py
	$(BIN)/python bench/accounts_load.py
	$(BIN)/python bench/connector_start.py
	$(BIN)/python bench/streams.py

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info
