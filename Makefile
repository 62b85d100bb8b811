# Two commands on a fresh machine: `make demo` (the main job) and `make test`.
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)

.PHONY: demo test lint clean

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test,ray,tensorboard]'
	rm -f $(VENV)/.installed-* && touch $@

# The main job (about 15 minutes on 2 CPU cores): search a schedule, train final models with it
# and with the baselines, report which wins (runs/demo/summary.md). Run again to continue an
# interrupted demo. Data: $$PBA_DATA_DIR if set, else ../shared/data when it is there, else
# CIFAR-10 downloaded into ./data on first use. The published schedule joins the comparison
# when ../shared/reference holds it.
SHARED_DATA := $(wildcard ../shared/data/cifar-10-batches-py)
REFERENCE := $(wildcard ../shared/reference/rcifar10_16_wrn.txt)
demo: $(STAMP)
	$(if $(SHARED_DATA),PBA_DATA_DIR=$${PBA_DATA_DIR:-$(abspath ../shared/data)}) \
	$(BIN)/pba demo --download --out runs/demo $(if $(REFERENCE),--reference $(REFERENCE))

test: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/pytest -q

clean:
	rm -rf $(VENV) runs
