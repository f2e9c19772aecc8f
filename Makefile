# The two commands a newcomer needs: `make demo` and `make test`. Both set up .venv first.
PY      ?= python3
VENV    ?= .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed

.PHONY: setup demo test bench bench-gpu clean

# Idempotent: re-installs only when pyproject.toml changed. torch/torchvision are pinned to the release
# that lies on the reference machine's disk (pip takes it from there); any version in pyproject's range works.
setup: $(STAMP)
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check torch==2.14.1 torchvision==0.29.1
	$(BIN)/pip install -q --disable-pip-version-check -e '.[test]'
	touch $(STAMP)

demo: setup
	$(BIN)/python bench/demo.py

test: setup
	$(BIN)/python -m pytest -q

# Speed, overhead and memory (bench/perf.py, <= 15 min on 2 CPU cores) -> bench/results/perf/*.json + SUMMARY.md.
# The quality benches train models for 5-20 minutes each and are run one by one (bench/README.md).
bench: setup
	$(BIN)/python bench/perf.py

# On a CUDA machine: training it/s of the full experiments (bf16, channels_last), film-pipeline frames/s at 1080p,
# and 1 vs 2 DDP processes when there are two GPUs -> bench/results/gpu/. Refuses in one line without CUDA.
bench-gpu: setup
	PYTHON=$(BIN)/python bash bench/gpu.sh

clean:
	rm -rf outputs runs multirun wandb lightning_logs .pytest_cache
