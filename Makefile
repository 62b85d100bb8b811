# Two commands on a fresh machine: `make demo` (the main job) and `make test`.
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)

.PHONY: demo test lint clean

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test,ray]'
	rm -f $(VENV)/.installed-* && touch $@

# A PBA search sized for a CPU (about 10 minutes on 2 cores): schedule, plot and summary under
# runs/quick. Data: $$PBA_DATA_DIR if set, else CIFAR-10 downloaded into ./data on first use.
demo: $(STAMP)
	$(BIN)/pba search --preset quick --download --out runs/quick

test: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/pytest -q

clean:
	rm -rf $(VENV) runs
