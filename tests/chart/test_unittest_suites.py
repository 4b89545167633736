"""The helm-unittest suites in chart/tests/, each test on Helm 4 in process and on the Helm 3 binary."""

from __future__ import annotations

import pytest

from unittest_runner import ASSERTIONS, Case, SuiteError, load_cases, run_case

CASES = load_cases()


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_suite_case(case: Case, helm: str | None) -> None:
    run_case(case, helm)


def test_every_template_has_a_suite() -> None:
    from helmrender import CHART

    templates = {p.name for p in (CHART / "templates").iterdir() if not p.name.startswith("_")}
    covered = {t.removeprefix("templates/") for c in CASES for t in c.suite.get("templates") or []}
    assert templates - covered == set()


def _case(asserts, **test) -> Case:
    from helmrender import CHART

    return Case(CHART / "tests" / "inline_test.yaml",
                {"templates": ["connect-inject-service.yaml"], "release": {"name": "consul", "namespace": "consul"},
                 "set": {"connectInject.enabled": True}},
                {"it": "inline", "asserts": asserts, **test})


def test_unknown_assertion_is_an_error_not_a_pass() -> None:
    with pytest.raises(SuiteError, match="unknown assertion 'equals'"):
        run_case(_case([{"equals": {"path": "kind", "value": "Service"}}]))


def test_unknown_test_key_is_an_error() -> None:
    with pytest.raises(SuiteError, match="unsupported test keys"):
        run_case(_case([{"isKind": {"of": "Service"}}], sets={"a": 1}))


@pytest.mark.parametrize("assertion", [
    {"equal": {"path": "spec.ports[0].port", "value": 80}},
    {"notEqual": {"path": "spec.ports[0].port", "value": 443}},
    {"exists": {"path": "spec.type"}},
    {"notExists": {"path": "spec.ports"}},
    {"isKind": {"of": "Deployment"}},
    {"isAPIVersion": {"of": "v2"}},
    {"hasDocuments": {"count": 2}},
    {"contains": {"path": "spec.ports", "content": {"port": 443}}},
    {"contains": {"path": "spec.ports", "content": {"port": 80}, "any": True}},
    {"notContains": {"path": "spec.ports", "content": {"port": 443}, "any": True}},
    {"matchRegex": {"path": "metadata.name", "pattern": "^nope"}},
    {"notMatchRegex": {"path": "metadata.name", "pattern": "svc$"}},
    {"isNull": {"path": "metadata.name"}},
    {"isNotNull": {"path": "spec.type"}},
    {"isSubset": {"path": "spec.selector", "content": {"app": "other"}}},
    {"lengthEqual": {"path": "spec.ports", "count": 2}},
    {"failedTemplate": {}},
    {"equal": {"path": "kind", "value": "Service"}, "not": True},
    {"equal": {"path": "spec.ports[?(@.name == \"https\")].port", "value": 80}},
    {"equal": {"path": "metadata.labels[\"app.kubernetes.io/name\"]", "value": "x"}},
    {"equal": {"path": "kind", "value": "Service"}, "documentSelector": {"path": "kind", "value": "Pod"}},
    {"equal": {"path": "kind", "value": "Service"}, "documentIndex": 3},
])
def test_each_assertion_can_fail(assertion) -> None:
    with pytest.raises(AssertionError):
        run_case(_case([assertion]))


def test_failed_template_message_is_compared_exactly() -> None:
    case = _case([{"failedTemplate": {"errorMessage": "client.grpc must be true"}}], set={"client.grpc": False})
    with pytest.raises(AssertionError, match="expected error"):
        run_case(case)
    run_case(_case([{"failedTemplate": {"errorMessage": "client.grpc must be true for connect injection"}}],
                   set={"client.grpc": False}))


def test_supported_assertions() -> None:
    for name in ("equal", "notEqual", "exists", "notExists", "isKind", "hasDocuments", "contains", "matchRegex",
                 "isNull", "isNotNull", "failedTemplate", "isSubset"):
        assert name in ASSERTIONS
