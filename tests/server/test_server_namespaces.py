"""Namespace-label cache: list+watch through the official client, GET on a miss, outage handling.

Every test here runs against FakeKube (fake_kube.py), which stands in for the Kubernetes API
server: kmock 0.8 cannot serve the cluster-scoped Namespace resource (see that module).
"""

from __future__ import annotations

import asyncio
import json

import pytest

from generator.webhook.metrics import Metrics
from generator.kube.nscache import NamespaceCache, NamespaceUnavailable

from .conftest import P, Webhook, admission_review, core_api, docs_pod, metric_value, patched
from .fake_kube import FakeKube

TPROXY = P + "transparent-proxy"


async def until(predicate, timeout: float = 10.0) -> None:
    """Wait (bounded) for the watch thread to apply what the API server sent."""
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.01)


@pytest.fixture
async def cache(fake_kube: FakeKube):
    """A started cache on FakeKube (the API server stand-in), stopped at teardown."""
    caches: list[NamespaceCache] = []

    def make(**kwargs) -> NamespaceCache:
        c = NamespaceCache(core_api(fake_kube.url), Metrics(), **kwargs)
        caches.append(c)
        c.start()
        return c

    yield make
    for c in caches:
        await asyncio.to_thread(c.stop)


async def test_initial_list_then_watch_add_modify_delete(fake_kube: FakeKube, cache) -> None:
    """FakeKube stands in for the API server."""
    await fake_kube.add("apps", {TPROXY: "false"})
    c = cache()
    await until(c.synced.is_set)
    assert c.peek("apps") == {TPROXY: "false"}
    assert c.staleness() == 0

    await fake_kube.add("new", {"team": "a"})
    await until(lambda: c.peek("new") == {"team": "a"})
    await fake_kube.modify("apps", {TPROXY: "true"})
    await until(lambda: c.peek("apps") == {TPROXY: "true"})
    await fake_kube.delete("new")
    await until(lambda: c.peek("new") == {})
    assert fake_kube.calls["list"] == 1 and fake_kube.calls["get"] == 0


async def test_a_miss_costs_one_get_shared_by_concurrent_requests(fake_kube: FakeKube) -> None:
    """FakeKube stands in for the API server; the cache is not started, so every name is a miss."""
    await fake_kube.add("fresh", {TPROXY: "false"})
    metrics = Metrics()
    c = NamespaceCache(core_api(fake_kube.url), metrics)
    results = await asyncio.gather(*(c.resolve("fresh") for _ in range(20)))
    assert all(r == {TPROXY: "false"} for r in results)
    assert fake_kube.calls["get"] == 1
    assert await c.resolve("fresh") == {TPROXY: "false"}  # now cached
    assert fake_kube.calls["get"] == 1
    assert await c.resolve("missing") == {}  # 404: no labels, no error
    assert metrics.ns_errors.labels(operation="get")._value.get() == 0


async def test_a_hung_api_server_costs_a_miss_at_most_the_deadline(fake_kube: FakeKube) -> None:
    """FakeKube stands in for the API server; `hang` makes it accept a GET and never answer."""
    fake_kube.hang = True
    await fake_kube.add("slow", {TPROXY: "false"})
    c = NamespaceCache(core_api(fake_kube.url), Metrics(), get_deadline=0.2)
    with pytest.raises(NamespaceUnavailable, match="namespace 'slow'.*TimeoutError"):
        await asyncio.wait_for(c.resolve("slow"), 5)
    assert c.metrics.ns_errors.labels(operation="get")._value.get() == 1
    assert c.metrics.ns_lookups.labels(source="unknown")._value.get() == 1


async def test_outage_keeps_last_known_labels_then_resyncs(fake_kube: FakeKube, cache, caplog) -> None:
    """FakeKube stands in for the API server, and `down` is its outage."""
    await fake_kube.add("apps", {TPROXY: "false"})
    c = cache()
    await until(c.synced.is_set)

    await fake_kube.set_down(True)
    await until(lambda: c.staleness() > 0)
    assert await c.resolve("apps") == {TPROXY: "false"}  # last known labels
    with pytest.raises(NamespaceUnavailable, match="HTTP 503"):  # a miss: no labels to fall back on
        await c.resolve("unseen")
    await until(lambda: c.metrics.ns_errors.labels(operation="list")._value.get()
                + c.metrics.ns_errors.labels(operation="watch")._value.get() >= 1)
    assert c.metrics.ns_errors.labels(operation="get")._value.get() == 1
    assert c.metrics.ns_lookups.labels(source="stale")._value.get() == 1
    assert any("cannot reach the API server" in r.getMessage() for r in caplog.records)

    await fake_kube.modify("apps", {TPROXY: "true"})  # changed while we could not see it
    fake_kube.compact()                                # and our resourceVersion is gone
    await fake_kube.set_down(False)
    await until(lambda: c.peek("apps") == {TPROXY: "true"}, timeout=20)  # backoff is ≤ 1 s here
    await until(lambda: c.staleness() == 0)


async def test_expired_resource_version_relists(fake_kube: FakeKube, cache) -> None:
    """FakeKube stands in for the API server; compaction makes the watch's version expire (410)."""
    await fake_kube.add("a", {})
    c = cache(watch_seconds=1)  # the server ends each watch after 1 s; the cache re-watches
    await until(c.synced.is_set)
    fake_kube.compact()
    await fake_kube.add("b", {"x": "y"})  # delivered on the open watch
    await until(lambda: c.peek("b") == {"x": "y"})
    fake_kube.compact()
    await until(lambda: fake_kube.calls["list"] >= 2)  # the next watch got 410 Gone: relisted
    await fake_kube.add("c", {"z": "1"})
    await until(lambda: c.peek("c") == {"z": "1"})
    assert c.metrics.ns_errors.labels(operation="watch")._value.get() == 0  # routine, not an error


async def test_webhook_uses_namespace_labels_from_the_cache(fake_kube: FakeKube, start_server, https) -> None:
    """FakeKube stands in for the API server: a namespace label turns transparent proxy off."""
    await fake_kube.add("plain", {})
    await fake_kube.add("no-tproxy", {TPROXY: "false"})
    server = await start_server(namespaces_api=core_api(fake_kube.url))
    await until(server.namespaces.synced.is_set)
    webhook = Webhook(server, https)
    pod = docs_pod("static-server")

    def init_command(answer) -> str:
        injected = patched(pod, answer["response"])
        init = [c for c in injected["spec"]["initContainers"] if c["name"] == "consul-connect-inject-init"]
        return " ".join(init[0]["command"])

    assert "redirect-traffic" in init_command(await webhook.review(pod, namespace="plain"))
    assert "redirect-traffic" not in init_command(await webhook.review(pod, namespace="no-tproxy"))
    text = await webhook.metrics()
    assert metric_value(text, "connect_inject_namespace_lookups_total", source="cache") == 2
    assert metric_value(text, "connect_inject_namespace_cache_staleness_seconds") == 0
    assert metric_value(text, "connect_inject_namespace_cache_namespaces") == 2
    assert fake_kube.calls["get"] == 0  # off the request path


async def test_webhook_fails_a_pod_whose_unseen_namespace_cannot_be_read(fake_kube: FakeKube, start_server, https) -> None:
    """FakeKube stands in for the API server; it lists fine, then goes down before `late` is seen."""
    await fake_kube.add("known", {TPROXY: "false"})
    server = await start_server(namespaces_api=core_api(fake_kube.url))
    await until(server.namespaces.synced.is_set)
    await fake_kube.set_down(True)
    webhook = Webhook(server, https)
    pod = docs_pod("static-server")
    answer = await webhook.review(pod, namespace="known")  # cached: last known labels
    assert "redirect-traffic" not in json.dumps(patched(pod, answer["response"]))
    status, body = await webhook.post(admission_review(pod, namespace="late"))
    assert status == 500 and "namespace 'late'" in body["message"] and "503" in body["message"]
    assert metric_value(await webhook.metrics(), "connect_inject_admission_requests_total",
                        result="error", reason="namespace-unavailable") == 1


async def test_a_missing_namespace_costs_one_get_per_period(fake_kube: FakeKube) -> None:
    """FakeKube stands in for the API server. Pods naming random namespaces used to cost a GET each
    time; a 404 is now remembered briefly (the cache is not started: every name is a miss)."""
    c = NamespaceCache(core_api(fake_kube.url), Metrics(), negative_ttl=60)
    assert await c.resolve("nope") == {}
    assert await c.resolve("nope") == {}
    assert await asyncio.gather(*(c.resolve("nope") for _ in range(10))) == [{}] * 10
    assert fake_kube.calls["get"] == 1
    assert c.has("nope")  # the webhook needs no second review for it either

    short = NamespaceCache(core_api(fake_kube.url), Metrics(), negative_ttl=0.2)
    assert await short.resolve("gone") == {}
    gets = fake_kube.calls["get"]
    await until_async(lambda: short.resolve("gone"), lambda: fake_kube.calls["get"] == gets + 1)  # after the TTL


async def until_async(action, predicate, timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await action()
            await asyncio.sleep(0.01)


async def test_remembered_misses_are_bounded(fake_kube: FakeKube) -> None:
    """FakeKube stands in for the API server: random names cannot grow the cache without bound;
    the least recently missed name is forgotten first."""
    c = NamespaceCache(core_api(fake_kube.url), Metrics(), negative_ttl=60, negative_entries=3)
    for i in range(5):
        await c.resolve(f"random-{i}")
    assert fake_kube.calls["get"] == 5
    for i in (2, 3, 4):  # remembered
        await c.resolve(f"random-{i}")
    assert fake_kube.calls["get"] == 5
    await c.resolve("random-0")  # forgotten: asked again
    assert fake_kube.calls["get"] == 6


async def test_a_namespace_created_after_a_miss_is_seen_at_once(fake_kube: FakeKube, cache) -> None:
    """FakeKube stands in for the API server: the watch delivers a namespace created right after a
    404 was remembered, and its labels win over the remembered miss."""
    c = cache(negative_ttl=60)
    await until(c.synced.is_set)
    assert await c.resolve("late") == {}
    await fake_kube.add("late", {TPROXY: "false"})
    await until(lambda: c.peek("late") == {TPROXY: "false"})
    assert await c.resolve("late") == {TPROXY: "false"}


async def test_webhook_pods_in_a_missing_namespace_cost_one_get(fake_kube: FakeKube, start_server, https) -> None:
    """FakeKube stands in for the API server; the namespace `ghost` does not exist."""
    server = await start_server(namespaces_api=core_api(fake_kube.url))
    await until(server.namespaces.synced.is_set)
    webhook = Webhook(server, https)
    for _ in range(3):
        assert (await webhook.review(docs_pod("static-server"), namespace="ghost"))["response"]["allowed"] is True
    assert fake_kube.calls["get"] == 1
