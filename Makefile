# Every target sets up what it needs on a fresh machine (Python, pip and the OS only).
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
# A real Helm 3 binary for the chart tests (scripts/fetch_helm.py pins the version).
HELM_BIN := .cache/helm/helm
IMAGE ?= consul-connect-inject:$(shell sed -n 's/^appVersion: *"*\([^"]*\)"*/\1/p' chart/Chart.yaml)

.PHONY: venv test run bench golden schema lint image clean readme

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -e '.[test]'
	touch $(STAMP)

venv: $(STAMP)

# The whole suite: engine, CLI, golden files, server, chart.
test: $(STAMP) $(HELM_BIN)
	HELM=$(abspath $(HELM_BIN)) $(PY) -m pytest -q -p no:cacheprovider

# Demo: start the HTTPS webhook on 127.0.0.1, send the docs' static-server and static-client as the API server would, print the decisions.
run: $(STAMP)
	$(PY) scripts/demo.py

# Benchmarks that print figures (not timed tests).
bench: $(STAMP)
	$(PY) benchmarks/load_server.py
	$(PY) benchmarks/memory_worst_cases.py
	$(PY) benchmarks/endpoints_controller.py
	$(PY) benchmarks/config_entry_controller.py
	$(PY) -m pytest benchmarks -q -p no:cacheprovider --benchmark-enable --benchmark-columns=min,median,max,rounds --benchmark-sort=name

# Regenerate tests/golden/*.injected.yaml after a deliberate behaviour change; review the diff.
golden: $(STAMP)
	$(PY) -m tests.golden_cases --write

clean:
	rm -rf $(VENV) .cache .pytest_cache .benchmarks

# Regenerate the README's annotation table from generator/inject/annotations.py.
readme: $(STAMP)
	$(PY) scripts/update_readme.py

$(HELM_BIN): scripts/fetch_helm.py | $(STAMP)
	$(PY) scripts/fetch_helm.py $(HELM_BIN)

# chart/values.schema.json from values-schema.yaml (the yamale schema is the single source), and the
# CRD templates from generator/configentries (the kinds as data).
schema: $(STAMP)
	$(PY) -m generator.tools.schema_json
	$(PY) -m generator.tools.crds

# helm lint --strict (defaults and the kitchen-sink values) and the values.schema.json drift check.
lint: $(STAMP) $(HELM_BIN)
	$(PY) -m generator.tools.schema_json --check
	$(PY) -m generator.tools.crds --check
	HELM_CONFIG_HOME=.cache/helm/config HELM_CACHE_HOME=.cache/helm/cache HELM_DATA_HOME=.cache/helm/data \
	  $(HELM_BIN) lint --strict chart
	HELM_CONFIG_HOME=.cache/helm/config HELM_CACHE_HOME=.cache/helm/cache HELM_DATA_HOME=.cache/helm/data \
	  $(HELM_BIN) lint --strict chart -f chart/ci/kitchen-sink-values.yaml

# The webhook image (the chart's default connectInject.webhook.image). Needs docker and a base image.
image:
	docker build -t $(IMAGE) .
