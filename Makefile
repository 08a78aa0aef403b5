# `make demo` and `make test` each build .venv from nothing, then run the job.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test bench calibrate clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip
	# torch first and pinned: an unpinned torch pulls a multi-GB CUDA build.
	$(BIN)/python -m pip install torch==2.13.0
	$(BIN)/python -m pip install -e '.[test]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m igym_marl.sim.demo

test: $(STAMP)
	$(BIN)/python -m pytest -q

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_sim.py

calibrate: $(STAMP)
	$(BIN)/python scripts/calibrate_cost_model.py

clean:
	rm -rf $(VENV)
