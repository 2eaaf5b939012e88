# The README's commands. Each target bootstraps .venv itself, so a fresh machine with Python 3.11+
# and a Rust toolchain needs nothing else.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
CARGO ?= cargo
export CARGO_TERM_COLOR ?= never
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: test demo bench build lint rust-test py-test bench-quick faults clean system-deps

$(BIN)/python:
	@echo "creating $(VENV)"
	@$(PYTHON) -m venv $(VENV)
	@$(BIN)/python -m pip install --quiet --upgrade pip

# Dev dependencies are reinstalled only when pyproject.toml changes.
$(VENV)/.deps: pyproject.toml | $(BIN)/python
	@echo "installing the development dependencies into $(VENV)"
	@$(BIN)/python -m pip install --quiet "maturin>=1.7,<2" \
	  $$($(BIN)/python scripts/dev_requirements.py)
	@touch $@

# maturin's own output (and pip's "Requirement already satisfied") goes to a log, shown only
# when the build fails.
build: $(VENV)/.deps
	@echo "building the Rust extension (log: $(VENV)/build.log)"
	@VIRTUAL_ENV=$(abspath $(VENV)) PATH=$(abspath $(BIN)):$$PATH \
	  $(BIN)/maturin develop --release --quiet > $(VENV)/build.log 2>&1 \
	  || { cat $(VENV)/build.log; exit 1; }

lint: $(VENV)/.deps
	$(CARGO) fmt --check
	$(CARGO) clippy --all-targets --quiet -- -D warnings
	$(BIN)/ruff check python tests benches scripts conftest.py
	$(BIN)/ruff format --check python tests benches scripts conftest.py

rust-test:
	$(CARGO) test --no-default-features --quiet

# pgBackRest drives physical backups and point-in-time drills (tests/protection); it is a
# system package: installed with apt-get when missing (other systems: see the README).
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
system-deps:
	@command -v pgbackrest >/dev/null 2>&1 || { \
	  echo "installing pgbackrest (apt-get)"; \
	  { $(SUDO) apt-get install -y -qq pgbackrest >/dev/null 2>&1 \
	    || { $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq pgbackrest >/dev/null; }; } \
	  || { echo "cannot install pgbackrest: install it yourself (README, Backups)"; exit 1; }; }

py-test: build system-deps
	$(BIN)/python -m mypy.stubtest tgingest._core
	$(BIN)/python -m pytest -q tests benches

test: lint rust-test py-test

demo: build
	@$(BIN)/python scripts/demo.py

# The fault harness at full length (tests/faults/README.md): 50 seeded kills of imports, the
# longer state machine, more concurrent and terminated-backend runs, and 50 kills per mode of
# the daemon (tests/test_daemon_kill.py). `make test` runs the short counts.
faults: build
	TGINGEST_FAULTS=long TGINGEST_FAULT_KILLS=50 $(BIN)/python -m pytest -q tests/faults \
	  tests/test_daemon_kill.py

bench: build
	$(BIN)/python -m pytest -q benches --benchmark-enable --benchmark-columns=median,ops \
	  -o addopts="-p no:cacheprovider" --bench-write-table

# The read path at 10M messages (benches/scale_10m.py, named here: `make test` never collects
# it): about an hour and ~15 GB of disk; its rows go to their own section of benches/README.md.
# BENCH_10M_DSN=postgresql://.../name keeps the database: a second run only measures.
.PHONY: bench-10m
bench-10m: build
	$(BIN)/python -m pytest -q -s benches/scale_10m.py -o addopts="-p no:cacheprovider"

clean:
	rm -rf $(VENV) target
