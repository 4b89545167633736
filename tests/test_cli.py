"""The `connect-inject` command as a user runs it: exit codes, stdout, stderr (design.md contracts)."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys

import yaml

from engine_helpers import P, ROOT, admission, make_pod


def cli(*args: str, stdin: str | None = None, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "generator", *args], input=stdin, capture_output=True, text=True,
                          cwd=ROOT, timeout=60, env=env)


def test_review_from_stdin_prints_the_response():
    proc = cli("review", stdin=json.dumps(admission(make_pod(), api_version="admission.k8s.io/v1beta1", uid="u-9")))
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["apiVersion"] == "admission.k8s.io/v1beta1" and out["response"]["uid"] == "u-9"
    ops = json.loads(base64.b64decode(out["response"]["patch"]))
    assert any(op["path"] == "/spec/containers/-" and op["value"]["name"] == "envoy-sidecar" for op in ops)


def test_review_of_a_denied_pod_exits_zero(tmp_path):
    request = tmp_path / "ar.json"
    request.write_text(json.dumps(admission(make_pod({P + "connect-service-upstreams": "foo"}))))
    proc = cli("review", "-f", str(request))
    assert proc.returncode == 0
    response = json.loads(proc.stdout)["response"]
    assert response["allowed"] is False and response["status"]["code"] == 400


def test_review_of_garbage_exits_two_with_one_line():
    proc = cli("review", stdin="{not json")
    assert proc.returncode == 2 and proc.stdout == "" and len(proc.stderr.strip().splitlines()) == 1
    assert "not JSON" in proc.stderr


def test_review_with_namespace_labels(tmp_path):
    namespaces = tmp_path / "ns.yaml"
    namespaces.write_text("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: legacy\n  labels:\n    consul.hashicorp.com/transparent-proxy: 'false'\n")
    proc = cli("review", "--namespaces", str(namespaces), stdin=json.dumps(admission(make_pod(), namespace="legacy")))
    ops = json.loads(base64.b64decode(json.loads(proc.stdout)["response"]["patch"]))
    init = next(op["value"][1] for op in ops if op["path"] == "/spec/initContainers")
    assert "redirect-traffic" not in init["command"][2]


def test_inject_workloads_and_pass_through_other_kinds():
    proc = cli("inject", "-f", "examples/static-client.yaml")
    assert proc.returncode == 0, proc.stderr
    docs = list(yaml.safe_load_all(proc.stdout))
    assert [d["kind"] for d in docs] == ["Service", "ServiceAccount", "Deployment"]
    assert docs[0] == yaml.safe_load((ROOT / "examples/static-client.yaml").read_text().split("---")[0])
    spec = docs[2]["spec"]["template"]["spec"]
    assert [c["name"] for c in spec["containers"]] == ["static-client", "envoy-sidecar"]


def test_inject_every_workload_kind_from_stdin():
    template = {"metadata": {"annotations": {P + "connect-inject": "true"}}, "spec": {"containers": [{"name": "c", "image": "i"}]}}
    docs = [
        {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "annotations": {P + "connect-inject": "true"}}, "spec": template["spec"]},
        *[{"apiVersion": "apps/v1", "kind": k, "metadata": {"name": k.lower()}, "spec": {"template": template}}
          for k in ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet")],
        {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "j"}, "spec": {"template": template}},
        {"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "cj"}, "spec": {"schedule": "* * * * *", "jobTemplate": {"spec": {"template": template}}}},
        {"apiVersion": "v1", "kind": "List", "items": [{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "inlist", "annotations": {P + "connect-inject": "true"}}, "spec": template["spec"]}]},
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cm"}, "data": {"a": "b"}},
    ]
    proc = cli("inject", "-f", "-", stdin="".join("---\n" + yaml.safe_dump(d) for d in docs))
    assert proc.returncode == 0, proc.stderr
    out = list(yaml.safe_load_all(proc.stdout))
    specs = [out[0]["spec"]] + [d["spec"]["template"]["spec"] for d in out[1:6]] + [out[6]["spec"]["jobTemplate"]["spec"]["template"]["spec"], out[7]["items"][0]["spec"]]
    for spec in specs:
        assert [c["name"] for c in spec["containers"]] == ["c", "envoy-sidecar"]
    assert out[8] == docs[8]


def test_inject_rejection_exits_one_naming_the_object():
    doc = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "bad", "annotations": {P + "connect-inject": "true", P + "enable-metrics": "nah"}},
           "spec": {"containers": [{"name": "c", "image": "i"}]}}
    proc = cli("inject", "-f", "-", stdin=yaml.safe_dump(doc))
    assert proc.returncode == 1
    assert proc.stderr.startswith(f'Pod/bad: annotation "{P}enable-metrics" has invalid value "nah"')


def test_inject_warns_about_annotations_on_the_workload_instead_of_its_pods():
    doc = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "annotations": {P + "connect-inject": "true"}},
           "spec": {"template": {"metadata": {}, "spec": {"containers": [{"name": "c", "image": "i"}]}}}}
    proc = cli("inject", "-f", "-", stdin=yaml.safe_dump(doc))
    assert proc.returncode == 0
    assert "envoy-sidecar" not in proc.stdout  # not injected, as in the cluster
    assert f'Deployment/web: warning: annotation "{P}connect-inject" is on the Deployment\'s own metadata' in proc.stderr
    assert "spec.template.metadata.annotations" in proc.stderr


def test_check_values_ok_and_problems(tmp_path):
    good = tmp_path / "good.yaml"
    good.write_text("connectInject:\n  enabled: true\n  default: true\n")
    assert cli("check-values", "--values", str(good)).returncode == 0
    bad = tmp_path / "bad.yaml"
    bad.write_text("connectInject:\n  replicas: 0\n  failurePolicy: Nope\n  unknownKey: 1\n")
    proc = cli("check-values", "--values", str(bad))
    assert proc.returncode == 1
    assert proc.stderr.splitlines() == [
        "connectInject.unknownKey: not a key of this chart nor of any Consul chart version (v0.30.0 to v1.9.11)",
        "connectInject.replicas: 0 is less than 1",
        'connectInject.failurePolicy: expected "Fail" or "Ignore", got "Nope" (a string)',
    ]


def test_check_values_reports_every_problem_in_one_run(tmp_path):
    """A typo once hid two cross-key errors: schema and chart rules are reported together."""
    values = tmp_path / "values.yaml"
    values.write_text("client:\n  enabled: \"true\"\nconnectInject:\n  enabled: true\n  imageEnvoy: envoy:1\n"
                      "  sidecarProxy: {resources: {limits: {cpu: [1]}}}\nglobal:\n  bootstrapACLs: true\n")
    proc = cli("check-values", "--values", str(values))
    assert proc.returncode == 1
    assert proc.stderr.splitlines() == [
        'client.enabled: expected a boolean or "-", got "true" (a string)',
        "connectInject.sidecarProxy.resources.limits.cpu: expected a Kubernetes quantity such as 50m or 25Mi or an "
        "integer or a number or null, got [1] (a list)",
        "connectInject.imageEnvoy: connectInject.imageEnvoy must be specified in global.imageEnvoy",
        "global.bootstrapACLs: global.bootstrapACLs was removed, use global.acls.manageSystemACLs instead",
    ]


def test_chart_rules_apply_only_when_the_chart_installs_the_injector(tmp_path):
    """As the chart: with connectInject.enabled false it renders nothing and applies no rule."""
    values = tmp_path / "values.yaml"
    values.write_text("client:\n  enabled: false\n  grpc: false\nconnectInject:\n  enabled: false\n")
    assert cli("check-values", "--values", str(values)).returncode == 0
    values.write_text("client:\n  enabled: false\nconnectInject:\n  enabled: true\n")
    proc = cli("check-values", "--values", str(values))
    assert proc.returncode == 1 and proc.stderr.strip() == "client.enabled: clients must be enabled for connect injection"


def test_invalid_values_stop_review_before_reading_input():
    proc = cli("review", "--set", "connectInject.consulNamespaces.mirroringK8S=true", stdin="")
    assert proc.returncode == 1
    assert proc.stderr.strip() == "connectInject.consulNamespaces.mirroringK8S: global.enableConsulNamespaces must be true if mirroringK8S=true"


def test_release_name_sets_the_dns_variable():
    env = {"PATH": "/usr/bin:/bin", "MYREL_CONSUL_DNS_SERVICE_HOST": "10.0.0.9"}
    request = admission(make_pod({P + "consul-dns": "true"}))
    proc = cli("review", "--release-name", "myrel", stdin=json.dumps(request), env=env)
    ops = json.loads(base64.b64decode(json.loads(proc.stdout)["response"]["patch"]))
    init = next(op["value"][1] for op in ops if op["path"] == "/spec/initContainers")
    assert '-consul-dns-ip="10.0.0.9"' in init["command"][2]


def test_inject_and_explain_refuse_garbage_objects_without_a_traceback(tmp_path):
    stream = tmp_path / "garbage.yaml"
    stream.write_text("kind: [Deployment]\nmetadata: {name: x}\n---\nkind: Deployment\nmetadata: [x]\n"
                      "spec: {template: {metadata: {annotations: {1: 2}}, spec: {containers: [{name: a, image: b}]}}}\n")
    for command in ("inject", "explain"):
        proc = cli(command, "-f", str(stream))
        assert proc.returncode == 1 and "Traceback" not in proc.stderr
        assert "metadata.annotations: expected a map of strings" in proc.stderr + proc.stdout


# --- YAML alias bombs (security review, issue 8 finding 12) ------------------------------------

def _alias_bomb(indent: str, levels: int = 9) -> str:
    """The 'billion laughs': each level repeats the previous one 9 times (9**levels strings)."""
    lines = [f'{indent}l0: &l0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for level in range(1, levels):
        lines.append(f"{indent}l{level}: &l{level} [" + ",".join([f"*l{level - 1}"] * 9) + "]")
    return "\n".join(lines)


def test_check_values_refuses_an_alias_bomb_under_a_values_key(tmp_path):
    """Reproducer: a 591-byte file under k8sDenyNamespaces used 1.4 GB."""
    values = tmp_path / "bomb.yaml"
    values.write_text("anchors:\n" + _alias_bomb("  ") + "\nconnectInject:\n  k8sDenyNamespaces: *l8\n")
    assert values.stat().st_size < 1024
    proc = cli("check-values", "--values", str(values))
    assert proc.returncode == 1
    assert "YAML aliases expand this document by more than 100000 nodes" in proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr


def test_inject_and_explain_refuse_an_alias_bomb_in_a_manifest(tmp_path):
    manifest = tmp_path / "pod.yaml"
    manifest.write_text("apiVersion: v1\nkind: Pod\nmetadata:\n  name: web\n  labels:\n" + _alias_bomb("    ") +
                        "\nspec:\n  containers: [{name: web, image: w}]\n")
    for command in ("inject", "explain"):
        proc = cli(command, "-f", str(manifest))
        assert proc.returncode == 1, proc.stderr
        assert f"{manifest} is not valid YAML: YAML aliases expand this document by more than 100000 nodes" in proc.stderr


def test_anchors_as_people_use_them_still_load(tmp_path):
    values = tmp_path / "values.yaml"
    values.write_text("connectInject:\n  sidecarProxy:\n    resources:\n      requests: &r {cpu: 100m, memory: 64Mi}\n"
                      "      limits: *r\n  initContainer:\n    resources:\n      requests: *r\n      limits: *r\n")
    assert cli("check-values", "--values", str(values)).returncode == 0
    recursive = tmp_path / "recursive.yaml"
    recursive.write_text("connectInject:\n  k8sDenyNamespaces: &a [*a]\n")
    proc = cli("check-values", "--values", str(recursive))
    assert proc.returncode == 1 and "a YAML alias refers to a value that contains it (line 2)" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_namespace_flag_is_for_objects_that_name_none(tmp_path):
    """`explain -n kube-system` on a Deployment of `default` once explained it as in kube-system."""
    manifest = tmp_path / "apps.yaml"
    manifest.write_text(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web, namespace: default}\n"
        "spec:\n  template:\n    metadata:\n      annotations: {consul.hashicorp.com/connect-inject: 'true'}\n"
        "    spec:\n      containers: [{name: web, image: w}]\n"
        "---\napiVersion: v1\nkind: Pod\nmetadata: {name: loose, annotations: {consul.hashicorp.com/connect-inject: 'true'}}\n"
        "spec:\n  containers: [{name: web, image: w}]\n")
    proc = cli("explain", "-f", str(manifest), "-n", "kube-system", "--output", "json")
    reports = {r["object"]: r for r in json.loads(proc.stdout)}
    assert reports["Deployment/web"]["namespace"] == "default" and reports["Deployment/web"]["outcome"] == "injected"
    assert reports["Pod/loose"]["namespace"] == "kube-system" and reports["Pod/loose"]["reason"] == "kube-system"


def test_inject_with_acls_sees_the_token_the_api_server_mounts(tmp_path):
    """With manageSystemACLs, every real manifest was refused ("needs the service account token"):
    the API server's ServiceAccount plugin mounts it before any webhook. inject/explain now do
    the same, and the printed workload does not carry that addition."""
    acls = ("--set", "global.acls.manageSystemACLs=true")
    proc = cli("inject", "-f", str(ROOT / "examples" / "static-server.yaml"), *acls)
    assert proc.returncode == 0, proc.stderr
    deployment = next(d for d in yaml.safe_load_all(proc.stdout) if d["kind"] == "Deployment")
    spec = deployment["spec"]["template"]["spec"]
    assert "consul-connect-inject-init" in [c["name"] for c in spec["initContainers"]]
    printed = json.dumps(deployment)
    assert "kube-api-access" not in printed and "/var/run/secrets/kubernetes.io/serviceaccount" not in printed
    original = json.loads(deployment["spec"]["template"]["metadata"]["annotations"][P + "original-pod"])
    assert "volumes" not in original["spec"]
    explained = json.loads(cli("explain", "-f", str(ROOT / "examples" / "static-server.yaml"), *acls, "--output", "json").stdout)
    assert [r["outcome"] for r in explained if r["object"].startswith("Deployment/")] == ["injected"]


def test_inject_with_acls_and_no_automount_is_refused_with_its_own_reason(tmp_path):
    manifest = tmp_path / "pod.yaml"
    manifest.write_text("apiVersion: v1\nkind: Pod\nmetadata: {name: web, annotations: {consul.hashicorp.com/connect-inject: 'true'}}\n"
                        "spec:\n  automountServiceAccountToken: false\n  containers: [{name: web, image: w}]\n")
    proc = cli("explain", "-f", str(manifest), "--set", "global.acls.manageSystemACLs=true", "--output", "json")
    (report,) = json.loads(proc.stdout)
    assert report["outcome"] == "denied" and report["reason"] == "missing-token-mount"
    assert "automountServiceAccountToken false" in report["message"]


def test_check_values_with_tls_only_warns_about_the_missing_ca_file(tmp_path):
    """A values file fine for Helm must not fail check-values because of the environment."""
    values = tmp_path / "values.yaml"
    values.write_text("global:\n  tls:\n    enabled: true\nconnectInject:\n  enabled: true\n")
    env = {k: v for k, v in os.environ.items() if k != "CONSUL_CACERT"}
    proc = cli("check-values", "--values", str(values), env=env)
    assert proc.returncode == 0 and "warning: global.tls.enabled: TLS is on but CONSUL_CACERT" in proc.stderr
    proc = cli("inject", "-f", str(ROOT / "examples" / "static-server.yaml"), "--values", str(values), env=env)
    assert proc.returncode == 1 and "CONSUL_CACERT" in proc.stderr  # injecting needs the CA


def test_token_emulation_treats_null_lists_as_empty():
    """`volumes: null` and `volumeMounts: null` are empty lists to the API server (reviewer's find)."""
    from generator.inject import serviceaccount

    pod = {"spec": {"volumes": None, "containers": [{"name": "web", "image": "w", "volumeMounts": None}]}}
    assert serviceaccount.add(pod) is True
    assert pod["spec"]["containers"][0]["volumeMounts"][0]["mountPath"] == "/var/run/secrets/kubernetes.io/serviceaccount"
    serviceaccount.remove(pod)
    assert "volumes" not in pod["spec"] and "volumeMounts" not in pod["spec"]["containers"][0]
