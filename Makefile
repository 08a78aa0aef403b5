# `make demo` and `make test` each build .venv from nothing, then run the job.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# torch is installed first, pinned, from TORCH_INDEX if given (e.g. the CPU-only build:
# make test TORCH_INDEX=https://download.pytorch.org/whl/cpu); the default index serves the CUDA
# build on Linux, several GB.
TORCH_PIN ?= torch==2.13.0
TORCH_INDEX ?=
comma := ,

# One environment: $(call venv,DIR,PACKAGES): a venv at DIR, torch on its pin first, then PACKAGES
# (this package with its extras, editable), and the stamp that says it is built.
define venv
	test -x $(1)/bin/python || $(PYTHON) -m venv $(1)
	$(1)/bin/python -m pip install --upgrade pip
	$(1)/bin/python -m pip install $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX)) '$(TORCH_PIN)'
	$(1)/bin/python -m pip install $(2)
	touch $(1)/.installed
endef

.PHONY: demo test test-ray ray-env test-benchmarl benchmarl-env test-rliable rliable-env leaderboard-rliable test-wheel docs serve bench calibrate leaderboard adaptivity clean

$(STAMP): pyproject.toml setup.py
	$(call venv,$(VENV),-e '.[test$(comma)server$(comma)torchrl]')

# The ray extra in its own environment: Ray pins its own gymnasium (1.2.2 for ray 2.60), and the
# package is tested on it there; the main environment never pulls Ray.
RAY_VENV := .venv-ray
RAY_STAMP := $(RAY_VENV)/.installed

$(RAY_STAMP): pyproject.toml setup.py
	$(call venv,$(RAY_VENV),-e '.[test$(comma)ray]')

# BenchMARL in its own environment: benchmarl 1.5.2 pins torchrl < 0.12 (the main one has 0.14.1);
# torch stays on the same pin.
BM_VENV := .venv-benchmarl
BM_STAMP := $(BM_VENV)/.installed

$(BM_STAMP): pyproject.toml setup.py
	$(call venv,$(BM_VENV),-e '.[benchmarl]' 'pytest>=8' '$(TORCH_PIN)')

benchmarl-env: $(BM_STAMP)

# rliable in its own environment: rliable 1.2.0 requires arch < 8, and arch 7 does not import under
# pandas 3 (the main environment's); this one runs pandas 2.
RL_VENV := .venv-rliable
RL_STAMP := $(RL_VENV)/.installed

$(RL_STAMP): pyproject.toml setup.py
	$(call venv,$(RL_VENV),-e '.[rliable]' 'pytest>=8' '$(TORCH_PIN)')

rliable-env: $(RL_STAMP)

test-rliable: $(RL_STAMP)
	$(RL_VENV)/bin/python -m pytest -q tests/rliable

# rliable's report of the shipped leaderboard (docs/leaderboard_episodes.json, from make leaderboard)
leaderboard-rliable: $(RL_STAMP)
	$(RL_VENV)/bin/python -m igym_marl.agents.analysis.rliable_report docs/leaderboard_episodes.json \
		--markdown docs/leaderboard_rliable.md --plot docs/img/performance_profiles.png

test-benchmarl: $(BM_STAMP)
	$(BM_VENV)/bin/python -m pytest -q tests/benchmarl

demo: $(STAMP)
	$(BIN)/python -m igym_marl.demo
	$(BIN)/python train_marl.py --quick

# Two workers for everything but the server, whose load and latency checks then run alone on the
# machine (tests/server), so the one number is what CI and users see: `make test`.
test: $(STAMP)
	$(BIN)/python -m pytest -q -n 2 --dist loadfile --ignore=tests/server
	$(BIN)/python -m pytest -q tests/server

ray-env: $(RAY_STAMP)

# RLlib and Ray, and the envs under Ray's gymnasium (the policies do not touch gymnasium: make test has them)
test-ray: $(RAY_STAMP)
	$(RAY_VENV)/bin/python -m pytest -q tests/ray tests/envs

# The sdist and the wheel built from it, installed in a clean venv far from the checkout: scores
# there must equal the checkout's to the last digit (scripts/check_wheel.py).
test-wheel: $(STAMP)
	TORCH_PIN='$(TORCH_PIN)' $(BIN)/python scripts/check_wheel.py $(if $(TORCH_INDEX),--torch-index $(TORCH_INDEX))

# The documentation site in site/: the README, docs/ and an API reference from the docstrings.
# --strict: a broken link or anchor, or any other warning, fails the build.
docs: $(STAMP)
	$(BIN)/python -m pip install -q -e '.[docs]'
	NO_MKDOCS_2_WARNING=1 $(BIN)/python -m mkdocs build --strict

serve: $(STAMP)
	$(BIN)/igym-marl serve

bench: $(STAMP)
	$(BIN)/igym-marl bench

leaderboard: $(STAMP)
	$(BIN)/igym-marl leaderboard --markdown docs/leaderboard.md --plot docs/img/leaderboard.png --out docs/leaderboard_episodes.json

adaptivity: $(STAMP)
	$(BIN)/python scripts/analysis/measure_adaptivity.py --tasks all --episodes 10 --workers 2

calibrate: $(STAMP)
	$(BIN)/python scripts/calibrate_cost_model.py

clean:
	rm -rf $(VENV) $(RAY_VENV)
