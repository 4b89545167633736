"""The fake agent's `?filter=` language (tests/fakes/consul_filter.py) against Consul's filtering
documentation: selectors, operators, precedence, literals, and errors for invalid expressions."""

from __future__ import annotations

import pytest

from fakes.consul_filter import AGENT_CHECK, AGENT_SERVICE, FilterError, compile_filter, equalities

SERVICE = {"ID": "pod1-web", "Service": "web", "Tags": ["v1", "blue"], "Port": 8080, "Address": "10.0.0.5",
           "Meta": {"k8s-service-name": "web", "k8s-namespace": "default", "quote\"d": "x"},
           "Weights": {"Passing": 1, "Warning": 1}, "EnableTagOverride": False,
           "Proxy": {"DestinationServiceName": "web", "Upstreams": []}}


@pytest.mark.parametrize("expr, expected", [
    ('Service == "web"', True),
    ("Service == `web`", True),
    ("Service == web", True),                       # a bare word is a string
    ('Service != "web"', False),
    ("Port == 8080", True),
    ("Port != 80", True),
    ("EnableTagOverride == false", True),
    ('Meta["k8s-service-name"] == "web"', True),
    ('Meta.missing == ""', False),                  # an absent key never equals
    ('Meta.missing != "x"', True),
    ('Meta["quote\\"d"] == "x"', True),             # Go escapes in double quotes
    ('Kind == ""', True),                           # an absent field is its zero value
    ('Weights.Passing == 1', True),
    ('Proxy.DestinationServiceName == "web"', True),
    ('"v1" in Tags', True),
    ('"v2" not in Tags', True),
    ("Tags contains blue", True),
    ("Tags not contains red", True),
    ('k8s-namespace in Meta', True),
    ('Address matches "^10\\\\."', True),
    ('Service not matches "^w"', False),
    ("Tags is not empty", True),
    ("Proxy.Upstreams is empty", True),
    ('Service == "x" or Service == "web" and Port == 1', False),   # and binds tighter than or
    ('(Service == "x" or Service == "web") and Port == 8080', True),
    ('not Service == "x" and Port == 8080', True),                  # not binds tightest
    ('not (Service == "web" and Port == 8080)', False),
])
def test_expressions(expr: str, expected: bool):
    assert compile_filter(expr, AGENT_SERVICE)(SERVICE) is expected


@pytest.mark.parametrize("expr, message", [
    ("", "empty expression"),
    ("Bogus == 1", 'Selector "Bogus" is not valid'),
    ("Meta == 1", "not valid for =="),
    ("Port == eighty", 'Failed to coerce value "eighty"'),
    ('Service == "web', "no match found"),
    ('Service = "web"', "no match found"),
    ('(Service == "web"', "expected )"),
    ('Service == "web")', "unexpected"),
    ('Service == "\\q"', "invalid escape"),
    ('Service matches "("', "invalid regular expression"),
    ("Service", "expected a match operator"),
])
def test_invalid_expressions(expr: str, message: str):
    with pytest.raises(FilterError, match=message.replace("(", r"\(").replace(")", r"\)")):
        compile_filter(expr, AGENT_SERVICE)


def test_check_selectors():
    check = {"CheckID": "default/pod1-web/kubernetes-health-check", "Status": "passing", "ServiceTags": []}
    assert compile_filter("CheckID == `default/pod1-web/kubernetes-health-check`", AGENT_CHECK)(check)
    with pytest.raises(FilterError):
        compile_filter('Service == "web"', AGENT_CHECK)


def test_conjunctions_expose_their_equalities_for_indexing():
    pred = compile_filter('Meta["a"] == "1" and (ID == "x" and Port == 2) and not Service == "y"', AGENT_SERVICE)
    assert equalities(pred) == [(("Meta", "a"), "1"), (("ID",), "x"), (("Port",), 2)]
    assert equalities(compile_filter('ID == "x" or ID == "y"', AGENT_SERVICE)) == []
    assert equalities(compile_filter('ID != "x"', AGENT_SERVICE)) == []
