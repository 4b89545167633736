"""Per-pod container overrides: a container the pod declares under an injected name is laid over
the rendered one, field by field (the Istio way)."""

from __future__ import annotations

import pytest
import yaml

from engine_helpers import ROOT, P, container, denial, inject, load_config, make_pod, run, validate_k8s


def _pod_with(*extra, init=()):
    app = {"name": "web", "image": "w", "ports": [{"name": "http", "containerPort": 8080}]}
    return make_pod({P + "connect-service-upstreams": "db:5432"}, containers=[app, *extra], **({"initContainers": list(init)} if init else {}))


def test_envoy_override_merges_resources_security_context_and_env():
    override = {"name": "envoy-sidecar", "image": "",
                "resources": {"limits": {"memory": "256Mi"}},
                "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]},
                                    "seccompProfile": {"type": "RuntimeDefault"}},
                "env": [{"name": "ENVOY_EXTRA", "value": "1"}]}
    out = inject(_pod_with(override))
    names = [c["name"] for c in out["spec"]["containers"]]
    assert names == ["web", "envoy-sidecar"]  # the declared one is replaced, not duplicated
    envoy = container(out, "envoy-sidecar")
    assert envoy["image"] == "envoyproxy/envoy-alpine:v1.18.4"  # empty image keeps the rendered one
    assert envoy["resources"] == {"limits": {"memory": "256Mi"}}
    assert envoy["securityContext"] == {"runAsUser": 5995, "runAsGroup": 5995, "runAsNonRoot": True,
                                        "readOnlyRootFilesystem": True, "allowPrivilegeEscalation": False,
                                        "capabilities": {"drop": ["ALL"]}, "seccompProfile": {"type": "RuntimeDefault"}}
    assert envoy["env"] == [{"name": "HOST_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.hostIP"}}},
                            {"name": "ENVOY_EXTRA", "value": "1"}]
    assert envoy["command"][0] == "envoy"
    assert all("CONNECT_SERVICE" not in e["name"] for e in envoy["env"])  # upstream env is for apps only
    validate_k8s(out)


# The security review's reproducers: the init containers run the root, privileged, NET_ADMIN setup.
@pytest.mark.parametrize("name,override", [
    ("consul-connect-inject-init", {"env": [{"name": "PATH", "value": "/consul/connect-inject:/usr/bin:/bin"},
                                            {"name": "LD_PRELOAD", "value": "/consul/connect-inject/x.so"}]}),
    ("consul-connect-inject-init", {"env": [{"name": "POD_NAME", "value": "x -service-account-name=other"}]}),
    ("consul-connect-inject-init", {"volumeMounts": [{"name": "planted", "mountPath": "/consul/connect-inject"}]}),
    ("consul-connect-inject-init", {"image": "attacker/connect-init:latest"}),
    ("consul-connect-inject-init", {"resources": {"limits": {"cpu": "1"}}}),
    ("copy-consul-bin", {"image": "attacker/consul:latest"}),
    ("copy-consul-bin", {}),
])
def test_pods_cannot_override_the_injected_init_containers(name, override):
    pod = _pod_with(init=[{"name": name, **override}])
    code, message = denial(run(pod))
    assert code == 400
    assert message.startswith(f'spec.initContainers[0]: a pod cannot declare the injected init container "{name}"'), message
    # Declared among the app containers, it is refused the same way.
    code, message = denial(run(_pod_with({"name": name, **override})))
    assert code == 400 and f'injected init container "{name}"' in message, message


@pytest.mark.parametrize("sidecar", ["envoy-sidecar", "consul-sidecar"])
@pytest.mark.parametrize("var", ["PATH", "LD_PRELOAD", "LD_LIBRARY_PATH", "POD_NAME", "POD_NAMESPACE", "HOST_IP",
                                 "BASH_ENV", "GCONV_PATH", "CONSUL_HTTP_ADDR"])
def test_sidecar_env_overrides_exclude_loader_shell_and_injected_variables(sidecar, var):
    override = {"name": sidecar, "env": [{"name": "FINE", "value": "1"}, {"name": var, "value": "/tmp/x"}]}
    code, message = denial(run(_pod_with(override), _merging_config()))
    assert code == 400 and message.startswith(f'spec.containers[1].env[1].name: a pod cannot set "{var}" on "{sidecar}"'), message


def _merging_config():
    return load_config("connectInject.metrics.defaultEnabled=true", "connectInject.metrics.defaultEnableMerging=true")


@pytest.mark.parametrize("context,field", [
    ({"runAsUser": 0}, "runAsUser"),
    ({"runAsGroup": 0}, "runAsGroup"),
    ({"runAsUser": 1000}, "runAsUser"),
    ({"privileged": True}, "privileged"),
    ({"allowPrivilegeEscalation": True}, "allowPrivilegeEscalation"),
    ({"runAsNonRoot": False}, "runAsNonRoot"),
    ({"capabilities": {"add": ["NET_ADMIN"]}}, "capabilities.add"),
    ({"capabilities": {"add": ["SYS_ADMIN"], "drop": ["ALL"]}}, "capabilities.add"),
    ({"seccompProfile": {"type": "Unconfined"}}, "seccompProfile"),
    ({"appArmorProfile": {"type": "Unconfined"}}, "appArmorProfile"),
    ({"seLinuxOptions": {"type": "spc_t"}}, "seLinuxOptions"),
    ({"procMount": "Unmasked"}, "procMount"),
    ({"windowsOptions": {"runAsUserName": "ContainerAdministrator"}}, "windowsOptions"),
])
def test_sidecar_security_context_cannot_change_identity_or_add_privilege(context, field):
    code, message = denial(run(_pod_with({"name": "envoy-sidecar", "securityContext": context})))
    assert code == 400 and message.startswith(f"spec.containers[1].securityContext.{field}: "), message


def test_sidecar_security_context_may_restate_its_own_user():
    out = inject(_pod_with({"name": "envoy-sidecar", "securityContext": {"runAsUser": 5995, "runAsGroup": 5995, "readOnlyRootFilesystem": True}}))
    assert container(out, "envoy-sidecar")["securityContext"]["runAsUser"] == 5995


def test_consul_sidecar_cannot_run_as_envoys_uid():
    # consul-sidecar sets no user: 5995 would put it outside transparent proxy's redirection.
    pod = _pod_with({"name": "consul-sidecar", "securityContext": {"runAsUser": 5995}})
    code, message = denial(run(pod, _merging_config()))
    assert code == 400 and message.startswith('spec.containers[1].securityContext.runAsUser: a pod cannot change the user or group of "consul-sidecar"'), message


def test_native_sidecar_of_the_author_cannot_run_as_envoys_uid():
    sidecar = {"name": "log-agent", "image": "l", "restartPolicy": "Always", "securityContext": {"runAsUser": 5995}}
    code, message = denial(run(_pod_with(init=[sidecar])))
    assert code == 400 and message == 'container "log-agent" has runAsUser set to the same uid "5995" as envoy which is not allowed'
    # An ordinary init container finishes before the redirection exists: allowed, as in the reference.
    inject(_pod_with(init=[{**sidecar, "restartPolicy": None}]))


def test_sidecar_image_override_needs_the_namespace_allowed_in_values():
    pod = _pod_with({"name": "envoy-sidecar", "image": "mirror.local/envoy:v1.18.4"})
    code, message = denial(run(pod))
    assert code == 400 and message == ('spec.containers[1].image: pods in namespace "default" may not replace the image of '
                                       '"envoy-sidecar" (an administrator allows it with connectInject.podOverrides.imageNamespaces)')
    allowed = load_config("connectInject.podOverrides.imageNamespaces={team-a,default}")
    assert container(inject(pod, allowed), "envoy-sidecar")["image"] == "mirror.local/envoy:v1.18.4"
    code, _ = denial(run(pod, allowed, namespace="team-b"))
    assert code == 400
    everywhere = load_config("connectInject.podOverrides.imageNamespaces={*}")
    assert container(inject(pod, everywhere, namespace="team-b"), "envoy-sidecar")["image"] == "mirror.local/envoy:v1.18.4"


def test_sidecar_pull_policy_and_resources_are_the_authors():
    override = {"name": "envoy-sidecar", "imagePullPolicy": "Always", "resources": {"requests": {"cpu": "100m"}}}
    envoy = container(inject(_pod_with(override)), "envoy-sidecar")
    assert envoy["imagePullPolicy"] == "Always" and envoy["resources"] == {"requests": {"cpu": "100m"}}
    code, message = denial(run(_pod_with({**override, "imagePullPolicy": "Sometimes"})))
    assert code == 400 and message.startswith("spec.containers[1].imagePullPolicy: expected one of Always, IfNotPresent, Never")


def test_override_uid_5995_is_not_an_app_conflict():
    out = inject(_pod_with({"name": "envoy-sidecar", "image": "", "securityContext": {"runAsUser": 5995}}))
    assert container(out, "envoy-sidecar")["securityContext"]["runAsUser"] == 5995


def test_reinvocation_is_idempotent():
    out = inject(_pod_with({"name": "envoy-sidecar", "resources": {"limits": {"memory": "1Gi"}}}))
    again = run(out)
    assert again.reason == "already-injected" and "patch" not in again.review["response"]


@pytest.mark.parametrize("field,value,where", [
    ("resources", "lots", "spec.containers[1].resources: expected a map"),
    ("image", 5, "spec.containers[1].image: expected a string"),
    ("env", [{"value": "x"}], "spec.containers[1].env: expected a list of maps, each with a string 'name'"),
    ("env", [{"name": ["a"]}], "spec.containers[1].env: expected a list of maps, each with a string 'name'"),
    ("securityContext", {"capabilities": ["NET_ADMIN"]}, "spec.containers[1].securityContext.capabilities: expected a map with drop"),
])
def test_override_with_a_wrong_type_is_a_400_naming_the_field(field, value, where):
    override = {"name": "envoy-sidecar", field: value}
    code, message = denial(run(_pod_with(override)))
    assert code == 400 and message.startswith(where), message


def test_declaring_an_injected_container_twice_is_a_400():
    code, message = denial(run(_pod_with({"name": "envoy-sidecar", "image": "a"}, init=[{"name": "envoy-sidecar", "image": "b"}])))
    assert code == 400 and "declared twice" in message


@pytest.mark.parametrize("field", ["command", "args", "lifecycle", "readinessProbe", "volumeMounts", "envFrom", "workingDir"])
def test_sidecar_overrides_cannot_run_the_pod_authors_code(field):
    # Envoy's UID is never redirected by transparent proxy: it may not run what the pod author
    # writes, nor read files the author mounts in place of its bootstrap.
    value = {"exec": {"command": ["id"]}} if field in ("lifecycle", "readinessProbe") else ["/bin/sh", "-c", "id"]
    value = [{"name": "mine", "mountPath": "/etc/envoy"}] if field == "volumeMounts" else value
    code, message = denial(run(_pod_with({"name": "envoy-sidecar", field: value})))
    assert code == 400 and message.startswith(f'spec.containers[1].{field}: the injected container "envoy-sidecar" cannot be overridden in {field}; '
                                              "a pod may override image, imagePullPolicy, resources, securityContext, env"), message


def test_a_pod_cannot_undo_hardening_the_template_adds(tmp_path):
    """Reviewer's find: a template with drop [ALL] and RuntimeDefault seccomp could be loosened by
    a pod's `capabilities: {drop: []}` and a permissive Localhost profile."""
    hardened = (tmp_path / "hard.yaml")
    template = (ROOT / "templates" / "envoy-sidecar.yaml.j2").read_text().replace(
        "  readOnlyRootFilesystem: true\n",
        "  readOnlyRootFilesystem: true\n  capabilities:\n    drop: [ALL]\n  seccompProfile:\n    type: RuntimeDefault\n")
    hardened.write_text(yaml.safe_dump({"connectInject": {"templates": {"envoy-sidecar": template}}}))
    config = load_config(files=(hardened,))
    more = inject(_pod_with({"name": "envoy-sidecar", "securityContext": {"capabilities": {"drop": ["NET_RAW"]}}}), config)
    assert container(more, "envoy-sidecar")["securityContext"]["capabilities"] == {"drop": ["ALL", "NET_RAW"]}
    fewer = inject(_pod_with({"name": "envoy-sidecar", "securityContext": {"capabilities": {"drop": []}}}), config)
    assert container(fewer, "envoy-sidecar")["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    for context in ({"seccompProfile": {"type": "Localhost", "localhostProfile": "profiles/permissive.json"}},
                    {"readOnlyRootFilesystem": False}):
        code, message = denial(run(_pod_with({"name": "envoy-sidecar", "securityContext": context}), config))
        assert code == 400 and "a pod cannot" in message, message
