"""Every injected field of reference §5: volume, init containers, sidecars, security contexts,
resources, annotations, labels, probes, metrics, openshift. Each injected pod also validates
against the Kubernetes 1.30 schema in strict mode."""

from __future__ import annotations

import json

import pytest

from engine_helpers import P, container, denial, inject, load_config, make_pod, run, validate_k8s

DATA_MOUNT = {"name": "consul-connect-inject-data", "mountPath": "/consul/connect-inject"}
INIT_RESOURCES = {"limits": {"cpu": "50m", "memory": "150Mi"}, "requests": {"cpu": "50m", "memory": "25Mi"}}


def _downward(name: str, path: str) -> dict:
    return {"name": name, "valueFrom": {"fieldRef": {"fieldPath": path}}}


def test_order_of_injected_objects():
    pod = make_pod(initContainers=[{"name": "setup", "image": "s"}], volumes=[{"name": "data", "emptyDir": {}}])
    out = inject(pod, load_config("connectInject.metrics.defaultEnabled=true", "connectInject.metrics.defaultEnableMerging=true"))
    assert [v["name"] for v in out["spec"]["volumes"]] == ["data", "consul-connect-inject-data"]
    assert [c["name"] for c in out["spec"]["initContainers"]] == ["setup", "copy-consul-bin", "consul-connect-inject-init"]
    assert [c["name"] for c in out["spec"]["containers"]] == ["web", "envoy-sidecar", "consul-sidecar"]
    validate_k8s(out)


def test_volume_and_copy_container():
    out = inject(make_pod())
    assert out["spec"]["volumes"] == [{"name": "consul-connect-inject-data", "emptyDir": {}}]
    assert container(out, "copy-consul-bin", "initContainers") == {
        "name": "copy-consul-bin",
        "image": "hashicorp/consul:1.10.4",
        "command": ["/bin/sh", "-ec", "cp /bin/consul /consul/connect-inject/consul"],
        "resources": INIT_RESOURCES,
        "volumeMounts": [DATA_MOUNT],
        "securityContext": {"runAsUser": 5996, "runAsGroup": 5996, "runAsNonRoot": True, "readOnlyRootFilesystem": True},
    }
    validate_k8s(out)


def test_init_container_with_tproxy():
    init = container(inject(make_pod()), "consul-connect-inject-init", "initContainers")
    assert init["image"] == "hashicorp/consul-k8s-control-plane:0.37.0"
    assert init["command"][:2] == ["/bin/sh", "-ec"]
    assert init["env"] == [_downward("HOST_IP", "status.hostIP"), _downward("POD_IP", "status.podIP"),
                           _downward("POD_NAME", "metadata.name"), _downward("POD_NAMESPACE", "metadata.namespace")]
    assert init["resources"] == INIT_RESOURCES
    assert init["volumeMounts"] == [DATA_MOUNT]
    assert init["securityContext"] == {"runAsUser": 0, "runAsGroup": 0, "runAsNonRoot": False, "privileged": True,
                                       "capabilities": {"add": ["NET_ADMIN"]}}


def test_init_container_without_tproxy_has_no_security_context():
    init = container(inject(make_pod({P + "transparent-proxy": "false"})), "consul-connect-inject-init", "initContainers")
    assert "securityContext" not in init


def test_init_container_copies_the_service_account_token_mount_with_acls():
    mount = {"name": "kube-api-access-abcde", "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount", "readOnly": True}
    pod = make_pod(containers=[{"name": "web", "image": "w", "volumeMounts": [mount]}], serviceAccountName="web")
    out = inject(pod, load_config("global.acls.manageSystemACLs=true"))
    assert container(out, "consul-connect-inject-init", "initContainers")["volumeMounts"] == [DATA_MOUNT, mount]


def test_acls_without_a_token_mount_is_refused_with_the_reason():
    code, message = denial(run(make_pod(), load_config("global.acls.manageSystemACLs=true")))
    assert code == 400 and "/var/run/secrets/kubernetes.io/serviceaccount" in message and "automountServiceAccountToken" in message


def test_envoy_sidecar():
    out = inject(make_pod())
    assert container(out, "envoy-sidecar") == {
        "name": "envoy-sidecar",
        "image": "envoyproxy/envoy-alpine:v1.18.4",
        "command": ["envoy", "--config-path", "/consul/connect-inject/envoy-bootstrap.yaml"],
        "env": [_downward("HOST_IP", "status.hostIP")],
        "resources": {},
        "volumeMounts": [DATA_MOUNT],
        "securityContext": {"runAsUser": 5995, "runAsGroup": 5995, "runAsNonRoot": True, "readOnlyRootFilesystem": True},
    }


def test_images_come_from_values():
    config = load_config("global.image=consul:x", "global.imageK8S=k8s:y", "global.imageEnvoy=envoy:z")
    out = inject(make_pod(), config)
    assert container(out, "copy-consul-bin", "initContainers")["image"] == "consul:x"
    assert container(out, "consul-connect-inject-init", "initContainers")["image"] == "k8s:y"
    assert container(out, "envoy-sidecar")["image"] == "envoy:z"
    config = load_config("connectInject.image=ci:1", "connectInject.imageConsul=cc:2")
    out = inject(make_pod(), config)
    assert container(out, "consul-connect-inject-init", "initContainers")["image"] == "ci:1"
    assert container(out, "copy-consul-bin", "initContainers")["image"] == "cc:2"


def test_openshift_drops_security_contexts_except_with_tproxy():
    config = load_config("global.openshift.enabled=true")
    out = inject(make_pod({P + "transparent-proxy": "false"}), config)
    assert "securityContext" not in container(out, "copy-consul-bin", "initContainers")
    assert "securityContext" not in container(out, "envoy-sidecar")
    out = inject(make_pod(), config)
    assert container(out, "envoy-sidecar")["securityContext"]["runAsUser"] == 5995
    validate_k8s(out)


@pytest.mark.parametrize("where", ["pod", "container"])
def test_uid_5995_conflicts_are_refused(where):
    if where == "pod":
        pod = make_pod(securityContext={"runAsUser": 5995})
        expected = "pod security context cannot have the same uid as envoy: 5995"
    else:
        pod = make_pod(containers=[{"name": "app", "image": "a", "securityContext": {"runAsUser": 5995}}])
        expected = 'container "app" has runAsUser set to the same uid "5995" as envoy which is not allowed'
    assert denial(run(pod)) == (400, expected)


def test_uid_conflict_is_not_checked_when_envoy_has_no_security_context():
    pod = make_pod({P + "transparent-proxy": "false"}, securityContext={"runAsUser": 5995})
    assert run(pod, load_config("global.openshift.enabled=true")).outcome == "injected"


def test_status_annotations_and_labels():
    pod = make_pod()
    out = inject(pod)
    annotations, labels = out["metadata"]["annotations"], out["metadata"]["labels"]
    assert annotations[P + "connect-inject-status"] == "injected"
    assert json.loads(annotations[P + "original-pod"]) == pod
    assert annotations[P + "connect-service-port"] == "http"
    assert labels == {P + "connect-inject-status": "injected", P + "connect-inject-managed-by": "consul-k8s-endpoints-controller"}
    assert not any(k.startswith("prometheus.io/") for k in annotations)


def test_default_service_port_is_the_first_port_number_without_a_name_and_absent_without_ports():
    out = inject(make_pod(containers=[{"name": "web", "image": "w", "ports": [{"containerPort": 9090}]}]))
    assert out["metadata"]["annotations"][P + "connect-service-port"] == "9090"
    out = inject(make_pod(containers=[{"name": "web", "image": "w"}]))
    assert P + "connect-service-port" not in out["metadata"]["annotations"]
    out = inject(make_pod({P + "connect-service-port": "7000"}))
    assert out["metadata"]["annotations"][P + "connect-service-port"] == "7000"


def test_metrics_annotations_without_merging():
    out = inject(make_pod({P + "enable-metrics": "true", P + "prometheus-scrape-port": "20222", P + "prometheus-scrape-path": "/stats"}))
    annotations = out["metadata"]["annotations"]
    assert (annotations["prometheus.io/scrape"], annotations["prometheus.io/port"], annotations["prometheus.io/path"]) == ("true", "20222", "/stats")
    assert [c["name"] for c in out["spec"]["containers"]] == ["web", "envoy-sidecar"]


def test_consul_sidecar_with_merging():
    config = load_config("connectInject.metrics.defaultEnabled=true", "connectInject.metrics.defaultEnableMerging=true",
                         "global.logLevel=debug", "global.logJSON=true")
    out = inject(make_pod({P + "service-metrics-port": "9102", P + "service-metrics-path": "/app-metrics"}), config)
    assert container(out, "consul-sidecar") == {
        "name": "consul-sidecar",
        "image": "hashicorp/consul-k8s-control-plane:0.37.0",
        "command": ["consul-k8s-control-plane", "consul-sidecar", "-enable-service-registration=false",
                    "-enable-metrics-merging=true", "-merged-metrics-port=20100", "-service-metrics-port=9102",
                    "-service-metrics-path=/app-metrics", "-log-level=debug", "-log-json=true"],
        "resources": {"limits": {"cpu": "20m", "memory": "50Mi"}, "requests": {"cpu": "20m", "memory": "25Mi"}},
        "volumeMounts": [DATA_MOUNT],
    }
    validate_k8s(out)


def test_no_merging_without_a_service_metrics_port():
    config = load_config("connectInject.metrics.defaultEnabled=true", "connectInject.metrics.defaultEnableMerging=true")
    out = inject(make_pod(containers=[{"name": "web", "image": "w"}]), config)
    assert [c["name"] for c in out["spec"]["containers"]] == ["web", "envoy-sidecar"]


def test_global_metrics_is_inherited_by_the_tristate_default():
    out = inject(make_pod(), load_config("global.metrics.enabled=true"))
    assert out["metadata"]["annotations"]["prometheus.io/scrape"] == "true"
    out = inject(make_pod(), load_config("global.metrics.enabled=true", "connectInject.metrics.defaultEnabled=false"))
    assert "prometheus.io/scrape" not in out["metadata"]["annotations"]


def test_http_probes_are_rewritten_with_tproxy():
    probes = {
        "livenessProbe": {"httpGet": {"path": "/live", "port": 8080}},
        "readinessProbe": {"httpGet": {"path": "/ready", "port": "http"}},
        "startupProbe": {"tcpSocket": {"port": 8080}},
    }
    containers = [{"name": "side", "image": "s", "readinessProbe": {"exec": {"command": ["true"]}}},
                  {"name": "web", "image": "w", "ports": [{"name": "http", "containerPort": 8080}], **probes}]
    out = inject(make_pod(containers=containers))
    web = container(out, "web")
    assert web["livenessProbe"]["httpGet"] == {"path": "/live", "port": 20301}
    assert web["readinessProbe"]["httpGet"] == {"path": "/ready", "port": 20401}
    assert web["startupProbe"] == {"tcpSocket": {"port": 8080}}
    assert container(out, "side")["readinessProbe"] == {"exec": {"command": ["true"]}}
    validate_k8s(out)


@pytest.mark.parametrize("annotations,sets", [
    ({P + "transparent-proxy": "false"}, ()),
    ({P + "transparent-proxy-overwrite-probes": "false"}, ()),
    ({}, ("connectInject.transparentProxy.defaultOverwriteProbes=false",)),
])
def test_probes_kept_without_tproxy_or_overwrite(annotations, sets):
    pod = make_pod(annotations, containers=[{"name": "web", "image": "w", "startupProbe": {"httpGet": {"port": 8080}}}])
    assert container(inject(pod, load_config(*sets)), "web")["startupProbe"]["httpGet"]["port"] == 8080


def test_namespace_label_decides_tproxy_when_the_pod_does_not():
    labels = {"legacy": {P + "transparent-proxy": "false"}}
    out = inject(make_pod(), namespace="legacy", labels=labels)
    assert "redirect-traffic" not in container(out, "consul-connect-inject-init", "initContainers")["command"][2]
    out = inject(make_pod({P + "transparent-proxy": "true"}), namespace="legacy", labels=labels)
    assert "redirect-traffic" in container(out, "consul-connect-inject-init", "initContainers")["command"][2]


def test_bad_namespace_label_names_the_namespace_and_label():
    code, message = denial(run(make_pod(), namespace="ns1", labels={"ns1": {P + "consul-dns": "maybe"}}))
    assert code == 400 and '"ns1"' in message and f'"{P}consul-dns"' in message and '"maybe"' in message


def test_consul_dns_from_values_without_the_dns_ip_is_our_fault_500():
    result = run(make_pod(), load_config("dns.enableRedirection=true"))
    code, message = denial(result)
    assert code == 500 and result.reason == "injector-fault" and "CONSUL_CONSUL_DNS_SERVICE_HOST" in message


def test_consul_dns_asked_by_the_pod_without_the_dns_ip_is_a_400_naming_the_annotation():
    result = run(make_pod({P + "consul-dns": "true"}))
    code, message = denial(result)
    assert code == 400 and result.reason == "consul-dns-unavailable"
    assert message.startswith(f'the annotation "{P}consul-dns" asks for Consul DNS, but this installation has none: '
                              "CONSUL_CONSUL_DNS_SERVICE_HOST is not set"), message


def test_consul_dns_asked_by_the_namespace_label_names_the_label():
    result = run(make_pod(), labels={"default": {P + "consul-dns": "true"}})
    code, message = denial(result)
    assert code == 400 and message.startswith(f'the label "{P}consul-dns" of namespace "default" asks for Consul DNS')


def test_dns_redirection_from_values_uses_the_release_fullname():
    config = load_config("dns.enableRedirection=true", env={"CONSUL_CONSUL_DNS_SERVICE_HOST": "10.0.0.53"})
    out = inject(make_pod(), config)
    assert '-consul-dns-ip="10.0.0.53"' in container(out, "consul-connect-inject-init", "initContainers")["command"][2]


def test_init_resources_from_values_and_null_leaves_a_field_out():
    config = load_config("connectInject.initContainer.resources.limits.memory=null", "connectInject.initContainer.resources.requests.cpu=10m")
    out = inject(make_pod(), config)
    assert container(out, "copy-consul-bin", "initContainers")["resources"] == {"limits": {"cpu": "50m"}, "requests": {"cpu": "10m", "memory": "25Mi"}}


def test_partition_and_namespaces_annotation():
    config = load_config("global.enableConsulNamespaces=true", "global.adminPartitions.enabled=true", "global.adminPartitions.name=team-a")
    out = inject(make_pod(), config, namespace="web")
    assert out["metadata"]["annotations"][P + "consul-namespace"] == "default"
    script = container(out, "consul-connect-inject-init", "initContainers")["command"][2]
    assert script.count('-partition="team-a"') == 3
