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
    {{- include "consul.labels" (list . "endpoints-controller") | nindent 4 }}
data:
  selector: {{ include "consul.selectorLabels" (list . "endpoints-controller") | quote }}
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
    proc = subprocess.run([helm, "template", "consul", str(chart), "--set", "connectInject.enabled=true"],
                          capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    docs = [d for d in yaml.safe_load_all(proc.stdout) if d]
    probe = next(d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"] == "probe")
    labels = probe["metadata"]["labels"]
    assert labels["component"] == "endpoints-controller" and labels["app.kubernetes.io/component"] == "endpoints-controller"
    assert yaml.safe_load(probe["data"]["selector"]) == {"app": "consul", "release": "consul", "component": "endpoints-controller"}
    selectors = [d["spec"]["selector"] for d in docs if d["kind"] == "Service"]
    selectors += [d["spec"]["selector"]["matchLabels"] for d in docs if d["kind"] in ("Deployment", "PodDisruptionBudget")]
    assert selectors and all(s["component"] == "connect-injector" for s in selectors)
    assert all(any(labels.get(k) != v for k, v in s.items()) for s in selectors)  # none selects the probe's pods
