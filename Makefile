# edgernn: `make demo` and `make test` set everything up themselves on a fresh machine.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# torch first, pinned: these machines hold the CPU build of 2.13.0; an unpinned torch pulls CUDA.
TORCH := torch==2.13.0
# arduino-*, cmake, ninja-build: tests/test_packages.py builds the Arduino and CMake packages' examples.
# qemu-user: tests/test_kernels.py runs the AArch64 NEON kernels under qemu-aarch64.
APT_TEST_PACKAGES := clang valgrind libclang-rt-14-dev arduino-builder arduino-core-avr arduino-ctags \
  cmake ninja-build qemu-user
APT_MCU_PACKAGES := gcc-arm-none-eabi picolibc-arm-none-eabi qemu-system-arm \
  gcc-riscv64-unknown-elf picolibc-riscv64-unknown-elf qemu-system-misc gcc-avr avr-libc simavr
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: demo test lint typecheck bench bench-accuracy mcu mcu-tools fuzz clean system-deps

$(STAMP): pyproject.toml
	@[ -x $(PY) ] || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q $(TORCH)
	$(PY) -m pip install -q -e '.[dev,mcu,plot]'
	@touch $@

# System packages some tests need. Installed only when missing, so an equipped machine pays nothing.
system-deps:
	@missing=""; for p in $(APT_TEST_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  if command -v apt-get >/dev/null; then \
	    echo "installing:$$missing"; \
	    $(SUDO) apt-get update -qq && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	  else echo "warning: cannot install$$missing (no apt-get); tests that need them will skip"; fi; \
	fi

mcu-tools:
	@missing=""; for p in $(APT_MCU_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  if command -v apt-get >/dev/null; then \
	    echo "installing:$$missing"; \
	    $(SUDO) apt-get update -qq && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	  else echo "warning: cannot install$$missing (no apt-get); the gcc/QEMU Cortex-M checks will skip"; fi; \
	fi

demo: $(STAMP)
	$(VENV)/bin/edgernn demo

lint: $(STAMP)
	$(VENV)/bin/ruff check edgernn tests scripts
	$(VENV)/bin/ruff format --check edgernn tests scripts

typecheck: $(STAMP)
	$(VENV)/bin/mypy edgernn

test: $(STAMP) system-deps mcu-tools
	$(VENV)/bin/ruff check edgernn tests scripts
	$(VENV)/bin/mypy edgernn
	$(VENV)/bin/pytest -q -n 2 --durations=15

# Measured speed of every backend (README "Benchmarks"): about a minute on 2 cores. matplotlib only
# (the plot extra) draws the plots. BENCH_DIR=some/export to bench another export directory.
# When the peer libraries' sources are there (PEERS=another/checkout to point elsewhere), model.h is
# also measured beside CMSIS-NN and NNoM on the emulated microcontrollers, at its shape and over the
# shape sweep: about four minutes more.
BENCH_DIR ?= export/japanese_vowels
PEERS ?= ../shared/peers
bench: $(STAMP) system-deps
	@[ -f $(BENCH_DIR)/model.h ] || [ "$(BENCH_DIR)" != export/japanese_vowels ] || { \
	  $(VENV)/bin/edgernn train --dataset japanese_vowels --quiet --out $(BENCH_DIR) && $(VENV)/bin/edgernn export $(BENCH_DIR); }
	$(VENV)/bin/edgernn bench $(BENCH_DIR) $(if $(wildcard $(PEERS)/cmsis-nn $(PEERS)/nnom),--peers $(PEERS) --sweep)

# `edgernn train --auto` on each long bundled set, float and int8 test accuracy beside the UCR 1-NN
# baselines (README "Accuracy on long sequences"). Up to ACCURACY_BUDGET minutes per set (3 sets).
ACCURACY_BUDGET ?= 10
bench-accuracy: $(STAMP)
	$(PY) scripts/bench_accuracy.py --budget $(ACCURACY_BUDGET)

mcu: $(STAMP) mcu-tools
	@[ -f export/japanese_vowels/model.int8.json ] || { $(VENV)/bin/edgernn train --dataset japanese_vowels --quiet && $(VENV)/bin/edgernn export export/japanese_vowels; }
	$(VENV)/bin/edgernn mcu export/japanese_vowels --target cortex-m0plus --target cortex-m4 --target cortex-m33 --target riscv32imc --target avr --compiler zig --compiler gcc --kernel both

fuzz: $(STAMP) system-deps
	$(PY) -m edgernn.backends.c.fuzz --seconds 60

clean:
	rm -rf $(VENV) build dist .pytest_cache .mypy_cache .ruff_cache .hypothesis
	find . -name __pycache__ -prune -exec rm -rf {} +
