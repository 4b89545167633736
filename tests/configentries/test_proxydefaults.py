"""ProxyDefaults: ported from proxydefaults_types_test.go (ToConsul, MatchesConsul, Validate,
ValidateConfigValid/Invalid)."""

from __future__ import annotations

import pytest

from generator import configentries as ce

from .helpers import DC_META, message, resource

KIND = ce.KINDS["ProxyDefaults"]
TRACING = ('{"http":{"name":"envoy.zipkin","config":{"collector_cluster":"zipkin",'
           '"collector_endpoint":"/api/v1/spans","shared_span_context":false}}}')
SPEC = {
    "config": {"envoy_tracing_json": TRACING},
    "meshGateway": {"mode": "local"},
    "expose": {"checks": True, "paths": [
        {"listenerPort": 80, "path": "/test/path", "localPathPort": 42, "protocol": "tcp"},
        {"listenerPort": 8080, "path": "/root/test/path", "localPathPort": 4201, "protocol": "https"}]},
    "transparentProxy": {"outboundListenerPort": 1000, "dialedDirectly": True},
}
CONSUL = {
    "MeshGateway": {"Mode": "local"},
    "Expose": {"Checks": True, "Paths": [
        {"ListenerPort": 80, "Path": "/test/path", "LocalPathPort": 42, "Protocol": "tcp", "ParsedFromCheck": False},
        {"ListenerPort": 8080, "Path": "/root/test/path", "LocalPathPort": 4201, "Protocol": "https",
         "ParsedFromCheck": False}]},
    "Config": {"envoy_tracing_json": TRACING},
    "TransparentProxy": {"OutboundListenerPort": 1000, "DialedDirectly": True},
}


def test_to_consul_empty_and_every_field():
    assert ce.to_consul(KIND, resource("ProxyDefaults", "global", {}), "datacenter") == {
        "Kind": "proxy-defaults", "Name": "global", "MeshGateway": {}, "Expose": {}, "Meta": DC_META,
        "CreateIndex": 0, "ModifyIndex": 0}
    assert ce.to_consul(KIND, resource("ProxyDefaults", "global", SPEC), "datacenter") == {
        "Kind": "proxy-defaults", "Name": "global", **CONSUL, "Meta": DC_META, "CreateIndex": 0, "ModifyIndex": 0}


def _entry(**fields):
    return {"Kind": "proxy-defaults", "Name": "global", "Namespace": "default", "CreateIndex": 1, "ModifyIndex": 2,
            "Meta": DC_META, **fields}


MATCHES = {
    "empty fields matches": ({}, _entry(), True),
    "all fields populated matches": (SPEC, _entry(**CONSUL), True),
    "mismatched types does not match": ({}, {**_entry(), "Kind": "service-defaults"}, False),
    "empty transparentProxy object from Consul API matches nil pointer on CRD": ({}, _entry(TransparentProxy={}), True),
    "config numbers Consul returns as floats match": ({"config": {"members": 3}}, _entry(Config={"members": 3.0}), True),
    "a changed config value does not match": ({"config": {"protocol": "http"}}, _entry(Config={"protocol": "grpc"}),
                                              False),
}


@pytest.mark.parametrize("spec,entry,matches", MATCHES.values(), ids=MATCHES.keys())
def test_matches_consul(spec, entry, matches):
    assert ce.matches_consul(KIND, resource("ProxyDefaults", "global", spec), entry) is matches


PREFIX = 'proxydefaults.consul.hashicorp.com "global" is invalid: '
VALIDATE = {
    "meshgateway.mode": ({"meshGateway": {"mode": "foobar"}},
                         'spec.meshGateway.mode: Invalid value: "foobar": must be one of "remote", "local", "none", ""'),
    "expose.paths[].protocol": (
        {"expose": {"paths": [{"protocol": "invalid-protocol", "path": "/valid-path"}]}},
        'spec.expose.paths[0].protocol: Invalid value: "invalid-protocol": must be one of "http", "http2"'),
    "expose.paths[].path": ({"expose": {"paths": [{"protocol": "http", "path": "invalid-path"}]}},
                            "spec.expose.paths[0].path: Invalid value: \"invalid-path\": must begin with a '/'"),
    "transparentProxy.outboundListenerPort": (
        {"transparentProxy": {"outboundListenerPort": 1000}},
        "spec.transparentProxy.outboundListenerPort: Invalid value: 1000: use the annotation "
        "`consul.hashicorp.com/transparent-proxy-outbound-listener-port` to configure the Outbound Listener Port"),
    "mode": ({"mode": "transparent"},
             'spec.mode: Invalid value: "transparent": use the annotation `consul.hashicorp.com/transparent-proxy` to '
             "configure the Transparent Proxy Mode"),
    "multi-error": (
        {"meshGateway": {"mode": "invalid-mode"},
         "expose": {"paths": [{"protocol": "invalid-protocol", "path": "invalid-path"}]},
         "transparentProxy": {"outboundListenerPort": 1000}, "mode": "transparent"},
        '[spec.meshGateway.mode: Invalid value: "invalid-mode": must be one of "remote", "local", "none", "", '
        "spec.transparentProxy.outboundListenerPort: Invalid value: 1000: use the annotation "
        "`consul.hashicorp.com/transparent-proxy-outbound-listener-port` to configure the Outbound Listener Port, "
        'spec.mode: Invalid value: "transparent": use the annotation `consul.hashicorp.com/transparent-proxy` to '
        "configure the Transparent Proxy Mode, spec.expose.paths[0].path: Invalid value: \"invalid-path\": must "
        "begin with a '/', spec.expose.paths[0].protocol: Invalid value: \"invalid-protocol\": must be one of "
        '"http", "http2"]'),
    "json literal config": ({"config": 1}, "spec.config: Invalid value: json.RawMessage{0x31}: must be valid map "
                            "value: json: cannot unmarshal number into Go value of type map[string]interface {}"),
}


@pytest.mark.parametrize("spec,expected", VALIDATE.values(), ids=VALIDATE.keys())
def test_validate(spec, expected):
    assert message(resource("ProxyDefaults", "global", spec)) == PREFIX + expected


@pytest.mark.parametrize("config", [
    {"envoy_tracing_json": TRACING}, {"protocol": "http"}, {"members": 3},
    {"envoy_tracing_json": TRACING, "protocol": "http"}, {"protocol": "https", "members": 3}, None])
def test_validate_config_valid(config):
    assert message(resource("ProxyDefaults", "global", {"config": config})) == ""


@pytest.mark.parametrize("config", [TRACING, "protocol: http", [1, 2, 3, 4], 1, True])
def test_validate_config_invalid(config):
    assert "spec.config: Invalid value: json.RawMessage{" in message(resource("ProxyDefaults", "global",
                                                                               {"config": config}))
    assert "must be valid map value: json: cannot unmarshal" in message(resource("ProxyDefaults", "global",
                                                                                   {"config": config}))


def test_global_kind_lives_in_the_default_consul_namespace():
    res = resource("ProxyDefaults", "global", {}, namespace="kube")
    assert ce.consul_namespace(KIND, res, ce.ConsulMeta()) == ""
    assert ce.consul_namespace(KIND, res, ce.ConsulMeta(namespaces_enabled=True, mirroring=True, prefix="p-")) == \
        "default"
    assert KIND.fixed_name == "global"
