"""The fake API server (tests/fakes/kube_api.py) keeps the API conventions the controllers rely on.

Every test here runs against FakeKubeAPI, the aiohttp stand-in (kmock 0.8 has no resourceVersions,
no watch resume and no 410; see that module). The official client talks to it where the
controllers would; raw HTTP where the client hides what is being checked (the event stream).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp
import pytest
from kubernetes import client, config, watch

from fakes.kube_api import FakeKubeAPI, parse_label_selector
from generator.kube.client import api_for

NS = "apps"


def pod(name: str, labels: dict[str, str] | None = None, ns: str = NS, **status: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": ns, "labels": labels or {}},
            "spec": {"containers": [{"name": "app", "image": "app"}], "nodeName": "node-1"},
            "status": {"phase": "Running", **status}}


@pytest.fixture
async def kube():
    async with FakeKubeAPI() as k:
        yield k


def core(url: str) -> client.CoreV1Api:
    cfg = client.Configuration()
    cfg.host = url
    return api_for(cfg)


async def events(url: str, path: str, count: int, timeout: float = 5.0) -> list[dict[str, Any]]:
    """The first `count` events of a watch stream (raw HTTP: one JSON object per line)."""
    out: list[dict[str, Any]] = []
    async with aiohttp.ClientSession() as session, asyncio.timeout(timeout):
        async with session.get(url + path) as resp:
            assert resp.status == 200
            while len(out) < count:
                line = await resp.content.readline()
                if not line:
                    break
                out.append(json.loads(line))
    return out


async def test_kubeconfig_without_credentials_loads_in_the_official_client(kube: FakeKubeAPI, tmp_path) -> None:
    """design.md: a plain http:// server with no auth must work from KUBECONFIG."""
    kube.create(pod("web-1", {"app": "web"}))
    cfg = client.Configuration()
    config.load_kube_config(str(kube.kubeconfig(tmp_path / "config", namespace=NS)), client_configuration=cfg)
    api = client.CoreV1Api(client.ApiClient(cfg))
    pods = await asyncio.to_thread(api.list_namespaced_pod, NS)
    assert [p.metadata.name for p in pods.items] == ["web-1"]
    assert pods.metadata.resource_version == str(kube.version)
    assert config.list_kube_config_contexts(str(tmp_path / "config"))[1]["context"]["namespace"] == NS


async def test_watch_resumes_after_a_resource_version_and_410_when_compacted(kube: FakeKubeAPI) -> None:
    api = core(kube.url)
    kube.create(pod("a"))
    listed = await asyncio.to_thread(api.list_namespaced_pod, NS)
    start = listed.metadata.resource_version
    kube.create(pod("b"))
    kube.patch("v1", "Pod", NS, "a", {"status": {"phase": "Failed"}})
    kube.delete("v1", "Pod", NS, "b")

    def stream(rv: str) -> list[tuple[str, str, str]]:
        return [(e["type"], e["object"].metadata.name, e["object"].metadata.resource_version)
                for e in watch.Watch().stream(api.list_namespaced_pod, NS, resource_version=rv, timeout_seconds=1)]

    seen = await asyncio.to_thread(stream, start)
    assert [(t, n) for t, n, _ in seen] == [("ADDED", "b"), ("MODIFIED", "a"), ("DELETED", "b")]
    versions = [int(v) for _, _, v in seen]
    assert versions == sorted(versions) and versions[-1] == kube.version
    assert await asyncio.to_thread(stream, str(versions[0])) == seen[1:]  # resumed from the middle

    kube.compact()
    with pytest.raises(client.ApiException) as gone:
        await asyncio.to_thread(stream, start)
    assert gone.value.status == 410 and "Expired" in gone.value.reason
    assert await asyncio.to_thread(stream, str(kube.version)) == []  # the current version still works


async def test_watch_without_version_starts_with_the_current_objects(kube: FakeKubeAPI) -> None:
    kube.create(pod("a"))
    kube.create(pod("other", ns="elsewhere"))
    got = await events(kube.url, f"/api/v1/namespaces/{NS}/pods?watch=true&timeoutSeconds=1", 1)
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in got] == [("ADDED", "a")]


async def test_watch_follows_selector_transitions(kube: FakeKubeAPI) -> None:
    """An object that stops matching arrives as DELETED, one that starts matching as ADDED."""
    kube.create(pod("a", {"inject": "yes"}))
    rv = kube.version
    path = f"/api/v1/pods?watch=1&resourceVersion={rv}&labelSelector=inject%3Dyes&timeoutSeconds=5"
    reader = asyncio.create_task(events(kube.url, path, 3))
    await until(lambda: kube.watches)
    kube.patch("v1", "Pod", NS, "a", {"metadata": {"labels": {"inject": "no"}}})
    kube.create(pod("b", {"inject": "no"}))                                       # never seen
    kube.patch("v1", "Pod", NS, "b", {"metadata": {"labels": {"inject": "yes"}}})
    kube.patch("v1", "Pod", NS, "b", {"status": {"phase": "Succeeded"}})
    got = await reader
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in got] == [
        ("DELETED", "a"), ("ADDED", "b"), ("MODIFIED", "b")]
    assert got[0]["object"]["metadata"]["labels"] == {"inject": "yes"}  # the last state it matched in


async def test_bookmarks_and_timeout(kube: FakeKubeAPI) -> None:
    kube.bookmark_interval = 0.05
    path = f"/api/v1/namespaces/{NS}/endpoints?watch=true&allowWatchBookmarks=true&resourceVersion={kube.version}"
    got = await events(kube.url, path + "&timeoutSeconds=5", 1)
    assert got == [{"type": "BOOKMARK", "object": {"kind": "Endpoints", "apiVersion": "v1",
                                                   "metadata": {"resourceVersion": str(kube.version)}}}]
    async with asyncio.timeout(5):  # the server ends the stream at timeoutSeconds
        assert await events(kube.url, f"/api/v1/namespaces/{NS}/endpoints?watch=true&timeoutSeconds=1", 99) == []


async def test_selectors_on_list(kube: FakeKubeAPI) -> None:
    api = core(kube.url)
    kube.create(pod("a", {"app": "web", "tier": "front"}))
    kube.create(pod("b", {"app": "db"}))
    kube.create(pod("c", {"app": "web"}, ns="other"))

    async def names(**kw: Any) -> list[str]:
        listed = await asyncio.to_thread(api.list_pod_for_all_namespaces, **kw)
        return [p.metadata.name for p in listed.items]

    assert await names(label_selector="app=web") == ["a", "c"]  # sorted by namespace, then name
    assert await names(label_selector="app in (web, db),!tier") == ["b", "c"]
    assert await names(label_selector="app notin (web)") == ["b"]
    assert await names(label_selector="tier") == ["a"]
    assert await names(field_selector="metadata.namespace=apps,metadata.name!=a") == ["b"]
    assert await names(field_selector="spec.nodeName=node-1,status.phase=Running") == ["a", "b", "c"]
    with pytest.raises(client.ApiException) as bad:
        await names(field_selector="spec.containers=x")
    assert bad.value.status == 400 and "field label not supported" in bad.value.body
    first = await asyncio.to_thread(api.list_pod_for_all_namespaces, limit=2)
    rest = await asyncio.to_thread(api.list_pod_for_all_namespaces, limit=2, _continue=first.metadata._continue)
    assert [p.metadata.name for p in first.items + rest.items] == ["a", "b", "c"]
    assert first.metadata.remaining_item_count == 1 and rest.metadata._continue is None


def test_label_selector_grammar() -> None:
    sel = parse_label_selector("a.b/c==1, d != 2, e in (x,y), !f")
    assert sel({"a.b/c": "1", "e": "x"})
    assert not sel({"a.b/c": "1", "e": "x", "f": ""})
    assert not sel({"a.b/c": "1", "d": "2", "e": "y"})
    assert sel({"a.b/c": "1", "d": "3", "e": "y"})


async def test_writes_conflicts_and_status_subresource(kube: FakeKubeAPI) -> None:
    api = core(kube.url)
    created = await asyncio.to_thread(api.create_namespaced_pod, NS, {
        "metadata": {"generateName": "web-"}, "spec": {"containers": [{"name": "c", "image": "i"}]},
        "status": {"phase": "Running"}})
    name, rv = created.metadata.name, created.metadata.resource_version
    assert name.startswith("web-") and created.metadata.uid and created.status.phase == "Pending"
    with pytest.raises(client.ApiException) as dup:
        await asyncio.to_thread(api.create_namespaced_pod, NS, {"metadata": {"name": name}, "spec": {}})
    assert dup.value.status == 409 and json.loads(dup.value.body)["reason"] == "AlreadyExists"

    body = kube.get("v1", "Pod", NS, name)
    body["metadata"]["labels"] = {"x": "1"}
    body["status"]["phase"] = "Failed"                  # ignored on the main resource
    replaced = await asyncio.to_thread(api.replace_namespaced_pod, name, NS, body)
    assert replaced.metadata.labels == {"x": "1"} and replaced.status.phase == "Pending"
    stale = dict(body, metadata=dict(body["metadata"], resourceVersion=rv))
    with pytest.raises(client.ApiException) as conflict:
        await asyncio.to_thread(api.replace_namespaced_pod, name, NS, stale)
    assert conflict.value.status == 409 and json.loads(conflict.value.body)["reason"] == "Conflict"

    version = kube.version
    again = await asyncio.to_thread(api.replace_namespaced_pod, name, NS, kube.get("v1", "Pod", NS, name))
    assert kube.version == version and again.metadata.resource_version == str(version)  # no-op: no new version

    patched = await asyncio.to_thread(api.patch_namespaced_pod_status, name, NS,
                                      {"status": {"phase": "Running"}, "metadata": {"labels": {"y": "2"}}})
    assert patched.status.phase == "Running" and patched.metadata.labels == {"x": "1"}
    jp = await asyncio.to_thread(api.patch_namespaced_pod, name, NS,
                                 [{"op": "add", "path": "/metadata/annotations", "value": {"a": "b"}}])
    assert jp.metadata.annotations == {"a": "b"}

    await asyncio.to_thread(api.delete_namespaced_pod, name, NS)
    with pytest.raises(client.ApiException) as missing:
        await asyncio.to_thread(api.read_namespaced_pod, name, NS)
    assert missing.value.status == 404
    methods = [(r.method, r.status) for r in kube.journal]
    assert methods[-2:] == [("DELETE", 200), ("GET", 404)]


async def test_faults(kube: FakeKubeAPI) -> None:
    api = core(kube.url)
    kube.fail(500, times=1, method="GET")
    with pytest.raises(client.ApiException) as err:
        await asyncio.to_thread(api.list_namespaced_pod, NS)
    assert err.value.status == 500
    await asyncio.to_thread(api.list_namespaced_pod, NS)  # once only

    port = kube.port
    await kube.go_down()
    with pytest.raises(Exception):  # connection refused (urllib3's MaxRetryError)
        await asyncio.to_thread(api.list_namespaced_pod, NS, _request_timeout=2)
    await kube.come_up()
    assert kube.port == port
    await asyncio.to_thread(api.list_namespaced_pod, NS, _request_timeout=2)

    kube.hang(method="GET")
    with pytest.raises(Exception, match="(?i)timed? ?out"):
        await asyncio.to_thread(api.list_namespaced_pod, NS, _request_timeout=0.3)
    kube.clear_faults()
    await asyncio.to_thread(api.list_namespaced_pod, NS, _request_timeout=2)


async def until(predicate, timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.01)
