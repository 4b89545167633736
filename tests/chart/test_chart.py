"""Whole-chart checks: helm lint --strict, Kubernetes schemas, certificate reuse, metadata."""

from __future__ import annotations

import base64
import json
import subprocess
import tomllib

import kubernetes_validate
import pytest
import yaml
from cryptography import x509

from helmrender import CHART, ROOT, RenderError, helm_env, render

KITCHEN_SINK = CHART / "ci" / "kitchen-sink-values.yaml"
ENABLED = {"connectInject": {"enabled": True}}

# Values sets that together render every object the chart can make.
VALUE_SETS = {
    "defaults": {},
    "enabled": ENABLED,
    "kitchen-sink": KITCHEN_SINK,
    "one-replica": [ENABLED, {"connectInject": {"replicas": 1}}],
    "cert-manager": [ENABLED, {"connectInject": {"webhook": {"tls": {"mode": "certManager"}}}}],
    "existing-secret": [ENABLED, {"connectInject": {"webhook": {"tls": {
        "mode": "secret", "secretName": "my-cert", "caBundle": base64.b64encode(b"-----BEGIN CERTIFICATE-----").decode()}}}}],
    "tls-no-auto-encrypt": [ENABLED, {"global": {"tls": {"enabled": True}}}],
    "controller-only": {"controller": {"enabled": True}},
    "controller-cert-manager": [ENABLED, {"controller": {"enabled": True, "replicas": 2,
                                                         "webhook": {"tls": {"mode": "certManager"}}}}],
    "controller-existing-secret": [{"controller": {"enabled": True, "webhook": {"tls": {
        "mode": "secret", "secretName": "my-cert", "caBundle": base64.b64encode(b"-----BEGIN CERTIFICATE-----").decode()}}}}],
}
# Kinds Kubernetes has no schema for (CRDs of cert-manager); everything else must validate.
CRD_KINDS = {("cert-manager.io/v1", "Issuer"), ("cert-manager.io/v1", "Certificate")}


def test_chart_metadata() -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert chart["apiVersion"] == "v2"
    assert chart["appVersion"] == project["version"], "appVersion is the package version (the webhook image tag)"
    assert chart["kubeVersion"] == ">=1.23.0-0"


@pytest.mark.parametrize("values", ["defaults", "enabled", "kitchen-sink"])
def test_helm_lint_strict_in_process(values: str) -> None:
    import helm_python

    report = helm_python.lint(str(CHART), render_values(values), strict=True, namespace="consul")
    problems = [m for m in report["messages"] if m["severity"] >= 2] + report["errors"]
    assert problems == []


@pytest.mark.parametrize("values", ["defaults", "enabled", "kitchen-sink"])
def test_helm_lint_strict_helm3(values: str, helm: str | None, tmp_path) -> None:
    if helm is None:
        pytest.skip("the in-process lint is test_helm_lint_strict_in_process")
    values_file = tmp_path / "values.json"
    values_file.write_text(json.dumps(render_values(values)))
    proc = subprocess.run([helm, "lint", "--strict", str(CHART), "-f", str(values_file), "--namespace", "consul"],
                          capture_output=True, text=True, env=helm_env(), timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "[WARNING]" not in proc.stdout and "[ERROR]" not in proc.stdout


def render_values(name: str) -> dict:
    from helmrender import _normalize

    return _normalize(VALUE_SETS[name])


@pytest.mark.parametrize("kube", ["1.29", "1.33"])
@pytest.mark.parametrize("values", sorted(VALUE_SETS))
def test_every_object_validates_against_kubernetes_strict(values: str, kube: str, helm: str | None) -> None:
    rendered = render(VALUE_SETS[values], kube_version=f"{kube}.0", helm=helm)
    checked = 0
    for obj in rendered.objects:
        if (obj["apiVersion"], obj["kind"]) in CRD_KINDS:
            continue
        kubernetes_validate.validate(obj, kube, strict=True)
        checked += 1
    assert checked == 0 if values == "defaults" else checked >= 8


def test_kitchen_sink_renders_every_kind() -> None:
    assert sorted(set(render(KITCHEN_SINK).kinds())) == [
        "ClusterRole", "ClusterRoleBinding", "ConfigMap", "CustomResourceDefinition", "Deployment", "Job", "MutatingWebhookConfiguration",
        "PodDisruptionBudget", "Role", "RoleBinding", "Secret", "Service", "ServiceAccount",
        "ValidatingWebhookConfiguration"]


def test_kube_version_below_chart_minimum_is_refused(helm: str | None) -> None:
    if helm is None:
        pytest.skip("the in-process render does not check kubeVersion (helm install/template do)")
    with pytest.raises(RenderError, match="kubeVersion"):
        render(ENABLED, kube_version="1.22.0", helm=helm)


def _generated_cert(rendered) -> tuple[x509.Certificate, x509.Certificate]:
    secret = rendered.get("Secret")
    ca = x509.load_pem_x509_certificate(base64.b64decode(secret["data"]["ca.crt"]))
    cert = x509.load_pem_x509_certificate(base64.b64decode(secret["data"]["tls.crt"]))
    return ca, cert


def test_generated_certificate_is_signed_by_the_ca_bundle_for_the_service_names(helm: str | None) -> None:
    rendered = render(ENABLED, release="mesh", namespace="infra", helm=helm)
    ca, cert = _generated_cert(rendered)
    bundle = rendered.get("MutatingWebhookConfiguration")["webhooks"][0]["clientConfig"]["caBundle"]
    assert x509.load_pem_x509_certificate(base64.b64decode(bundle)) == ca
    cert.verify_directly_issued_by(ca)
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(x509.DNSName)
    svc = "mesh-consul-connect-injector-svc"
    assert names == [svc, f"{svc}.infra", f"{svc}.infra.svc", f"{svc}.infra.svc.cluster.local"]
    deployment = rendered.webhook()
    mount = next(v for v in deployment["spec"]["template"]["spec"]["volumes"] if v["name"] == "certs")
    assert mount["secret"]["secretName"] == rendered.get("Secret")["metadata"]["name"]


def test_validity_days_sets_the_generated_certificate_lifetime() -> None:
    rendered = render([ENABLED, {"connectInject": {"webhook": {"tls": {"validityDays": 30}}}}])
    ca, cert = _generated_cert(rendered)
    for c in (ca, cert):
        assert (c.not_valid_after_utc - c.not_valid_before_utc).days in (29, 30)


CONTROLLER = {"controller": {"enabled": True}}


def _component(rendered, kind: str, component: str) -> dict:
    (found,) = [o for o in rendered.objects if o["kind"] == kind and o["metadata"].get("labels", {}).get("component") == component]
    return found


def test_controller_certificate_is_signed_by_its_ca_bundle_for_its_service_names(helm: str | None) -> None:
    """The controller's chart-mode certificate is its own (not the injector's), for its own Service."""
    rendered = render([ENABLED, CONTROLLER], release="mesh", namespace="infra", helm=helm)
    secret = rendered.get("Secret", "mesh-consul-controller-webhook-cert")
    ca = x509.load_pem_x509_certificate(base64.b64decode(secret["data"]["ca.crt"]))
    cert = x509.load_pem_x509_certificate(base64.b64decode(secret["data"]["tls.crt"]))
    cert.verify_directly_issued_by(ca)
    svc = "mesh-consul-controller-webhook"
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(x509.DNSName)
    assert names == [svc, f"{svc}.infra", f"{svc}.infra.svc", f"{svc}.infra.svc.cluster.local"]
    config = _component(rendered, "MutatingWebhookConfiguration", "controller")
    assert len(config["webhooks"]) == 10
    for webhook in config["webhooks"]:
        assert x509.load_pem_x509_certificate(base64.b64decode(webhook["clientConfig"]["caBundle"])) == ca
        assert webhook["clientConfig"]["service"]["name"] == svc
    injector_ca = base64.b64decode(rendered.get("Secret", "mesh-consul-connect-inject-webhook-cert")["data"]["ca.crt"])
    assert x509.load_pem_x509_certificate(injector_ca) != ca
    deployment = _component(rendered, "Deployment", "controller")
    volume = next(v for v in deployment["spec"]["template"]["spec"]["volumes"] if v["name"] == "certs")
    assert volume["secret"]["secretName"] == secret["metadata"]["name"]
    assert rendered.get("Service", svc)["spec"]["selector"]["component"] == "controller"


@pytest.mark.parametrize("values", ["enabled", "kitchen-sink"])
def test_controller_values_configmap_is_the_injectors_plus_the_datacenter(values: str, helm: str | None,
                                                                            tmp_path) -> None:
    """The controller's ConfigMap holds the injector's keys (its connectInject.enabled as the user
    set it) and global.datacenter, with or without the injector; the controller's settings come
    from it as it loads it (`--values FILE --no-chart-defaults`)."""
    from generator.entrycontroller.controller import settings_from
    from generator.values import config as config_mod

    base = [VALUE_SETS[values], CONTROLLER, {"global": {"datacenter": "dc7"}}]
    with_injector = render(base, helm=helm)
    alone = render([*base, {"connectInject": {"enabled": False}}], helm=helm)
    assert not any(o["metadata"].get("labels", {}).get("component") == "connect-injector" for o in alone.objects)
    injector = json.loads(_component(with_injector, "ConfigMap", "connect-injector")["data"]["values.json"])
    for rendered, enabled in ((with_injector, True), (alone, False)):
        cm = _component(rendered, "ConfigMap", "controller")
        assert cm["metadata"]["name"] == ("mesh" if values == "kitchen-sink" else "consul-consul") + "-controller-config"
        controller = json.loads(cm["data"]["values.json"])
        assert controller["global"]["datacenter"] == injector["global"]["datacenter"] == "dc7"
        assert controller["connectInject"].pop("enabled") is enabled
        assert controller == {**injector, "connectInject": {k: v for k, v in injector["connectInject"].items() if k != "enabled"}}
        deployment = _component(rendered, "Deployment", "controller")
        volume = next(v for v in deployment["spec"]["template"]["spec"]["volumes"] if v["name"] == "config")
        assert volume["configMap"]["name"] == cm["metadata"]["name"]
        path = tmp_path / f"{enabled}.json"
        path.write_text(cm["data"]["values.json"])
        settings = settings_from(config_mod.load_settings(
            [path], chart_defaults=False,
            environ={"CONSUL_CACERT": str(ROOT / "tests" / "golden" / "consul-ca.pem")}).controller)
        assert settings.datacenter == "dc7"
        if values == "kitchen-sink":  # namespaces, mirroring, partition and ACLs from the chart's values
            assert settings.consul_meta.mirroring and settings.consul_meta.prefix == "k8s-"
            assert settings.consul_meta.partition == "default"
            assert settings.cross_namespace_policy == "cross-namespace-policy"
