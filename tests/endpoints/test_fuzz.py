"""Fuzz the builder (hypothesis) over annotation values, pod and Service shapes, namespace labels,
proxy-defaults answers and settings. The properties are the issue's bad-input promise:

- `build()` either returns a registration or raises `RegistrationError` naming the pod; never
  another exception (the reference panicked on malformed upstreams and probes);
- an annotation error names the annotation key and shows its value escaped: one line, no control
  characters;
- a registration is JSON with the reference's invariants (IDs, reserved meta, ports in range);
- `needs()`, `pod_kind()`, `addresses()` and `health()` never raise, whatever the objects hold.
"""

from __future__ import annotations

import json
import re

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from generator.endpoints.errors import BadAnnotation, RegistrationError
from generator.endpoints.registration import MANAGED_BY, addresses, build, health, needs, pod_kind
from generator.endpoints.settings import Settings
from generator.endpoints.upstreams import ProxyDefaults
from generator.inject.annotations import show

P = "consul.hashicorp.com/"
FUZZ = settings(max_examples=300, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

json_value = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 70000) | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=12,
)
port_value = st.one_of(st.integers(-3, 70000), st.sampled_from(["http", "tcp", "20300", "x y", "", "0x50"]), json_value)
probe = st.fixed_dictionaries({}, optional={"httpGet": st.one_of(st.fixed_dictionaries(
    {"port": port_value}, optional={"path": st.one_of(st.text(max_size=6), json_value)}), json_value),
    "tcpSocket": st.just({"port": 8080})})
container = st.fixed_dictionaries(
    {"name": st.one_of(st.sampled_from(["app", "test", "envoy-sidecar", "consul-sidecar"]), json_value)},
    optional={"ports": st.one_of(st.lists(st.fixed_dictionaries(
        {"name": st.one_of(st.sampled_from(["http", "tcp", "prom"]), json_value),
         "containerPort": st.one_of(st.integers(0, 70000), json_value)}), max_size=3), json_value),
        "livenessProbe": st.one_of(probe, json_value), "readinessProbe": probe, "startupProbe": probe})
containers = st.one_of(st.lists(container, max_size=3), json_value)
words = st.sampled_from(["", " ", "true", "false", "1", "T", "yes", "0", "00", "8080", "http", "tcp", "prom", "20200",
                         "1023", "70000", "-1", "0x50", "08", "a,b", "a:1", "a.ns:1", "a.ns.part:1:dc2", "a:http",
                         "a:1:", ":1", "db", "prepared_query:q", "prepared_query:q:1", "a:1,,b:2,", "x\ny", "\x1b[31m"])
text = st.one_of(words, st.text(max_size=20), st.lists(words, max_size=4).map(",".join))
original = st.one_of(text, st.builds(lambda c, extra: json.dumps({"spec": {"containers": c}, **extra}), containers,
                                     st.dictionaries(st.sampled_from(["metadata", "status"]), json_value, max_size=2)))
READ = ["connect-service", "connect-service-port", "connect-service-upstreams", "service-tags", "connect-service-tags",
        "enable-metrics", "prometheus-scrape-port", "transparent-proxy", "transparent-proxy-overwrite-probes"]
annotations = st.builds(
    lambda chosen, meta, orig: {**chosen, **meta, **({P + "original-pod": orig} if orig is not None else {})},
    st.dictionaries(st.sampled_from([P + k for k in READ]), text, max_size=6),
    st.dictionaries(st.one_of(st.sampled_from(["", "managed-by", "team", "consul-x", "a.b"]), st.text(max_size=6))
                    .map(lambda k: P + "service-meta-" + k), st.one_of(text, st.text(min_size=500, max_size=600)), max_size=3),
    st.one_of(st.none(), original),
)
service_obj = st.one_of(st.none(), json_value, st.fixed_dictionaries({"spec": st.fixed_dictionaries(
    {"clusterIP": st.one_of(st.sampled_from(["10.0.0.1", "None", "", "2001:db8::68", "fe80::1%1"]), json_value),
     "ports": st.one_of(st.lists(st.fixed_dictionaries({"port": st.one_of(st.integers(0, 70000), json_value)},
                                                       optional={"targetPort": port_value}), max_size=3), json_value)})}))
settings_obj = st.builds(
    Settings, enable_consul_namespaces=st.booleans(), enable_mirroring=st.booleans(), mirroring_prefix=st.sampled_from(["", "k8s-"]),
    enable_partitions=st.booleans(), partition=st.sampled_from(["", "part"]), tproxy_default=st.booleans(),
    overwrite_probes_default=st.booleans(), metrics_default=st.booleans())
proxy_defaults = st.sampled_from([ProxyDefaults.unknown(), ProxyDefaults.absent(), ProxyDefaults.found("local"),
                                  ProxyDefaults.found("none"), ProxyDefaults.found("")])
labels = st.one_of(st.none(), st.dictionaries(st.just(P + "transparent-proxy"), text, max_size=1))
CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def pod_of(ann: dict, cs, host_network, ip: str) -> dict:
    return {"metadata": {"name": "pod1", "namespace": "ns1", "annotations": {P + "connect-inject-status": "injected", **ann},
                         "labels": {P + "connect-inject-managed-by": MANAGED_BY}},
            "spec": {"containers": cs, **({"hostNetwork": host_network} if host_network is not None else {})},
            "status": {"podIP": ip, "hostIP": "10.0.0.2"}}


@FUZZ
@given(annotations, containers, st.one_of(st.none(), st.booleans(), json_value), st.sampled_from(["1.2.3.4", "fd00::1", ""]),
       labels, service_obj, settings_obj, proxy_defaults, st.booleans())
def test_build_never_crashes(ann, cs, host_network, ip, ns_labels, svc, conf, pd, ready):
    pod = pod_of(ann, cs, host_network, ip)
    needed = needs(pod, conf, ns_labels)
    try:
        reg = build(pod, endpoints_name="web", endpoints_namespace="ns1", ready=ready, settings=conf, namespace_labels=ns_labels,
                    service=svc if needed.service and isinstance(svc, dict) else (svc if not needed.service else None),
                    proxy_defaults=pd)
    except BadAnnotation as error:
        message = str(error)
        assert message.startswith(f'pod "ns1/pod1": annotation {show(error.annotation)} ')
        assert error.value is None or show(error.value) in message
        assert error.annotation in pod["metadata"]["annotations"] or error.value is None
        assert not CONTROL.search(message), message
        return
    except RegistrationError as error:
        assert str(error).startswith('pod "ns1/pod1": ')
        assert not CONTROL.search(str(error)), str(error)
        return
    json.dumps([reg.service, reg.proxy, reg.params, reg.health.register_body(), reg.health.update_body()], allow_nan=False)
    name = reg.service["Name"]
    assert reg.service["ID"] == f"pod1-{name}" and reg.proxy["ID"] == f"pod1-{name}-sidecar-proxy"
    assert reg.proxy["Proxy"]["DestinationServiceID"] == reg.service["ID"]
    for body in (reg.service, reg.proxy):
        assert body["Meta"]["managed-by"] == MANAGED_BY and body["Meta"]["pod-name"] == "pod1"
        assert body["Meta"]["k8s-service-name"] == "web" and body["Meta"]["k8s-namespace"] == "ns1"
        assert all(tag and tag == tag.strip() for tag in body.get("Tags", []))
        assert len(body["Meta"]) <= 64
    assert 1 <= reg.service.get("Port", 1) <= 65535
    for path in reg.proxy["Proxy"]["Expose"].get("Paths", []):
        assert 1 <= path["ListenerPort"] <= 65535 and 1 <= path["LocalPathPort"] <= 65535
    for upstream in reg.proxy["Proxy"].get("Upstreams", []):
        assert upstream["DestinationName"] and 1 <= upstream["LocalBindPort"] <= 65535
    assert reg.health.status == ("passing" if ready else "critical")


@FUZZ
@given(json_value, json_value)
def test_reading_odd_objects_never_crashes(pod, ep):
    pod_kind(pod if isinstance(pod, dict) else {"metadata": pod})
    addresses(ep if isinstance(ep, dict) else {"subsets": ep})
    health(pod if isinstance(pod, dict) else {}, "web", True, "ns")
    needs(pod if isinstance(pod, dict) else {}, Settings())
