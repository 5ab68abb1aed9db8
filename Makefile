# Two commands matter: `make quickstart` and `make test`. Both install what they need.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
PYTEST_ARGS ?=
PERF_ARGS ?=

.PHONY: help deps test quickstart protos perf perf-benchmarks clean

help:
	@echo "make quickstart   run modelmesh local with example models (installs what it needs; ARGS=... passes flags)"
	@echo "make test         install everything (apt, venvs, cached builds) and run the test suite"
	@echo "make protos       regenerate the Python gRPC stubs from protos/"
	@echo "make perf         run the perf suite (records, plots, summary in perf/results; PERF_ARGS=--quick)"
	@echo "make perf-benchmarks  run each single benchmark of perf/ (prints figures; see perf/README.md)"
	@echo "make deps         only install dependencies"

deps:
	@bash scripts/bootstrap.sh

test: deps
	$(PY) -m pytest -ra $(PYTEST_ARGS)

# Installs only what `modelmesh local` needs (not the test components), then runs it.
quickstart:
	@bash scripts/quickstart.sh $(ARGS)

protos:
	@[ -x $(PY) ] || bash scripts/bootstrap.sh
	$(PY) scripts/gen_protos.py

perf: deps
	@$(PY) -c 'import matplotlib' 2>/dev/null || $(VENV)/bin/pip install -q -e ".[dev,perf]"
	$(PY) -m perf run $(PERF_ARGS)

perf-benchmarks: deps
	$(PY) -m perf.mesh_bench --seconds 5
	$(PY) -m perf.mesh_bench --seconds 5 --pin
	$(PY) -m perf.mesh_scale
	$(PY) -m perf.kv_bench
	$(PY) -m perf.rest_proxy_bench
	$(PY) -m perf.adapter_bench
	$(PY) -m perf.miss_bench
	$(PY) -m perf.pull_bench
	$(PY) -m perf.controller_bench --predictors 200

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
