"""Per-pod container overrides: a container the pod declares under an injected name is laid over
the rendered one, field by field (the Istio way)."""

from __future__ import annotations

import pytest

from engine_helpers import P, container, denial, inject, make_pod, run, validate_k8s


def _pod_with(*extra, init=()):
    app = {"name": "web", "image": "w", "ports": [{"name": "http", "containerPort": 8080}]}
    return make_pod({P + "connect-service-upstreams": "db:5432"}, containers=[app, *extra], **({"initContainers": list(init)} if init else {}))


def test_envoy_override_merges_resources_security_context_and_env():
    override = {"name": "envoy-sidecar", "image": "",
                "resources": {"limits": {"memory": "256Mi"}},
                "securityContext": {"allowPrivilegeEscalation": False},
                "env": [{"name": "HOST_IP", "value": "overridden"}, {"name": "EXTRA", "value": "1"}]}
    out = inject(_pod_with(override))
    names = [c["name"] for c in out["spec"]["containers"]]
    assert names == ["web", "envoy-sidecar"]  # the declared one is replaced, not duplicated
    envoy = container(out, "envoy-sidecar")
    assert envoy["image"] == "envoyproxy/envoy-alpine:v1.18.4"  # empty image keeps the rendered one
    assert envoy["resources"] == {"limits": {"memory": "256Mi"}}
    assert envoy["securityContext"] == {"runAsUser": 5995, "runAsGroup": 5995, "runAsNonRoot": True,
                                        "readOnlyRootFilesystem": True, "allowPrivilegeEscalation": False}
    assert envoy["env"] == [{"name": "HOST_IP", "value": "overridden"}, {"name": "EXTRA", "value": "1"}]
    assert envoy["command"][0] == "envoy"
    assert all("CONNECT_SERVICE" not in e["name"] for e in envoy["env"])  # upstream env is for apps only
    validate_k8s(out)


def test_init_override_image_and_resources_keep_order():
    override = {"name": "consul-connect-inject-init", "image": "registry.local/consul-k8s:0.37.0", "resources": {"requests": {"cpu": "100m"}}}
    out = inject(_pod_with(init=[override, {"name": "setup", "image": "s"}]))
    assert [c["name"] for c in out["spec"]["initContainers"]] == ["setup", "copy-consul-bin", "consul-connect-inject-init"]
    init = container(out, "consul-connect-inject-init", "initContainers")
    assert init["image"] == "registry.local/consul-k8s:0.37.0"
    assert init["resources"] == {"limits": {"cpu": "50m", "memory": "150Mi"}, "requests": {"cpu": "100m", "memory": "25Mi"}}
    assert init["command"][2].startswith("\nexport CONSUL_HTTP_ADDR")
    validate_k8s(out)


def test_override_uid_5995_is_not_an_app_conflict():
    out = inject(_pod_with({"name": "envoy-sidecar", "image": "", "securityContext": {"runAsUser": 5995}}))
    assert container(out, "envoy-sidecar")["securityContext"]["runAsUser"] == 5995


def test_reinvocation_is_idempotent():
    out = inject(_pod_with({"name": "envoy-sidecar", "image": "e:2"}))
    again = run(out)
    assert again.reason == "already-injected" and "patch" not in again.review["response"]


@pytest.mark.parametrize("field,value,where", [
    ("resources", "lots", "spec.containers[1].resources: expected a map"),
    ("image", 5, "spec.containers[1].image: expected a string"),
    ("env", [{"value": "x"}], "spec.containers[1].env: expected a list of maps, each with a string 'name'"),
    ("env", [{"name": ["a"]}], "spec.containers[1].env: expected a list of maps, each with a string 'name'"),
    ("volumeMounts", [{"mountPath": {"a": 1}}], "spec.containers[1].volumeMounts: expected a list of maps, each with a string 'mountPath'"),
])
def test_override_with_a_wrong_type_is_a_400_naming_the_field(field, value, where):
    override = {"name": "envoy-sidecar", field: value}
    code, message = denial(run(_pod_with(override)))
    assert code == 400 and message.startswith(where), message


def test_declaring_an_injected_container_twice_is_a_400():
    code, message = denial(run(_pod_with({"name": "envoy-sidecar", "image": "a"}, init=[{"name": "envoy-sidecar", "image": "b"}])))
    assert code == 400 and "declared twice" in message


@pytest.mark.parametrize("name,where,field", [
    ("consul-connect-inject-init", "initContainers", "command"),
    ("consul-connect-inject-init", "initContainers", "args"),
    ("copy-consul-bin", "initContainers", "command"),
    ("envoy-sidecar", "containers", "command"),
    ("envoy-sidecar", "containers", "lifecycle"),
    ("envoy-sidecar", "containers", "readinessProbe"),
])
def test_overrides_cannot_run_the_pod_authors_code(name, where, field):
    # The init container is privileged and root; Envoy's UID is never redirected by transparent
    # proxy. Neither may run what the pod author writes.
    override = {"name": name, field: {"exec": {"command": ["id"]}} if field in ("lifecycle", "readinessProbe") else ["/bin/sh", "-c", "id"]}
    pod = _pod_with(override) if where == "containers" else _pod_with(init=[override])
    code, message = denial(run(pod))
    assert code == 400 and f".{field}: the injected container \"{name}\" cannot be overridden in {field}" in message
