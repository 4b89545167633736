"""Fixtures for the webhook server tests: a real HTTPS server on 127.0.0.1, a client that
verifies a CA made here, AdmissionReview builders, and the fake Kubernetes API."""

from __future__ import annotations

import base64
import copy
import json
import ssl
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import jsonpatch
import pytest
import yaml
from kubernetes import client as kube_client

from generator.values import config as config_mod
from generator.inject import engine
from generator.tools.devcerts import CA, write_secret
from generator.kube.client import api_for
from generator.webhook.server import Address, WebhookServer

from .fake_kube import FakeKube

ROOT = Path(__file__).resolve().parents[2]
LOCAL = Address("127.0.0.1", 0)
P = "consul.hashicorp.com/"


def docs_pod(name: str) -> dict[str, Any]:
    """The pod the API server would send for the docs' example Deployment `name`."""
    for doc in yaml.safe_load_all((ROOT / "examples" / f"{name}.yaml").read_text()):
        if doc and doc.get("kind") == "Deployment":
            template = copy.deepcopy(doc["spec"]["template"])
            meta = template["metadata"]
            meta.pop("name", None)
            meta["generateName"] = f"{name}-5d8f7c9b6-"
            return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": template["spec"]}
    raise LookupError(name)


def make_pod(annotations: dict[str, str] | None = None, name: str = "web", **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": "default", "annotations": dict(annotations or {})},
            "spec": {"containers": [{"name": "app", "image": "app:1", "ports": [{"containerPort": 8080}]}], **spec}}


def admission_review(pod: dict[str, Any], namespace: str = "default", version: str = "v1",
                     uid: str | None = None) -> dict[str, Any]:
    """An AdmissionReview for a pod CREATE, shaped as the API server sends it."""
    return {
        "apiVersion": f"admission.k8s.io/{version}", "kind": "AdmissionReview",
        "request": {
            "uid": uid or str(uuid.uuid4()),
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "requestKind": {"group": "", "version": "v1", "kind": "Pod"},
            "requestResource": {"group": "", "version": "v1", "resource": "pods"},
            "name": pod["metadata"].get("name", ""), "namespace": namespace, "operation": "CREATE",
            "userInfo": {"username": "system:serviceaccount:kube-system:replicaset-controller"},
            "object": pod, "oldObject": None, "dryRun": False,
            "options": {"apiVersion": "meta.k8s.io/v1", "kind": "CreateOptions"},
        },
    }


def patched(pod: dict[str, Any], response: dict[str, Any]) -> dict[str, Any]:
    """The pod after applying the response's JSON patch (the pod itself when there is none)."""
    if "patch" not in response:
        return pod
    assert response["patchType"] == "JSONPatch"
    return jsonpatch.apply_patch(pod, json.loads(base64.b64decode(response["patch"])))


@pytest.fixture(scope="session")
def ca() -> CA:
    return CA()


@pytest.fixture(scope="session")
def config() -> config_mod.Config:
    return engine.load()


@pytest.fixture
def cert_dir(tmp_path: Path, ca: CA) -> Path:
    """A mounted kubernetes.io/tls secret holding a serving certificate for 127.0.0.1."""
    d = tmp_path / "certs"
    write_secret(d, ca.issue())
    return d


def client_ssl(ca: CA, **kwargs: Any) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cadata=ca.cert_pem.decode())
    for k, v in kwargs.items():
        setattr(ctx, k, v)
    return ctx


@pytest.fixture
async def start_server(config, cert_dir: Path) -> AsyncIterator[Any]:
    """Start WebhookServers on ephemeral 127.0.0.1 ports; all are stopped at teardown."""
    servers: list[WebhookServer] = []

    async def start(**kwargs: Any) -> WebhookServer:
        kwargs.setdefault("tls_cert_dir", cert_dir)
        server = WebhookServer(kwargs.pop("config", config), kwargs.pop("tls_cert_dir"), **kwargs)
        servers.append(server)
        await server.start(LOCAL, LOCAL)
        return server

    yield start
    for server in servers:
        await server.stop()


@pytest.fixture
async def server(start_server) -> WebhookServer:
    return await start_server()


@pytest.fixture
async def https(ca: CA) -> AsyncIterator[aiohttp.ClientSession]:
    """An HTTPS client that trusts only the test CA (and checks the host name)."""
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=client_ssl(ca))) as session:
        yield session


class Webhook:
    """Posts AdmissionReviews to one server, as the API server does."""

    def __init__(self, server: WebhookServer, session: aiohttp.ClientSession) -> None:
        self.server, self.session = server, session
        self.url = f"https://127.0.0.1:{server.webhook_port}/mutate"
        self.health = f"http://127.0.0.1:{server.health_port}"

    async def post(self, body: bytes | str | dict, content_type: str = "application/json",
                   **kwargs: Any) -> tuple[int, Any]:
        data = json.dumps(body).encode() if isinstance(body, dict) else body
        async with self.session.post(self.url, data=data, headers={"Content-Type": content_type}, **kwargs) as r:
            text = await r.text()
            return r.status, json.loads(text) if r.content_type == "application/json" else text

    async def review(self, pod: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        """The response AdmissionReview for `pod`; fails unless HTTP 200."""
        request = admission_review(pod, **kwargs)
        status, body = await self.post(request)
        assert status == 200, body
        assert body["response"]["uid"] == request["request"]["uid"]
        return body

    async def metrics(self) -> str:
        async with self.session.get(self.health + "/metrics") as r:
            return await r.text()

    async def get(self, path: str) -> tuple[int, str]:
        async with self.session.get(self.health + path) as r:
            return r.status, await r.text()


@pytest.fixture
def webhook(server: WebhookServer, https: aiohttp.ClientSession) -> Webhook:
    return Webhook(server, https)


@pytest.fixture
async def fake_kube() -> AsyncIterator[FakeKube]:
    """The fake API server (stands in for the real API server; see fake_kube.py)."""
    kube = FakeKube()
    await kube.start()
    yield kube
    await kube.stop()


def core_api(url: str) -> kube_client.CoreV1Api:
    """The official client pointed at `url`, configured as `serve` configures it in a cluster."""
    cfg = kube_client.Configuration()
    cfg.host = url
    return api_for(cfg)


def metric_value(text: str, name: str, **labels: str) -> float | None:
    """The value of one sample in Prometheus text format, or None when absent."""
    from prometheus_client.parser import text_string_to_metric_families

    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return sample.value
    return None
