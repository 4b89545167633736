"""TerminatingGateway: ported from terminatinggateway_types_test.go (ToConsul, MatchesConsul,
Validate, DefaultNamespaceFields)."""

from __future__ import annotations

import pytest

from generator import configentries as ce

from .helpers import DC_META, message, resource

KIND = ce.KINDS["TerminatingGateway"]
SPEC = {"services": [{"name": "name", "namespace": "ns", "caFile": "caFile", "certFile": "certFile",
                      "keyFile": "keyFile", "sni": "sni"}, {"name": "*"}]}
CONSUL = {"Services": [{"Name": "name", "Namespace": "ns", "CAFile": "caFile", "CertFile": "certFile",
                        "KeyFile": "keyFile", "SNI": "sni"}, {"Name": "*"}]}


def test_to_consul():
    assert ce.to_consul(KIND, resource("TerminatingGateway", "name", SPEC), "datacenter") == {
        "Kind": "terminating-gateway", "Name": "name", **CONSUL, "Meta": DC_META, "CreateIndex": 0, "ModifyIndex": 0}
    assert ce.to_consul(KIND, resource("TerminatingGateway", "name", {}), "dc")["Kind"] == "terminating-gateway"


@pytest.mark.parametrize("entry,matches", [
    ({"Kind": "terminating-gateway", "Name": "name", "Namespace": "ns", "Meta": DC_META, **CONSUL}, True),
    ({"Kind": "terminating-gateway", "Name": "name", "Services": CONSUL["Services"][::-1]}, False),
    ({"Kind": "ingress-gateway", "Name": "name", **CONSUL}, False),
])
def test_matches_consul(entry, matches):
    assert ce.matches_consul(KIND, resource("TerminatingGateway", "name", SPEC), entry) is matches


PREFIX = 'terminatinggateway.consul.hashicorp.com "foo" is invalid: '
VALIDATE = {
    "certFile set and keyFile not set": (
        {"services": [{"name": "foo", "certFile": "certFile", "keyFile": ""}]}, False,
        'spec.services[0]: Invalid value: "{\\"name\\":\\"foo\\",\\"certFile\\":\\"certFile\\"}": if certFile or '
        "keyFile is set, the other must also be set"),
    "keyFile set and certFile not set": (
        {"services": [{"name": "foo", "keyFile": "keyFile", "certFile": ""}]}, False,
        'spec.services[0]: Invalid value: "{\\"name\\":\\"foo\\",\\"keyFile\\":\\"keyFile\\"}": if certFile or '
        "keyFile is set, the other must also be set"),
    "service.namespace set when namespaces disabled": (
        {"services": [{"name": "foo", "namespace": "ns"}]}, False,
        'spec.services[0].namespace: Invalid value: "ns": Consul Enterprise namespaces must be enabled to set '
        "service.namespace"),
    "service.namespace set when namespaces enabled": ({"services": [{"name": "foo", "namespace": "ns"}]}, True, ""),
    "cert rules first, then namespaces": (
        {"services": [{"name": "a", "namespace": "ns"}, {"name": "b", "certFile": "c"}]}, False,
        '[spec.services[1]: Invalid value: "{\\"name\\":\\"b\\",\\"certFile\\":\\"c\\"}": if certFile or keyFile is '
        'set, the other must also be set, spec.services[0].namespace: Invalid value: "ns": Consul Enterprise '
        "namespaces must be enabled to set service.namespace]"),
}


@pytest.mark.parametrize("spec,namespaces,expected", VALIDATE.values(), ids=VALIDATE.keys())
def test_validate(spec, namespaces, expected):
    got = message(resource("TerminatingGateway", "foo", spec), ce.ConsulMeta(namespaces_enabled=namespaces))
    assert got == (PREFIX + expected if expected else "")


DEFAULTS = {
    "namespaces disabled": (ce.ConsulMeta(), None),
    "namespaces enabled, mirroring disabled": (ce.ConsulMeta(namespaces_enabled=True, destination_namespace="foo-ns"),
                                               "foo-ns"),
    "namespaces enabled, mirroring enabled": (ce.ConsulMeta(namespaces_enabled=True, mirroring=True), "kube"),
    "mirroring with a prefix": (ce.ConsulMeta(namespaces_enabled=True, mirroring=True, prefix="p-"), "p-kube"),
}


@pytest.mark.parametrize("meta,ns", DEFAULTS.values(), ids=DEFAULTS.keys())
def test_default_namespace_fields(meta, ns):
    res = resource("TerminatingGateway", "gw", {"services": [{"name": "a"}, {"name": "b", "namespace": "set"}]},
                   namespace="kube")
    patch = ce.defaulting_patch(KIND, res, meta)
    if ns is None:
        assert patch == [] and ce.defaulted(KIND, res, meta) == res
        return
    assert patch == [{"op": "add", "path": "/spec/services/0/namespace", "value": ns}]
    assert ce.defaulted(KIND, res, meta)["spec"]["services"] == [{"name": "a", "namespace": ns},
                                                                  {"name": "b", "namespace": "set"}]
    assert "namespace" not in res["spec"]["services"][0], "the input is not changed"
