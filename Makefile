# Two commands on a fresh machine: `make demo` (the main job) and `make test`.
VENV ?= .venv
BIN := $(VENV)/bin
# pyproject.toml gives the ranges pba accepts, constraints.txt the exact versions installed here.
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml constraints.txt | cksum | cut -d' ' -f1)

.PHONY: demo test lint clean

$(STAMP): pyproject.toml constraints.txt
	python3 -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt -e '.[test,ray,tensorboard,svhn]'
	rm -f $(VENV)/.installed-* && touch $@

# The main job: search a schedule, train final models with it and with the baseline,
# TrivialAugment and no augmentation, report which to train with (runs/demo/summary.md,
# results.json), sized to end in 15 minutes on this machine (--budget: README, "Your data,
# your time"). Run again to continue an interrupted demo. Data: $$PBA_DATA_DIR if set, else ../shared/data
# when it is there, else CIFAR-10 downloaded into ./data on first use. The published schedule
# joins with `.venv/bin/pba demo --out runs/demo --reference FILE` (one model more).
SHARED_DATA := $(wildcard ../shared/data/cifar-10-batches-py)
demo: $(STAMP)
	$(if $(SHARED_DATA),PBA_DATA_DIR=$${PBA_DATA_DIR:-$(abspath ../shared/data)}) \
	$(BIN)/pba demo --budget 15m --download --out runs/demo

test: $(STAMP)
	$(BIN)/ruff check src tests benchmarks examples
	$(BIN)/pytest -q

clean:
	rm -rf $(VENV) runs
