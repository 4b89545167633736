"""ServiceResolver: ported from serviceresolver_types_test.go (ToConsul, MatchesConsul, Validate),
plus exact multi-error messages (failover keys in sorted order), duration forms (ConnectTimeout a Go
string, CookieConfig.TTL integer nanoseconds) and the absence of namespace defaulting."""

from __future__ import annotations

import pytest
import yaml

from generator import configentries as ce

from .helpers import DC_META, message, resource
from .test_samples import schema_errors

KIND = ce.KINDS["ServiceResolver"]
SPEC = {
    "defaultSubset": "default_subset",
    "subsets": {"subset1": {"filter": "filter1", "onlyPassing": True},
                "subset2": {"filter": "filter2", "onlyPassing": False}},
    "redirect": {"service": "redirect", "serviceSubset": "redirect_subset", "namespace": "redirect_namespace",
                 "datacenter": "redirect_datacenter"},
    "failover": {"failover1": {"service": "failover1", "serviceSubset": "failover_subset1",
                               "namespace": "failover_namespace1", "datacenters": ["failover1_dc1", "failover1_dc2"]},
                 "failover2": {"service": "failover2", "serviceSubset": "failover_subset2",
                               "namespace": "failover_namespace2", "datacenters": ["failover2_dc1", "failover2_dc2"]}},
    "connectTimeout": "1s",
    "loadBalancer": {"policy": "policy", "ringHashConfig": {"minimumRingSize": 1, "maximumRingSize": 2},
                     "leastRequestConfig": {"choiceCount": 1},
                     "hashPolicies": [{"field": "field", "fieldValue": "value",
                                       "cookieConfig": {"session": True, "ttl": "1ns", "path": "path"},
                                       "sourceIP": True, "terminal": True}]},
}
CONSUL = {
    "DefaultSubset": "default_subset",
    "Subsets": {"subset1": {"Filter": "filter1", "OnlyPassing": True}, "subset2": {"Filter": "filter2"}},
    "Redirect": {"Service": "redirect", "ServiceSubset": "redirect_subset", "Namespace": "redirect_namespace",
                 "Datacenter": "redirect_datacenter"},
    "Failover": {"failover1": {"Service": "failover1", "ServiceSubset": "failover_subset1",
                               "Namespace": "failover_namespace1", "Datacenters": ["failover1_dc1", "failover1_dc2"]},
                 "failover2": {"Service": "failover2", "ServiceSubset": "failover_subset2",
                               "Namespace": "failover_namespace2", "Datacenters": ["failover2_dc1", "failover2_dc2"]}},
    "ConnectTimeout": "1s",
    "LoadBalancer": {"Policy": "policy", "RingHashConfig": {"MinimumRingSize": 1, "MaximumRingSize": 2},
                     "LeastRequestConfig": {"ChoiceCount": 1},
                     "HashPolicies": [{"Field": "field", "FieldValue": "value",
                                       "CookieConfig": {"Session": True, "TTL": 1, "Path": "path"},
                                       "SourceIP": True, "Terminal": True}]},
}
TOP = {"Meta": DC_META, "CreateIndex": 0, "ModifyIndex": 0}


def test_to_consul_empty_fields():
    assert ce.to_consul(KIND, resource("ServiceResolver", "name", {}), "datacenter") == {
        "Kind": "service-resolver", "Name": "name", **TOP}


def test_to_consul_every_field_set():
    assert ce.to_consul(KIND, resource("ServiceResolver", "name", SPEC), "datacenter") == {
        "Kind": "service-resolver", "Name": "name", **CONSUL, **TOP}


def test_to_consul_pointers_and_durations():
    """Redirect/LoadBalancer and its configs are pointers (absent stays absent, `{}` is sent);
    map values are value structs (`{}`); ConnectTimeout is a Go string, TTL integer nanoseconds,
    both left out when zero."""
    spec = {"redirect": {}, "failover": {"*": {}}, "subsets": {"v1": {}}, "connectTimeout": "90s",
            "loadBalancer": {"ringHashConfig": {}, "hashPolicies": [{"cookieConfig": {"ttl": "1m"}}, {}]}}
    out = ce.to_consul(KIND, resource("ServiceResolver", "r", spec), "dc")
    assert {k: v for k, v in out.items() if k not in TOP} == {
        "Kind": "service-resolver", "Name": "r", "Subsets": {"v1": {}}, "Redirect": {}, "Failover": {"*": {}},
        "ConnectTimeout": "1m30s",
        "LoadBalancer": {"RingHashConfig": {}, "HashPolicies": [{"CookieConfig": {"TTL": 60_000_000_000}}, {}]}}
    zero = ce.to_consul(KIND, resource("ServiceResolver", "r", {"connectTimeout": "0s",
                                                                 "loadBalancer": {"hashPolicies": [
                                                                     {"cookieConfig": {"ttl": "0s"}}]}}), "dc")
    assert "ConnectTimeout" not in zero and zero["LoadBalancer"] == {"HashPolicies": [{"CookieConfig": {}}]}


@pytest.mark.parametrize("spec,entry,matches", [
    pytest.param({}, {"Name": "name", "Kind": "service-resolver", "Namespace": "foobar", "CreateIndex": 1,
                      "ModifyIndex": 2, "Meta": DC_META}, True, id="empty fields matches"),
    pytest.param(SPEC, {"Name": "name", "Kind": "service-resolver", **CONSUL}, True, id="all fields set matches"),
    pytest.param({}, {"Name": "name", "Kind": "proxy-defaults", "Namespace": "foobar", "CreateIndex": 1,
                      "ModifyIndex": 2}, False, id="different types does not match"),
    pytest.param({"connectTimeout": "1m"}, {"Name": "name", "Kind": "service-resolver", "ConnectTimeout": "60s"},
                 True, id="connect timeouts compare as durations"),
    pytest.param({"connectTimeout": "1m"}, {"Name": "name", "Kind": "service-resolver", "ConnectTimeout": "5s"},
                 False, id="another connect timeout"),
    pytest.param({"failover": {"*": {"datacenters": ["dc2"]}}},
                 {"Name": "name", "Kind": "service-resolver", "Failover": {"*": {"Datacenters": ["dc3"]}}},
                 False, id="another failover datacenter"),
    pytest.param({"failover": {"*": {"datacenters": ["dc2"]}}},
                 {"Name": "name", "Kind": "service-resolver",
                  "Failover": {"*": {"Datacenters": ["dc2"], "Targets": [{"Peer": "x"}]}},
                  "RequestTimeout": "3s", "PrioritizeByLocality": {"Mode": "failover"}},
                 True, id="keys the Go type does not know are dropped"),
    pytest.param({"loadBalancer": {"hashPolicies": [{"cookieConfig": {"ttl": "2s"}}]}},
                 {"Name": "name", "Kind": "service-resolver",
                  "LoadBalancer": {"HashPolicies": [{"CookieConfig": {"TTL": 2_000_000_000}}]}},
                 True, id="TTL as integer nanoseconds"),
])
def test_matches_consul(spec, entry, matches):
    assert ce.matches_consul(KIND, resource("ServiceResolver", "name", spec), entry) is matches


def test_matches_its_own_entry_as_consul_stores_it():
    entry = ce.to_consul(KIND, resource("ServiceResolver", "name", SPEC), "dc1")
    entry.update({"Namespace": "default", "Partition": "default", "CreateIndex": 7, "ModifyIndex": 9})
    assert ce.matches_consul(KIND, resource("ServiceResolver", "name", SPEC), entry)


PREFIX = 'serviceresolver.consul.hashicorp.com "foo" is invalid: '
EMPTY = "service, serviceSubset, namespace and datacenters cannot all be empty at once"
FAILOVER_NS = "Consul Enterprise namespaces must be enabled to set failover.namespace"
VALIDATE = {
    "namespaces enabled: valid": (
        {"redirect": {"service": "bar", "namespace": "namespace-a"},
         "failover": {"failA": {"service": "baz", "namespace": "namespace-b"}}}, True, ""),
    "namespaces disabled: valid": ({"redirect": {"service": "bar"}, "failover": {"failA": {"service": "baz"}}},
                                   False, ""),
    "failover service, servicesubset, namespace, datacenters empty": (
        {"failover": {"failB": {"service": "", "serviceSubset": "", "namespace": "", "datacenters": None},
                      "failA": {}}}, False,
        f'[spec.failover[failA]: Invalid value: "{{}}": {EMPTY}, '
        f'spec.failover[failB]: Invalid value: "{{}}": {EMPTY}]'),
    "failover with an empty datacenters list": ({"failover": {"*": {"datacenters": []}}}, False,
                                                f'spec.failover[*]: Invalid value: "{{}}": {EMPTY}'),
    "failover given as null": ({"failover": {"*": None}}, False, f'spec.failover[*]: Invalid value: "{{}}": {EMPTY}'),
    "failover with only datacenters: valid": ({"failover": {"*": {"datacenters": ["dc2"]}}}, False, ""),
    "hashPolicy.field invalid": (
        {"loadBalancer": {"hashPolicies": [{"field": "invalid"}]}}, False,
        '[spec.loadBalancer.hashPolicies[0].field: Invalid value: "invalid": must be one of "header", "cookie", '
        '"query_parameter", spec.loadBalancer.hashPolicies[0].fieldValue: Invalid value: "": fieldValue cannot be '
        "empty if field is set]"),
    "hashPolicy.field without fieldValue": (
        {"loadBalancer": {"hashPolicies": [{"field": "header"}]}}, False,
        'spec.loadBalancer.hashPolicies[0].fieldValue: Invalid value: "": fieldValue cannot be empty if field is set'),
    "hashPolicy just sourceIP set": ({"loadBalancer": {"hashPolicies": [{"sourceIP": True}]}}, False, ""),
    "hashPolicy sourceIP and field set": (
        {"loadBalancer": {"hashPolicies": [{"field": "header", "sourceIP": True}]}}, False,
        'spec.loadBalancer.hashPolicies[0]: Invalid value: "{\\"field\\":\\"header\\",\\"sourceIP\\":true}": cannot '
        "set both field and sourceIP"),
    "hashPolicy invalid field and sourceIP": (
        {"loadBalancer": {"hashPolicies": [{"field": "ip", "fieldValue": "v", "sourceIP": True, "terminal": True}]}},
        False,
        '[spec.loadBalancer.hashPolicies[0].field: Invalid value: "ip": must be one of "header", "cookie", '
        '"query_parameter", spec.loadBalancer.hashPolicies[0]: Invalid value: "{\\"field\\":\\"ip\\",\\"fieldValue\\":'
        '\\"v\\",\\"sourceIP\\":true,\\"terminal\\":true}": cannot set both field and sourceIP]'),
    "hashPolicy nothing set is valid": ({"loadBalancer": {"hashPolicies": [{}]}}, False, ""),
    "cookieConfig session and ttl set": (
        {"loadBalancer": {"hashPolicies": [{"field": "cookie", "fieldValue": "cookiename",
                                            "cookieConfig": {"session": True, "ttl": "100ns"}}]}}, False,
        'spec.loadBalancer.hashPolicies[0].cookieConfig: Invalid value: "{\\"session\\":true,\\"ttl\\":\\"100ns\\"}": '
        "cannot set both session and ttl"),
    "cookieConfig ttl is dumped in Go's form": (
        {"loadBalancer": {"hashPolicies": [{"cookieConfig": {"session": True, "ttl": "90s", "path": "/"}}]}}, False,
        'spec.loadBalancer.hashPolicies[0].cookieConfig: Invalid value: "{\\"session\\":true,\\"ttl\\":\\"1m30s\\",'
        '\\"path\\":\\"/\\"}": cannot set both session and ttl'),
    "cookieConfig session with a zero ttl: valid": (
        {"loadBalancer": {"hashPolicies": [{"cookieConfig": {"session": True, "ttl": "0s"}}]}}, False, ""),
    "namespaces disabled: redirect namespace specified": (
        {"redirect": {"namespace": "namespace-a"}}, False,
        'spec.redirect.namespace: Invalid value: "namespace-a": Consul Enterprise namespaces must be enabled to set '
        "redirect.namespace"),
    "namespaces disabled: single failover namespace specified": (
        {"failover": {"failA": {"namespace": "namespace-a"}}}, False,
        f'spec.failover[failA].namespace: Invalid value: "namespace-a": {FAILOVER_NS}'),
    "namespaces disabled: multiple failover namespaces specified": (
        {"failover": {"failB": {"namespace": "namespace-b"}, "failA": {"namespace": "namespace-a"}}}, False,
        f'[spec.failover[failA].namespace: Invalid value: "namespace-a": {FAILOVER_NS}, '
        f'spec.failover[failB].namespace: Invalid value: "namespace-b": {FAILOVER_NS}]'),
    "failover, then load balancer, then redirect and failover namespaces": (
        {"redirect": {"namespace": "r"}, "failover": {"b": {"namespace": "n"}, "a": {}},
         "loadBalancer": {"hashPolicies": [{}, {"field": "header"}]}}, False,
        f'[spec.failover[a]: Invalid value: "{{}}": {EMPTY}, spec.loadBalancer.hashPolicies[1].fieldValue: Invalid '
        'value: "": fieldValue cannot be empty if field is set, spec.redirect.namespace: Invalid value: "r": Consul '
        'Enterprise namespaces must be enabled to set redirect.namespace, spec.failover[b].namespace: Invalid value: '
        f'"n": {FAILOVER_NS}]'),
}


@pytest.mark.parametrize("spec,namespaces,expected", VALIDATE.values(), ids=VALIDATE.keys())
def test_validate(spec, namespaces, expected):
    got = message(resource("ServiceResolver", "foo", spec), ce.ConsulMeta(namespaces_enabled=namespaces))
    assert got == (PREFIX + expected if expected else "")


@pytest.mark.parametrize("spec,path", [
    ({"connectTimeout": "soon"}, "spec.connectTimeout"),
    ({"loadBalancer": {"hashPolicies": [{"cookieConfig": {"ttl": "5 minutes"}}]}},
     "spec.loadBalancer.hashPolicies[0].cookieConfig.ttl"),
])
def test_a_bad_duration_is_invalid(spec, path):
    assert message(resource("ServiceResolver", "foo", spec)).startswith(f"{PREFIX}{path}: Invalid value: ")


@pytest.mark.parametrize("meta", [
    ce.ConsulMeta(),
    ce.ConsulMeta(namespaces_enabled=True, destination_namespace="foo"),
    ce.ConsulMeta(namespaces_enabled=True, mirroring=True, prefix="ns-"),
], ids=["disabled", "destinationNS", "mirroringWithPrefix"])
def test_redirect_and_failover_namespaces_are_not_defaulted(meta):
    res = resource("ServiceResolver", "foo", {"redirect": {"service": "a"}, "failover": {"*": {"service": "b"}}},
                   namespace="bar")
    assert ce.defaulting_patch(KIND, res, meta) == []
    assert ce.defaulted(KIND, res, meta) == res


def test_consul_namespace_follows_the_kubernetes_namespace():
    res = resource("ServiceResolver", "foo", {}, namespace="bar")
    assert ce.consul_namespace(KIND, res, ce.ConsulMeta()) == ""
    mirroring = ce.ConsulMeta(namespaces_enabled=True, mirroring=True, prefix="k-")
    assert ce.consul_namespace(KIND, res, mirroring) == "k-bar"
    assert ce.consul_namespace(KIND, res, ce.ConsulMeta(namespaces_enabled=True, destination_namespace="d")) == "d"


def test_names():
    assert (KIND.plural, KIND.singular, KIND.consul_kind, KIND.global_resource) == (
        "serviceresolvers", "serviceresolver", "service-resolver", False)


SAMPLE = """
apiVersion: consul.hashicorp.com/v1alpha1
kind: ServiceResolver
metadata: {name: web}
spec:
  defaultSubset: v1
  connectTimeout: 15s
  subsets:
    v1: {filter: 'Service.Meta.version == v1'}
    v2: {filter: 'Service.Meta.version == v2', onlyPassing: true}
  failover:
    '*': {datacenters: [dc3, dc4]}
  loadBalancer:
    policy: ring_hash
    ringHashConfig: {minimumRingSize: 1024, maximumRingSize: 8192}
    hashPolicies:
      - {field: cookie, fieldValue: session-id, cookieConfig: {ttl: 30m, path: /}}
      - {sourceIP: true, terminal: true}
"""


def test_a_sample_as_users_write_it():
    """After the Consul docs' service-resolver examples: the CRD schema (strict) and the webhook
    accept it, and Consul gets the Go client's JSON."""
    sample = yaml.safe_load(SAMPLE)
    assert schema_errors(sample) == []
    assert message(sample) == ""
    out = ce.to_consul(KIND, sample, "dc1")
    assert out["ConnectTimeout"] == "15s" and out["Failover"] == {"*": {"Datacenters": ["dc3", "dc4"]}}
    assert out["Subsets"]["v2"] == {"Filter": "Service.Meta.version == v2", "OnlyPassing": True}
    assert out["LoadBalancer"] == {
        "Policy": "ring_hash", "RingHashConfig": {"MinimumRingSize": 1024, "MaximumRingSize": 8192},
        "HashPolicies": [{"Field": "cookie", "FieldValue": "session-id",
                          "CookieConfig": {"TTL": 1_800_000_000_000, "Path": "/"}},
                         {"SourceIP": True, "Terminal": True}]}
