"""Chart helpers take the component as a parameter: the next Deployments (the controllers) get
labels and selectors of their own, so the webhook's Service and PodDisruptionBudget never select
their pods and theirs never select the webhook's (issue 10).

A copy of the chart gets one probe template that uses the helpers for another component; the real
Helm 3 binary renders it (skipped without $HELM, which `make test` sets).
"""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest
import yaml

from helmrender import CHART

PROBE = """apiVersion: v1
kind: ConfigMap
metadata:
  name: probe
  labels:
    {{- include "consul.labels" (list . "probe-component") | nindent 4 }}
data:
  selector: {{ include "consul.selectorLabels" (list . "probe-component") | quote }}
"""


def test_another_component_gets_labels_the_webhook_selectors_do_not_match(tmp_path):
    helm = os.environ.get("HELM")
    if not helm:
        pytest.skip("HELM is not set: `make test` fetches Helm 3 and sets it (scripts/fetch_helm.py)")
    chart = tmp_path / "chart"
    shutil.copytree(CHART, chart)
    (chart / "templates" / "zz-probe.yaml").write_text(PROBE)
    env = {**os.environ, "HELM_CONFIG_HOME": str(tmp_path / "c"), "HELM_CACHE_HOME": str(tmp_path / "k"),
           "HELM_DATA_HOME": str(tmp_path / "d")}
    proc = subprocess.run([helm, "template", "consul", str(chart), "--set", "connectInject.enabled=true",
                           "--set", "controller.enabled=true", "--set", "controller.replicas=2"],
                          capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    docs = [d for d in yaml.safe_load_all(proc.stdout) if d]
    probe = next(d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"] == "probe")
    labels = probe["metadata"]["labels"]
    assert labels["component"] == "probe-component" and labels["app.kubernetes.io/component"] == "probe-component"
    assert yaml.safe_load(probe["data"]["selector"]) == {"app": "consul", "release": "consul", "component": "probe-component"}
    pod_labels = {d["metadata"]["name"]: d["spec"]["template"]["metadata"]["labels"] for d in docs if d["kind"] == "Deployment"}
    pod_labels["probe"] = labels
    selectors = [(d["kind"], d["spec"]["selector"]) for d in docs if d["kind"] == "Service"]
    selectors += [(d["kind"], d["spec"]["selector"]["matchLabels"]) for d in docs if d["kind"] in ("Deployment", "PodDisruptionBudget")]
    assert {s["component"] for _, s in selectors} == {"connect-injector", "endpoints-controller", "controller"}
    for kind, selector in selectors:  # each selects the pods of exactly one Deployment
        selected = [name for name, pod in pod_labels.items() if all(pod.get(k) == v for k, v in selector.items())]
        assert len(selected) == 1 and selected[0] != "probe", (kind, selector, selected)
