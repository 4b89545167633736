"""ServiceRouter: ported from servicerouter_types_test.go (ToConsul, MatchesConsul, Validate,
DefaultNamespaceFields), plus the exact multi-error messages, the JSON dumps they embed and the
webhook's defaulting patch."""

from __future__ import annotations

import pytest
import yaml

from generator import configentries as ce

from .helpers import DC_META, message, resource
from .test_samples import schema_errors

KIND = ce.KINDS["ServiceRouter"]
HEADERS_IN = {"add": {"foo": "bar", "source": "dest"}, "set": {"bar": "baz", "key": "car"},
              "remove": ["foo", "bar", "baz"]}
HEADERS_OUT = {"add": {"doo": "var", "aource": "sest"}, "set": {"var": "vaz", "jey": "xar"},
               "remove": ["doo", "var", "vaz"]}
SPEC = {"routes": [{
    "match": {"http": {
        "pathExact": "pathExact", "pathPrefix": "pathPrefix", "pathRegex": "pathRegex",
        "header": [{"name": "name", "present": True, "exact": "exact", "prefix": "prefix", "suffix": "suffix",
                    "regex": "regex", "invert": True}],
        "queryParam": [{"name": "name", "present": True, "exact": "exact", "regex": "regex"}],
        "methods": ["method1", "method2"]}},
    "destination": {
        "service": "service", "serviceSubset": "serviceSubset", "namespace": "namespace",
        "prefixRewrite": "prefixRewrite", "requestTimeout": "1s", "numRetries": 1, "retryOnConnectFailure": True,
        "retryOnStatusCodes": [500, 400], "requestHeaders": HEADERS_IN, "responseHeaders": HEADERS_OUT},
}]}
CONSUL = {"Routes": [{
    "Match": {"HTTP": {
        "PathExact": "pathExact", "PathPrefix": "pathPrefix", "PathRegex": "pathRegex",
        "Header": [{"Name": "name", "Present": True, "Exact": "exact", "Prefix": "prefix", "Suffix": "suffix",
                    "Regex": "regex", "Invert": True}],
        "QueryParam": [{"Name": "name", "Present": True, "Exact": "exact", "Regex": "regex"}],
        "Methods": ["method1", "method2"]}},
    "Destination": {
        "Service": "service", "ServiceSubset": "serviceSubset", "Namespace": "namespace",
        "PrefixRewrite": "prefixRewrite", "RequestTimeout": "1s", "NumRetries": 1, "RetryOnConnectFailure": True,
        "RetryOnStatusCodes": [500, 400],
        "RequestHeaders": {"Add": {"foo": "bar", "source": "dest"}, "Set": {"bar": "baz", "key": "car"},
                           "Remove": ["foo", "bar", "baz"]},
        "ResponseHeaders": {"Add": {"doo": "var", "aource": "sest"}, "Set": {"var": "vaz", "jey": "xar"},
                            "Remove": ["doo", "var", "vaz"]}},
}]}
TOP = {"Meta": DC_META, "CreateIndex": 0, "ModifyIndex": 0}


def test_to_consul_empty_fields():
    assert ce.to_consul(KIND, resource("ServiceRouter", "name", {}), "datacenter") == {
        "Kind": "service-router", "Name": "name", **TOP}
    assert ce.to_consul(KIND, resource("ServiceRouter", "name"), "datacenter") == {
        "Kind": "service-router", "Name": "name", **TOP}


def test_to_consul_every_field_set():
    assert ce.to_consul(KIND, resource("ServiceRouter", "name", SPEC), "datacenter") == {
        "Kind": "service-router", "Name": "name", **CONSUL, **TOP}


def test_to_consul_omits_what_the_go_client_omits():
    """Match/Destination pointers absent stay absent; a header Name is always sent; a zero
    RequestTimeout is left out; a route with neither is `{}`."""
    spec = {"routes": [{}, {"match": {"http": {"header": [{"present": True}]}}},
                       {"destination": {"requestTimeout": "0s", "numRetries": 0}}]}
    assert ce.to_consul(KIND, resource("ServiceRouter", "r", spec), "dc")["Routes"] == [
        {}, {"Match": {"HTTP": {"Header": [{"Name": "", "Present": True}]}}}, {"Destination": {}}]


def test_request_timeout_is_a_go_duration_string():
    spec = {"routes": [{"destination": {"requestTimeout": "90s"}}]}
    assert ce.to_consul(KIND, resource("ServiceRouter", "r", spec), "dc")["Routes"][0]["Destination"] == {
        "RequestTimeout": "1m30s"}


@pytest.mark.parametrize("spec,entry,matches", [
    pytest.param({}, {"Kind": "service-router", "Name": "name", "Namespace": "namespace", "CreateIndex": 1,
                      "ModifyIndex": 2, "Meta": DC_META}, True, id="empty fields matches"),
    pytest.param(SPEC, {"Name": "name", "Kind": "service-router", **CONSUL}, True, id="all fields set matches"),
    pytest.param({}, {"Kind": "proxy-defaults", "Name": "name", "Namespace": "namespace", "CreateIndex": 1,
                      "ModifyIndex": 2}, False, id="mismatched type does not match"),
    pytest.param(SPEC, {"Name": "other", "Kind": "service-router", **CONSUL}, False, id="another name"),
    pytest.param({"routes": [{"destination": {"requestTimeout": "1m"}}]},
                 {"Kind": "service-router", "Name": "name", "Routes": [{"Destination": {"RequestTimeout": "60s"}}]},
                 True, id="durations compare as durations"),
    pytest.param({"routes": [{"destination": {"requestTimeout": "1m"}}]},
                 {"Kind": "service-router", "Name": "name", "Routes": [{"Destination": {"RequestTimeout": "61s"}}]},
                 False, id="another timeout"),
    pytest.param({"routes": [{"destination": {"service": "a"}}]},
                 {"Kind": "service-router", "Name": "name",
                  "Routes": [{"Destination": {"Service": "a", "Partition": "p", "IdleTimeout": "5s",
                                              "RetryOn": ["reset"]}}]},
                 True, id="keys the Go type does not know are dropped"),
    pytest.param({"routes": [{"destination": {"service": "a", "retryOnStatusCodes": []}}]},
                 {"Kind": "service-router", "Name": "name", "Routes": [{"Destination": {"Service": "a"}}]},
                 True, id="empty list equals absent"),
])
def test_matches_consul(spec, entry, matches):
    assert ce.matches_consul(KIND, resource("ServiceRouter", "name", spec), entry) is matches


def test_matches_its_own_entry_as_consul_stores_it():
    entry = ce.to_consul(KIND, resource("ServiceRouter", "name", SPEC), "dc1")
    entry.update({"Namespace": "default", "Partition": "default", "CreateIndex": 7, "ModifyIndex": 9})
    assert ce.matches_consul(KIND, resource("ServiceRouter", "name", SPEC), entry)


PREFIX = 'servicerouter.consul.hashicorp.com "foo" is invalid: '
NS_A = ('spec.routes[0].destination.namespace: Invalid value: "namespace-a": Consul Enterprise namespaces must be '
        "enabled to set destination.namespace")
NS_B = ('spec.routes[1].destination.namespace: Invalid value: "namespace-b": Consul Enterprise namespaces must be '
        "enabled to set destination.namespace")
VALIDATE = {
    "namespaces enabled: valid": (
        [{"match": {"http": {"pathPrefix": "/admin"}},
          "destination": {"service": "destA", "namespace": "namespace-a"}}],
        True, ""),
    "namespaces disabled: valid": (
        [{"match": {"http": {"pathPrefix": "/admin"}}, "destination": {"service": "destA"}}], False, ""),
    "http match queryParam": (
        [{"match": {"http": {"pathExact": "exact", "pathPrefix": "prefix", "pathRegex": "regex",
                             "queryParam": [{"name": "name", "present": True, "exact": "exact", "regex": "regex"}]}}}],
        False,
        '[spec.routes[0].match.http: Invalid value: "{\\"pathExact\\":\\"exact\\",\\"pathPrefix\\":\\"prefix\\",'
        '\\"pathRegex\\":\\"regex\\",\\"queryParam\\":[{\\"name\\":\\"name\\",\\"present\\":true,\\"exact\\":'
        '\\"exact\\",\\"regex\\":\\"regex\\"}]}": at most only one of pathExact, pathPrefix, or pathRegex may be '
        'configured, spec.routes[0].match.http.pathExact: Invalid value: "exact": must begin with a \'/\', '
        'spec.routes[0].match.http.pathPrefix: Invalid value: "prefix": must begin with a \'/\', '
        'spec.routes[0].match.http.queryParam[0]: Invalid value: "{\\"name\\":\\"name\\",\\"present\\":true,'
        '\\"exact\\":\\"exact\\",\\"regex\\":\\"regex\\"}": at most only one of exact, regex, or present may be '
        "configured]"),
    "http match header": (
        [{"match": {"http": {"pathExact": "exact", "pathPrefix": "prefix", "pathRegex": "regex",
                             "header": [{"name": "name", "present": True, "exact": "exact", "prefix": "prefix",
                                         "suffix": "suffix", "regex": "regex"}]}}}],
        False,
        '[spec.routes[0].match.http: Invalid value: "{\\"pathExact\\":\\"exact\\",\\"pathPrefix\\":\\"prefix\\",'
        '\\"pathRegex\\":\\"regex\\",\\"header\\":[{\\"name\\":\\"name\\",\\"present\\":true,\\"exact\\":\\"exact\\",'
        '\\"prefix\\":\\"prefix\\",\\"suffix\\":\\"suffix\\",\\"regex\\":\\"regex\\"}]}": at most only one of '
        'pathExact, pathPrefix, or pathRegex may be configured, spec.routes[0].match.http.pathExact: Invalid value: '
        '"exact": must begin with a \'/\', spec.routes[0].match.http.pathPrefix: Invalid value: "prefix": must '
        'begin with a \'/\', spec.routes[0].match.http.header[0]: Invalid value: "{\\"name\\":\\"name\\",'
        '\\"present\\":true,\\"exact\\":\\"exact\\",\\"prefix\\":\\"prefix\\",\\"suffix\\":\\"suffix\\",\\"regex\\":'
        '\\"regex\\"}": at most only one of exact, prefix, suffix, regex, or present may be configured]'),
    "destination and prefixRewrite": (
        [{"destination": {"prefixRewrite": "prefixRewrite"}, "match": {"http": {}}}], False,
        'spec.routes[0]: Invalid value: "{\\"match\\":{\\"http\\":{}},\\"destination\\":{\\"prefixRewrite\\":'
        '\\"prefixRewrite\\",\\"requestTimeout\\":\\"0s\\"}}": destination.prefixRewrite requires that either '
        "match.http.pathPrefix or match.http.pathExact be configured on this route"),
    "prefixRewrite without any match": (
        [{"destination": {"prefixRewrite": "/x", "requestTimeout": "90s"}}], False,
        'spec.routes[0]: Invalid value: "{\\"destination\\":{\\"prefixRewrite\\":\\"/x\\",\\"requestTimeout\\":'
        '\\"1m30s\\"}}": destination.prefixRewrite requires that either match.http.pathPrefix or '
        "match.http.pathExact be configured on this route"),
    "prefixRewrite with pathExact: valid": (
        [{"match": {"http": {"pathExact": "/a"}}, "destination": {"prefixRewrite": "/b"}}], False, ""),
    "prefixRewrite with only pathRegex": (
        [{"match": {"http": {"pathRegex": "/a.*"}}, "destination": {"prefixRewrite": "/b"}}], False,
        'spec.routes[0]: Invalid value: "{\\"match\\":{\\"http\\":{\\"pathRegex\\":\\"/a.*\\"}},\\"destination\\":'
        '{\\"prefixRewrite\\":\\"/b\\",\\"requestTimeout\\":\\"0s\\"}}": destination.prefixRewrite requires that '
        "either match.http.pathPrefix or match.http.pathExact be configured on this route"),
    "namespaces disabled: single destination namespace specified": (
        [{"destination": {"namespace": "namespace-a"}}], False, NS_A),
    "namespaces disabled: multiple destination namespaces specified": (
        [{"destination": {"namespace": "namespace-a"}}, {"destination": {"namespace": "namespace-b"}}], False,
        f"[{NS_A}, {NS_B}]"),
    "route rules of every route first, then namespaces": (
        [{"destination": {"namespace": "namespace-a"}}, {"match": {"http": {"pathPrefix": "x"}}}], False,
        f'[spec.routes[1].match.http.pathPrefix: Invalid value: "x": must begin with a \'/\', {NS_A}]'),
    "invert, pathRegex and methods are not checked": (
        [{"match": {"http": {"pathRegex": "no-slash", "methods": ["NOPE"],
                             "header": [{"name": "h", "exact": "x", "invert": True}],
                             "queryParam": [{"name": "q", "present": True}]}}}], False, ""),
    "a header without a name is dumped with an empty name": (
        [{"match": {"http": {"header": [{"exact": "a", "regex": "b"}]}}}], False,
        'spec.routes[0].match.http.header[0]: Invalid value: "{\\"name\\":\\"\\",\\"exact\\":\\"a\\",\\"regex\\":'
        '\\"b\\"}": at most only one of exact, prefix, suffix, regex, or present may be configured'),
}


@pytest.mark.parametrize("routes,namespaces,expected", VALIDATE.values(), ids=VALIDATE.keys())
def test_validate(routes, namespaces, expected):
    got = message(resource("ServiceRouter", "foo", {"routes": routes}), ce.ConsulMeta(namespaces_enabled=namespaces))
    assert got == (PREFIX + expected if expected else "")


def test_a_bad_request_timeout_is_invalid():
    got = message(resource("ServiceRouter", "foo", {"routes": [{"destination": {"requestTimeout": "soon"}}]}))
    assert got.startswith(PREFIX + 'spec.routes[0].destination.requestTimeout: Invalid value: "soon": ')


DEFAULTS = {
    "disabled": (ce.ConsulMeta(), ""),
    "destinationNS": (ce.ConsulMeta(namespaces_enabled=True, destination_namespace="foo"), "foo"),
    "mirroringEnabledWithoutPrefix": (ce.ConsulMeta(namespaces_enabled=True, mirroring=True), "bar"),
    "mirroringWithPrefix": (ce.ConsulMeta(namespaces_enabled=True, mirroring=True, prefix="ns-"), "ns-bar"),
}


@pytest.mark.parametrize("meta,expected", DEFAULTS.values(), ids=DEFAULTS.keys())
def test_default_namespace_fields(meta, expected):
    res = resource("ServiceRouter", "foo", {"routes": [
        {"match": {"http": {"pathPrefix": "/admin"}}, "destination": {"service": "destA"}},
        {"match": {"http": {"pathPrefix": "/other"}}, "destination": {"service": "destB", "namespace": "other"}},
        {"match": {"http": {"pathPrefix": "/none"}}},
    ]}, namespace="bar")
    out = ce.defaulted(KIND, res, meta)
    routes = out["spec"]["routes"]
    assert routes[0]["destination"].get("namespace", "") == expected
    assert routes[1]["destination"]["namespace"] == "other"
    assert "destination" not in routes[2], "a route without a destination gets none"
    assert "namespace" not in res["spec"]["routes"][0]["destination"], "the input is not changed"
    patch = ce.defaulting_patch(KIND, res, meta)
    assert patch == ([{"op": "add", "path": "/spec/routes/0/destination/namespace", "value": expected}]
                     if expected else [])


def test_defaulting_then_validation_passes_with_namespaces():
    meta = ce.ConsulMeta(namespaces_enabled=True, destination_namespace="foo")
    res = resource("ServiceRouter", "foo", {"routes": [{"destination": {"service": "a"}}]})
    assert message(ce.defaulted(KIND, res, meta), meta) == ""


def test_consul_namespace_follows_the_kubernetes_namespace():
    res = resource("ServiceRouter", "foo", {}, namespace="bar")
    assert ce.consul_namespace(KIND, res, ce.ConsulMeta()) == ""
    mirroring = ce.ConsulMeta(namespaces_enabled=True, mirroring=True, prefix="k-")
    assert ce.consul_namespace(KIND, res, mirroring) == "k-bar"
    assert ce.consul_namespace(KIND, res, ce.ConsulMeta(namespaces_enabled=True, destination_namespace="d")) == "d"


def test_names():
    assert (KIND.plural, KIND.singular, KIND.consul_kind, KIND.global_resource) == (
        "servicerouters", "servicerouter", "service-router", False)


SAMPLE = """
apiVersion: consul.hashicorp.com/v1alpha1
kind: ServiceRouter
metadata: {name: web}
spec:
  routes:
    - match:
        http:
          pathPrefix: /admin
          methods: [GET, POST]
          header: [{name: x-debug, present: true}]
          queryParam: [{name: version, exact: "2"}]
      destination:
        service: admin
        prefixRewrite: /
        requestTimeout: 10s
        numRetries: 3
        retryOnConnectFailure: true
        retryOnStatusCodes: [503]
        requestHeaders: {set: {x-web-version: "from-router"}}
    - match: {http: {pathExact: /health}}
      destination: {service: web, serviceSubset: v2}
"""


def test_a_sample_as_users_write_it():
    """After the Consul docs' service-router examples: the CRD schema (strict) and the webhook accept
    it, and Consul gets the Go client's JSON."""
    sample = yaml.safe_load(SAMPLE)
    assert schema_errors(sample) == []
    assert message(sample) == ""
    routes = ce.to_consul(KIND, sample, "dc1")["Routes"]
    assert routes[0]["Destination"] == {"Service": "admin", "PrefixRewrite": "/", "RequestTimeout": "10s",
                                        "NumRetries": 3, "RetryOnConnectFailure": True, "RetryOnStatusCodes": [503],
                                        "RequestHeaders": {"Set": {"x-web-version": "from-router"}}}
    assert routes[1] == {"Match": {"HTTP": {"PathExact": "/health"}},
                         "Destination": {"Service": "web", "ServiceSubset": "v2"}}
    assert schema_errors({**sample, "spec": {"routes": [{"match": {"http": {"header": [{"exact": "x"}]}}}]}}) \
        == ["spec.routes.0.match.http.header.0: 'name' is a required property"]
