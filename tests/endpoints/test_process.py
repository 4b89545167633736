"""The real `connect-inject endpoints-controller` process, end to end.

Kubernetes: tests/fakes/kube_api.py (a fake API server written from the Kubernetes API
conventions: list+watch with resourceVersions, Leases with conflicts, Events), reached through a
kubeconfig. Consul: tests/fakes/consul_agent.py (fake client agents from Consul's agent API
documentation on 127.0.0.2 and 127.0.0.3, one port). Both are real HTTP servers on loopback in
this test's event loop; the controller is a subprocess started as the chart starts it.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.fakes.consul_agent import FakeConsul
from tests.processes import JsonLogProcess as Controller
from tests.fakes.kube_api import FakeKubeAPI

ROOT = Path(__file__).resolve().parents[2]
P = "consul.hashicorp.com/"
NODES = {"node-1": "127.0.0.2", "node-2": "127.0.0.3"}
TIMEOUT = 20.0  # bound of every wait for the controller to converge


def agent_pod(node: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": f"consul-client-{node}", "namespace": "consul",
                         "labels": {"app": "consul", "component": "client", "release": "consul"}},
            "spec": {"nodeName": node, "containers": [{"name": "consul", "image": "consul"}]},
            "status": {"phase": "Running", "podIP": NODES[node], "hostIP": NODES[node],
                       "conditions": [{"type": "Ready", "status": "True"}]}}


def app_pod(name: str, node: str, ip: str, annotations: dict[str, str] | None = None) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": "apps",
                         "labels": {P + "connect-inject-status": "injected",
                                    P + "connect-inject-managed-by": "consul-k8s-endpoints-controller"},
                         "annotations": {P + "connect-inject-status": "injected", **(annotations or {})}},
            "spec": {"nodeName": node, "containers": [{"name": "app", "ports": [{"containerPort": 8080}]}]},
            "status": {"phase": "Running", "podIP": ip, "hostIP": NODES[node]}}


def endpoints(name: str, pods: list[dict[str, Any]], unready: tuple[str, ...] = ()) -> dict[str, Any]:
    def address(p: dict[str, Any]) -> dict[str, Any]:
        return {"ip": p["status"]["podIP"], "nodeName": p["spec"]["nodeName"],
                "targetRef": {"kind": "Pod", "name": p["metadata"]["name"], "namespace": "apps"}}
    subset: dict[str, Any] = {}
    ready = [address(p) for p in pods if p["metadata"]["name"] not in unready]
    not_ready = [address(p) for p in pods if p["metadata"]["name"] in unready]
    if ready:
        subset["addresses"] = ready
    if not_ready:
        subset["notReadyAddresses"] = not_ready
    return {"apiVersion": "v1", "kind": "Endpoints", "metadata": {"name": name, "namespace": "apps"},
            "subsets": [dict(subset, ports=[{"port": 8080}])] if subset else []}


@pytest.fixture
async def cluster(tmp_path: Path) -> AsyncIterator[tuple[FakeKubeAPI, FakeConsul, Path]]:
    async with FakeKubeAPI() as api, FakeConsul(list(NODES.values()), nodes=list(NODES)) as consul:
        for node in NODES:
            api.create(agent_pod(node))
        for ns in ("apps", "consul"):
            api.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
        yield api, consul, api.kubeconfig(tmp_path / "kubeconfig")


async def start(kubeconfig: Path, consul: FakeConsul, *extra: str) -> Controller:
    env = {**os.environ, "KUBECONFIG": str(kubeconfig), "CONSUL_HTTP_ADDR": consul.address,
           "PYTHONPATH": str(ROOT)}
    env.pop("KUBERNETES_SERVICE_HOST", None)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "generator", "endpoints-controller", "--release-name", "consul",
        "--release-namespace", "consul", "--health-listen", "127.0.0.1:0", "--log-json",
        "--set", "connectInject.enabled=true", "--set", "connectInject.transparentProxy.defaultEnabled=false",
        *extra, env=env, cwd=ROOT, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
    return Controller(proc, "health_port", TIMEOUT)


async def test_converges_from_cold_follows_readiness_and_deletions_and_exits_0_on_sigterm(cluster):
    api, consul, kubeconfig = cluster
    a, b = app_pod("web-a", "node-1", "10.1.0.1"), app_pod("web-b", "node-2", "10.1.0.2")
    for p in (a, b):
        api.create(p)
    api.create(endpoints("web", [a, b]))
    controller = await start(kubeconfig, consul, "--no-leader-elect")
    try:
        one, two = consul.agent("127.0.0.2"), consul.agent("127.0.0.3")
        await consul.wait_for(lambda: bool(one.service("web-a-web") and two.service("web-b-web-sidecar-proxy")
                                           and two.check("apps/web-b-web/kubernetes-health-check")), TIMEOUT)
        # A pod turns unready: the check goes critical.
        api.replace(endpoints("web", [a, b], unready=("web-b",)))
        await consul.wait_for(lambda: (two.check("apps/web-b-web/kubernetes-health-check") or {}).get("Status")
                              == "critical", TIMEOUT)
        # A pod leaves: deregistered on its agent.
        api.replace(endpoints("web", [a]))
        await consul.wait_for(lambda: two.service("web-b-web") is None, TIMEOUT)
        # The Service goes away: everything of it is deregistered.
        api.delete("v1", "Endpoints", "apps", "web")
        await consul.wait_for(lambda: one.service("web-a-web") is None, TIMEOUT)
    finally:
        code = await controller.stop()
    assert code == 0, controller.lines[-5:]
    assert controller.said("controller stopped")


async def test_a_restarted_agent_gets_its_registrations_back(cluster):
    api, consul, kubeconfig = cluster
    a = app_pod("web-a", "node-1", "10.1.0.1")
    api.create(a)
    api.create(endpoints("web", [a]))
    controller = await start(kubeconfig, consul, "--no-leader-elect")
    try:
        one = consul.agent("127.0.0.2")
        await consul.wait_for(lambda: one.service("web-a-web") is not None, TIMEOUT)
        await consul.restart("127.0.0.2")  # the agent loses its state ...
        assert one.service("web-a-web") is None
        api.patch("v1", "Pod", "consul", "consul-client-node-1",  # ... and its pod restarts
                  {"status": {"containerStatuses": [{"name": "consul", "restartCount": 1}]}})
        await consul.wait_for(lambda: one.service("web-a-web") is not None
                              and one.check("apps/web-a-web/kubernetes-health-check") is not None, TIMEOUT)
    finally:
        assert await controller.stop() == 0


async def test_one_pods_bad_annotation_is_an_event_and_the_others_register(cluster):
    api, consul, kubeconfig = cluster
    good = app_pod("good", "node-1", "10.1.0.1")
    bad = app_pod("bad", "node-1", "10.1.0.2", {P + "connect-service-upstreams": "db:99999"})
    for p in (good, bad):
        api.create(p)
    api.create(endpoints("web", [good, bad]))
    controller = await start(kubeconfig, consul, "--no-leader-elect")
    try:
        one = consul.agent("127.0.0.2")
        await consul.wait_for(lambda: one.service("good-web") is not None, TIMEOUT)

        async def event() -> dict[str, Any]:
            while True:
                found = [e for e in api.objects("v1", "Event", "apps") if e["involvedObject"]["name"] == "bad"]
                if found:
                    return found[0]
                await asyncio.sleep(0.05)
        found = await asyncio.wait_for(event(), TIMEOUT)
        assert "connect-service-upstreams" in found["message"] and "99999" in found["message"]
        assert found["type"] == "Warning"
        assert one.service("bad-web") is None
    finally:
        assert await controller.stop() == 0


async def test_consul_down_at_start_then_up(cluster):
    api, consul, kubeconfig = cluster
    a = app_pod("web-a", "node-1", "10.1.0.1")
    api.create(a)
    api.create(endpoints("web", [a]))
    await consul.down("127.0.0.2")
    controller = await start(kubeconfig, consul, "--no-leader-elect")
    try:
        await asyncio.wait_for(controller.announced, TIMEOUT)
        await consul.wait_for(lambda: controller.said("Reconciler error"), TIMEOUT)
        await consul.up("127.0.0.2")
        await consul.wait_for(lambda: consul.agent("127.0.0.2").service("web-a-web") is not None, TIMEOUT)
    finally:
        assert await controller.stop() == 0


async def test_two_replicas_share_one_lease_and_the_standby_takes_over(cluster):
    api, consul, kubeconfig = cluster
    a = app_pod("web-a", "node-1", "10.1.0.1")
    api.create(a)
    api.create(endpoints("web", [a]))
    first = await start(kubeconfig, consul)
    await consul.wait_for(lambda: consul.agent("127.0.0.2").service("web-a-web") is not None, TIMEOUT)
    second = await start(kubeconfig, consul)
    try:
        lease = api.get("coordination.k8s.io/v1", "Lease", "consul", "consul-controller-lock")
        assert lease is not None and lease["spec"]["holderIdentity"]
        await asyncio.wait_for(second.announced, TIMEOUT)
        assert await first.stop() == 0  # releases the Lease: the standby takes over at its next try
        released = api.get("coordination.k8s.io/v1", "Lease", "consul", "consul-controller-lock")
        b = app_pod("web-b", "node-2", "10.1.0.2")
        api.create(b)
        api.replace(endpoints("web", [a, b]))
        await consul.wait_for(lambda: consul.agent("127.0.0.3").service("web-b-web") is not None, TIMEOUT)
        now = api.get("coordination.k8s.io/v1", "Lease", "consul", "consul-controller-lock")
        assert now["spec"]["holderIdentity"] not in ("", None, lease["spec"]["holderIdentity"])
        assert released is not None
    finally:
        assert await second.stop() == 0


async def test_an_annotation_edited_after_injection_is_registered(cluster):
    """Pods are watched too: a changed pod re-queues the Endpoints that list it."""
    api, consul, kubeconfig = cluster
    a = app_pod("web-a", "node-1", "10.1.0.1")
    api.create(a)
    api.create(endpoints("web", [a]))
    controller = await start(kubeconfig, consul, "--no-leader-elect")
    try:
        one = consul.agent("127.0.0.2")
        await consul.wait_for(lambda: one.service("web-a-web") is not None, TIMEOUT)
        api.patch("v1", "Pod", "apps", "web-a", {"metadata": {"annotations": {P + "service-tags": "blue, v2"}}})
        await consul.wait_for(lambda: (one.service("web-a-web") or {}).get("Tags") == ["blue", "v2"], TIMEOUT)
    finally:
        assert await controller.stop() == 0
