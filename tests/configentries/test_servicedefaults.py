"""ServiceDefaults: ported from the reference's servicedefaults_types_test.go (ToConsul,
MatchesConsul, Validate), plus the PUT body of the reference's worked example."""

from __future__ import annotations

import json

import pytest

from generator import configentries as ce
from generator.configentries.gofmt import marshal

from .helpers import DC_META, message, resource

KIND = ce.KINDS["ServiceDefaults"]
EMPTY = {"MeshGateway": {}, "Expose": {}}


def test_put_body_of_the_reference_example():
    entry = ce.to_consul(KIND, resource("ServiceDefaults", "foo", {"protocol": "http"}), "dc1")
    assert marshal(entry) == ('{"Kind":"service-defaults","Name":"foo","Protocol":"http","MeshGateway":{},"Expose":{},'
                              '"Meta":{"consul.hashicorp.com/source-datacenter":"dc1","external-source":"kubernetes"},'
                              '"CreateIndex":0,"ModifyIndex":0}')


def test_to_consul_empty_fields():
    entry = ce.to_consul(KIND, resource("ServiceDefaults", "foo", {}), "datacenter")
    assert entry == {"Kind": "service-defaults", "Name": "foo", **EMPTY, "Meta": DC_META, "CreateIndex": 0,
                     "ModifyIndex": 0}


def _upstream(name: str, timeout: int, limit: int, failures: int, mode: str) -> dict:
    return {"name": name, "namespace": "ns", "partition": "part", "envoyListenerJSON": '{"key": "value"}',
            "envoyClusterJSON": '{"key": "value"}', "protocol": "http2", "connectTimeoutMs": timeout,
            "limits": {"maxConnections": limit, "maxPendingRequests": limit, "maxConcurrentRequests": limit},
            "passiveHealthCheck": {"interval": "2s", "maxFailures": failures}, "meshGateway": {"mode": mode}}


def _consul_upstream(name: str, timeout: int, limit: int, failures: int, mode: str) -> dict:
    return {"Name": name, "Namespace": "ns", "Partition": "part", "EnvoyListenerJSON": '{"key": "value"}',
            "EnvoyClusterJSON": '{"key": "value"}', "Protocol": "http2", "ConnectTimeoutMs": timeout,
            "Limits": {"MaxConnections": limit, "MaxPendingRequests": limit, "MaxConcurrentRequests": limit},
            "PassiveHealthCheck": {"Interval": 2_000_000_000, "MaxFailures": failures}, "MeshGateway": {"Mode": mode}}


EVERY_FIELD = {
    "protocol": "https",
    "meshGateway": {"mode": "local"},
    "expose": {"checks": True, "paths": [
        {"listenerPort": 80, "path": "/path", "localPathPort": 9000, "protocol": "tcp"},
        {"listenerPort": 8080, "path": "/another-path", "localPathPort": 9091, "protocol": "http2"}]},
    "externalSNI": "external-sni",
    "transparentProxy": {"outboundListenerPort": 1000, "dialedDirectly": True},
    "upstreamConfig": {
        "defaults": _upstream("upstream-default", 10, 10, 20, "local"),
        "overrides": [_upstream("upstream-override-1", 15, 5, 10, "remote"),
                      _upstream("upstream-default", 10, 2, 10, "remote")]},
}
EVERY_FIELD_CONSUL = {
    "Protocol": "https",
    "MeshGateway": {"Mode": "local"},
    "Expose": {"Checks": True, "Paths": [
        {"ListenerPort": 80, "Path": "/path", "LocalPathPort": 9000, "Protocol": "tcp", "ParsedFromCheck": False},
        {"ListenerPort": 8080, "Path": "/another-path", "LocalPathPort": 9091, "Protocol": "http2",
         "ParsedFromCheck": False}]},
    "ExternalSNI": "external-sni",
    "TransparentProxy": {"OutboundListenerPort": 1000, "DialedDirectly": True},
    "UpstreamConfig": {
        "Defaults": _consul_upstream("upstream-default", 10, 10, 20, "local"),
        "Overrides": [_consul_upstream("upstream-override-1", 15, 5, 10, "remote"),
                      _consul_upstream("upstream-default", 10, 2, 10, "remote")]},
}


def test_to_consul_every_field_set():
    entry = ce.to_consul(KIND, resource("ServiceDefaults", "foo", EVERY_FIELD), "datacenter")
    assert entry == {"Kind": "service-defaults", "Name": "foo", **EVERY_FIELD_CONSUL, "Meta": DC_META,
                     "CreateIndex": 0, "ModifyIndex": 0}


def test_to_consul_unset_limits_are_null_and_mode_never_sent():
    spec = {"mode": "transparent", "meshGateway": {"mode": "bogus"},
            "upstreamConfig": {"defaults": {"limits": {"maxConnections": 0}, "passiveHealthCheck": {}}}}
    entry = ce.to_consul(KIND, resource("ServiceDefaults", "foo", spec), "dc1")
    assert "Mode" not in entry
    assert entry["MeshGateway"] == {}  # an unknown mode reaches Consul as the default
    assert entry["UpstreamConfig"] == {"Defaults": {
        "Limits": {"MaxConnections": 0, "MaxPendingRequests": None, "MaxConcurrentRequests": None},
        "PassiveHealthCheck": {"MaxFailures": 0}, "MeshGateway": {}}}


def _consul(**fields) -> dict:
    return {"Kind": "service-defaults", "Name": "my-test-service", "Namespace": "namespace", "CreateIndex": 1,
            "ModifyIndex": 2, "Meta": DC_META, **fields}


MATCHES = {
    "empty fields matches": ({}, _consul(), True),
    "all fields populated matches": (EVERY_FIELD, _consul(**EVERY_FIELD_CONSUL), True),
    "mismatched types does not match": ({}, {**_consul(), "Kind": "proxy-defaults"}, False),
    "another name does not match": ({}, {**_consul(), "Name": "other"}, False),
    "empty transparentProxy object from Consul API matches nil pointer on CRD":
        ({}, _consul(TransparentProxy={}), True),
    "empty transparentProxy object from Consul API matches empty object on CRD":
        ({"transparentProxy": {}}, _consul(TransparentProxy={}), True),
    "a changed protocol does not match": ({"protocol": "http"}, _consul(Protocol="grpc"), False),
    "a removed expose path does not match": (
        {"expose": {"paths": [{"path": "/a"}]}}, _consul(Expose={"Paths": [{"Path": "/a"}, {"Path": "/b"}]}), False),
    "an interval Consul returns as a string matches": (
        {"upstreamConfig": {"defaults": {"passiveHealthCheck": {"interval": "1m30s"}}}},
        _consul(UpstreamConfig={"Defaults": {"PassiveHealthCheck": {"Interval": "1m30s"}}}), True),
    "a different interval does not match": (
        {"upstreamConfig": {"defaults": {"passiveHealthCheck": {"interval": "2s"}}}},
        _consul(UpstreamConfig={"Defaults": {"PassiveHealthCheck": {"Interval": 3_000_000_000}}}), False),
    "keys Consul adds that the Go type lacks are ignored": ({}, _consul(Whatever="x"), True),
    "a Mode set outside Kubernetes does not match": ({}, _consul(Mode="transparent"), False),
    "a limit of 0 is not an unset limit": (
        {"upstreamConfig": {"defaults": {"limits": {"maxConnections": 0}}}},
        _consul(UpstreamConfig={"Defaults": {"Limits": {"MaxConnections": None}}}), False),
}


@pytest.mark.parametrize("spec,entry,matches", MATCHES.values(), ids=MATCHES.keys())
def test_matches_consul(spec, entry, matches):
    assert ce.matches_consul(KIND, resource("ServiceDefaults", "my-test-service", spec), entry) is matches


def test_matches_what_consul_returns_after_a_json_round_trip():
    res = resource("ServiceDefaults", "foo", EVERY_FIELD)
    stored = json.loads(json.dumps(ce.to_consul(KIND, res, "dc1")))
    stored.update(Namespace="default", Partition="default", CreateIndex=7, ModifyIndex=9)
    assert ce.matches_consul(KIND, res, stored)


PREFIX = 'servicedefaults.consul.hashicorp.com "my-service" is invalid: '
MESH_MODES = 'must be one of "remote", "local", "none", ""'
VALIDATE = {
    "valid": ({"meshGateway": {"mode": "remote"},
               "expose": {"checks": False, "paths": [{"listenerPort": 100, "path": "/bar", "localPathPort": 1000}]}},
              False, ""),
    "protocol": ({"protocol": "foo"}, False,
                 'spec.protocol: Invalid value: "foo": must be one of "tcp", "http", "http2", "grpc"'),
    "meshgateway.mode": ({"meshGateway": {"mode": "foobar"}}, False,
                         f'spec.meshGateway.mode: Invalid value: "foobar": {MESH_MODES}'),
    "expose.paths[].protocol": (
        {"expose": {"paths": [{"protocol": "invalid-protocol", "path": "/valid-path"}]}}, False,
        'spec.expose.paths[0].protocol: Invalid value: "invalid-protocol": must be one of "http", "http2"'),
    "expose.paths[].path": (
        {"expose": {"paths": [{"protocol": "http", "path": "invalid-path"}]}}, False,
        "spec.expose.paths[0].path: Invalid value: \"invalid-path\": must begin with a '/'"),
    "transparentProxy.outboundListenerPort": (
        {"transparentProxy": {"outboundListenerPort": 1000}}, False,
        "spec.transparentProxy.outboundListenerPort: Invalid value: 1000: use the annotation "
        "`consul.hashicorp.com/transparent-proxy-outbound-listener-port` to configure the Outbound Listener Port"),
    "mode": ({"mode": "transparent"}, False,
             'spec.mode: Invalid value: "transparent": use the annotation `consul.hashicorp.com/transparent-proxy` '
             "to configure the Transparent Proxy Mode"),
    "upstreamConfig.defaults.meshGateway": (
        {"upstreamConfig": {"defaults": {"meshGateway": {"mode": "foo"}}}}, False,
        f'spec.upstreamConfig.defaults.meshGateway.mode: Invalid value: "foo": {MESH_MODES}'),
    "upstreamConfig.defaults.name": (
        {"upstreamConfig": {"defaults": {"name": "foobar"}}}, False,
        'spec.upstreamConfig.defaults.name: Invalid value: "foobar": upstream.name for a default upstream must be ""'),
    "upstreamConfig.defaults.partition": (
        {"upstreamConfig": {"defaults": {"partition": "upstream"}}}, False,
        'spec.upstreamConfig.defaults.partition: Invalid value: "upstream": Consul Enterprise Admin Partitions '
        "must be enabled to set upstream.partition"),
    "upstreamConfig.defaults.partition with partitions": (
        {"upstreamConfig": {"defaults": {"partition": "upstream"}}}, True, ""),
    "upstreamConfig.overrides.meshGateway": (
        {"upstreamConfig": {"overrides": [{"name": "override", "meshGateway": {"mode": "foo"}}]}}, False,
        f'spec.upstreamConfig.overrides[0].meshGateway.mode: Invalid value: "foo": {MESH_MODES}'),
    "upstreamConfig.overrides.name": (
        {"upstreamConfig": {"overrides": [{"name": ""}]}}, False,
        'spec.upstreamConfig.overrides[0].name: Invalid value: "": upstream.name for an override upstream cannot be ""'),
    "upstreamConfig.overrides.partition": (
        {"upstreamConfig": {"overrides": [{"name": "service", "partition": "upstream"}]}}, False,
        'spec.upstreamConfig.overrides[0].partition: Invalid value: "upstream": Consul Enterprise Admin Partitions '
        "must be enabled to set upstream.partition"),
    "multi-error": (
        {"protocol": "invalid", "meshGateway": {"mode": "invalid-mode"},
         "expose": {"paths": [{"protocol": "invalid-protocol", "path": "invalid-path"}]},
         "transparentProxy": {"outboundListenerPort": 1000}, "mode": "transparent"}, False,
        '[spec.protocol: Invalid value: "invalid": must be one of "tcp", "http", "http2", "grpc", '
        'spec.meshGateway.mode: Invalid value: "invalid-mode": must be one of "remote", "local", "none", "", '
        "spec.transparentProxy.outboundListenerPort: Invalid value: 1000: use the annotation "
        "`consul.hashicorp.com/transparent-proxy-outbound-listener-port` to configure the Outbound Listener Port, "
        'spec.mode: Invalid value: "transparent": use the annotation `consul.hashicorp.com/transparent-proxy` to '
        "configure the Transparent Proxy Mode, spec.expose.paths[0].path: Invalid value: \"invalid-path\": must "
        "begin with a '/', spec.expose.paths[0].protocol: Invalid value: \"invalid-protocol\": must be one of "
        '"http", "http2"]'),
    # Beyond the reference (its webhook fails earlier, decoding the object): a bad duration names its field.
    "bad duration": ({"upstreamConfig": {"defaults": {"passiveHealthCheck": {"interval": "10"}}}}, False,
                     'spec.upstreamConfig.defaults.passiveHealthCheck.interval: Invalid value: "10": '
                     'time: missing unit in duration "10"'),
}


@pytest.mark.parametrize("spec,partitions,expected", VALIDATE.values(), ids=VALIDATE.keys())
def test_validate(spec, partitions, expected):
    meta = ce.ConsulMeta(partitions_enabled=partitions, partition="default" if partitions else "")
    got = message(resource("ServiceDefaults", "my-service", spec), meta)
    assert got == (PREFIX + expected if expected else "")


def test_no_namespace_defaulting():
    res = resource("ServiceDefaults", "foo", {"protocol": "http"}, namespace="kube")
    meta = ce.ConsulMeta(namespaces_enabled=True, destination_namespace="other")
    assert ce.defaulting_patch(KIND, res, meta) == []
    assert ce.defaulted(KIND, res, meta) == res


@pytest.mark.parametrize("meta,expected", [
    (ce.ConsulMeta(), ""),
    (ce.ConsulMeta(namespaces_enabled=True, destination_namespace="other"), "other"),
    (ce.ConsulMeta(namespaces_enabled=True, mirroring=True), "kube"),
    (ce.ConsulMeta(namespaces_enabled=True, mirroring=True, prefix="prefix-"), "prefix-kube"),
])
def test_consul_namespace(meta, expected):
    res = resource("ServiceDefaults", "foo", {}, namespace="kube")
    assert ce.consul_namespace(KIND, res, meta) == expected
