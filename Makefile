# Two commands on a fresh machine: `make all_figures` and `make test`. Each first sets up what is
# missing (idempotent, a few seconds when all is there): .venv with the locked packages and the
# package itself, the Fashion-MNIST files (Debian package where apt is usable), DVC's settings.
PYTHON ?= python3
VENV ?= .venv
CORES ?= 8
BIN := $(VENV)/bin
STAMP := $(VENV)/.mhd-setup
FMNIST := /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz

.PHONY: setup dataset all_figures test config-docs bench bench-scale bench-workflow bench-gpu push pull lock clean-venv

setup: $(STAMP) dataset .dvc/config

$(STAMP): pyproject.toml requirements/lock.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements/lock.txt
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	touch $@

# Fashion-MNIST from Debian's dataset-fashion-mnist when we are root with apt; otherwise the
# workflow looks in data/raw/ and downloads there where the network allows.
dataset:
	@if [ ! -f $(FMNIST) ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    (apt-get update -qq && apt-get install -y -qq dataset-fashion-mnist >/dev/null) \
	      || echo "make: apt could not install dataset-fashion-mnist; the workflow will try to download it"; \
	  else echo "make: not root or no apt: Fashion-MNIST will be downloaded into data/raw/ when needed"; fi; \
	fi

# DVC's repo config is committed (analytics and update checks off); this only repairs a missing one.
.dvc/config:
	$(BIN)/dvc init -q || $(BIN)/dvc init -q --no-scm
	$(BIN)/dvc config core.analytics false
	$(BIN)/dvc config core.check_update false

all_figures: setup
	$(BIN)/snakemake --cores $(CORES) all_figures

# The tests never install system packages on a user's machine: the Debian dataset (for the science
# test) and the SLURM test's slurm-wlm and munge only in CI (CI=true) or when asked (MHD_TEST_SLURM=1)
test: $(STAMP) .dvc/config
	@if [ "$${CI:-}" = true ]; then $(MAKE) --no-print-directory dataset; fi
	$(BIN)/python -m pytest

# config/README.md's key tables from the schema's descriptions (tests/test_config_docs.py keeps them in step)
config-docs: $(STAMP)
	$(BIN)/mhd check --docs config/README.md

bench: setup
	$(BIN)/mhd bench

bench-scale: setup
	$(BIN)/mhd bench --scale

# `make all_figures` from an empty results/ in benchmarks/work/, timed against the trainer's bench
# throughput on the same cores: benchmarks/results/workflow-<machine>.json (README, Performance)
bench-workflow: setup
	$(BIN)/mhd bench --workflow --cores $(CORES)

# The vectorised engine's GPU goals (README, Performance): --scale with ResNet-20 clients, then the
# CUDA tests. Not `setup`: .venv holds the CPU wheel, so name a Python with a CUDA build of torch and
# the package's dependencies, e.g. `make bench-gpu GPU_PYTHON=python3`.
GPU_PYTHON ?= $(BIN)/python
GPU_NAME ?= gpu
bench-gpu:
	PYTHONPATH=src $(GPU_PYTHON) -m mhd bench --scale --config config/bench-gpu.yaml \
	  --out benchmarks/results/scale-$(GPU_NAME).json --figure figures/bench_scale_$(GPU_NAME).png
	PYTHONPATH=src $(GPU_PYTHON) -m pytest -q tests/test_gpu.py

# The default remote is a folder beside the checkout, ../mhd-dvc-store (.dvc/config), so clones
# side by side share it out of the box; `dvc remote add -d --local NAME URL` picks another for this
# clone only (docs/dvc.md).
push: setup
	$(BIN)/dvc push

# dvc pull, then give the pulled files their workflow order of modification times: DVC restores
# files in any order, and Snakemake reruns a job whose input is newer than its output.
pull: setup
	$(BIN)/dvc pull
	$(BIN)/snakemake --touch --cores 1 all_figures all_runs

# Re-pin: install the ranges into a scratch venv and freeze what came.
lock:
	rm -rf /tmp/mhd-lock && $(PYTHON) -m venv /tmp/mhd-lock
	/tmp/mhd-lock/bin/pip install --quiet torch==2.13.0 && /tmp/mhd-lock/bin/pip install --quiet ".[workflow,test]"
	(head -3 requirements/lock.txt; /tmp/mhd-lock/bin/pip freeze --exclude mhd \
	  | sed 's/^torch==\(.*\)+cpu$$/torch==\1/') > requirements/lock.txt.new
	mv requirements/lock.txt.new requirements/lock.txt

clean-venv:
	rm -rf $(VENV)
