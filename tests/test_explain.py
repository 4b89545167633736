"""`connect-inject explain`: golden text output, JSON output and exit codes (0 injected, 3 skipped,
1 denied)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from engine_helpers import ROOT
from golden_cases import EXPLAIN, explain_cases, explain_output

CASES = explain_cases()


@pytest.mark.parametrize("name", sorted(CASES))
def test_explain_text_matches_golden(name):
    assert explain_output(CASES[name]) == (EXPLAIN / f"{name}.txt").read_text(), "run `make golden` and review the diff"


@pytest.mark.parametrize("name,code", [("static-client", 0), ("kube-system", 3), ("denied-namespace", 3), ("misplaced", 3), ("mixed", 1)])
def test_exit_codes(name, code):
    assert (EXPLAIN / f"{name}.txt").read_text().endswith(f"# exit code: {code}\n")


def test_json_output_for_machines():
    proc = subprocess.run([sys.executable, "-m", "generator", "explain", "-o", "json", "-f", "tests/golden/explain/mixed.yaml",
                           "--namespaces", "tests/golden/explain/namespaces.yaml"], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert proc.returncode == 1
    api, broken = json.loads(proc.stdout)
    assert (api["object"], api["outcome"], api["reason"]) == ("Pod/api", "injected", "annotation-true")
    assert [s["check"] for s in api["steps"]] == ["system namespace", "deny list", "allow list", "already injected", "annotation"]
    assert api["injected"]["containers"] == ["envoy-sidecar"]
    assert api["injected"]["transparentProxy"] == {"enabled": False, "source": "namespace label consul.hashicorp.com/transparent-proxy"}
    assert api["injected"]["metrics"]["enabled"] is True
    assert "DB_CONNECT_SERVICE_PORT=5432" in api["injected"]["upstreamEnv"]
    assert broken["outcome"] == "denied" and "connect-service-upstreams" in broken["message"]


def test_no_pods_is_exit_3():
    proc = subprocess.run([sys.executable, "-m", "generator", "explain", "-f", "-"], input="apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n",
                          capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert proc.returncode == 3 and "no pods" in proc.stdout


def _explain_json(manifest: str, *args: str) -> list[dict]:
    proc = subprocess.run([sys.executable, "-m", "generator", "explain", "-o", "json", "-f", "-", *args], input=manifest,
                          capture_output=True, text=True, cwd=ROOT, timeout=60)
    return json.loads(proc.stdout)


POD = """apiVersion: v1
kind: Pod
metadata:
  name: web
  annotations: {{consul.hashicorp.com/connect-inject: "true"{annotations}}}
spec:
  containers:
  - name: web
    image: w
    ports: [{{name: http, containerPort: 8080}}]
{probe}"""


def test_probes_rewritten_only_when_the_pod_has_an_http_probe():
    (plain,) = _explain_json(POD.format(annotations="", probe=""))
    assert plain["injected"]["overwriteProbes"] is False
    (probed,) = _explain_json(POD.format(annotations="", probe="    readinessProbe: {httpGet: {path: /, port: 8080}}\n"))
    assert probed["injected"]["overwriteProbes"] is True


def test_metrics_source_names_global_metrics_when_the_default_is_a_dash():
    (report,) = _explain_json(POD.format(annotations="", probe=""), "--set", "global.metrics.enabled=true")
    assert report["injected"]["metrics"] == {"enabled": True, "merging": False, "source": "values global.metrics.enabled", "scrapePort": 20200}
    (report,) = _explain_json(POD.format(annotations="", probe=""), "--set", "connectInject.metrics.defaultEnabled=true")
    assert report["injected"]["metrics"]["source"] == "values connectInject.metrics.defaultEnabled"


def test_merging_asked_while_metrics_are_off_says_it_has_no_effect():
    (report,) = _explain_json(POD.format(annotations=', consul.hashicorp.com/enable-metrics-merging: "true"', probe=""))
    assert report["injected"]["metrics"]["merging"] is False
    assert any('enable-metrics-merging" is "true" but has no effect: metrics are off for this pod (from values global.metrics.enabled)' in w
               for w in report["warnings"]), report["warnings"]


def test_a_pod_injected_by_another_injector_is_left_alone_and_explain_says_so(tmp_path):
    """Side by side with consul-k8s's injector during a migration (issue 13): a pod it injected
    carries the status annotation; ours skips it and explain names the other injector."""
    import subprocess
    import sys

    pod = tmp_path / "pod.yaml"
    pod.write_text("apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\n  namespace: apps\n  annotations:\n"
                   "    consul.hashicorp.com/connect-inject: \"true\"\n"
                   "    consul.hashicorp.com/connect-inject-status: injected\n"
                   "spec:\n  containers:\n    - name: app\n      image: x\n")
    out = subprocess.run([sys.executable, "-m", "generator", "explain", "-f", str(pod)], capture_output=True,
                         text=True, timeout=60).stdout
    assert "would not be injected (already-injected)" in out
    assert "consul-k8s's own" in out
