"""`connect-inject check-config-entries`: the webhooks' checks on a YAML stream, offline (the real
CLI in a subprocess, as a CI pipeline runs it)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

STREAM = """\
apiVersion: consul.hashicorp.com/v1alpha1
kind: ServiceDefaults
metadata:
  name: web
spec:
  protocol: http
---
apiVersion: consul.hashicorp.com/v1alpha1
kind: ServiceDefaults
metadata:
  name: web
  namespace: other
spec:
  protocol: http
---
apiVersion: consul.hashicorp.com/v1alpha1
kind: ServiceIntentions
metadata:
  name: web
spec:
  destination:
    name: web
  sources:
    - name: api
      action: allow
---
apiVersion: consul.hashicorp.com/v1alpha1
kind: ProxyDefaults
metadata:
  name: not-global
spec: {}
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: untouched
spec: {}
"""


def run(stdin: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "generator", "check-config-entries", "-f", "-", *args],
                          input=stdin, capture_output=True, text=True, cwd=ROOT, timeout=60)


def test_each_problem_is_one_line_naming_the_resource_and_the_exit_code_is_1():
    proc = run(STREAM)
    assert proc.returncode == 1, proc.stderr
    assert proc.stdout.splitlines() == [
        'servicedefaults/web: servicedefaults resource with name "web" is already defined – all servicedefaults '
        "resources must have unique names across namespaces",
        'proxydefaults/not-global: proxydefaults resource name must be "global"',
    ]
    assert "4 config-entry resource(s) checked, 2 problem(s)" in proc.stderr


def test_a_clean_stream_exits_0_and_namespaces_with_mirroring_allow_one_name_per_namespace():
    first_two = STREAM.split("---\n")[:2]
    assert run("---\n".join(first_two)).returncode == 1
    mirrored = run("---\n".join(first_two), "--set", "global.enableConsulNamespaces=true",
                   "--set", "connectInject.consulNamespaces.mirroringK8S=true")
    assert mirrored.returncode == 0, mirrored.stdout + mirrored.stderr
