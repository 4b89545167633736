"""On a real cluster: install the chart, deploy the docs' static-server, check it was injected.

Runs only where KUBECONFIG points at a cluster (and pytest-helm-charts is installed); skipped,
with the reason, everywhere else. The cluster must be able to pull the webhook image: set
INJECTOR_IMAGE to an image built with `make image` and pushed where the cluster can pull it.
Uses pytest-helm-charts' `kube_cluster` (pykube) for the cluster and $HELM (or `helm`) to install.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import time
import uuid

import pytest
import yaml

from helmrender import CHART, ROOT

pytestmark = [
    pytest.mark.cluster,
    pytest.mark.skipif(not os.environ.get("KUBECONFIG"), reason="needs a Kubernetes cluster: set KUBECONFIG"),
    pytest.mark.skipif(importlib.util.find_spec("pytest_helm_charts") is None,
                       reason="needs pytest-helm-charts (pip install pytest-helm-charts)"),
]

STATUS = "consul.hashicorp.com/connect-inject-status"


def _helm() -> str:
    helm = os.environ.get("HELM") or shutil.which("helm")
    if not helm:
        pytest.skip("needs a helm binary: set HELM")
    return helm


@pytest.fixture
def injector(tmp_path):
    release, namespace = f"inj-{uuid.uuid4().hex[:6]}", f"inj-{uuid.uuid4().hex[:6]}"
    values = {"connectInject": {"enabled": True, "replicas": 1}}
    if os.environ.get("INJECTOR_IMAGE"):
        values["connectInject"]["webhook"] = {"image": os.environ["INJECTOR_IMAGE"]}
    values_file = tmp_path / "values.json"
    values_file.write_text(json.dumps(values))
    helm = _helm()
    subprocess.run([helm, "install", release, str(CHART), "-n", namespace, "--create-namespace", "-f", str(values_file),
                    "--wait", "--timeout", "5m"], check=True)
    yield release, namespace
    subprocess.run([helm, "uninstall", release, "-n", namespace, "--wait"], check=False)
    subprocess.run(["kubectl", "delete", "namespace", namespace, "--wait=false"], check=False)


def test_static_server_is_injected(kube_cluster, injector) -> None:
    import pykube

    api = kube_cluster.kube_client
    app_ns = f"app-{uuid.uuid4().hex[:6]}"
    pykube.Namespace(api, {"metadata": {"name": app_ns}}).create()
    try:
        for doc in yaml.safe_load_all((ROOT / "examples" / "static-server.yaml").read_text()):
            doc["metadata"]["namespace"] = app_ns
            pykube.object_factory(api, doc["apiVersion"], doc["kind"])(api, doc).create()
        deadline = time.monotonic() + 300
        pods: list = []
        while time.monotonic() < deadline:
            pods = list(pykube.Pod.objects(api, namespace=app_ns).filter(selector={"app": "static-server"}))
            if pods:
                break
            time.sleep(2)
        assert pods, "no static-server pod was created (is the webhook answering?)"
        pod = pods[0].obj
        assert pod["metadata"]["annotations"].get(STATUS) == "injected"
        assert "envoy-sidecar" in [c["name"] for c in pod["spec"]["containers"]]
    finally:
        pykube.Namespace(api, {"metadata": {"name": app_ns}}).delete()
