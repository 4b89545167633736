"""Golden files: the docs' static-server and static-client injected under several values sets.
Every path (in-process, the `connect-inject inject` CLI) must give the golden bytes, and every
injected object validates against the Kubernetes 1.30 schema in strict mode."""

from __future__ import annotations

import pytest
import yaml

from engine_helpers import validate_k8s
from golden_cases import cases, in_process, via_cli

CASES = cases()


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_in_process_matches_golden(case):
    assert in_process(case) == case.expected_path.read_text(), f"{case.name}: run `make golden` and review the diff"


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_cli_matches_golden(case):
    assert via_cli(case) == case.expected_path.read_text()


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_golden_objects_validate_strictly(case):
    for doc in yaml.safe_load_all(case.expected_path.read_text()):
        if doc:
            validate_k8s(doc, "1.30")


def test_there_are_at_least_five_values_sets_and_all_inject():
    assert len(CASES) >= 5
    for case in CASES:
        text = case.expected_path.read_text()
        assert text.count("name: envoy-sidecar") == 2, case.name
