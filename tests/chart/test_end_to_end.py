"""End to end without a cluster: what the chart renders is what the webhook runs with.

Render the chart, take what the kubelet would give the webhook pod (the ConfigMap's values.json,
the chart-generated certificate Secret, the Deployment's command line), start `connect-inject
serve` exactly so (mount paths mapped to local directories, ports to 127.0.0.1:0), and send it the
AdmissionReview the API server sends for the docs' static-server pod over TLS checked against the
webhook configuration's caBundle and the Service's DNS name. The patched pod must be injected as
those values say, and validate against Kubernetes' schema.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import ssl
import sys
import uuid
from pathlib import Path
from typing import Any

import aiohttp
import jsonpatch
import kubernetes_validate
import pytest
import yaml

from helmrender import ROOT, render

STATUS = "consul.hashicorp.com/connect-inject-status"


def docs_pod() -> dict[str, Any]:
    """The Pod the API server sends when the docs' static-server Deployment creates one."""
    for doc in yaml.safe_load_all((ROOT / "examples" / "static-server.yaml").read_text()):
        if doc and doc["kind"] == "Deployment":
            template = doc["spec"]["template"]
            meta = {k: v for k, v in template["metadata"].items() if k != "name"}
            meta.update(generateName="static-server-6d8f9c5b7-", namespace="apps")
            spec = template["spec"]
            # The ServiceAccount admission plugin runs before webhooks and adds the token volume.
            token = "kube-api-access-x7k2p"
            spec["volumes"] = [{"name": token, "projected": {"defaultMode": 420, "sources": [
                {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
                {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
                {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {
                    "apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}}]}}]
            for container in spec["containers"]:
                container["volumeMounts"] = [{"name": token, "readOnly": True,
                                              "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount"}]
            return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec}
    raise LookupError("static-server Deployment")


class Webhook:
    """`connect-inject serve` started from the rendered chart."""

    def __init__(self, rendered, tmp_path: Path, service_env: dict[str, str] | None = None) -> None:
        self.rendered = rendered
        deployment = rendered.webhook()
        pod = deployment["spec"]["template"]["spec"]
        container = pod["containers"][0]
        volumes = {v["name"]: v for v in pod["volumes"]}
        mounts: dict[str, Path] = {}
        for mount in container["volumeMounts"]:
            local = tmp_path / mount["name"]
            local.mkdir()
            source = volumes[mount["name"]]
            if "configMap" in source:
                cm = rendered.get("ConfigMap", source["configMap"]["name"])
                for key, text in cm["data"].items():
                    (local / key).write_text(text)
            elif "secret" in source:
                secret = rendered.get("Secret", source["secret"]["secretName"])
                for key, b64 in secret["data"].items():
                    (local / key).write_bytes(base64.b64decode(b64))
            mounts[mount["mountPath"]] = local
        args = [_local(a, mounts) for a in container["args"]]
        for flag in ("--listen", "--health-listen"):
            args[args.index(flag) + 1] = "127.0.0.1:0"
        if "--log-json" not in args:
            args.append("--log-json")
        args += ["--shutdown-delay", "0"]  # terminated at the end of each test
        assert container["command"] == ["connect-inject", "serve"]
        self.argv = [sys.executable, "-m", "generator", "serve", *map(str, args)]
        self.env = {k: v for k, v in os.environ.items() if k not in ("KUBECONFIG", "KUBERNETES_SERVICE_HOST")}
        self.env["HOME"] = str(tmp_path)  # no kubeconfig: namespace labels are empty
        self.env.update(service_env or {})  # what the kubelet's service links would set
        # The injector's (the kitchen sink also has the config-entry controller's).
        (config,) = [o for o in rendered.objects if o["kind"] == "MutatingWebhookConfiguration"
                     and o["metadata"].get("labels", {}).get("component") == "connect-injector"]
        webhook = config["webhooks"][0]
        self.ca_pem = base64.b64decode(webhook["clientConfig"]["caBundle"]).decode()
        service = webhook["clientConfig"]["service"]
        self.server_name = f"{service['name']}.{service['namespace']}.svc"
        self.path = service["path"]
        self.proc: asyncio.subprocess.Process | None = None
        self.port = 0

    async def __aenter__(self) -> "Webhook":
        self.proc = await asyncio.create_subprocess_exec(*self.argv, cwd=ROOT, env=self.env,
                                                         stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        async with asyncio.timeout(60):
            while True:
                line = await self.proc.stderr.readline()
                assert line, f"connect-inject serve exited: {(await self.proc.stderr.read()).decode()}"
                record = json.loads(line)
                if record.get("msg") == "listening":
                    self.port = int(record["webhook"].rsplit(":", 1)[1].split("/")[0])
                    return self

    async def __aexit__(self, *exc) -> None:
        if self.proc and self.proc.returncode is None:
            self.proc.terminate()
            await asyncio.wait_for(self.proc.wait(), 30)

    async def review(self, pod: dict[str, Any]) -> dict[str, Any]:
        """POST the AdmissionReview the API server would send, over TLS verified as it would verify."""
        tls = ssl.create_default_context(cadata=self.ca_pem)
        review = {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {
            "uid": str(uuid.uuid4()), "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"}, "namespace": pod["metadata"]["namespace"],
            "operation": "CREATE", "userInfo": {"username": "system:serviceaccount:kube-system:replicaset-controller"},
            "object": pod, "dryRun": False}}
        connector = aiohttp.TCPConnector(ssl=tls, resolver=_Pin(self.server_name, self.port))
        async with aiohttp.ClientSession(connector=connector) as http:
            async with http.post(f"https://{self.server_name}:{self.port}{self.path}", json=review) as resp:
                assert resp.status == 200, await resp.text()
                return (await resp.json())["response"]


def _local(arg: str, mounts: dict[str, Path]) -> str:
    """A path inside a mounted volume, as a local path; anything else unchanged."""
    for mount_path, local in mounts.items():
        if arg == mount_path or arg.startswith(mount_path + "/"):
            return str(local) + arg[len(mount_path):]
    return arg


class _Pin(aiohttp.abc.AbstractResolver):
    """Resolve the Service's DNS name to 127.0.0.1, so TLS checks the name the API server checks."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port

    async def resolve(self, host: str, port: int = 0, family: int = 0):
        assert host == self.host, host
        return [{"hostname": host, "host": "127.0.0.1", "port": port, "family": 2, "proto": 0, "flags": 0}]

    async def close(self) -> None:
        pass


def injected(pod: dict[str, Any], response: dict[str, Any]) -> dict[str, Any]:
    assert response["allowed"] is True, response
    assert response.get("patchType") == "JSONPatch", response
    patched = jsonpatch.apply_patch(pod, json.loads(base64.b64decode(response["patch"])))
    patched["metadata"]["name"] = "static-server-6d8f9c5b7-abcde"  # as the API server names it
    kubernetes_validate.validate(patched, "1.29", strict=True)
    return patched


def _names(containers: list[dict]) -> list[str]:
    return [c["name"] for c in containers]


def _init_script(pod: dict[str, Any]) -> str:
    init = next(c for c in pod["spec"]["initContainers"] if c["name"] == "consul-connect-inject-init")
    return "\n".join(init.get("command", []) + init.get("args", []))


async def test_chart_rendered_webhook_injects_the_docs_static_server(tmp_path: Path) -> None:
    rendered = render({"connectInject": {"enabled": True}})
    async with Webhook(rendered, tmp_path) as webhook:
        pod = injected(docs_pod(), await webhook.review(docs_pod()))
    assert pod["metadata"]["annotations"][STATUS] == "injected"
    assert _names(pod["spec"]["containers"]) == ["static-server", "envoy-sidecar"]
    assert _names(pod["spec"]["initContainers"]) == ["copy-consul-bin", "consul-connect-inject-init"]
    envoy = pod["spec"]["containers"][1]
    assert envoy["image"] == "envoyproxy/envoy-alpine:v1.18.4"  # global.imageEnvoy default
    assert "redirect-traffic" in _init_script(pod)  # transparentProxy.defaultEnabled: true


async def test_a_values_change_in_the_chart_changes_the_injected_pod(tmp_path: Path) -> None:
    values = [{"connectInject": {"enabled": True}},
              {"global": {"imageEnvoy": "envoyproxy/envoy:v1.20.0"},
               "connectInject": {"transparentProxy": {"defaultEnabled": False}}}]
    async with Webhook(render(values), tmp_path) as webhook:
        pod = injected(docs_pod(), await webhook.review(docs_pod()))
    assert pod["metadata"]["annotations"][STATUS] == "injected"
    assert "redirect-traffic" not in _init_script(pod)
    assert pod["spec"]["containers"][1]["image"] == "envoyproxy/envoy:v1.20.0"


async def test_kitchen_sink_values_reach_the_webhook(tmp_path: Path) -> None:
    """Namespace lists from the chart are enforced by the engine: a pod outside the allow list is skipped."""
    from helmrender import CHART

    values = [CHART / "ci" / "kitchen-sink-values.yaml",
              {"global": {"tls": {"enabled": False}}, "connectInject": {"webhook": {"image": None}}}]
    # dns.enableRedirection: the Consul chart's DNS Service "mesh-dns" (global.name "mesh") is in the
    # release namespace, so the kubelet gives the webhook pod MESH_DNS_SERVICE_HOST.
    async with Webhook(render(values), tmp_path, {"MESH_DNS_SERVICE_HOST": "10.96.0.53"}) as webhook:
        pod = docs_pod()  # namespace "apps" is in k8sAllowNamespaces
        patched = injected(pod, await webhook.review(pod))
        outside = docs_pod()
        outside["metadata"]["namespace"] = "legacy"  # in k8sDenyNamespaces
        skipped = await webhook.review(outside)
    assert patched["metadata"]["annotations"][STATUS] == "injected"
    assert patched["metadata"]["annotations"]["prometheus.io/port"] == "20201"  # metrics.defaultPrometheusScrapePort
    assert '-consul-dns-ip="10.96.0.53"' in _init_script(patched)  # dns.enableRedirection
    assert skipped["allowed"] is True and "patch" not in skipped


def test_a_null_in_chart_values_reaches_the_webhook(tmp_path: Path) -> None:
    from generator.values import config

    rendered = render({"connectInject": {"enabled": True, "initContainer": {"resources": {"limits": {"cpu": None}}}}})
    values_json = tmp_path / "values.json"
    values_json.write_text(rendered.get("ConfigMap")["data"]["values.json"])
    # The chart runs `serve --no-chart-defaults`: Helm already merged the defaults and dropped the null.
    assert "--no-chart-defaults" in rendered.webhook()["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "cpu" not in config.load([values_json], chart_defaults=False).init_resources.limits
