"""The registrations of a managed pod (reference §2, §3, §5): the literal request bodies of §2.6,
the expectations of endpoints_controller_test.go's TestReconcileCreateEndpoint and of the
enterprise TestReconcileCreateEndpointWithNamespaces (turned from catalog reads into the bodies
that produce them), and our deliberate deviations (design.md "Controllers")."""

from __future__ import annotations

import json

import pytest

from engine_helpers import inject, make_pod
from generator.endpoints.errors import BadAnnotation, BadPodSpec, RegistrationError
from generator.endpoints.registration import addresses, build, needs
from generator.endpoints.settings import Settings
from generator.endpoints.upstreams import ProxyDefaults

from .helpers import MANAGED_BY, P, RESERVED, create_pod, endpoints, register

BASIC_META = {"k8s-namespace": "default", "k8s-service-name": "web", "managed-by": MANAGED_BY, "pod-name": "pod1"}
PROXY_CHECKS = [
    {"Name": "Proxy Public Listener", "Interval": "10s", "TCP": "1.2.3.4:20000", "DeregisterCriticalServiceAfter": "10m"},
    {"Name": "Destination Alias", "AliasService": "pod1-web"},
]


def test_literal_bodies_of_a_basic_pod():
    """§2.6: pod1, 1.2.3.4, behind default/web, no annotations beyond injection, tproxy/metrics/namespaces off.
    Key order is the Go structs' field order (maps sorted, as encoding/json writes them)."""
    reg = register(create_pod("pod1"), name="web")
    assert list(reg.service.items()) == [
        ("ID", "pod1-web"), ("Name", "web"), ("Address", "1.2.3.4"), ("Meta", BASIC_META), ("Check", None), ("Checks", None)]
    assert list(reg.service["Meta"]) == sorted(BASIC_META)
    assert list(reg.proxy.items()) == [
        ("Kind", "connect-proxy"), ("ID", "pod1-web-sidecar-proxy"), ("Name", "web-sidecar-proxy"), ("Port", 20000),
        ("Address", "1.2.3.4"), ("Meta", BASIC_META), ("Check", None), ("Checks", PROXY_CHECKS),
        ("Proxy", {"DestinationServiceName": "web", "DestinationServiceID": "pod1-web", "MeshGateway": {}, "Expose": {}}),
    ]
    assert reg.params == {}
    assert (reg.pod, reg.host_ip, reg.address, reg.consul_namespace) == ("default/pod1", "127.0.0.1", "1.2.3.4", "")
    assert (reg.service_id, reg.proxy_id) == ("pod1-web", "pod1-web-sidecar-proxy")
    assert reg.warnings == ()


def test_literal_bodies_of_a_fully_featured_pod():
    """§2.6's second body: namespace `team` mirrored, port, tags, meta, an upstream in another
    namespace, tproxy with a cluster IP, metrics, a liveness probe rewritten 8080 → 20300."""
    original = {"metadata": {"name": "pod1", "namespace": "team"},
                "spec": {"containers": [{"name": "app", "ports": [{"containerPort": 8080}],
                                         "livenessProbe": {"httpGet": {"port": 8080, "path": "/health"}}}]}}
    pod = create_pod("pod1", namespace="team", containers=[
        {"name": "app", "ports": [{"containerPort": 8080}], "livenessProbe": {"httpGet": {"port": 20300, "path": "/health"}}}],
        annotations={P + "connect-service-port": "8080", P + "service-tags": "v1", P + "service-meta-version": "2",
                     P + "connect-service-upstreams": "db.db-ns:1234", P + "original-pod": json.dumps(original)})
    svc = {"spec": {"clusterIP": "10.0.0.1", "ports": [{"port": 80, "targetPort": 8080}]}}
    settings = Settings(enable_consul_namespaces=True, enable_mirroring=True, metrics_default=True)
    reg = build(pod, endpoints_name="web", endpoints_namespace="team", ready=True, settings=settings, service=svc)
    meta = {"k8s-namespace": "team", "k8s-service-name": "web", "managed-by": MANAGED_BY, "pod-name": "pod1", "version": "2"}
    assert reg.proxy == {
        "Kind": "connect-proxy", "ID": "pod1-web-sidecar-proxy", "Name": "web-sidecar-proxy", "Tags": ["v1"],
        "Port": 20000, "Address": "1.2.3.4",
        "TaggedAddresses": {"virtual": {"Address": "10.0.0.1", "Port": 80}},
        "Meta": meta, "Check": None, "Checks": PROXY_CHECKS,
        "Proxy": {"DestinationServiceName": "web", "DestinationServiceID": "pod1-web",
                  "LocalServiceAddress": "127.0.0.1", "LocalServicePort": 8080, "Mode": "transparent",
                  "Config": {"envoy_prometheus_bind_addr": "0.0.0.0:20200"},
                  "Upstreams": [{"DestinationType": "service", "DestinationNamespace": "db-ns",
                                 "DestinationName": "db", "LocalBindPort": 1234, "MeshGateway": {}}],
                  "MeshGateway": {},
                  # api.ExposePath has no omitempty on ParsedFromCheck: the Go client sends it.
                  "Expose": {"Paths": [{"ListenerPort": 20300, "Path": "/health", "LocalPathPort": 8080,
                                        "ParsedFromCheck": False}]}},
        "Namespace": "team",
    }
    assert reg.service == {
        "ID": "pod1-web", "Name": "web", "Tags": ["v1"], "Port": 8080, "Address": "1.2.3.4",
        "TaggedAddresses": {"virtual": {"Address": "10.0.0.1", "Port": 80}}, "Meta": meta,
        "Check": None, "Checks": None, "Namespace": "team"}
    assert reg.params == {"ns": "team"}
    assert reg.service["TaggedAddresses"] is not reg.proxy["TaggedAddresses"]  # independent bodies


# TestReconcileCreateEndpoint: (name, Endpoints, pods, Consul service name, expected instances as
# (ServiceID, ServiceName, ServiceAddress, ServicePort, ServiceMeta, ServiceTags), expected proxy
# LocalServicePort / Upstreams / Config).
def _instances(reg):
    return (reg.service["ID"], reg.service["Name"], reg.service.get("Address"), reg.service.get("Port", 0),
            reg.service["Meta"], reg.service.get("Tags", []))


def _meta(pod: str, **extra: str) -> dict[str, str]:
    return {**RESERVED, "pod-name": pod, **extra}


def test_empty_endpoints():
    assert addresses(endpoints(ready=[])) == []


@pytest.mark.parametrize("pods", [["pod1"], ["pod1", "pod2"]], ids=["Basic endpoints", "Endpoints with multiple addresses"])
def test_reconcile_create_endpoint(pods):
    ips = {"pod1": "1.2.3.4", "pod2": "2.2.3.4"}
    ep = endpoints(ready=[(ips[p], p) for p in pods])
    regs = []
    for address in addresses(ep):
        pod = create_pod(address.target_name, ips[address.target_name])
        regs.append(register(pod, ready=address.ready))
    assert [_instances(r) for r in regs] == [
        (f"{p}-service-created", "service-created", ips[p], 0, _meta(p), []) for p in pods]
    for reg, p in zip(regs, pods):
        assert reg.proxy["ID"] == f"{p}-service-created-sidecar-proxy"
        assert reg.proxy["Name"] == "service-created-sidecar-proxy"
        assert (reg.proxy["Address"], reg.proxy["Port"]) == (ips[p], 20000)
        assert reg.proxy["Proxy"] == {"DestinationServiceName": "service-created", "DestinationServiceID": f"{p}-service-created",
                                      "MeshGateway": {}, "Expose": {}}
        assert reg.proxy["Meta"] == _meta(p)
        assert [c["Name"] for c in reg.proxy["Checks"]] == ["Proxy Public Listener", "Destination Alias"]
        assert (reg.health.check_id, reg.health.service_id, reg.health.name, reg.health.status, reg.health.output) == (
            f"default/{p}-service-created/kubernetes-health-check", f"{p}-service-created", "Kubernetes Health Check",
            "passing", "Kubernetes health checks passing")


def test_endpoints_with_multiple_addresses_but_one_is_invalid():
    """pod3 has no Pod object: the runtime's error for that address; the others register."""
    ep = endpoints(ready=[("9.9.9.9", "pod3"), ("1.2.3.4", "pod1"), ("2.2.3.4", "pod2")])
    known = {"pod1": create_pod("pod1", "1.2.3.4"), "pod2": create_pod("pod2", "2.2.3.4")}
    regs = [register(known[a.target_name]) for a in addresses(ep) if a.target_name in known]
    assert [r.service_id for r in regs] == ["pod1-service-created", "pod2-service-created"]


def test_every_configurable_field_set():
    """Port, different Consul service name, meta, tags, upstreams, metrics."""
    pod = create_pod("pod1", annotations={
        P + "connect-service-port": "1234", P + "connect-service": "different-consul-svc-name",
        P + "service-meta-name": "abc", P + "service-meta-version": "2", P + "service-tags": "abc,123",
        P + "connect-service-tags": "def,456", P + "connect-service-upstreams": "upstream1:1234",
        P + "enable-metrics": "true", P + "prometheus-scrape-port": "12345"})
    reg = register(pod)
    meta = _meta("pod1", name="abc", version="2")
    assert _instances(reg) == ("pod1-different-consul-svc-name", "different-consul-svc-name", "1.2.3.4", 1234, meta,
                               ["abc", "123", "def", "456"])
    assert reg.proxy["ID"] == "pod1-different-consul-svc-name-sidecar-proxy"
    assert reg.proxy["Name"] == "different-consul-svc-name-sidecar-proxy"
    assert reg.proxy["Tags"] == ["abc", "123", "def", "456"]
    assert reg.proxy["Meta"] == meta
    assert reg.proxy["Proxy"] == {
        "DestinationServiceName": "different-consul-svc-name", "DestinationServiceID": "pod1-different-consul-svc-name",
        "LocalServiceAddress": "127.0.0.1", "LocalServicePort": 1234,
        "Config": {"envoy_prometheus_bind_addr": "0.0.0.0:12345"},
        "Upstreams": [{"DestinationType": "service", "DestinationName": "upstream1", "LocalBindPort": 1234, "MeshGateway": {}}],
        "MeshGateway": {}, "Expose": {}}
    assert reg.proxy["Checks"][1] == {"Name": "Destination Alias", "AliasService": "pod1-different-consul-svc-name"}
    assert reg.health.check_id == "default/pod1-different-consul-svc-name/kubernetes-health-check"


@pytest.mark.parametrize("ready, status, output", [(True, "passing", "Kubernetes health checks passing"),
                                                   (False, "critical", 'Pod "default/pod1" is not ready')])
def test_readiness_is_the_ttl_check(ready, status, output):
    reg = register(create_pod("pod1"), ready=ready)
    assert (reg.health.status, reg.health.output) == (status, output)
    assert reg.health.register_body()["Status"] == status
    # The registrations themselves do not depend on readiness (a readiness flip is one check update).
    assert reg.digest() == register(create_pod("pod1"), ready=not ready).digest()


# TestReconcileCreateEndpointWithNamespaces (enterprise): where the services and the check land.
@pytest.mark.parametrize("source, dest, mirror, prefix, expected", [
    ("default", "default", False, "", "default"),
    ("kube", "default", False, "", "default"),
    ("default", "other", False, "", "other"),
    ("kube", "other", False, "", "other"),
    ("default", "default", True, "", "default"),
    ("kube", "default", True, "", "kube"),
    ("default", "default", True, "prefix-", "prefix-default"),
])
def test_consul_namespaces(source, dest, mirror, prefix, expected):
    settings = Settings(tproxy_default=False, enable_consul_namespaces=True, consul_destination_namespace=dest,
                        enable_mirroring=mirror, mirroring_prefix=prefix)
    regs = [register(create_pod(p, ip, namespace=source), namespace=source, settings=settings)
            for p, ip in (("pod1", "1.2.3.4"), ("pod2", "2.2.3.4"))]
    for reg, p in zip(regs, ("pod1", "pod2")):
        assert reg.consul_namespace == expected
        assert reg.service["Namespace"] == reg.proxy["Namespace"] == expected
        assert reg.params == {"ns": expected}
        assert reg.service["Meta"]["k8s-namespace"] == source  # the Kubernetes namespace, always
        assert reg.health.check_id == f"{source}/{p}-service-created/kubernetes-health-check"
        assert "Namespace" not in reg.health.register_body()  # `ns` is a query parameter there


def test_namespaces_off_means_no_namespace_anywhere():
    settings = Settings(tproxy_default=False, consul_destination_namespace="other", enable_mirroring=True)
    reg = register(create_pod(), settings=settings)
    assert reg.consul_namespace == "" and "Namespace" not in reg.service and "Namespace" not in reg.proxy
    assert reg.params == {}


def test_partition_is_a_query_parameter_only():
    settings = Settings(tproxy_default=False, enable_consul_namespaces=True, enable_partitions=True, partition="part-a")
    reg = register(create_pod(annotations={P + "connect-service-upstreams": "db.ns2.part-b:1234"}), settings=settings)
    assert reg.params == {"ns": "default", "partition": "part-a"}
    assert "Partition" not in reg.service and "Partition" not in reg.proxy
    assert reg.proxy["Proxy"]["Upstreams"][0]["DestinationPartition"] == "part-b"
    assert Settings(partition="p").query("") == {"partition": "p"}


# Metrics (reference §2.3): annotation over default; the scrape port is read only when metrics are on.
@pytest.mark.parametrize("default, annotations, expected", [
    (False, {}, None),
    (True, {}, "0.0.0.0:20200"),
    (False, {"enable-metrics": "true"}, "0.0.0.0:20200"),
    (True, {"enable-metrics": "false"}, None),
    (True, {"enable-metrics": ""}, "0.0.0.0:20200"),  # empty = unset
    (False, {"enable-metrics": "1", "prometheus-scrape-port": "12345"}, "0.0.0.0:12345"),
    (False, {"enable-metrics": "T", "prometheus-scrape-port": "prom"}, "0.0.0.0:9102"),  # a container port name
    (False, {"prometheus-scrape-port": "80"}, None),  # not read when metrics are off
    (True, {"prometheus-scrape-port": ""}, "0.0.0.0:20200"),
])
def test_prometheus_bind_address(default, annotations, expected):
    pod = create_pod(containers=[{"name": "app", "ports": [{"name": "prom", "containerPort": 9102}]}],
                     annotations={P + k: v for k, v in annotations.items()})
    reg = register(pod, settings=Settings(tproxy_default=False, metrics_default=default))
    assert reg.proxy["Proxy"].get("Config", {}).get("envoy_prometheus_bind_addr") == expected
    if expected is None:
        assert "Config" not in reg.proxy["Proxy"]


def test_the_default_scrape_port_comes_from_the_settings():
    reg = register(create_pod(), settings=Settings(tproxy_default=False, metrics_default=True, prometheus_scrape_port=20201))
    assert reg.proxy["Proxy"]["Config"] == {"envoy_prometheus_bind_addr": "0.0.0.0:20201"}


# Bad values: the pod's error, naming pod, annotation and value.
@pytest.mark.parametrize("key, value, text", [
    ("enable-metrics", "maybe", "must be a boolean"),
    ("prometheus-scrape-port", "80", "port 80 is not in the range 1024-65535"),
    ("prometheus-scrape-port", "nope", "must be a port number"),
    ("connect-service-port", "nosuchport", "must be a port number or the name of a container port"),
    ("connect-service-port", "70000", "port 70000 is not in the range 1-65535"),
    ("connect-service-port", "3000000000", "must be a port number"),  # v0.37: `value out of range`
    ("connect-service-port", "-1", "not in the range"),
    ("connect-service-port", "80,81", "several ports per pod"),
    ("connect-service-upstreams", "db", "expected <service>:<port>"),
    ("transparent-proxy", "yes", "must be a boolean"),
    ("transparent-proxy", "", "must be a boolean"),  # present, even empty, is read (Go ParseBool(""))
])
def test_bad_annotation_values(key, value, text):
    pod = create_pod(annotations={P + key: value, P + "enable-metrics": "true"} if key == "prometheus-scrape-port"
                     else {P + key: value})
    with pytest.raises(BadAnnotation) as info:
        register(pod)
    error = info.value
    assert (error.pod, error.annotation, error.value, error.reason) == ("default/pod1", P + key, value, "bad-annotation")
    assert str(error).startswith(f'pod "default/pod1": annotation "{P}{key}" has invalid value ')
    assert text in str(error)
    assert error.problem in str(error) and "pod1" not in error.problem


@pytest.mark.parametrize("value, port", [("8080", 8080), ("http", 8080), ("0x50", 80), ("010", 8), (" 8080 ", 8080),
                                         ("", None), ("0", None), ("00", None)])
def test_service_port(value, port):
    pod = create_pod(containers=[{"name": "app", "ports": [{"name": "http", "containerPort": 8080}]}],
                     annotations={P + "connect-service-port": value})
    reg = register(pod)
    assert reg.service.get("Port") == port
    assert reg.proxy["Proxy"].get("LocalServicePort") == port
    assert reg.proxy["Proxy"].get("LocalServiceAddress") == ("127.0.0.1" if port else None)


def test_tags_are_trimmed_and_empties_dropped():
    """design.md: a deliberate deviation from v0.37 (which sent `["a", " b", ""]`)."""
    pod = create_pod(annotations={P + "service-tags": "a, b,,", P + "connect-service-tags": " c ,"})
    reg = register(pod)
    assert reg.service["Tags"] == reg.proxy["Tags"] == ["a", "b", "c"]
    assert "Tags" not in register(create_pod(annotations={P + "service-tags": " , "})).service


def test_reserved_meta_keys_win_over_service_meta():
    """design.md: v0.37 let `service-meta-managed-by` overwrite `managed-by` (and the instance could
    then never be deregistered)."""
    pod = create_pod(annotations={P + "service-meta-managed-by": "me", P + "service-meta-pod-name": "x",
                                  P + "service-meta-team": "blue", P + "service-meta-": "nothing"})
    reg = register(pod)
    assert reg.service["Meta"] == reg.proxy["Meta"] == _meta("pod1", team="blue")
    assert sorted(reg.warnings) == sorted([
        f'annotation "{P}service-meta-managed-by" is ignored: the controller sets meta "managed-by" itself '
        f"(deregistration finds the pod's instances by it)",
        f'annotation "{P}service-meta-pod-name" is ignored: the controller sets meta "pod-name" itself '
        f"(deregistration finds the pod's instances by it)",
        f'annotation "{P}service-meta-" is ignored: it names no meta key after "service-meta-"',
    ])


@pytest.mark.parametrize("key, value, text", [
    ("service-meta-a.b", "v", "meta keys may contain only letters, digits, _ and -"),
    ("service-meta-consul-x", "v", 'reserves meta keys starting with "consul-"'),
    ("service-meta-big", "é" * 257, "longer than the 512 bytes"),
])
def test_meta_consul_would_refuse(key, value, text):
    with pytest.raises(BadAnnotation) as info:
        register(create_pod(annotations={P + key: value}))
    assert info.value.annotation == P + key
    assert text in str(info.value)


def test_at_most_64_meta_pairs():
    register(create_pod(annotations={f"{P}service-meta-k{i}": "v" for i in range(60)}))
    with pytest.raises(RegistrationError, match="61 consul.hashicorp.com/service-meta-\\* annotations: Consul accepts at most 64"):
        register(create_pod(annotations={f"{P}service-meta-k{i}": "v" for i in range(61)}))


def test_ipv6_pod_address():
    reg = register(create_pod(ip="fd00::1"))
    assert reg.service["Address"] == reg.proxy["Address"] == "fd00::1"
    assert reg.proxy["Checks"][0]["TCP"] == "[fd00::1]:20000"  # v0.37 wrote fd00::1:20000, which no dialer reads


def test_a_pod_without_a_name_is_an_error():
    pod = create_pod()
    del pod["metadata"]["name"]
    with pytest.raises(BadPodSpec, match="no metadata.name"):
        register(pod)


def test_digest_follows_the_bodies():
    one = register(create_pod())
    assert one.digest() == register(create_pod()).digest()
    assert one.digest() != register(create_pod(annotations={P + "service-tags": "x"})).digest()
    assert one.digest() != register(create_pod(), settings=Settings(tproxy_default=False, partition="p")).digest()


def test_needs():
    settings = Settings()
    assert needs(create_pod(), settings).service  # tproxy on by default
    assert not needs(create_pod(annotations={P + "transparent-proxy": "false"}), settings).service
    assert not needs(create_pod(annotations={P + "transparent-proxy": "bad"}), settings).service  # build() reports it
    assert not needs(create_pod(), Settings(tproxy_default=False)).service
    assert needs(create_pod(), Settings(tproxy_default=False), {P + "transparent-proxy": "true"}).service
    assert not needs(create_pod(), settings).proxy_defaults
    assert needs(create_pod(annotations={P + "connect-service-upstreams": "a:1, b:2:dc2"}), settings).proxy_defaults


def _section(*sets: str):
    """The endpoints controller's section of the values, as the subcommand loads it."""
    from generator.values.config import load_settings

    return load_settings([], list(sets), environ={}).endpoints


def test_settings_from_the_values():
    config = _section("global.enableConsulNamespaces=true", "connectInject.consulNamespaces.mirroringK8S=true",
                         "connectInject.consulNamespaces.mirroringK8SPrefix=k8s-", "global.acls.manageSystemACLs=true",
                         "global.adminPartitions.enabled=true", "global.adminPartitions.name=part",
                         "connectInject.k8sDenyNamespaces[0]=blocked", "connectInject.metrics.defaultEnabled=true",
                         "connectInject.transparentProxy.defaultEnabled=false")
    settings = Settings.from_section(config)
    assert settings == Settings(
        allow_namespaces=frozenset({"*"}), deny_namespaces=frozenset({"blocked"}), enable_consul_namespaces=True,
        consul_destination_namespace="default", enable_mirroring=True, mirroring_prefix="k8s-",
        cross_namespace_policy="cross-namespace-policy", enable_partitions=True, partition="part",
        tproxy_default=False, overwrite_probes_default=True, metrics_default=True, prometheus_scrape_port=20200)
    assert Settings.from_section(_section()) == Settings()


def test_a_pod_injected_by_our_webhook_registers():
    """The docs' static-server through review(), then through the builder: the port the webhook
    wrote, the probes it rewrote and the original it kept are what the registration reads."""
    pod = make_pod({P + "connect-service-upstreams": "static-client:1234", P + "enable-metrics": "true"},
                   containers=[{"name": "web", "image": "hashicorp/http-echo:latest",
                                "ports": [{"name": "http", "containerPort": 8080}],
                                "readinessProbe": {"httpGet": {"port": "http", "path": "/ready"}}}])
    injected = inject(pod)
    injected["metadata"]["name"] = "static-server-abc"
    injected["status"] = {"podIP": "10.1.0.7", "hostIP": "192.168.0.2"}
    svc = {"spec": {"clusterIP": "10.96.0.20", "ports": [{"port": 80, "targetPort": "http"}]}}
    reg = build(injected, endpoints_name="static-server", endpoints_namespace="default", ready=False,
                settings=Settings.from_section(_section()), service=svc)
    assert reg.service["Port"] == 8080
    assert reg.service["TaggedAddresses"] == {"virtual": {"Address": "10.96.0.20", "Port": 80}}
    assert reg.proxy["Proxy"]["Mode"] == "transparent"
    assert reg.proxy["Proxy"]["Expose"] == {"Paths": [{"ListenerPort": 20400, "Path": "/ready", "LocalPathPort": 8080,
                                                        "ParsedFromCheck": False}]}
    assert reg.proxy["Proxy"]["Upstreams"][0]["DestinationName"] == "static-client"
    assert reg.proxy["Proxy"]["Config"] == {"envoy_prometheus_bind_addr": "0.0.0.0:20200"}
    assert reg.health.status == "critical"
    assert (reg.host_ip, reg.address) == ("192.168.0.2", "10.1.0.7")


def test_proxy_defaults_default_is_not_needed_without_datacenters():
    reg = build(create_pod(annotations={P + "connect-service-upstreams": "a:1"}), endpoints_name="s",
                endpoints_namespace="default", ready=True, settings=Settings(tproxy_default=False))
    assert reg.proxy["Proxy"]["Upstreams"][0]["DestinationName"] == "a"


def test_a_datacenter_upstream_with_remote_mesh_gateway_mode():
    pod = create_pod(annotations={P + "connect-service-upstreams": "db:5432:dc2"})
    reg = register(pod, proxy_defaults=ProxyDefaults.found("remote"))
    assert reg.proxy["Proxy"]["Upstreams"] == [
        {"DestinationType": "service", "DestinationName": "db", "Datacenter": "dc2", "LocalBindPort": 5432, "MeshGateway": {}}]
