"""Transparent proxy: the `virtual` tagged address, Mode and exposed probe paths (reference §2.4,
§2.5). TestCreateServiceRegistrations_withTransparentProxy ported case by case, then the inputs
where the reference panicked or failed the pod, and our rules shared with the webhook."""

from __future__ import annotations

import copy
import json

import pytest

from generator.endpoints.errors import BadAnnotation, BadNamespaceLabel, BadPodSpec, MissingService
from generator.endpoints.registration import build
from generator.endpoints.settings import Settings

from .helpers import P, TEST_CONTAINER, create_pod, original_pod, service

TPROXY = P + "transparent-proxy"
OVERWRITE = P + "transparent-proxy-overwrite-probes"
ORIGINAL = P + "original-pod"
SERVICE_NAME = "test-service"


def probes(container: dict, **ports) -> dict:
    """`container` with HTTP probes on the given ports (liveness=..., readiness=..., startup=...)."""
    out = copy.deepcopy(container)
    for kind, port in ports.items():
        out[f"{kind}Probe"] = {"httpGet": {"port": port}}
    return out


def path(listener: int, local: int) -> dict:
    return {"ListenerPort": listener, "LocalPathPort": local, "ParsedFromCheck": False}


def virtual(port: int, address: str = "10.0.0.1") -> dict:
    return {"virtual": {"Address": address, "Port": port}}


TEST2 = {"name": "test-2", "ports": [{"name": "tcp", "containerPort": 8083}, {"name": "http", "containerPort": 8082}]}
ENVOY = {"name": "envoy-sidecar", "ports": [{"name": "http", "containerPort": 20000}]}
ALL_ORIGINAL = probes(TEST_CONTAINER, liveness=8080, readiness=8081, startup=8081)
ALL_MUTATED = probes(TEST_CONTAINER, liveness=20300, readiness=20400, startup=20500)

# name: (tproxy default, overwrite default, pod annotations, namespace labels, Service ports or
#        clusterIP override, mutated containers, expected tagged addresses, expected expose paths)
CASES = {
    "tproxy enabled globally, annotation not provided": (True, False, {}, None, service(ports=[{"port": 8081}]), None, virtual(8081), []),
    "tproxy enabled globally, annotation is false": (True, False, {TPROXY: "false"}, None, service(), None, None, []),
    "tproxy enabled globally, annotation is true": (True, False, {TPROXY: "true"}, None, service(ports=[{"port": 8081}]), None, virtual(8081), []),
    "tproxy disabled globally, annotation not provided": (False, False, {}, None, service(), None, None, []),
    "tproxy disabled globally, annotation is false": (False, False, {TPROXY: "false"}, None, service(), None, None, []),
    "tproxy disabled globally, annotation is true": (False, False, {TPROXY: "true"}, None, service(ports=[{"port": 8081}]), None, virtual(8081), []),
    "tproxy disabled globally, namespace enabled, no annotation": (False, False, {}, {TPROXY: "true"}, service(ports=[{"port": 8081}]), None, virtual(8081), []),
    "tproxy enabled globally, namespace disabled, no annotation": (True, False, {}, {TPROXY: "false"}, service(), None, None, []),
    "service with a single port without a target port": (True, False, {}, None, service(ports=[{"port": 8081}]), None, virtual(8081), []),
    "service with a single port and a target port that is a port name": (True, False, {}, None, service(ports=[{"port": 80, "targetPort": "tcp"}]), None, virtual(80), []),
    "service with a single port and a target port that is an int": (True, False, {}, None, service(ports=[{"port": 80, "targetPort": 8081}]), None, virtual(80), []),
    "service with a multiple ports": (True, False, {}, None, service(ports=[{"name": "tcp", "port": 80, "targetPort": "tcp"},
                                                                            {"name": "http", "port": 81, "targetPort": "http"}]), None, virtual(80), []),
    "target port is not found": (True, False, {}, None, service(ports=[{"port": 80, "targetPort": "http"}]), None, virtual(0), []),
    "service with clusterIP=None (headless service)": (True, False, {}, None, service("None"), None, None, []),
    "service with an empty clusterIP": (True, False, {}, None, service(""), None, None, []),
    "service with an invalid clusterIP": (True, False, {}, None, service("invalid"), None, None, []),
    "service with an IPv6 clusterIP": (True, False, {}, None, service("2001:db8::68", [{"port": 8081}]), None, virtual(8081, "2001:db8::68"), []),
    "overwrite probes enabled globally": (True, True, {ORIGINAL: original_pod([probes(TEST_CONTAINER, liveness=8080)])}, None,
                                          service(ports=[{"port": 8081}]), [probes(TEST_CONTAINER, liveness=20300)], virtual(8081), [path(20300, 8080)]),
    "overwrite probes disabled globally, enabled via annotation": (True, False, {OVERWRITE: "true", ORIGINAL: original_pod([probes(TEST_CONTAINER, liveness=8080)])},
                                                                   None, service(ports=[{"port": 8081}]), [probes(TEST_CONTAINER, liveness=20300)], virtual(8081), [path(20300, 8080)]),
    "overwrite probes enabled globally, tproxy disabled": (False, True, {ORIGINAL: original_pod([probes(TEST_CONTAINER, liveness=8080)])}, None,
                                                           service(ports=[{"port": 8081}]), [probes(TEST_CONTAINER, liveness=20300)], None, []),
    "readiness only probe provided": (True, True, {ORIGINAL: original_pod([probes(TEST_CONTAINER, readiness=8080)])}, None,
                                      service(ports=[{"port": 8081}]), [probes(TEST_CONTAINER, readiness=20400)], virtual(8081), [path(20400, 8080)]),
    "startup only probe provided": (True, True, {ORIGINAL: original_pod([probes(TEST_CONTAINER, startup=8080)])}, None,
                                    service(ports=[{"port": 8081}]), [probes(TEST_CONTAINER, startup=20500)], virtual(8081), [path(20500, 8080)]),
    "all probes provided": (True, True, {ORIGINAL: original_pod([ALL_ORIGINAL])}, None, service(ports=[{"port": 8081}]), [ALL_MUTATED],
                            virtual(8081), [path(20300, 8080), path(20400, 8081), path(20500, 8081)]),
    "multiple containers with all probes provided": (
        True, True, {ORIGINAL: original_pod([ALL_ORIGINAL, probes(TEST2, liveness=8082, readiness=8083, startup=8083), ENVOY])}, None,
        service(ports=[{"port": 8081}]), [ALL_MUTATED, probes(TEST2, liveness=20301, readiness=20401, startup=20501), ENVOY], virtual(8081),
        [path(20300, 8080), path(20400, 8081), path(20500, 8081), path(20301, 8082), path(20401, 8083), path(20501, 8083)]),
    "non-http probe": (True, True, {ORIGINAL: original_pod([{**TEST_CONTAINER, "livenessProbe": {"tcpSocket": {"port": 8080}}}])}, None,
                       service(ports=[{"port": 8081}]), [{**TEST_CONTAINER, "livenessProbe": {"tcpSocket": {"port": 8080}}}], virtual(8081), []),
    "probes with port names": (True, True, {ORIGINAL: original_pod([probes(TEST_CONTAINER, liveness="tcp", readiness="http", startup="http")])}, None,
                               service(ports=[{"port": 8081}]), [ALL_MUTATED], virtual(8081), [path(20300, 8081), path(20400, 8080), path(20500, 8080)]),
}


def make(annotations: dict, containers: list | None = None) -> dict:
    """The reference test's pod: its annotations replaced by the case's, `connect-service-port: tcp`
    (the webhook writes it); every pod has the test container (the reference left it out of some
    cases, where its `tcp` then silently meant no port: here that is an error, see below)."""
    pod = create_pod("test-pod-1", "1.2.3.4", containers=containers or [TEST_CONTAINER])
    pod["metadata"]["annotations"] = {**annotations, P + "connect-service-port": "tcp"}
    return pod


def run(pod: dict, tproxy: bool, overwrite: bool, labels: dict | None = None, svc: dict | None = None):
    return build(pod, endpoints_name=SERVICE_NAME, endpoints_namespace="default", ready=True,
                 settings=Settings(tproxy_default=tproxy, overwrite_probes_default=overwrite),
                 namespace_labels=labels, service=svc)


@pytest.mark.parametrize("tproxy, overwrite, annotations, labels, svc, containers, tagged, paths",
                         list(CASES.values()), ids=list(CASES))
def test_create_service_registrations_with_transparent_proxy(tproxy, overwrite, annotations, labels, svc, containers, tagged, paths):
    reg = run(make(annotations, containers), tproxy, overwrite, labels, svc)
    assert reg.proxy["Proxy"].get("Mode") == ("transparent" if tagged else None)
    assert reg.service.get("TaggedAddresses") == tagged
    assert reg.proxy.get("TaggedAddresses") == tagged
    assert reg.proxy["Proxy"]["Expose"] == ({"Paths": paths} if paths else {})


def test_no_service():
    """The reference: `services "test-service" not found`, retried."""
    with pytest.raises(MissingService) as info:
        run(make({}), True, False)
    assert info.value.reason == "missing-service"
    assert 'Kubernetes Service "default/test-service" not found' in str(info.value)


def test_the_service_is_not_needed_without_tproxy():
    assert "TaggedAddresses" not in run(make({}), False, True).service


def test_a_probe_path_is_sent():
    container = {**TEST_CONTAINER, "readinessProbe": {"httpGet": {"port": 20400, "path": "/ready"}}}
    original = {**TEST_CONTAINER, "readinessProbe": {"httpGet": {"port": "http", "path": "/ready"}}}
    reg = run(make({ORIGINAL: original_pod([original])}, [container]), True, True, svc=service())
    assert reg.proxy["Proxy"]["Expose"]["Paths"] == [
        {"ListenerPort": 20400, "Path": "/ready", "LocalPathPort": 8080, "ParsedFromCheck": False}]


def test_a_target_port_name_the_pod_lacks_is_not_a_match():
    """v0.37 failed the pod (ParseInt of the name); a named targetPort the pod does not have only
    means that Service port does not lead to this pod."""
    svc = service(ports=[{"name": "metrics", "port": 9090, "targetPort": "metrics"}, {"name": "tcp", "port": 80, "targetPort": "tcp"}])
    assert run(make({}), True, False, svc=svc).service["TaggedAddresses"] == virtual(80)


@pytest.mark.parametrize("cluster_ip", ["fe80::1%eth0", "010.0.0.1", "10.0.0", " 10.0.0.1", None, 7])
def test_cluster_ips_go_does_not_parse(cluster_ip):
    reg = run(make({}), True, False, svc=service(cluster_ip))
    assert "TaggedAddresses" not in reg.service and "Mode" not in reg.proxy["Proxy"]


def test_a_port_match_on_the_service_port_itself():
    """No targetPort match, but the Service's own port equals the Consul service port."""
    svc = service(ports=[{"port": 8081, "targetPort": 9999}])
    assert run(make({}), True, False, svc=svc).service["TaggedAddresses"] == virtual(8081)


def test_the_reference_cases_without_containers_are_an_error_here():
    """`connect-service-port: tcp` on a pod with no such port: v0.37 registered it without a port."""
    pod = make({})
    pod["spec"]["containers"] = []
    with pytest.raises(BadAnnotation, match='"tcp": must be a port number or the name of a container port'):
        run(pod, False, False)


# hostNetwork: as the webhook decides (plan._host_network_tproxy), defaults do not turn it on.
@pytest.mark.parametrize("annotations, labels, default, expected", [
    ({}, None, True, False),
    ({}, {TPROXY: "true"}, False, False),
    ({TPROXY: "true"}, None, False, True),  # an explicit annotation is what the injector acted on
    ({TPROXY: "false"}, None, True, False),
])
def test_host_network_pods(annotations, labels, default, expected):
    pod = make(annotations)
    pod["spec"]["hostNetwork"] = True
    reg = run(pod, default, False, labels, service(ports=[{"port": 8081}]))
    assert ("TaggedAddresses" in reg.service) is expected


def test_bad_namespace_label():
    with pytest.raises(BadNamespaceLabel) as info:
        run(make({}), False, False, {TPROXY: "maybe"})
    assert str(info.value) == ('pod "default/test-pod-1": namespace "default" label "consul.hashicorp.com/transparent-proxy" '
                               'has invalid value "maybe": must be a boolean (true, false, 1, 0, t, f, TRUE, FALSE, True, False)')
    assert info.value.reason == "bad-namespace-label"


def test_a_missing_namespace_means_no_labels():
    assert "TaggedAddresses" not in run(make({}), False, False, None, service()).service


def test_bad_overwrite_probes_annotation():
    with pytest.raises(BadAnnotation, match=f'"{OVERWRITE}" has invalid value "sure"'):
        run(make({OVERWRITE: "sure"}), True, False, svc=service())
    run(make({OVERWRITE: "sure"}), False, False)  # only read under transparent proxy


# original-pod: the reference failed (or panicked) on all of these; each is the pod's error here.
def _probe_pod(original: str | None, mutated_port=20300, container=TEST_CONTAINER) -> dict:
    pod = make({} if original is None else {ORIGINAL: original}, [probes(container, liveness=mutated_port)])
    return pod


@pytest.mark.parametrize("original, error, text", [
    (None, BadAnnotation, f'annotation "{ORIGINAL}" is missing: it holds the pod as it was before injection'),
    ("{not json", BadAnnotation, "not JSON: Expecting property name"),
    ("[" * 100000, BadAnnotation, "not JSON"),
    ("[]", BadAnnotation, "not a pod as JSON"),
    ('{"spec": {"containers": {"name": "test"}}}', BadAnnotation, "not a pod as JSON"),
    ('{"spec": {"containers": ["test"]}}', BadAnnotation, "not a pod as JSON"),
    # R2: the injected pod has an HTTP probe the original does not (v0.37: nil dereference, panic).
    (original_pod([TEST_CONTAINER]), BadAnnotation, 'container "test" has an HTTP livenessProbe but none in the original pod'),
    (original_pod([{**TEST_CONTAINER, "livenessProbe": {"exec": {"command": ["true"]}}}]), BadAnnotation, "none in the original pod"),
    (original_pod([probes(TEST_CONTAINER, liveness="nosuch")]), BadAnnotation,
     'container "test" livenessProbe httpGet: port "nosuch" must be a port number or the name of a container port'),
    (original_pod([probes(TEST_CONTAINER, liveness=70000)]), BadAnnotation, "port 70000 is not in the range 1-65535"),
    (original_pod([probes(TEST_CONTAINER, liveness=8080.5)]), BadAnnotation, "port 8080.5 is not a port number or name"),
    (original_pod([probes(TEST_CONTAINER, liveness=True)]), BadAnnotation, "port true is not a port number or name"),
    (original_pod([{**TEST_CONTAINER, "ports": "x", "livenessProbe": {"httpGet": {"port": "tcp"}}}]), BadAnnotation,
     'port "tcp" must be a port number or the name'),  # malformed ports in the original are no ports
])
def test_bad_original_pod(original, error, text):
    with pytest.raises(error) as info:
        run(_probe_pod(original), True, True, svc=service())
    assert text in str(info.value)
    assert info.value.reason == "bad-annotation"
    assert len(str(info.value)) < 800  # the value is shown cut


@pytest.mark.parametrize("port, ok", [("20300", True), ("+20300", True), ("http", False), ("0x4f4c", False), (0, False), (70000, False)])
def test_the_injected_probe_port(port, ok):
    """Go's IntOrString.IntValue(): a string goes through Atoi. A port that is not a number (the
    webhook did not rewrite it) would be refused by Consul: the pod's error."""
    pod = _probe_pod(original_pod([probes(TEST_CONTAINER, liveness=8080)]), mutated_port=port)
    if ok:
        assert run(pod, True, True, svc=service()).proxy["Proxy"]["Expose"]["Paths"] == [path(20300, 8080)]
    else:
        with pytest.raises(BadPodSpec, match="is not a port number, so Envoy cannot listen on it") as info:
            run(pod, True, True, svc=service())
        assert info.value.reason == "bad-pod-spec"


def test_containers_without_an_original_and_injected_containers_are_skipped():
    """A container an extra template added has no original; the injected containers' probes are not
    rewritten by the webhook, so they are not exposed (even when the pod declared an override)."""
    extra = probes({"name": "extra", "ports": []}, liveness=9000)
    envoy = probes({"name": "envoy-sidecar"}, readiness=21000)
    original = original_pod([probes(TEST_CONTAINER, liveness=8080), probes({"name": "envoy-sidecar"}, readiness=21000)])
    pod = make({ORIGINAL: original}, [probes(TEST_CONTAINER, liveness=20300), extra, envoy])
    assert run(pod, True, True, svc=service()).proxy["Proxy"]["Expose"] == {"Paths": [path(20300, 8080)]}


def test_overwrite_off_reads_no_original():
    pod = _probe_pod("{broken")
    assert run(pod, True, False, svc=service()).proxy["Proxy"]["Expose"] == {}


@pytest.mark.parametrize("original", [None, "{broken"])
def test_no_http_probe_reads_no_original(original):
    """v0.37 failed such a pod (`unexpected end of JSON input`) though it had nothing to expose."""
    pod = make({} if original is None else {ORIGINAL: original}, [{**TEST_CONTAINER, "livenessProbe": {"exec": {"command": ["x"]}}}])
    assert run(pod, True, True, svc=service()).proxy["Proxy"]["Expose"] == {}


def test_original_pod_value_is_shown_escaped():
    raw = json.dumps({"spec": {"containers": [{"name": "test\u2028x"}]}})
    pod = make({ORIGINAL: raw + "\x1b[31m"}, [probes(TEST_CONTAINER, liveness=20300)])
    with pytest.raises(BadAnnotation) as info:
        run(pod, True, True, svc=service())
    assert "\x1b" not in str(info.value) and "\\u001b" in str(info.value)
