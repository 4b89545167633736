# Every target sets up what it needs on a fresh machine (Python, pip and the OS only).
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: venv test run bench golden schema lint image clean readme

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -e '.[test]'
	touch $(STAMP)

venv: $(STAMP)

# The whole suite: engine, CLI, golden files, server, chart.
test: $(STAMP)
	$(PY) -m pytest -q -p no:cacheprovider

# Demo: inject the Consul docs' static-server and static-client examples and print the result.
run: $(STAMP)
	$(PY) scripts/demo.py

# Benchmarks that print figures (not timed tests).
bench: $(STAMP)
	$(PY) benchmarks/load_server.py
	$(PY) -m pytest benchmarks -q -p no:cacheprovider --benchmark-enable --benchmark-columns=min,median,max,rounds --benchmark-sort=name

# Regenerate tests/golden/*.injected.yaml after a deliberate behaviour change; review the diff.
golden: $(STAMP)
	$(PY) -m tests.golden_cases --write

clean:
	rm -rf $(VENV) .cache .pytest_cache .benchmarks

# Regenerate the README's annotation table from generator/annotations.py.
readme: $(STAMP)
	$(PY) scripts/update_readme.py
