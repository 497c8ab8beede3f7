# `make demo` runs the main job, `make test` the tests; both build .venv on first use.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
TORCH ?= torch==2.13.0

.PHONY: install demo test figures clean slurm-up slurm-down

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet "$(TORCH)"
	$(BIN)/python -m pip install --quiet -e ".[test,notebooks,trackers]"
	touch $@

demo: install
	$(BIN)/movelab flops --ladder cpu
	$(BIN)/movelab demo --out scratch

test: install
	$(BIN)/python -m pytest -q --nbmake tests notebooks

figures: install
	$(BIN)/movelab figures --out results/figures

clean:
	rm -rf $(VENV)

# a one-node SLURM cluster on this machine (as root), for --executor slurm and its tests
slurm-up:
	scripts/slurm-up.sh

slurm-down:
	scripts/slurm-down.sh
