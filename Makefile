# Two commands do all set-up on a fresh Debian/Ubuntu machine with Python 3.11:
#   make demo   bootstraps .venv and runs `fieldgw demo`
#   make test   bootstraps .venv and runs the whole suite
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.fieldgw-installed
ARGS   ?=

.PHONY: demo test bench venv clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[test]'
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(BIN)/fieldgw demo $(ARGS)

# Four workers (most tests wait on sockets and timers, not the CPU) for everything but the demo tests,
# then those alone: a demo starts two dozen simulator
# processes on fixed ports, and beside the other worker on two cores its devices come up too slowly.
# (pytest exits 5 when a selection has no tests, e.g. `make test ARGS=tests/test_api.py`.)
test: $(STAMP)
	$(BIN)/python -m pytest -q -n 4 --dist worksteal -m "not demo" $(ARGS); rc=$$?; [ $$rc -eq 0 ] || [ $$rc -eq 5 ]
	$(BIN)/python -m pytest -q -m demo $(ARGS); rc=$$?; [ $$rc -eq 0 ] || [ $$rc -eq 5 ]

bench: $(STAMP)
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[test,bench]'
	$(BIN)/python -m bench.run_all

clean:
	rm -rf $(VENV) var .pytest_cache
