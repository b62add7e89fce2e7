# `make demo` and `make test` set up everything they need in .venv (only Python 3.10+ and make are assumed).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin

.PHONY: demo test test-oldest lint bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.demo: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.test: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@ $(VENV)/.demo

demo: $(VENV)/.demo
	$(BIN)/python examples/quickstart.py

lint: $(VENV)/.test
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

test: lint
	$(BIN)/python -m pytest

# The suite again on the oldest OpenTelemetry the package accepts (pyproject: >=1.27), in a venv of its
# own. Left out, each needing what SDK 1.27 lacks: the instrumentation and zero-code tests (today's
# instrumentations need a recent SDK), the SDK's OTLP/JSON exporter (idem), and the OTLP round trips
# of values that SDK 1.27 itself drops (bytes attributes; None inside an array, at its encoder;
# mappings, mixed and nested sequences, which SDK 1.4x keeps: "structured").
OLDEST      := .venv-oldest
OLDEST_OTEL := opentelemetry-api==1.27.0 opentelemetry-sdk==1.27.0 opentelemetry-exporter-otlp-proto-http==1.27.0

$(OLDEST)/.test: pyproject.toml
	$(PYTHON) -m venv $(OLDEST)
	$(OLDEST)/bin/python -m pip install --quiet --upgrade pip
	$(OLDEST)/bin/python -m pip install --quiet -e '.[test-core]' $(OLDEST_OTEL)
	touch $@

test-oldest: $(OLDEST)/.test
	$(OLDEST)/bin/python -m pytest -p no:cacheprovider \
		--ignore tests/test_genai_instrumentations.py --ignore tests/test_zero_code.py \
		-k 'not json and not protobuf-bytes and not protobuf-list-with-none and not structured'

bench: $(VENV)/.test
	$(BIN)/python bench/run_all.py

clean:
	rm -rf $(VENV) $(OLDEST) maxim-records.log service-records.log .pytest_cache .mypy_cache .ruff_cache
