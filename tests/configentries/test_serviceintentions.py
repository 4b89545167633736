"""ServiceIntentions: ported from serviceintentions_types_test.go (ToConsul, MatchesConsul, Validate,
DefaultNamespaceFields, ConsulName, ConsulMirroringNS) and serviceintentions_webhook_test.go
(create uniqueness, update immutability, defaulting patches) through the admission review."""

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

KIND = ce.KINDS["ServiceIntentions"]
L7 = {"action": "allow", "http": {"pathExact": "/foo", "pathPrefix": "/bar", "pathRegex": "/baz",
                                  "header": [{"name": "header", "present": True, "exact": "exact", "prefix": "prefix",
                                              "suffix": "suffix", "regex": "regex", "invert": True}],
                                  "methods": ["GET", "PUT"]}}
CONSUL_L7 = {"Action": "allow", "HTTP": {"PathExact": "/foo", "PathPrefix": "/bar", "PathRegex": "/baz",
                                         "Header": [{"Name": "header", "Present": True, "Exact": "exact",
                                                     "Prefix": "prefix", "Suffix": "suffix", "Regex": "regex",
                                                     "Invert": True}],
                                         "Methods": ["GET", "PUT"]}}
SOURCES = [
    {"name": "svc1", "namespace": "test", "partition": "test", "action": "allow",
     "description": "allow access from svc1"},
    {"name": "*", "namespace": "not-test", "partition": "not-test", "action": "deny",
     "description": "disallow access from namespace not-test"},
    {"name": "svc-2", "namespace": "bar", "partition": "bar", "permissions": [L7], "description": "an L7 config"},
]
# The Go client always sends Name, Precedence and Type of a source (no omitempty).
CONSUL_SOURCES = [
    {"Name": "svc1", "Namespace": "test", "Partition": "test", "Action": "allow", "Precedence": 0, "Type": "",
     "Description": "allow access from svc1"},
    {"Name": "*", "Namespace": "not-test", "Partition": "not-test", "Action": "deny", "Precedence": 0, "Type": "",
     "Description": "disallow access from namespace not-test"},
    {"Name": "svc-2", "Namespace": "bar", "Partition": "bar", "Permissions": [CONSUL_L7], "Precedence": 0, "Type": "",
     "Description": "an L7 config"},
]
INDEXES = {"CreateIndex": 0, "ModifyIndex": 0}


def intentions(spec: dict | None, name: str = "name", namespace: str = "default") -> dict:
    return resource("ServiceIntentions", name, spec, namespace=namespace)


# --- ToConsul ------------------------------------------------------------------------------------

def test_to_consul_empty_fields():
    assert ce.to_consul(KIND, intentions({}), "datacenter") == {
        "Kind": "service-intentions", "Name": "", "Sources": None, "Meta": DC_META, **INDEXES}


def test_to_consul_every_field_set():
    spec = {"destination": {"name": "svc-name", "namespace": "dest-ns"}, "sources": SOURCES}
    assert ce.to_consul(KIND, intentions(spec), "datacenter") == {
        "Kind": "service-intentions", "Name": "svc-name", "Namespace": "dest-ns", "Sources": CONSUL_SOURCES,
        "Meta": DC_META, **INDEXES}


def test_to_consul_l4_and_bare_permission():
    spec = {"destination": {"name": "web"}, "sources": [{"name": "api", "permissions": [{"http": {}}]}]}
    assert ce.to_consul(KIND, intentions(spec), "dc")["Sources"] == [
        {"Name": "api", "Permissions": [{"Action": "", "HTTP": {}}], "Precedence": 0, "Type": ""}]


def test_consul_name_namespace_and_mirroring_source():
    res = intentions({"destination": {"name": "foo", "namespace": "baz"}}, name="test", namespace="bar")
    assert KIND.consul_name_of(res) == "foo"                          # ConsulName
    assert res["metadata"]["name"] == "test"                          # KubernetesName
    assert KIND.mirroring_ns_of(res) == "baz"                         # ConsulMirroringNS
    wildcard = intentions({"destination": {"name": "foo", "namespace": "*"}}, name="test", namespace="bar")
    assert KIND.mirroring_ns_of(wildcard) == "*"
    assert not KIND.global_resource
    assert KIND.singular == "serviceintentions" and KIND.consul_kind == "service-intentions"


NAMESPACES = {
    "destination namespace is the entry's namespace": (
        {"name": "foo", "namespace": "baz"}, ce.ConsulMeta(namespaces_enabled=True, destination_namespace="d"), "baz"),
    "wildcard destination namespace": (
        {"name": "foo", "namespace": "*"}, ce.ConsulMeta(namespaces_enabled=True, mirroring=True), "*"),
    "namespaces off, no namespace": ({"name": "foo"}, ce.ConsulMeta(), ""),
}


@pytest.mark.parametrize("destination,meta,ns", NAMESPACES.values(), ids=NAMESPACES.keys())
def test_consul_namespace(destination, meta, ns):
    res = intentions({"destination": destination}, namespace="kube")
    assert ce.consul_namespace(KIND, res, meta) == ns


# --- MatchesConsul -------------------------------------------------------------------------------

MATCHES = {
    "empty fields matches": (
        {}, {"Name": "", "Kind": "service-intentions", "CreateIndex": 1, "ModifyIndex": 2, "Meta": DC_META}, True),
    "all fields set matches": (
        {"destination": {"name": "svc-name", "namespace": "test"}, "sources": SOURCES},
        {"Kind": "service-intentions", "Name": "svc-name", "Namespace": "test", "Sources": [
            {**CONSUL_SOURCES[0], "Precedence": 0}, {**CONSUL_SOURCES[1], "Precedence": 1}, CONSUL_SOURCES[2]],
         "Meta": None}, True),
    "different types does not match": (
        {}, {"Name": "name", "Kind": "proxy-defaults", "Namespace": "foobar", "CreateIndex": 1, "ModifyIndex": 2},
        False),
    "different order of sources matches": (
        {"destination": {"name": "bar"}, "sources": [{"name": "*", "action": "allow"},
                                                     {"name": "foo", "action": "allow"}]},
        {"Name": "bar", "Kind": "service-intentions", "CreateIndex": 1, "ModifyIndex": 2, "Meta": DC_META,
         "Sources": [{"Name": "foo", "Action": "allow"}, {"Name": "*", "Action": "allow"}]}, True),
    "what Consul adds to each source is ignored": (
        {"destination": {"name": "bar"}, "sources": [{"name": "*", "action": "deny"},
                                                     {"name": "foo", "action": "allow"}]},
        {"Name": "bar", "Kind": "service-intentions", "Sources": [
            {"Name": "foo", "Action": "allow", "Precedence": 9, "Type": "consul", "LegacyID": "x",
             "LegacyMeta": {"a": "b"}, "LegacyCreateTime": "2021-01-01T00:00:00Z",
             "LegacyUpdateTime": "2021-01-01T00:00:00Z"},
            {"Name": "*", "Action": "deny", "Precedence": 8, "Type": "consul"}]}, True),
    "the destination name is the entry's name": (
        {"destination": {"name": "bar"}, "sources": [{"name": "foo", "action": "allow"}]},
        {"Name": "name", "Kind": "service-intentions", "Sources": [{"Name": "foo", "Action": "allow"}]}, False),
    "another action does not match": (
        {"destination": {"name": "bar"}, "sources": [{"name": "foo", "action": "allow"}]},
        {"Name": "bar", "Kind": "service-intentions", "Sources": [{"Name": "foo", "Action": "deny"}]}, False),
    "a missing source does not match": (
        {"destination": {"name": "bar"}, "sources": [{"name": "foo", "action": "allow"},
                                                     {"name": "baz", "action": "allow"}]},
        {"Name": "bar", "Kind": "service-intentions", "Sources": [{"Name": "foo", "Action": "allow"}]}, False),
    "permission order matters": (
        {"destination": {"name": "bar"}, "sources": [{"name": "foo", "permissions": [
            {"action": "allow", "http": {"pathExact": "/a"}}, {"action": "deny", "http": {"pathExact": "/b"}}]}]},
        {"Name": "bar", "Kind": "service-intentions", "Sources": [{"Name": "foo", "Permissions": [
            {"Action": "deny", "HTTP": {"PathExact": "/b"}}, {"Action": "allow", "HTTP": {"PathExact": "/a"}}]}]},
        False),
}


@pytest.mark.parametrize("spec,entry,matches", MATCHES.values(), ids=MATCHES.keys())
def test_matches_consul(spec, entry, matches):
    assert ce.matches_consul(KIND, intentions(spec), entry) is matches


def test_matches_its_own_entry():
    res = intentions({"destination": {"name": "svc-name", "namespace": "test"}, "sources": SOURCES})
    assert ce.matches_consul(KIND, res, ce.to_consul(KIND, res, "dc1"))


# --- Validate ------------------------------------------------------------------------------------

PREFIX = 'serviceintentions.consul.hashicorp.com "does-not-matter" is invalid: '
NOT_METHOD = 'must be one of "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "CONNECT", "OPTIONS", "TRACE"'
ONE_HEADER = "at most only one of exact, prefix, suffix, regex, or present may be configured."
ONE_PATH = "at most only one of pathExact, pathPrefix, or pathRegex may be configured."
NS_OFF = "Consul Enterprise namespaces must be enabled to set "
PART_OFF = "Consul Enterprise Admin Partitions must be enabled to set source.partition"


def _dest(ns: str | None = "namespace") -> dict:
    return {"name": "dest-service", **({"namespace": ns} if ns else {})}


def _l7(http: dict, action: str = "allow") -> list[dict]:
    return [{"name": "svc-2", "namespace": "bar", "permissions": [{"action": action, "http": http}]}]


VALIDATE = {
    "partitions enabled: valid": (
        {"destination": _dest(), "sources": [
            {"name": "web", "namespace": "web", "partition": "web", "action": "allow"},
            {"name": "db", "namespace": "db", "partition": "db", "action": "deny"},
            {"name": "bar", "namespace": "bar", "partition": "bar", "permissions": [
                {"action": "allow", "http": {"pathExact": "/foo", "header": [
                    {"name": "header", "present": True, "invert": True}], "methods": ["GET", "PUT"]}}],
             "description": "an L7 config"}]}, True, True, ""),
    "namespaces enabled: valid": (
        {"destination": _dest(), "sources": [
            {"name": "web", "namespace": "web", "action": "allow"},
            {"name": "db", "namespace": "db", "action": "deny"},
            {"name": "bar", "namespace": "bar", "permissions": [
                {"action": "allow", "http": {"pathExact": "/foo", "header": [
                    {"name": "header", "present": True, "invert": True}], "methods": ["GET", "PUT"]}}],
             "description": "an L7 config"}]}, True, False, ""),
    "namespaces disabled: valid": (
        {"destination": _dest(None), "sources": [
            {"name": "web", "action": "allow"},
            {"name": "db", "action": "deny"},
            {"name": "bar", "permissions": [
                {"action": "allow", "http": {"pathRegex": "/baz", "header": [
                    {"name": "header", "regex": "regex", "invert": True}], "methods": ["GET", "PUT"]}}],
             "description": "an L7 config"}]}, False, False, ""),
    "no sources": (
        {"destination": _dest(), "sources": []}, True, False,
        "spec.sources: Required value: at least one source must be specified"),
    "sources absent": (
        {"destination": _dest()}, True, False, "spec.sources: Required value: at least one source must be specified"),
    "invalid action": (
        {"destination": _dest(), "sources": [{"name": "web", "namespace": "web", "action": "foo"}]}, True, False,
        'spec.sources[0].action: Invalid value: "foo": must be one of "allow", "deny"'),
    "missing action": (
        {"destination": _dest(), "sources": [{"name": "web"}]}, True, False,
        'spec.sources[0].action: Invalid value: "": must be one of "allow", "deny"'),
    "actions are case-sensitive": (
        {"destination": _dest(), "sources": [{"name": "web", "action": "Allow"}]}, True, False,
        'spec.sources[0].action: Invalid value: "Allow": must be one of "allow", "deny"'),
    "invalid permissions.http.pathPrefix": (
        {"destination": _dest(), "sources": _l7({"pathPrefix": "bar"})}, True, False,
        "spec.sources[0].permissions[0].pathPrefix: Invalid value: \"bar\": must begin with a '/'"),
    "invalid permissions.http pathPrefix,pathExact specified": (
        {"destination": _dest(), "sources": _l7({"pathPrefix": "/bar", "pathExact": "/foo"})}, True, False,
        'spec.sources[0].permissions[0]: Invalid value: "{\\"pathExact\\":\\"/foo\\",\\"pathPrefix\\":\\"/bar\\"}": '
        + ONE_PATH),
    "invalid permissions.http pathPrefix,pathRegex specified": (
        {"destination": _dest(), "sources": _l7({"pathPrefix": "/bar", "pathRegex": "foo"})}, True, False,
        'spec.sources[0].permissions[0]: Invalid value: "{\\"pathPrefix\\":\\"/bar\\",\\"pathRegex\\":\\"foo\\"}": '
        + ONE_PATH),
    "invalid permissions.http pathRegex,pathExact specified": (
        {"destination": _dest(), "sources": _l7({"pathRegex": "bar", "pathExact": "/foo"})}, True, False,
        'spec.sources[0].permissions[0]: Invalid value: "{\\"pathExact\\":\\"/foo\\",\\"pathRegex\\":\\"bar\\"}": '
        + ONE_PATH),
    "invalid permissions.http.pathExact": (
        {"destination": _dest(), "sources": _l7({"pathExact": "bar"})}, True, False,
        "spec.sources[0].permissions[0].pathExact: Invalid value: \"bar\": must begin with a '/'"),
    "path prefix rules before the one-path rule": (
        {"destination": _dest(), "sources": _l7({"pathExact": "a", "pathPrefix": "b", "pathRegex": "c"})}, True,
        False,
        "[spec.sources[0].permissions[0].pathPrefix: Invalid value: \"b\": must begin with a '/', "
        "spec.sources[0].permissions[0].pathExact: Invalid value: \"a\": must begin with a '/', "
        'spec.sources[0].permissions[0]: Invalid value: "{\\"pathExact\\":\\"a\\",\\"pathPrefix\\":\\"b\\",'
        '\\"pathRegex\\":\\"c\\"}": ' + ONE_PATH + "]"),
    "invalid permissions.http.methods": (
        {"destination": _dest(), "sources": _l7({"methods": ["FOO", "GET", "BAR", "GET", "POST"]})}, True, False,
        f'[spec.sources[0].permissions[0].methods[0]: Invalid value: "FOO": {NOT_METHOD}, '
        f'spec.sources[0].permissions[0].methods[2]: Invalid value: "BAR": {NOT_METHOD}, '
        'spec.sources[0].permissions[0].methods[3]: Invalid value: "GET": method listed more than once.]'),
    "an unknown method listed twice": (
        {"destination": _dest(), "sources": _l7({"methods": ["get", "get"]})}, True, False,
        f'[spec.sources[0].permissions[0].methods[0]: Invalid value: "get": {NOT_METHOD}, '
        f'spec.sources[0].permissions[0].methods[1]: Invalid value: "get": {NOT_METHOD}, '
        'spec.sources[0].permissions[0].methods[1]: Invalid value: "get": method listed more than once.]'),
    "invalid permissions.http.header": (
        {"destination": _dest(), "sources": _l7({"header": [
            {"name": "exact-present", "present": True, "exact": "foobar"},
            {"name": "prefix-exact", "exact": "foobar", "prefix": "barfood"},
            {"name": "suffix-prefix", "prefix": "foo", "suffix": "bar"},
            {"name": "suffix-regex", "suffix": "bar", "regex": "foo"},
            {"name": "regex-present", "present": True, "regex": "foobar"}]})}, True, False,
        '[spec.sources[0].permissions[0].header[0]: Invalid value: "{\\"name\\":\\"exact-present\\",\\"present\\":'
        f'true,\\"exact\\":\\"foobar\\"}}": {ONE_HEADER}, '
        'spec.sources[0].permissions[0].header[1]: Invalid value: "{\\"name\\":\\"prefix-exact\\",\\"exact\\":'
        f'\\"foobar\\",\\"prefix\\":\\"barfood\\"}}": {ONE_HEADER}, '
        'spec.sources[0].permissions[0].header[2]: Invalid value: "{\\"name\\":\\"suffix-prefix\\",\\"prefix\\":'
        f'\\"foo\\",\\"suffix\\":\\"bar\\"}}": {ONE_HEADER}, '
        'spec.sources[0].permissions[0].header[3]: Invalid value: "{\\"name\\":\\"suffix-regex\\",\\"suffix\\":'
        f'\\"bar\\",\\"regex\\":\\"foo\\"}}": {ONE_HEADER}, '
        'spec.sources[0].permissions[0].header[4]: Invalid value: "{\\"name\\":\\"regex-present\\",\\"present\\":'
        f'true,\\"regex\\":\\"foobar\\"}}": {ONE_HEADER}]'),
    "invert is not counted": (
        {"destination": _dest(), "sources": _l7({"header": [{"name": "h", "exact": "x", "invert": True}]})}, True,
        False, ""),
    "invalid permissions.action": (
        {"destination": _dest(), "sources": _l7({"pathExact": "/bar"}, action="foobar")}, True, False,
        'spec.sources[0].permissions[0].action: Invalid value: "foobar": must be one of "allow", "deny"'),
    "both action and permissions specified": (
        {"destination": _dest(), "sources": [{"name": "svc-2", "namespace": "bar", "action": "deny", "permissions": [
            {"action": "allow", "http": {"pathExact": "/bar"}}]}]}, True, False,
        'spec.sources[0]: Invalid value: "{\\"name\\":\\"svc-2\\",\\"namespace\\":\\"bar\\",\\"action\\":\\"deny\\",'
        '\\"permissions\\":[{\\"action\\":\\"allow\\",\\"http\\":{\\"pathExact\\":\\"/bar\\"}}]}": action and '
        "permissions are mutually exclusive and only one of them can be specified"),
    "namespaces disabled: destination namespace specified": (
        {"destination": _dest("namespace-a"), "sources": [{"name": "web", "action": "allow"}]}, False, False,
        'spec.destination.namespace: Invalid value: "namespace-a": ' + NS_OFF + "destination.namespace"),
    "namespaces disabled: single source namespace specified": (
        {"destination": _dest(None), "sources": [{"name": "web", "action": "allow", "namespace": "namespace-a"}]},
        False, False, 'spec.sources[0].namespace: Invalid value: "namespace-a": ' + NS_OFF + "source.namespace"),
    "namespaces disabled: multiple source namespaces specified": (
        {"destination": _dest(None), "sources": [
            {"name": "web", "action": "allow", "namespace": "namespace-a"},
            {"name": "db", "action": "deny", "namespace": "namespace-b"},
            {"name": "bar", "namespace": "namespace-c"}]}, False, False,
        '[spec.sources[2].action: Invalid value: "": must be one of "allow", "deny", '
        'spec.sources[0].namespace: Invalid value: "namespace-a": ' + NS_OFF + "source.namespace, "
        'spec.sources[1].namespace: Invalid value: "namespace-b": ' + NS_OFF + "source.namespace, "
        'spec.sources[2].namespace: Invalid value: "namespace-c": ' + NS_OFF + "source.namespace]"),
    "namespaces disabled: destination and multiple source namespaces specified": (
        {"destination": _dest("namespace-a"), "sources": [
            {"name": "web", "action": "allow", "namespace": "namespace-b"},
            {"name": "db", "action": "deny", "namespace": "namespace-c"},
            {"name": "bar", "namespace": "namespace-d"}]}, False, False,
        '[spec.sources[2].action: Invalid value: "": must be one of "allow", "deny", '
        'spec.destination.namespace: Invalid value: "namespace-a": ' + NS_OFF + "destination.namespace, "
        'spec.sources[0].namespace: Invalid value: "namespace-b": ' + NS_OFF + "source.namespace, "
        'spec.sources[1].namespace: Invalid value: "namespace-c": ' + NS_OFF + "source.namespace, "
        'spec.sources[2].namespace: Invalid value: "namespace-d": ' + NS_OFF + "source.namespace]"),
    "partitions disabled: single source partition specified": (
        {"destination": _dest("namespace-a"), "sources": [
            {"name": "web", "action": "allow", "namespace": "namespace-b", "partition": "partition-other"},
            {"name": "db", "action": "deny", "namespace": "namespace-c"},
            {"name": "bar", "action": "allow", "namespace": "namespace-d"}]}, True, False,
        'spec.sources[0].partition: Invalid value: "partition-other": ' + PART_OFF),
    "partitions disabled: multiple source partition specified": (
        {"destination": _dest("namespace-a"), "sources": [
            {"name": "web", "action": "allow", "namespace": "namespace-b", "partition": "partition-other"},
            {"name": "db", "action": "deny", "namespace": "namespace-c", "partition": "partition-first"},
            {"name": "bar", "action": "allow", "namespace": "namespace-d", "partition": "partition-foo"}]}, True,
        False,
        '[spec.sources[0].partition: Invalid value: "partition-other": ' + PART_OFF + ", "
        'spec.sources[1].partition: Invalid value: "partition-first": ' + PART_OFF + ", "
        'spec.sources[2].partition: Invalid value: "partition-foo": ' + PART_OFF + "]"),
    "duplicate sources pass the webhook (Consul refuses them)": (
        {"destination": _dest(None), "sources": [{"name": "web", "action": "allow"},
                                                  {"name": "web", "action": "deny"}]}, False, False, ""),
}


@pytest.mark.parametrize("spec,namespaces,partitions,expected", VALIDATE.values(), ids=VALIDATE.keys())
def test_validate(spec, namespaces, partitions, expected):
    meta = ce.ConsulMeta(namespaces_enabled=namespaces, partitions_enabled=partitions)
    assert message(intentions(spec, name="does-not-matter"), meta) == (PREFIX + expected if expected else "")


# --- DefaultNamespaceFields ----------------------------------------------------------------------

DEFAULTS = {
    "disabled": (ce.ConsulMeta(), ""),
    "destinationNS": (ce.ConsulMeta(namespaces_enabled=True, destination_namespace="foo"), "foo"),
    "mirroringEnabledWithoutPrefix": (ce.ConsulMeta(namespaces_enabled=True, mirroring=True), "bar"),
    "mirroringWithPrefix": (ce.ConsulMeta(namespaces_enabled=True, mirroring=True, prefix="ns-"), "ns-bar"),
}


@pytest.mark.parametrize("meta,ns", DEFAULTS.values(), ids=DEFAULTS.keys())
def test_default_namespace_fields(meta, ns):
    spec = {"destination": {"name": "bar"}, "sources": [{"name": "s", "action": "allow"}]}
    res = intentions(copy.deepcopy(spec), name="foo", namespace="bar")
    out = ce.defaulted(KIND, res, meta)
    assert out["spec"]["destination"] == ({"name": "bar", "namespace": ns} if ns else {"name": "bar"})
    assert out["spec"]["sources"] == spec["sources"], "sources are never defaulted"
    assert res["spec"] == spec, "the input is not changed"


def test_a_set_destination_namespace_is_kept():
    res = intentions({"destination": {"name": "bar", "namespace": "set"}}, namespace="kube")
    assert ce.defaulting_patch(KIND, res, ce.ConsulMeta(namespaces_enabled=True, mirroring=True)) == []


# --- the webhook (serviceintentions_webhook_test.go) ---------------------------------------------

OTHER_NS = "other"


def _si(name: str, dest: dict, sources: list[dict], namespace: str | None = None) -> dict:
    """A resource as the Go test marshals it: no metadata.namespace unless given."""
    obj = intentions({"destination": dest, "sources": sources}, name=name)
    if namespace is None:
        del obj["metadata"]["namespace"]
    else:
        obj["metadata"]["namespace"] = namespace
    return obj


def _review(obj: dict, meta: ce.ConsulMeta, existing: list[dict], operation: str = "CREATE",
            old: dict | None = None) -> dict:
    request = {"uid": "uid-1", "operation": operation, "namespace": OTHER_NS, "name": obj["metadata"]["name"],
               "object": obj}
    if old is not None:
        request["oldObject"] = old
    body = {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": request}
    seen: list[ce.Kind] = []

    def others(kind: ce.Kind) -> list[dict]:
        seen.append(kind)
        return existing

    response = admission.review(body, KIND, meta, others)["response"]
    assert all(k is KIND for k in seen)
    assert response["uid"] == "uid-1"
    return response


def _patches(response: dict) -> list[dict]:
    return json.loads(base64.b64decode(response["patch"])) if "patch" in response else []


ALLOW_BAR = [{"name": "bar", "namespace": "foo", "action": "allow"}]
EXISTING_FOO_BAR = _si("foo-intention", {"name": "foo", "namespace": "bar"}, ALLOW_BAR)
CREATE = {
    "no duplicates, valid": (
        [], _si("foo-intention", {"name": "foo", "namespace": "bar"}, ALLOW_BAR), False, ""),
    "invalid action": (
        [], _si("foo-intention", {"name": "foo", "namespace": "bar"},
                [{"name": "bar", "namespace": "foo", "action": "fail"}]), False,
        'serviceintentions.consul.hashicorp.com "foo-intention" is invalid: spec.sources[0].action: Invalid value: '
        '"fail": must be one of "allow", "deny"'),
    "intention managing service exists": (
        [EXISTING_FOO_BAR], _si("bar-intention", {"name": "foo", "namespace": "bar"}, ALLOW_BAR), True,
        "an existing ServiceIntentions resource has `spec.destination.name: foo` and "
        "`spec.destination.namespace: bar`"),
    "intention managing service with same name but different namespace with mirroring": (
        [EXISTING_FOO_BAR], _si("bar-intention", {"name": "foo", "namespace": "baz"}, ALLOW_BAR), True, ""),
    "intention managing service shares name but different namespace": (
        [EXISTING_FOO_BAR], _si("bar-intention", {"name": "foo", "namespace": "baz"}, ALLOW_BAR), False,
        "an existing ServiceIntentions resource has `spec.destination.name: foo`"),
    "intention managing service shares name": (
        [_si("foo-intention", {"name": "foo"}, ALLOW_BAR)], _si("bar-intention", {"name": "foo"}, ALLOW_BAR), False,
        "an existing ServiceIntentions resource has `spec.destination.name: foo`"),
}


@pytest.mark.parametrize("existing,new,mirror,error", CREATE.values(), ids=CREATE.keys())
def test_webhook_create(existing, new, mirror, error):
    # The Go test's ConsulMeta: namespaces on, no destination namespace set.
    meta = ce.ConsulMeta(namespaces_enabled=True, mirroring=mirror, destination_namespace="")
    response = _review(new, meta, existing)
    assert response["allowed"] is (not error)
    if error:
        assert response["status"] == {"code": 400, "message": error}
    else:
        assert response["status"] == {"code": 200, "reason": "valid serviceintentions request"}


def test_webhook_create_compares_the_defaulted_destination_namespace():
    """The new object is defaulted before the uniqueness check (the reference's DefaultingPatches
    mutates it); the cached ones are compared as stored."""
    meta = ce.ConsulMeta(namespaces_enabled=True, mirroring=True)
    existing = [_si("a", {"name": "foo", "namespace": "kube"}, ALLOW_BAR, namespace="kube")]
    new = _si("b", {"name": "foo"}, ALLOW_BAR, namespace="kube")
    response = _review(new, meta, existing)
    assert response["status"]["message"] == ("an existing ServiceIntentions resource has `spec.destination.name: foo` "
                                             "and `spec.destination.namespace: kube`")
    assert _review(_si("b", {"name": "foo"}, ALLOW_BAR, namespace="elsewhere"), meta, existing)["allowed"] is True


def test_webhook_update_skips_the_uniqueness_check():
    meta = ce.ConsulMeta(namespaces_enabled=True, destination_namespace="")
    response = _review(EXISTING_FOO_BAR, meta, [EXISTING_FOO_BAR], operation="UPDATE", old=EXISTING_FOO_BAR)
    assert response["allowed"] is True


OLD = _si("foo-intention", {"name": "foo", "namespace": "bar"},
          ALLOW_BAR + [{"name": "bar2", "namespace": "foo2", "action": "deny"}])
IMMUTABLE = "spec.destination.name and spec.destination.namespace are immutable fields for ServiceIntentions"
UPDATE = {
    "valid update": (_si("foo-intention", {"name": "foo", "namespace": "bar"}, ALLOW_BAR), ""),
    "updating name": (_si("foo-intention", {"name": "foo-bar", "namespace": "bar"}, ALLOW_BAR), IMMUTABLE),
    "namespace update": (_si("foo-intention", {"name": "foo", "namespace": "bar-foo"}, ALLOW_BAR), IMMUTABLE),
}


@pytest.mark.parametrize("new,error", UPDATE.values(), ids=UPDATE.keys())
def test_webhook_update(new, error):
    meta = ce.ConsulMeta(namespaces_enabled=True, destination_namespace="")
    response = _review(new, meta, [OLD], operation="UPDATE", old=OLD)
    assert response["allowed"] is (not error)
    if error:
        assert response["status"] == {"code": 400, "message": error}


def test_webhook_update_compares_the_objects_as_sent():
    """Quirk kept: the old and new objects are compared undefaulted, so dropping a namespace the
    webhook once filled in is a change of destination."""
    meta = ce.ConsulMeta(namespaces_enabled=True, mirroring=True)
    old = _si("i", {"name": "foo", "namespace": "kube"}, ALLOW_BAR, namespace="kube")
    new = _si("i", {"name": "foo"}, ALLOW_BAR, namespace="kube")
    assert _review(new, meta, [old], operation="UPDATE", old=old)["status"]["message"] == IMMUTABLE


PATCHES = {
    "all namespace fields set": (
        _si("foo-intention", {"name": "foo", "namespace": "bar"}, [{"name": "baz", "namespace": "baz",
                                                                    "action": "allow"}], namespace="bar"),
        [],
        'serviceintentions.consul.hashicorp.com "foo-intention" is invalid: [spec.destination.namespace: Invalid '
        'value: "bar": Consul Enterprise namespaces must be enabled to set destination.namespace, '
        'spec.sources[0].namespace: Invalid value: "baz": Consul Enterprise namespaces must be enabled to set '
        "source.namespace]"),
    "destination.namespace empty": (
        _si("foo-intention", {"name": "foo"}, [{"name": "bar", "namespace": "foo", "action": "allow"}],
            namespace="bar"),
        [{"op": "add", "path": "/spec/destination/namespace", "value": "bar"}],
        # Not checked by the Go test; what its Validate answers.
        'serviceintentions.consul.hashicorp.com "foo-intention" is invalid: spec.sources[0].namespace: Invalid '
        'value: "foo": Consul Enterprise namespaces must be enabled to set source.namespace'),
    "destination.namespace empty and sources.namespace empty": (
        _si("foo-intention", {"name": "foo"}, [{"name": "baz", "action": "allow"}], namespace="bar"),
        [{"op": "add", "path": "/spec/destination/namespace", "value": "bar"}], ""),
    "multiple sources.namespace empty": (
        _si("foo-intention", {"name": "foo", "namespace": "bar"}, [{"name": "baz", "action": "allow"},
                                                                   {"name": "svc", "action": "allow"}],
            namespace="bar"),
        [],
        'serviceintentions.consul.hashicorp.com "foo-intention" is invalid: spec.destination.namespace: Invalid '
        'value: "bar": Consul Enterprise namespaces must be enabled to set destination.namespace'),
}


@pytest.mark.parametrize("namespaces", [False, True], ids=["namespaces-disabled", "namespaces-enabled"])
@pytest.mark.parametrize("new,patches,error", PATCHES.values(), ids=PATCHES.keys())
def test_webhook_patches(new, patches, error, namespaces):
    response = _review(new, ce.ConsulMeta(namespaces_enabled=namespaces, mirroring=True), [])
    if namespaces:
        assert response["allowed"] is True, response["status"]
        assert _patches(response) == patches
    else:
        assert response["allowed"] is (not error)
        if error:
            assert response["status"]["message"] == error
        assert _patches(response) == [], "no Consul namespaces, no defaulting"


# --- resources as users write them (after the Consul docs) ---------------------------------------

DOC_SAMPLES = yaml.safe_load_all("""
apiVersion: consul.hashicorp.com/v1alpha1
kind: ServiceIntentions
metadata: {name: static-server}
spec:
  destination:
    name: static-server
  sources:
    - name: static-client
      action: allow
---
apiVersion: consul.hashicorp.com/v1alpha1
kind: ServiceIntentions
metadata: {name: deny-all}
spec:
  destination:
    name: "*"
  sources:
    - name: "*"
      action: deny
---
apiVersion: consul.hashicorp.com/v1alpha1
kind: ServiceIntentions
metadata: {name: api}
spec:
  destination:
    name: api
  sources:
    - name: web
      permissions:
        - action: allow
          http:
            pathPrefix: /v1
            methods: [GET, POST]
            header:
              - {name: x-debug, present: true, invert: true}
        - action: deny
          http:
            pathPrefix: /
      description: web may call /v1 only
    - name: admin
      action: allow
""")


@pytest.mark.parametrize("sample", list(DOC_SAMPLES), ids=lambda s: s["metadata"]["name"])
def test_doc_samples_pass_the_schema_and_the_webhook(sample):
    assert schema_errors(sample) == []
    assert message(sample) == ""
    entry = ce.to_consul(KIND, sample, "dc1")
    assert entry["Name"] == sample["spec"]["destination"]["name"]
    # Consul returns the sources reordered, with precedence and type filled in.
    stored = {**entry, "Sources": [{**s, "Precedence": 9 - i, "Type": "consul"}
                                   for i, s in enumerate(reversed(entry["Sources"]))]}
    assert ce.matches_consul(KIND, sample, stored)
