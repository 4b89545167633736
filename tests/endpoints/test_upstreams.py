"""Upstreams at the controller (reference §6): TestProcessUpstreams ported case by case, the
malformed entries of §6.1 (a panic in the reference, the pod's error here), and agreement with the
webhook's parser on everything the webhook accepts."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from generator.endpoints.errors import BadAnnotation, LookupRequired
from generator.endpoints.upstreams import ConsulUpstream, ProxyDefaults, has_datacenter, parse
from generator.inject.annotations import BadValue, PodPorts, parse_upstreams

from .helpers import P, create_pod, register

UPSTREAMS = P + "connect-service-upstreams"
NO_PORTS = PodPorts({})


def svc(name: str, port: int, **kw) -> dict:
    return ConsulUpstream(name, port, **kw).body()


def query(name: str, port: int) -> dict:
    return ConsulUpstream(name, port, prepared_query=True).body()


# (name, annotation, namespaces on, partitions on, proxy defaults, expected upstream bodies or error text)
CASES = [
    ("upstream with datacenter without ProxyDefaults", "upstream1:1234:dc1", False, False, ProxyDefaults.absent(),
     'upstream "upstream1:1234:dc1" is invalid: there is no ProxyDefaults config to set mesh gateway mode'),
    ("upstream with datacenter with ProxyDefaults whose mesh gateway mode is not local or remote", "upstream1:1234:dc1",
     False, False, ProxyDefaults.found("bad-mode"),
     'upstream "upstream1:1234:dc1" is invalid: ProxyDefaults mesh gateway mode is neither "local" nor "remote"'),
    ("upstream with datacenter with ProxyDefaults and mesh gateway is in local mode", "upstream1:1234:dc1", False, False,
     ProxyDefaults.found("local"), [svc("upstream1", 1234, datacenter="dc1")]),
    ("upstream with datacenter with ProxyDefaults and mesh gateway in remote mode", "upstream1:1234:dc1", False, False,
     ProxyDefaults.found("remote"), [svc("upstream1", 1234, datacenter="dc1")]),
    ("when consul is unavailable, we don't return an error", "upstream1:1234:dc1", False, False, ProxyDefaults.unknown(),
     [svc("upstream1", 1234, datacenter="dc1")]),
    ("single upstream", "upstream:1234", False, False, None, [svc("upstream", 1234)]),
    ("single upstream with namespace", "upstream.foo:1234", True, False, None, [svc("upstream", 1234, namespace="foo")]),
    ("single upstream with namespace and partition", "upstream.foo.bar:1234", True, True, None,
     [svc("upstream", 1234, namespace="foo", partition="bar")]),
    ("multiple upstreams", "upstream1:1234, upstream2:2234", False, False, None, [svc("upstream1", 1234), svc("upstream2", 2234)]),
    ("multiple upstreams with consul namespaces, partitions and datacenters",
     "upstream1:1234, upstream2.bar:2234, upstream3.foo.baz:3234:dc2", True, True, ProxyDefaults.found("remote"),
     [svc("upstream1", 1234), svc("upstream2", 2234, namespace="bar"),
      svc("upstream3", 3234, namespace="foo", partition="baz", datacenter="dc2")]),
    ("multiple upstreams with consul namespaces and datacenters",
     "upstream1:1234, upstream2.bar:2234, upstream3.foo:3234:dc2", True, False, ProxyDefaults.found("remote"),
     [svc("upstream1", 1234), svc("upstream2", 2234, namespace="bar"), svc("upstream3", 3234, namespace="foo", datacenter="dc2")]),
    ("prepared query upstream", "prepared_query:queryname:1234", False, False, None, [query("queryname", 1234)]),
    ("prepared query and non-query upstreams",
     "prepared_query:queryname:1234, upstream1:2234, prepared_query:6687bd19-5654-76be-d764:8202", False, False, None,
     [query("queryname", 1234), svc("upstream1", 2234), query("6687bd19-5654-76be-d764", 8202)]),
    # More, from §6.
    ("namespaces off: dots stay in the name", "upstream.foo:1234", False, False, None, [svc("upstream.foo", 1234)]),
    ("partitions alone also split names", "upstream.foo.bar:1234", False, True, None,
     [svc("upstream", 1234, namespace="foo", partition="bar")]),
    ("a fourth dotted piece stays in the partition", "a.b.c.d:1", True, True, None, [svc("a", 1, namespace="b", partition="c.d")]),
    ("pieces are trimmed", " a . b :1", True, False, None, [svc("a", 1, namespace="b")]),
    ("the mesh gateway error quotes the raw entry", "upstream1:1234, upstream3.foo:3234:dc2", True, False,
     ProxyDefaults.absent(), 'upstream " upstream3.foo:3234:dc2" is invalid: there is no ProxyDefaults config'),
    ("a prepared query never needs proxy-defaults", "prepared_query:q:1234", False, False, ProxyDefaults.absent(), [query("q", 1234)]),
    ("empty mode is neither local nor remote", "u:1:dc2", False, False, ProxyDefaults.found(""),
     'ProxyDefaults mesh gateway mode is neither "local" nor "remote"'),
    ("mode none likewise", "u:1:dc2", False, False, ProxyDefaults.found("none"), "neither"),
    ("a datacenter with colons is kept whole", "u:1:dc2:x", False, False, ProxyDefaults.found("local"),
     [svc("u", 1, datacenter="dc2:x")]),
    ("Go integer syntax for ports", "a:0x50, b:010, c:0o20, d:+90", False, False, None,
     [svc("a", 80), svc("b", 8), svc("c", 16), svc("d", 90)]),
    # §6.1: the reference panicked on these; the pod's error here.
    ("entry without a port", "db", False, False, None, 'upstream "db" is invalid: expected <service>:<port>[:<datacenter>]'),
    ("prepared query without a port", "prepared_query:q", False, False, None,
     'upstream "prepared_query:q" is invalid: expected prepared_query:<name>:<port>'),
    ("prepared query without a name", "prepared_query::1234", False, False, None, "expected prepared_query:<name>:<port>"),
    ("no service name", ":1234", False, False, None, 'upstream ":1234" is invalid: it has no service name'),
    ("no service name before the namespace", ".ns:1234", True, False, None, "it has no service name"),
    ("empty datacenter", "u:1234:", False, False, None, "it has an empty datacenter"),
    # v0.37 dropped these silently (the app's calls then failed): the pod's error here, as in the webhook.
    ("a port that is not a number", "u:1.5", False, False, None, 'upstream "u:1.5" is invalid: port "1.5" must be a port number'),
    ("port 0", "u:0", False, False, None, "port 0 is not in the range 1-65535"),
    ("port out of range", "u:70000", False, False, None, "port 70000 is not in the range 1-65535"),
    ("negative port", "u:-5", False, False, None, "not in the range"),
    # Skipped: an empty entry (the webhook injects such pods; v0.37's controller panicked).
    ("empty entries are skipped", "a:1,, b:2 ,", False, False, None, [svc("a", 1), svc("b", 2)]),
]


@pytest.mark.parametrize("raw, namespaces, partitions, proxy_defaults, expected",
                         [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_process_upstreams(raw, namespaces, partitions, proxy_defaults, expected):
    if isinstance(expected, str):
        with pytest.raises(BadValue) as info:
            parse(raw, NO_PORTS, split_names=namespaces or partitions, proxy_defaults=proxy_defaults)
        assert expected in str(info.value)
    else:
        found, warnings = parse(raw, NO_PORTS, split_names=namespaces or partitions, proxy_defaults=proxy_defaults)
        assert [u.body() for u in found] == expected
        assert warnings == ()


def test_upstream_bodies_are_the_go_clients():
    """api.Upstream: DestinationName always, MeshGateway always `{}`, empties omitted, Go field order."""
    body = ConsulUpstream("upstream3", 3234, namespace="foo", partition="baz", datacenter="dc2").body()
    assert list(body.items()) == [("DestinationType", "service"), ("DestinationPartition", "baz"),
                                  ("DestinationNamespace", "foo"), ("DestinationName", "upstream3"),
                                  ("Datacenter", "dc2"), ("LocalBindPort", 3234), ("MeshGateway", {})]
    assert query("q", 1) == {"DestinationType": "prepared_query", "DestinationName": "q", "LocalBindPort": 1, "MeshGateway": {}}


def test_named_ports_resolve_against_the_pod_and_missing_names_are_dropped_with_a_warning():
    ports = PodPorts({"spec": {"containers": [{"ports": [{"name": "http", "containerPort": 8080}]}]}})
    found, warnings = parse("a:http, b:metrics, c:9090", ports, split_names=False, proxy_defaults=None)
    assert [(u.name, u.port) for u in found] == [("a", 8080), ("c", 9090)]
    assert warnings == ('upstream " b:metrics" is ignored: no container of this pod has a port named "metrics"',)


def test_a_datacenter_needs_the_lookup():
    assert has_datacenter("a:1, b:2:dc2")
    assert not has_datacenter("a:1, prepared_query:q:2, b.ns:3")
    with pytest.raises(LookupRequired):
        parse("a:1:dc2", NO_PORTS, split_names=False, proxy_defaults=None)


def test_the_datacenter_check_runs_before_the_port_check():
    """As in the reference, where an entry with a bad port still failed the mesh-gateway check."""
    with pytest.raises(BadValue, match="no ProxyDefaults config"):
        parse("u:nope!:dc2", NO_PORTS, split_names=False, proxy_defaults=ProxyDefaults.absent())


def test_too_many_upstreams():
    with pytest.raises(BadValue, match="more than 1000 upstreams"):
        parse(",".join(f"u{i}:{i % 60000 + 1}" for i in range(1001)), NO_PORTS, split_names=False, proxy_defaults=None)


def test_in_a_registration_the_error_names_pod_annotation_and_value():
    pod = create_pod(annotations={UPSTREAMS: "upstream1:1234:dc1"})
    with pytest.raises(BadAnnotation) as info:
        register(pod, proxy_defaults=ProxyDefaults.absent())
    assert str(info.value) == (
        'pod "default/pod1": annotation "consul.hashicorp.com/connect-service-upstreams" has invalid value '
        '"upstream1:1234:dc1": upstream "upstream1:1234:dc1" is invalid: there is no ProxyDefaults config to set mesh gateway mode')
    assert info.value.reason == "upstream-mesh-gateway"
    with pytest.raises(BadAnnotation) as info:
        register(create_pod(annotations={UPSTREAMS: "db\n"}))
    assert info.value.reason == "bad-annotation"
    assert '"db\\n"' in str(info.value) and "\n" not in str(info.value)


def test_dropped_upstreams_are_registration_warnings():
    pod = create_pod(annotations={UPSTREAMS: "a:http"})
    reg = register(pod)
    assert "Upstreams" not in reg.proxy["Proxy"]
    assert reg.warnings == (f'annotation "{UPSTREAMS}": upstream "a:http" is ignored: no container of this pod has a port named "http"',)


# Agreement with the webhook: on every value the webhook's parser accepts, the controller reads the
# same entries (namespaces off); the controller also accepts names the webhook refuses for its
# environment variables.
_name = st.from_regex(r"[a-z][a-z0-9.-]{0,8}", fullmatch=True)
_port = st.one_of(st.integers(-2, 70000).map(str), st.sampled_from(["http", "tcp", "0x50", "010", "08", " 80 ", "1_0", "1.5", "metrics"]))
_entry = st.one_of(
    st.tuples(_name, _port).map(":".join),
    st.tuples(_name, _port, st.sampled_from(["dc2", "", " dc3 "])).map(":".join),
    st.tuples(st.just("prepared_query"), _name, _port).map(":".join),
    st.text(alphabet=" :,.ab1", max_size=8),
)
_PORTS = PodPorts({"spec": {"containers": [{"ports": [{"name": "http", "containerPort": 8080}, {"name": "tcp", "containerPort": 9090}]}]}})


@settings(max_examples=400, deadline=None, database=None)
@given(st.lists(_entry, max_size=5).map(", ".join))
def test_agrees_with_the_webhook(raw):
    try:
        webhook = parse_upstreams(raw, _PORTS)
    except BadValue:
        webhook = None
    try:
        found, warnings = parse(raw, _PORTS, split_names=False, proxy_defaults=ProxyDefaults.found("local"))
    except BadValue:
        assert webhook is None, f"the webhook accepts {raw!r}, the controller does not"
        return
    if webhook is None:
        return  # the webhook refuses names that cannot form env var names; the controller does not need them
    kept = [u for u in webhook if not u.missing_port]
    assert [(u.name, u.port, u.datacenter, u.prepared_query) for u in kept] == [
        (u.name, u.port, u.datacenter, u.prepared_query) for u in found]
    assert len(warnings) == len(webhook) - len(kept)


def test_names_the_webhook_refuses_for_env_vars_are_fine_here():
    with pytest.raises(BadValue):
        parse_upstreams("3scale:80", NO_PORTS)
    found, _ = parse("3scale:80", NO_PORTS, split_names=False, proxy_defaults=None)
    assert found == (ConsulUpstream("3scale", 80),)
