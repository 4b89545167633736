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
