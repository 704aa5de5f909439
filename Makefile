# Two entry points for a fresh clone; each sets up its own virtual environment.
#   make demo  - a spoken turn on the embedded offline backend (no key, no network)
#   make test  - lint, type checks and the whole test suite, on Python 3.11 and on 3.10
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
EXTRAS := local,piper,whisper,gym,dev
# TEN's Python runtime is 3.10: the suite runs there too, in a venv of its own.
PYTHON310 ?= env PYENV_VERSION=3.10.13 python3
VENV310 ?= .venv310
STAMP310 := $(VENV310)/.installed

.PHONY: demo test lint bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[$(EXTRAS)]'
	touch $(STAMP)

$(STAMP310): pyproject.toml
	$(PYTHON310) -m venv $(VENV310)
	$(VENV310)/bin/pip install --quiet --upgrade pip
	$(VENV310)/bin/pip install --quiet -e '.[$(EXTRAS)]'
	touch $(STAMP310)

demo: $(STAMP)
	$(BIN)/glm-realtime run --input examples/go_forward.wav --output out/reply.wav

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy realtime glm_realtime glm_local glm_gym

test: lint $(STAMP310)
	$(BIN)/pytest -q
	$(VENV310)/bin/python -c 'import sys; assert sys.version_info[:2] == (3, 10), sys.version'
	$(VENV310)/bin/pytest -q

bench: $(STAMP)
	$(BIN)/python -m benchmarks uplink
	$(BIN)/python -m benchmarks extension
	$(BIN)/python -m benchmarks local_backend

clean:
	rm -rf $(VENV) $(VENV310) out .pytest_cache .mypy_cache .ruff_cache
