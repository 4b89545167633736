"""The real `connect-inject controller` process (the config-entry controller), end to end.

Kubernetes: tests/fakes/kube_api.py (written from the Kubernetes API conventions; finalizers and
the status subresource as a real API server treats them), serving the consul.hashicorp.com
resources. Consul: tests/fakes/consul_agent.py with its config-entry API
(tests/fakes/consul_config.py, from Consul's documented /v1/config endpoints). Both run on
loopback in this test's event loop; the controller is a subprocess started as the chart starts it,
its webhooks served over HTTPS with a test CA's certificate.
"""

from __future__ import annotations

import asyncio
import os
import ssl
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from generator.configentries import ALL
from generator.tools.devcerts import CA, write_secret
from tests.fakes.consul_agent import FakeConsul
from tests.fakes.kube_api import RESOURCES, FakeKubeAPI, Resource
from tests.processes import JsonLogProcess as Controller

ROOT = Path(__file__).resolve().parents[2]
TIMEOUT = 20.0
GROUP_VERSION = "consul.hashicorp.com/v1alpha1"
CRDS = tuple(Resource("consul.hashicorp.com", "v1alpha1", k.plural, k.kind, status=True) for k in ALL)
DC = "dc1"


def service_defaults(name: str, protocol: str = "http", namespace: str = "default", **meta: Any) -> dict[str, Any]:
    return {"apiVersion": GROUP_VERSION, "kind": "ServiceDefaults",
            "metadata": {"name": name, "namespace": namespace, **meta}, "spec": {"protocol": protocol}}


@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[tuple[FakeKubeAPI, FakeConsul, Path, CA]]:
    ca = CA()
    write_secret(tmp_path / "certs", ca.issue(hosts=("127.0.0.1",)))
    async with FakeKubeAPI(resources=RESOURCES + CRDS) as api, FakeConsul(1) as consul:
        yield api, consul, tmp_path, ca


async def start(api: FakeKubeAPI, consul: FakeConsul, tmp: Path, *extra: str) -> Controller:
    env = {**os.environ, "KUBECONFIG": str(api.kubeconfig(tmp / "kubeconfig")), "CONSUL_HTTP_ADDR": consul.address,
           "PYTHONPATH": str(ROOT)}
    env.pop("KUBERNETES_SERVICE_HOST", None)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "generator", "controller", "--release-namespace", "consul", "--log-json",
        "--health-listen", "127.0.0.1:0", "--listen", "127.0.0.1:0", "--tls-cert-dir", str(tmp / "certs"),
        "--set", f"global.datacenter={DC}", *extra, env=env, cwd=ROOT,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
    return Controller(proc, "webhook_port", TIMEOUT)


async def until(condition: Any, timeout: float = TIMEOUT) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.05)


def synced(api: FakeKubeAPI, name: str, namespace: str = "default") -> dict[str, Any]:
    obj = api.get(GROUP_VERSION, "ServiceDefaults", namespace, name) or {}
    conditions = (obj.get("status") or {}).get("conditions") or [{}]
    return conditions[0]


async def test_create_update_delete_and_sigterm(env):
    api, consul, tmp, _ca = env
    api.create(service_defaults("web"))
    controller = await start(api, consul, tmp, "--no-leader-elect")
    try:
        await until(lambda: synced(api, "web").get("status") == "True")
        entry = consul.config_entry("service-defaults", "web")
        assert entry["Protocol"] == "http"
        assert entry["Meta"] == {"consul.hashicorp.com/source-datacenter": DC, "external-source": "kubernetes"}
        obj = api.get(GROUP_VERSION, "ServiceDefaults", "default", "web")
        assert obj["metadata"]["finalizers"] == ["finalizers.consul.hashicorp.com"]
        assert obj["status"]["lastSyncedTime"]
        api.patch(GROUP_VERSION, "ServiceDefaults", "default", "web", {"spec": {"protocol": "grpc"}})
        await until(lambda: consul.config_entry("service-defaults", "web")["Protocol"] == "grpc")
        api.delete(GROUP_VERSION, "ServiceDefaults", "default", "web")
        await until(lambda: api.get(GROUP_VERSION, "ServiceDefaults", "default", "web") is None)
        assert consul.config_entry("service-defaults", "web") is None
    finally:
        assert await controller.stop() == 0


async def test_an_entry_made_outside_kubernetes_is_left_alone_unless_migrated(env):
    api, consul, tmp, _ca = env
    consul.set_config_entry({"Kind": "service-defaults", "Name": "api", "Protocol": "http"})
    api.create(service_defaults("api"))
    controller = await start(api, consul, tmp, "--no-leader-elect")
    try:
        await until(lambda: synced(api, "api").get("reason") == "ExternallyManagedConfigError")
        assert synced(api, "api")["status"] == "False"
        assert synced(api, "api")["message"] == "config entry already exists in Consul"
        assert "Meta" not in consul.config_entry("service-defaults", "api") or \
            not consul.config_entry("service-defaults", "api")["Meta"]
        def events() -> list[dict[str, Any]]:  # created just after the status (another API call)
            return [e for e in api.objects("v1", "Event", "default") if e["involvedObject"]["name"] == "api"]
        await until(lambda: bool(events()))
        assert events()[0]["reason"] == "ExternallyManagedConfigError"
        api.patch(GROUP_VERSION, "ServiceDefaults", "default", "api",
                  {"metadata": {"annotations": {"consul.hashicorp.com/migrate-entry": "true"}}})
        await until(lambda: synced(api, "api").get("status") == "True")
        assert consul.config_entry("service-defaults", "api")["Meta"]["consul.hashicorp.com/source-datacenter"] == DC
    finally:
        assert await controller.stop() == 0


async def test_consul_down_then_up(env):
    api, consul, tmp, _ca = env
    await consul.down()
    api.create(service_defaults("web"))
    controller = await start(api, consul, tmp, "--no-leader-elect")
    try:
        await until(lambda: synced(api, "web").get("reason") == "ConsulAgentError")
        await consul.up()
        await until(lambda: synced(api, "web").get("status") == "True")
    finally:
        assert await controller.stop() == 0


async def test_the_webhook_defaults_validates_and_refuses_duplicate_names(env):
    api, consul, tmp, ca = env
    api.create(service_defaults("web", namespace="other"))
    controller = await start(api, consul, tmp, "--no-leader-elect")
    try:
        port = await asyncio.wait_for(controller.announced, TIMEOUT)
        ctx = ssl.create_default_context(cadata=ca.cert_pem.decode())
        url = f"https://127.0.0.1:{port}/mutate-v1alpha1-servicedefaults"

        async def ask(obj: dict[str, Any], version: str = "admission.k8s.io/v1") -> dict[str, Any]:
            review = {"apiVersion": version, "kind": "AdmissionReview",
                      "request": {"uid": str(uuid.uuid4()), "operation": "CREATE", "object": obj}}
            async with aiohttp.ClientSession() as session:
                async with session.post(url, json=review, ssl=ctx) as r:
                    assert r.status == 200
                    return await r.json()

        # the cache must have listed the existing resource before the duplicate is refused
        await until(lambda: synced(api, "web", "other").get("status") == "True")
        dup = await ask(service_defaults("web"))
        assert dup["response"]["allowed"] is False
        assert dup["response"]["status"]["message"] == ('servicedefaults resource with name "web" is already defined '
                                                        "– all servicedefaults resources must have unique names "
                                                        "across namespaces")
        ok = await ask(service_defaults("api"), "admission.k8s.io/v1beta1")
        assert ok["apiVersion"] == "admission.k8s.io/v1beta1" and ok["response"]["allowed"] is True
        bad = await ask(service_defaults("db", protocol="nope"))
        assert bad["response"]["allowed"] is False and "protocol" in bad["response"]["status"]["message"]
        async with aiohttp.ClientSession() as session:
            async with session.post(url, data=b"{not json", headers={"Content-Type": "application/json"},
                                    ssl=ctx) as r:
                assert r.status == 400
            async with session.post(url, data=b"[" * 200_000, headers={"Content-Type": "application/json"},
                                    ssl=ctx) as r:
                assert r.status == 400  # nested deeper than Python parses: still a 400, never a 500
    finally:
        assert await controller.stop() == 0


async def test_two_replicas_share_the_lease_and_the_standby_takes_over(env):
    api, consul, tmp, _ca = env
    api.create(service_defaults("web"))
    first = await start(api, consul, tmp)
    await until(lambda: synced(api, "web").get("status") == "True")
    second = await start(api, consul, tmp)
    try:
        lease = api.get("coordination.k8s.io/v1", "Lease", "consul", "consul.hashicorp.com")
        assert lease is not None and lease["spec"]["holderIdentity"]
        assert await first.stop() == 0  # releases the Lease
        api.create(service_defaults("api"))
        await until(lambda: synced(api, "api").get("status") == "True")
        now = api.get("coordination.k8s.io/v1", "Lease", "consul", "consul.hashicorp.com")
        assert now["spec"]["holderIdentity"] not in ("", lease["spec"]["holderIdentity"])
    finally:
        assert await second.stop() == 0


async def test_consul_namespaces_mirroring_creates_the_namespace_with_the_cross_namespace_policy(tmp_path):
    """Consul Enterprise in the fake (namespaces; ACL rules are not enforced)."""
    ca = CA()
    write_secret(tmp_path / "certs", ca.issue(hosts=("127.0.0.1",)))
    async with FakeKubeAPI(resources=RESOURCES + CRDS) as api, FakeConsul(1, enterprise=True) as consul:
        consul.add_policy("cross-namespace-policy")
        api.create(service_defaults("web", namespace="shop"))
        controller = await start(api, consul, tmp_path, "--no-leader-elect", "--set", "global.enableConsulNamespaces=true",
                                 "--set", "connectInject.consulNamespaces.mirroringK8S=true",
                                 "--set", "connectInject.consulNamespaces.mirroringK8SPrefix=k8s-",
                                 "--set", "global.acls.manageSystemACLs=true")
        try:
            await until(lambda: synced(api, "web", "shop").get("status") == "True")
            assert [p["Name"] for p in consul.namespaces["k8s-shop"]["ACLs"]["PolicyDefaults"]] == [
                "cross-namespace-policy"]
            assert consul.config_entry("service-defaults", "web", ns="k8s-shop")["Protocol"] == "http"
        finally:
            assert await controller.stop() == 0
