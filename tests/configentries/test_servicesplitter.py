"""ServiceSplitter: ported from servicesplitter_types_test.go, plus float32 sums (reference §1.4)."""

from __future__ import annotations

import pytest

from generator import configentries as ce

from .helpers import DC_META, message, resource

KIND = ce.KINDS["ServiceSplitter"]
SPEC = {"splits": [
    {"weight": 100, "service": "foo", "serviceSubset": "bar", "namespace": "baz",
     "requestHeaders": {"add": {"foo": "bar"}, "set": {"bax": "qux"}, "remove": ["foo"]},
     "responseHeaders": {"add": {"tic": "tac"}, "set": {"tic": "tac"}, "remove": ["tic"]}},
    {"weight": 0, "service": "zero"}]}
CONSUL = {"Splits": [
    {"Weight": 100, "Service": "foo", "ServiceSubset": "bar", "Namespace": "baz",
     "RequestHeaders": {"Add": {"foo": "bar"}, "Set": {"bax": "qux"}, "Remove": ["foo"]},
     "ResponseHeaders": {"Add": {"tic": "tac"}, "Set": {"tic": "tac"}, "Remove": ["tic"]}},
    {"Weight": 0, "Service": "zero"}]}


def test_to_consul():
    assert ce.to_consul(KIND, resource("ServiceSplitter", "name", {}), "datacenter") == {
        "Kind": "service-splitter", "Name": "name", "Meta": DC_META, "CreateIndex": 0, "ModifyIndex": 0}
    assert ce.to_consul(KIND, resource("ServiceSplitter", "name", SPEC), "datacenter") == {
        "Kind": "service-splitter", "Name": "name", **CONSUL, "Meta": DC_META, "CreateIndex": 0, "ModifyIndex": 0}


@pytest.mark.parametrize("entry,matches", [
    ({"Kind": "service-splitter", "Name": "name", "Namespace": "foobar", "Meta": DC_META, **CONSUL}, True),
    ({"Kind": "service-splitter", "Name": "name", "Splits": [{**CONSUL["Splits"][0], "Weight": 50},
                                                             CONSUL["Splits"][1]]}, False),
    ({"Kind": "service-router", "Name": "name", **CONSUL}, False),
])
def test_matches_consul(entry, matches):
    assert ce.matches_consul(KIND, resource("ServiceSplitter", "name", SPEC), entry) is matches


PREFIX = 'servicesplitter.consul.hashicorp.com "foo" is invalid: '
VALIDATE = {
    "namespaces enabled: valid": ([{"weight": 99.99, "namespace": "namespace-a"},
                                   {"weight": 0.01, "namespace": "namespace-b"}], True, ""),
    "namespaces disabled: valid": ([{"weight": 99.99}, {"weight": 0.01}], False, ""),
    "splits with 0 weight: valid": ([{"weight": 50.0}, {"weight": 50}, {"weight": 0.0}, {"weight": 0}], False, ""),
    "sum of weights must be 100": (
        [{"weight": 90}, {"weight": 5}], False,
        'spec.splits: Invalid value: "[{\\"weight\\":90},{\\"weight\\":5}]": the sum of weights across all splits '
        "must add up to 100 percent, but adds up to 95.000000"),
    "weight must be between 0.01 and 100": (
        [{"weight": 101}, {"weight": 0.001}], False,
        "[spec.splits[0].weight: Invalid value: 101: weight must be a percentage between 0.01 and 100, "
        "spec.splits[1].weight: Invalid value: 0.001: weight must be a percentage between 0.01 and 100, "
        'spec.splits: Invalid value: "[{\\"weight\\":101},{\\"weight\\":0.001}]": the sum of weights across all '
        "splits must add up to 100 percent, but adds up to 101.000999]"),
    "namespaces disabled: single split namespace specified": (
        [{"namespace": "namespace-a", "weight": 100}], False,
        'spec.splits[0].namespace: Invalid value: "namespace-a": Consul Enterprise namespaces must be enabled to set '
        "split.namespace"),
    "namespaces disabled: multiple split namespaces specified": (
        [{"namespace": "namespace-a", "weight": 50}, {"namespace": "namespace-b", "weight": 50}], False,
        '[spec.splits[0].namespace: Invalid value: "namespace-a": Consul Enterprise namespaces must be enabled to set '
        'split.namespace, spec.splits[1].namespace: Invalid value: "namespace-b": Consul Enterprise namespaces must '
        "be enabled to set split.namespace]"),
    "float64-exact but float32-inexact sum is refused": (
        [{"weight": 62.2}, {"weight": 34.4}, {"weight": 3.4}], False,
        'spec.splits: Invalid value: "[{\\"weight\\":62.2},{\\"weight\\":34.4},{\\"weight\\":3.4}]": the sum of '
        "weights across all splits must add up to 100 percent, but adds up to 100.000008"),
    "float32-exact sum is accepted": ([{"weight": 67.89}, {"weight": 28.35}, {"weight": 3.76}], False, ""),
    "no splits": (None, False, 'spec.splits: Invalid value: "null": the sum of weights across all splits must add '
                  "up to 100 percent, but adds up to 0.000000"),
}


@pytest.mark.parametrize("splits,namespaces,expected", VALIDATE.values(), ids=VALIDATE.keys())
def test_validate(splits, namespaces, expected):
    spec = {} if splits is None else {"splits": splits}
    got = message(resource("ServiceSplitter", "foo", spec), ce.ConsulMeta(namespaces_enabled=namespaces))
    assert got == (PREFIX + expected if expected else "")


def test_split_namespaces_are_not_defaulted():
    res = resource("ServiceSplitter", "foo", {"splits": [{"weight": 100, "service": "a"}]})
    assert ce.defaulting_patch(KIND, res, ce.ConsulMeta(namespaces_enabled=True, destination_namespace="x")) == []
