"""Native sidecars (Kubernetes 1.29+): envoy-sidecar and consul-sidecar become init containers with
restartPolicy: Always after consul-connect-inject-init, so Jobs and CronJobs complete."""

from __future__ import annotations

import subprocess
import sys

import yaml

from engine_helpers import P, ROOT, container, inject, load_config, make_pod, validate_k8s


def _job_pod(annotations=None) -> dict:
    pod = make_pod(annotations, containers=[{"name": "migrate", "image": "migrate:1", "command": ["./migrate"]}], restartPolicy="Never")
    return pod


def test_values_default_makes_envoy_a_native_sidecar_of_a_job_pod():
    out = inject(_job_pod(), load_config("connectInject.sidecarProxy.nativeSidecar=true"))
    assert [c["name"] for c in out["spec"]["initContainers"]] == ["copy-consul-bin", "consul-connect-inject-init", "envoy-sidecar"]
    assert [c["name"] for c in out["spec"]["containers"]] == ["migrate"]
    assert container(out, "envoy-sidecar", "initContainers")["restartPolicy"] == "Always"
    assert "restartPolicy" not in container(out, "consul-connect-inject-init", "initContainers")
    validate_k8s(out, "1.29")


def test_annotation_turns_it_on_per_pod_with_metrics_merging():
    config = load_config("connectInject.metrics.defaultEnabled=true", "connectInject.metrics.defaultEnableMerging=true")
    out = inject(make_pod({P + "native-sidecar": "true"}), config)
    assert [c["name"] for c in out["spec"]["initContainers"]][-2:] == ["envoy-sidecar", "consul-sidecar"]
    assert container(out, "consul-sidecar", "initContainers")["restartPolicy"] == "Always"
    validate_k8s(out, "1.30")


def test_annotation_turns_it_off_and_default_is_off():
    assert "restartPolicy" not in container(inject(make_pod()), "envoy-sidecar")
    out = inject(make_pod({P + "native-sidecar": "false"}), load_config("connectInject.sidecarProxy.nativeSidecar=true"))
    assert "restartPolicy" not in container(out, "envoy-sidecar")


def test_cronjob_through_the_cli():
    doc = {"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "report"},
           "spec": {"schedule": "0 * * * *", "jobTemplate": {"spec": {"template": {
               "metadata": {"annotations": {P + "connect-inject": "true", P + "native-sidecar": "true"}},
               "spec": {"restartPolicy": "OnFailure", "containers": [{"name": "report", "image": "r"}]}}}}}}
    proc = subprocess.run([sys.executable, "-m", "generator", "inject", "-f", "-"], input=yaml.safe_dump(doc),
                          capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert proc.returncode == 0, proc.stderr
    out = yaml.safe_load(proc.stdout)
    spec = out["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    assert spec["initContainers"][-1]["name"] == "envoy-sidecar" and spec["initContainers"][-1]["restartPolicy"] == "Always"
    validate_k8s(out, "1.29")
