"""IngressGateway: ported from ingressgateway_types_test.go (ToConsul, MatchesConsul, Validate,
DefaultNamespaceFields), plus the exact multi-error messages and the webhook's patches."""

from __future__ import annotations

import base64
import copy
import json

import pytest
import yaml

from generator import configentries as ce
from generator.entrycontroller import admission

from .helpers import DC_META, message, resource
from .test_samples import schema_errors

KIND = ce.KINDS["IngressGateway"]
SDS = {"clusterName": "cluster1", "certResource": "cert1"}
CONSUL_SDS = {"ClusterName": "cluster1", "CertResource": "cert1"}
SPEC = {
    "tls": {"enabled": True, "gatewayTLSSDSConfig": SDS},
    "listeners": [
        {"port": 8888, "protocol": "tcp", "gatewayTLSConfig": {"enabled": True, "gatewayTLSSDSConfig": SDS},
         "services": [
             {"name": "name1", "hosts": ["host1_1", "host1_2"], "namespace": "ns1", "partition": "default",
              "gatewayServiceTLSConfig": {"gatewayTLSSDSConfig": SDS},
              "requestHeaders": {"add": {"foo": "bar", "source": "dest"}, "set": {"bar": "baz", "key": "car"},
                                 "remove": ["foo", "bar", "baz"]},
              "responseHeaders": {"add": {"doo": "var", "aource": "sest"}, "set": {"var": "vaz", "jey": "xar"},
                                  "remove": ["doo", "var", "vaz"]}},
             {"name": "name2", "hosts": ["host2_1", "host2_2"], "namespace": "ns2"},
         ]},
        {"port": 9999, "protocol": "http", "services": [{"name": "*"}]},
    ],
}
# What the Go client marshals: Port, Protocol, Services, TLS.Enabled, Name and Hosts have no omitempty.
CONSUL = {
    "TLS": {"Enabled": True, "SDS": CONSUL_SDS},
    "Listeners": [
        {"Port": 8888, "Protocol": "tcp", "TLS": {"Enabled": True, "SDS": CONSUL_SDS},
         "Services": [
             {"Name": "name1", "Hosts": ["host1_1", "host1_2"], "Namespace": "ns1", "Partition": "default",
              "TLS": {"SDS": CONSUL_SDS},
              "RequestHeaders": {"Add": {"foo": "bar", "source": "dest"}, "Set": {"bar": "baz", "key": "car"},
                                 "Remove": ["foo", "bar", "baz"]},
              "ResponseHeaders": {"Add": {"doo": "var", "aource": "sest"}, "Set": {"var": "vaz", "jey": "xar"},
                                  "Remove": ["doo", "var", "vaz"]}},
             {"Name": "name2", "Hosts": ["host2_1", "host2_2"], "Namespace": "ns2"},
         ]},
        {"Port": 9999, "Protocol": "http", "Services": [{"Name": "*", "Hosts": None}]},
    ],
}
INDEXES = {"CreateIndex": 0, "ModifyIndex": 0}


def gateway(spec: dict | None, name: str = "name", namespace: str = "default") -> dict:
    return resource("IngressGateway", name, spec, namespace=namespace)


# --- ToConsul ------------------------------------------------------------------------------------

def test_to_consul_empty_fields():
    assert ce.to_consul(KIND, gateway({}), "datacenter") == {
        "Kind": "ingress-gateway", "Name": "name", "TLS": {"Enabled": False}, "Listeners": None, "Meta": DC_META,
        **INDEXES}
    assert ce.to_consul(KIND, gateway(None), "datacenter") == ce.to_consul(KIND, gateway({}), "datacenter")


def test_to_consul_every_field_set():
    assert ce.to_consul(KIND, gateway(SPEC), "datacenter") == {
        "Kind": "ingress-gateway", "Name": "name", **CONSUL, "Meta": DC_META, **INDEXES}


def test_to_consul_keys_renamed_and_empty_values():
    """`gatewayTLSConfig`/`gatewayServiceTLSConfig` → `TLS`, `gatewayTLSSDSConfig` → `SDS`; a listener
    without services sends `Services: null`, a present empty TLS block `{"Enabled": false}`."""
    spec = {"listeners": [{"port": 1, "protocol": "http", "gatewayTLSConfig": {}}]}
    assert ce.to_consul(KIND, gateway(spec), "dc")["Listeners"] == [
        {"Port": 1, "Protocol": "http", "TLS": {"Enabled": False}, "Services": None}]


def test_consul_name_and_namespace():
    res = gateway({}, name="foo", namespace="bar")
    assert ce.to_consul(KIND, res, "dc")["Name"] == "foo"
    assert KIND.mirroring_ns_of(res) == "bar"
    assert not KIND.global_resource
    assert KIND.singular == "ingressgateway" and KIND.consul_kind == "ingress-gateway"
    assert ce.consul_namespace(KIND, res, ce.ConsulMeta(namespaces_enabled=True, mirroring=True, prefix="p-")) == \
        "p-bar"


# --- MatchesConsul -------------------------------------------------------------------------------

MATCHES = {
    "empty fields matches": (
        {}, {"Kind": "ingress-gateway", "Name": "name", "Namespace": "foobar", "Meta": DC_META, "CreateIndex": 1,
             "ModifyIndex": 2}, True),
    "all fields set matches": (
        SPEC, {"Kind": "ingress-gateway", "Name": "name", "Namespace": "foobar", **CONSUL, "Meta": DC_META,
               "CreateIndex": 1, "ModifyIndex": 2}, True),
    "different types does not match": (
        {}, {"Kind": "proxy-defaults", "Name": "name", "Namespace": "foobar", "CreateIndex": 1, "ModifyIndex": 2},
        False),
    "another name does not match": ({}, {"Kind": "ingress-gateway", "Name": "other"}, False),
    "tls enabled differs": ({}, {"Kind": "ingress-gateway", "Name": "name", "TLS": {"Enabled": True}}, False),
    "listener port differs": (
        {"listeners": [{"port": 8080, "protocol": "http", "services": [{"name": "*"}]}]},
        {"Kind": "ingress-gateway", "Name": "name",
         "Listeners": [{"Port": 8081, "Protocol": "http", "Services": [{"Name": "*"}]}]}, False),
    "listener order matters": (
        SPEC, {"Kind": "ingress-gateway", "Name": "name", **CONSUL, "Listeners": CONSUL["Listeners"][::-1]}, False),
    "keys Consul adds that the Go type does not know are ignored": (
        {"listeners": [{"port": 8080, "protocol": "http", "services": [{"name": "*"}]}]},
        {"Kind": "ingress-gateway", "Name": "name", "Partition": "default",
         "Listeners": [{"Port": 8080, "Protocol": "http", "Services": [{"Name": "*", "Unknown": 1}]}]}, True),
}


@pytest.mark.parametrize("spec,entry,matches", MATCHES.values(), ids=MATCHES.keys())
def test_matches_consul(spec, entry, matches):
    assert ce.matches_consul(KIND, gateway(spec), entry) is matches


def test_matches_its_own_entry():
    assert ce.matches_consul(KIND, gateway(SPEC), ce.to_consul(KIND, gateway(SPEC), "dc1"))


# --- Validate ------------------------------------------------------------------------------------

PREFIX = 'ingressgateway.consul.hashicorp.com "foo" is invalid: '
VALIDATE = {
    "listener.protocol invalid": (
        {"listeners": [{"protocol": "invalid"}]}, False, False,
        'spec.listeners[0].protocol: Invalid value: "invalid": must be one of "tcp", "http", "http2", "grpc"'),
    "listener.protocol empty is invalid": (
        {"listeners": [{"port": 80}]}, False, False,
        'spec.listeners[0].protocol: Invalid value: "": must be one of "tcp", "http", "http2", "grpc"'),
    "len(services) > 0 when protocol==tcp": (
        {"listeners": [{"protocol": "tcp", "services": [{"name": "svc1"}, {"name": "svc2"}]}]}, False, False,
        'spec.listeners[0].services: Invalid value: "[{\\"name\\":\\"svc1\\"},{\\"name\\":\\"svc2\\"}]": if protocol '
        'is "tcp", only a single service is allowed, found 2'),
    "protocol != http when service.name==*": (
        {"listeners": [{"protocol": "tcp", "services": [{"name": "*"}]}]}, False, False,
        'spec.listeners[0].services[0].name: Invalid value: "*": if name is "*", protocol must be "http" but was '
        '"tcp"'),
    "len(hosts) > 0 when service.name==*": (
        {"listeners": [{"protocol": "http", "services": [{"name": "*", "hosts": ["host1", "host2"]}]}]}, False, False,
        'spec.listeners[0].services[0].hosts: Invalid value: "[\\"host1\\",\\"host2\\"]": hosts must be empty if '
        'name is "*"'),
    "len(hosts) > 0 when protocol==tcp": (
        {"listeners": [{"protocol": "tcp", "services": [{"name": "name", "hosts": ["host1", "host2"]}]}]}, False,
        False,
        'spec.listeners[0].services[0].hosts: Invalid value: "[\\"host1\\",\\"host2\\"]": hosts must be empty if '
        'protocol is "tcp"'),
    "service.namespace set when namespaces disabled": (
        {"listeners": [{"protocol": "tcp", "services": [{"name": "name", "namespace": "foo"}]}]}, False, False,
        'spec.listeners[0].services[0].namespace: Invalid value: "foo": Consul Enterprise namespaces must be '
        "enabled to set service.namespace"),
    "service.namespace set when namespaces enabled": (
        {"listeners": [{"protocol": "tcp", "services": [{"name": "name", "namespace": "foo"}]}]}, True, False, ""),
    "service.partition set when partitions disabled": (
        {"listeners": [{"protocol": "tcp", "services": [{"name": "name", "partition": "foo"}]}]}, False, False,
        'spec.listeners[0].services[0].partition: Invalid value: "foo": Consul Enterprise admin-partitions must be '
        "enabled to set service.partition"),
    "service.partition set when partitions enabled": (
        {"listeners": [{"protocol": "tcp", "services": [{"name": "name", "partition": "foo"}]}]}, False, True, ""),
    "multiple errors": (
        {"listeners": [{"protocol": "invalid", "services": [{"name": "*"}]}]}, False, False,
        '[spec.listeners[0].protocol: Invalid value: "invalid": must be one of "tcp", "http", "http2", "grpc", '
        'spec.listeners[0].services[0].name: Invalid value: "*": if name is "*", protocol must be "http" but was '
        '"invalid"]'),
    "every rule of a service in the reference's order": (
        {"listeners": [{"protocol": "http", "services": [{"name": "a"}]},
                       {"protocol": "tcp", "services": [
                           {"name": "*", "hosts": ["h"], "namespace": "n", "partition": "p"}, {"name": "b"}]}]},
        False, False,
        '[spec.listeners[1].services: Invalid value: "[{\\"name\\":\\"*\\",\\"hosts\\":[\\"h\\"],\\"namespace\\":'
        '\\"n\\",\\"partition\\":\\"p\\"},{\\"name\\":\\"b\\"}]": if protocol is "tcp", only a single service is '
        'allowed, found 2, spec.listeners[1].services[0].name: Invalid value: "*": if name is "*", protocol must be '
        '"http" but was "tcp", spec.listeners[1].services[0].hosts: Invalid value: "[\\"h\\"]": hosts must be empty '
        'if name is "*", spec.listeners[1].services[0].partition: Invalid value: "p": Consul Enterprise '
        "admin-partitions must be enabled to set service.partition, spec.listeners[1].services[0].namespace: Invalid "
        'value: "n": Consul Enterprise namespaces must be enabled to set service.namespace, '
        'spec.listeners[1].services[0].hosts: Invalid value: "[\\"h\\"]": hosts must be empty if protocol is "tcp"]'),
    "no listeners is valid": ({}, False, False, ""),
    "the full example over http is valid with namespaces and partitions": (
        {**SPEC, "listeners": [{**SPEC["listeners"][0], "protocol": "http"}, SPEC["listeners"][1]]}, True, True, ""),
}


@pytest.mark.parametrize("spec,namespaces,partitions,expected", VALIDATE.values(), ids=VALIDATE.keys())
def test_validate(spec, namespaces, partitions, expected):
    meta = ce.ConsulMeta(namespaces_enabled=namespaces, partitions_enabled=partitions)
    assert message(gateway(spec, name="foo"), meta) == (PREFIX + expected if expected else "")


# --- DefaultNamespaceFields ----------------------------------------------------------------------

DEFAULTS = {
    "disabled": (ce.ConsulMeta(), ""),
    "destinationNS": (ce.ConsulMeta(namespaces_enabled=True, destination_namespace="foo"), "foo"),
    "mirroringEnabledWithoutPrefix": (ce.ConsulMeta(namespaces_enabled=True, mirroring=True), "bar"),
    "mirroringWithPrefix": (ce.ConsulMeta(namespaces_enabled=True, mirroring=True, prefix="ns-"), "ns-bar"),
}
DEFAULT_SPEC = {"listeners": [{"protocol": "tcp", "services": [{"name": "name"},
                                                               {"name": "other-name", "namespace": "other"}]}]}


@pytest.mark.parametrize("meta,ns", DEFAULTS.values(), ids=DEFAULTS.keys())
def test_default_namespace_fields(meta, ns):
    res = gateway(copy.deepcopy(DEFAULT_SPEC), name="foo", namespace="bar")
    out = ce.defaulted(KIND, res, meta)
    services = out["spec"]["listeners"][0]["services"]
    assert services[1] == {"name": "other-name", "namespace": "other"}
    patch = ce.defaulting_patch(KIND, res, meta)
    if not ns:
        assert services[0] == {"name": "name"} and patch == []
    else:
        assert services[0] == {"name": "name", "namespace": ns}
        assert patch == [{"op": "add", "path": "/spec/listeners/0/services/0/namespace", "value": ns}]
    assert res["spec"] == DEFAULT_SPEC, "the input is not changed"


# --- the webhook (generic handler) ---------------------------------------------------------------

def _review(obj: dict, meta: ce.ConsulMeta, existing: list[dict], operation: str = "CREATE") -> dict:
    body = {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
            "request": {"uid": "u1", "operation": operation, "namespace": obj["metadata"]["namespace"],
                        "name": obj["metadata"]["name"], "object": obj}}
    return admission.review(body, KIND, meta, lambda kind: existing)["response"]


def test_webhook_patches_service_namespaces():
    res = gateway({"listeners": [{"protocol": "http", "services": [{"name": "a"}, {"name": "b", "namespace": "x"}]}]},
                  name="gw", namespace="bar")
    response = _review(res, ce.ConsulMeta(namespaces_enabled=True, mirroring=True), [])
    assert response["allowed"] is True and response["patchType"] == "JSONPatch"
    assert response["status"]["reason"] == "valid ingressgateway request"
    assert json.loads(base64.b64decode(response["patch"])) == [
        {"op": "add", "path": "/spec/listeners/0/services/0/namespace", "value": "bar"}]
    assert "patch" not in _review(res, ce.ConsulMeta(), [])


def test_webhook_name_must_be_unique_across_namespaces():
    other = gateway({"listeners": []}, name="gw", namespace="elsewhere")
    res = gateway({"listeners": [{"protocol": "http", "services": [{"name": "*"}]}]}, name="gw", namespace="bar")
    response = _review(res, ce.ConsulMeta(), [other])
    assert response["allowed"] is False
    assert response["status"] == {"code": 400, "message": 'ingressgateway resource with name "gw" is already '
                                  "defined – all ingressgateway resources must have unique names across namespaces"}
    assert _review(res, ce.ConsulMeta(namespaces_enabled=True, mirroring=True), [other])["allowed"] is True
    assert _review(res, ce.ConsulMeta(), [other], operation="UPDATE")["allowed"] is True


def test_webhook_refuses_an_invalid_gateway():
    response = _review(gateway({"listeners": [{"protocol": "udp"}]}, name="gw"), ce.ConsulMeta(), [])
    assert response["allowed"] is False
    assert response["status"]["message"] == ('ingressgateway.consul.hashicorp.com "gw" is invalid: '
                                             'spec.listeners[0].protocol: Invalid value: "udp": must be one of "tcp", '
                                             '"http", "http2", "grpc"')


# --- resources as users write them (after the Consul docs) ---------------------------------------

DOC_SAMPLES = yaml.safe_load_all("""
apiVersion: consul.hashicorp.com/v1alpha1
kind: IngressGateway
metadata: {name: ingress-gateway}
spec:
  listeners:
    - port: 8080
      protocol: http
      services:
        - name: static-server
---
apiVersion: consul.hashicorp.com/v1alpha1
kind: IngressGateway
metadata: {name: ingress-gateway}
spec:
  tls:
    enabled: true
  listeners:
    - port: 8080
      protocol: http
      services:
        - name: api
          hosts: ["api.example.com"]
          requestHeaders:
            add: {x-gateway: ingress}
        - name: "*"
    - port: 9999
      protocol: tcp
      gatewayTLSConfig:
        enabled: true
        gatewayTLSSDSConfig: {clusterName: sds-cluster, certResource: db.example.com}
      services:
        - name: db
""")


@pytest.mark.parametrize("sample", list(DOC_SAMPLES), ids=lambda s: str(len(s["spec"]["listeners"])))
def test_doc_samples_pass_the_schema_and_the_webhook(sample):
    assert schema_errors(sample) == []
    assert message(sample) == ""
    entry = ce.to_consul(KIND, sample, "dc1")
    assert ce.matches_consul(KIND, sample, entry)
