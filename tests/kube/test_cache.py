"""The generic list+watch cache (generator/kube/cache.py) on kinds other than Namespaces.

Every test runs the cache, through the official client, against FakeKubeAPI (tests/fakes/
kube_api.py): a stand-in for the Kubernetes API server written from its documented list/watch
semantics (resourceVersions, label and field selectors, paging, bookmarks, 410 Gone, selector
transitions arriving as ADDED/DELETED), with outages and faults on demand.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import threading
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from kubernetes import client as kube_client

from fakes.kube_api import FakeKubeAPI
from generator.kube.cache import Event, WatchCache, key
from generator.kube.client import api_for

INJECTED = "consul.hashicorp.com/connect-inject-status=injected"
AGENTS = "app=consul,component=client,release=consul"


async def until(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    """Wait (bounded) for the watch thread to apply what the API server sent."""
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.01)


class Counts:
    """A WatchMetrics that records what the cache reports."""

    def __init__(self) -> None:
        self.failures: list[str] = []
        self.size = -1

    def failed(self, operation: str) -> None:
        self.failures.append(operation)

    def stored(self, count: int) -> None:
        self.size = count


class Recorder:
    """A handler on the test's event loop: the events it got, and the thread it ran in."""

    def __init__(self) -> None:
        self.events: list[Event[Any]] = []
        self.threads: set[str] = set()

    def __call__(self, event: Event[Any]) -> None:
        self.events.append(event)
        self.threads.add(threading.current_thread().name)

    def seen(self) -> list[tuple[str, str]]:
        return [(e.type, e.key) for e in self.events]


@pytest.fixture
async def kube() -> AsyncIterator[FakeKubeAPI]:
    async with FakeKubeAPI() as api:
        yield api


@pytest.fixture
def api(kube: FakeKubeAPI) -> kube_client.CoreV1Api:
    cfg = kube_client.Configuration()
    cfg.host = kube.url
    return api_for(cfg)


@pytest.fixture
async def make() -> AsyncIterator[Callable[..., WatchCache[Any]]]:
    """Started caches with short backoffs, stopped at teardown."""
    caches: list[WatchCache[Any]] = []

    def start(list_fn: Any, handler: Recorder | None = None, **kwargs: Any) -> WatchCache[Any]:
        kwargs.setdefault("backoff_min", 0.05)
        kwargs.setdefault("backoff_max", 0.2)
        cache: WatchCache[Any] = WatchCache(list_fn, **kwargs)
        if handler is not None:
            cache.add_handler(handler, asyncio.get_running_loop())
        caches.append(cache)
        cache.start()
        return cache

    yield start
    for cache in caches:
        await asyncio.to_thread(cache.stop)


def pod(name: str, namespace: str = "apps", labels: dict[str, str] | None = None, node: str = "node-1",
        **meta: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": namespace, "labels": labels or {}, **meta},
            "spec": {"nodeName": node, "containers": [{"name": "app", "image": "app:1"}]},
            "status": {"phase": "Running", "podIP": "10.0.0.1"}}


def endpoints(name: str, namespace: str = "apps", ip: str = "10.0.0.1", **meta: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Endpoints", "metadata": {"name": name, "namespace": namespace, **meta},
            "subsets": [{"addresses": [{"ip": ip, "nodeName": "node-1",
                                        "targetRef": {"kind": "Pod", "name": name, "namespace": namespace}}],
                         "ports": [{"port": 8080}]}]}


def queries(kube: FakeKubeAPI, path: str, watch: bool) -> list[dict[str, str]]:
    return [r.query for r in kube.journal
            if r.path == path and (r.query.get("watch", "").lower() == "true") == watch]


INJECTED_LABELS = {"consul.hashicorp.com/connect-inject-status": "injected"}


async def test_pods_by_label_selector_list_then_add_modify_delete(kube: FakeKubeAPI, api, make) -> None:
    """FakeKubeAPI stands in for the API server. Only injected pods are kept, in every namespace;
    a pod that loses the label leaves the cache as the API server reports it: DELETED."""
    kube.create(pod("web-1", labels=INJECTED_LABELS))
    kube.create(pod("plain", labels={"app": "plain"}))
    kube.create(pod("db-1", namespace="data", labels=INJECTED_LABELS))
    events = Recorder()
    cache = make(api.list_pod_for_all_namespaces, events, name="pod", label_selector=INJECTED)
    assert await cache.wait_synced(10)
    assert sorted(cache.keys()) == ["apps/web-1", "data/db-1"]
    assert cache.get(key("apps", "web-1"))["status"]["phase"] == "Running"
    await until(lambda: ("relisted", "") in events.seen())
    assert sorted(events.seen()[:2]) == [("added", "apps/web-1"), ("added", "data/db-1")]
    assert events.seen()[2] == ("relisted", "")
    assert events.threads == {threading.main_thread().name}  # delivered on the consumer's loop

    kube.create(pod("web-2", labels=INJECTED_LABELS))
    kube.patch("v1", "Pod", "apps", "web-1", {"status": {"phase": "Failed"}})
    kube.patch("v1", "Pod", "data", "db-1", {"metadata": {"labels": {"consul.hashicorp.com/connect-inject-status": None}}})
    kube.delete("v1", "Pod", "apps", "web-2")
    kube.create(pod("plain-2"))  # never selected: no event
    await until(lambda: len(events.events) == 7)
    assert events.seen()[3:] == [("added", "apps/web-2"), ("modified", "apps/web-1"),
                                 ("deleted", "data/db-1"), ("deleted", "apps/web-2")]
    modified = events.events[4]
    assert modified.old["status"]["phase"] == "Running" and modified.obj["status"]["phase"] == "Failed"
    assert sorted(cache.keys()) == ["apps/web-1"]
    assert cache.in_sync and cache.staleness() == 0

    (listed,) = queries(kube, "/api/v1/pods", watch=False)
    assert listed["labelSelector"] == INJECTED and listed["limit"] == "500"
    (watched,) = queries(kube, "/api/v1/pods", watch=True)
    assert watched["labelSelector"] == INJECTED and watched["allowWatchBookmarks"].lower() == "true"
    assert watched["timeoutSeconds"] == "240" and watched["resourceVersion"] == "4"  # the list's version


async def test_agent_pods_in_one_namespace_by_label_and_field_selectors(kube: FakeKubeAPI, api, make) -> None:
    """FakeKubeAPI stands in for the API server: the Consul client agents of one release, in one
    namespace, on one node (the selectors are the API server's to apply)."""
    agent = {"app": "consul", "component": "client", "release": "consul"}
    kube.create(pod("consul-a", "consul", agent))
    kube.create(pod("consul-b", "consul", agent, node="node-2"))
    kube.create(pod("consul-c", "elsewhere", agent))
    kube.create(pod("other-release", "consul", {**agent, "release": "other"}))
    kube.create(pod("server", "consul", {**agent, "component": "server"}))
    cache = make(functools.partial(api.list_namespaced_pod, "consul"), name="agent pod",
                 label_selector=AGENTS, field_selector="spec.nodeName=node-1")
    assert await cache.wait_synced(10)
    assert cache.keys() == ["consul/consul-a"]
    kube.create(pod("consul-d", "consul", agent))
    await until(lambda: "consul/consul-d" in cache)
    for query in queries(kube, "/api/v1/namespaces/consul/pods", watch=False) + \
            queries(kube, "/api/v1/namespaces/consul/pods", watch=True):
        assert query["labelSelector"] == AGENTS and query["fieldSelector"] == "spec.nodeName=node-1"


async def test_endpoints_of_every_namespace_are_stored_transformed(kube: FakeKubeAPI, api, make) -> None:
    """FakeKubeAPI stands in for the API server. By default managedFields are dropped; a caller's
    transform keeps what it needs (here only the addresses' IPs)."""
    managed = [{"manager": "kube-controller-manager", "operation": "Update", "fieldsV1": {"f:subsets": {}}}]
    kube.create(endpoints("web", managedFields=managed))
    kube.create(endpoints("api", namespace="other", ip="10.0.0.2"))
    plain = make(api.list_endpoints_for_all_namespaces, name="endpoints", plural="endpoints")

    def ips(obj: dict[str, Any]) -> tuple[str, ...]:
        return tuple(a["ip"] for s in obj.get("subsets") or () for a in s.get("addresses") or ())

    small = make(api.list_endpoints_for_all_namespaces, name="endpoints", plural="endpoints", transform=ips)
    assert await plain.wait_synced(10) and await small.wait_synced(10)
    assert "managedFields" not in plain.get("apps/web")["metadata"]
    assert plain.get("apps/web")["subsets"][0]["ports"] == [{"port": 8080}]
    assert dict(small.items()) == {"apps/web": ("10.0.0.1",), "other/api": ("10.0.0.2",)}
    kube.patch("v1", "Endpoints", "apps", "web", {"subsets": [{"addresses": [{"ip": "10.0.0.9"}]}]})
    await until(lambda: small.get("apps/web") == ("10.0.0.9",))


async def test_an_expired_version_relists_at_once(kube: FakeKubeAPI, api, make) -> None:
    """FakeKubeAPI stands in for the API server. A change the selector leaves out never reaches the
    watch, so after compact() the cache's version is older than the server keeps: the next watch
    (each lasts 1 s here) gets 410 Gone, and the cache relists at once, without counting an error;
    its handlers get a `relisted` (a controller then enqueues every key)."""
    kube.create(endpoints("web", labels={"app": "web"}))
    events, counts = Recorder(), Counts()
    cache = make(api.list_endpoints_for_all_namespaces, events, name="endpoints", plural="endpoints",
                 label_selector="app", watch_seconds=1, metrics=counts)
    assert await cache.wait_synced(10)
    await until(lambda: kube.calls["watch", "endpoints"] == 1)
    kube.create(endpoints("unlabelled"))  # not delivered: the watch's version stays at 2
    kube.compact()
    await until(lambda: kube.calls["list", "endpoints"] == 2)
    await until(lambda: events.seen().count(("relisted", "")) == 2)
    assert events.seen() == [("added", "apps/web"), ("relisted", ""), ("relisted", "")]
    assert counts.failures == [] and counts.size == 1
    expired = [r for r in kube.journal if r.query.get("watch") and r.query.get("resourceVersion") == "2"]
    assert len(expired) == 2  # the first watch, and the one that got 410
    await until(lambda: kube.calls["watch", "endpoints"] == 3)  # from the new list's version
    kube.patch("v1", "Endpoints", "apps", "unlabelled", {"metadata": {"labels": {"app": "api"}}})
    await until(lambda: "apps/unlabelled" in cache)


async def test_after_an_outage_the_relist_reports_deletions_missed_meanwhile(kube: FakeKubeAPI, api, make, caplog) -> None:
    """FakeKubeAPI stands in for the API server, and go_down() is its outage (connections refused,
    watches cut). The store keeps serving the last known objects; what changed meanwhile (one
    deleted, one modified, one created, history compacted) arrives as events after the relist."""
    caplog.set_level(logging.DEBUG, logger="connect-inject")
    for name in ("gone", "kept", "changed"):
        kube.create(endpoints(name))
    events, counts = Recorder(), Counts()
    cache = make(api.list_endpoints_for_all_namespaces, events, name="endpoints", plural="endpoints", metrics=counts)
    assert await cache.wait_synced(10)
    await until(lambda: ("relisted", "") in events.seen())
    first = len(events.events)

    await kube.go_down()
    await until(lambda: cache.staleness() > 0 and len(counts.failures) >= 2)
    assert cache.get("apps/gone") is not None  # last known objects
    kube.delete("v1", "Endpoints", "apps", "gone")
    kube.patch("v1", "Endpoints", "apps", "changed", {"subsets": []})
    kube.create(endpoints("new"))
    kube.compact()
    await kube.come_up()

    await until(lambda: events.seen().count(("relisted", "")) == 2)
    after = sorted(events.seen()[first:-1])
    assert after == [("added", "apps/new"), ("deleted", "apps/gone"), ("modified", "apps/changed")]
    assert events.seen()[-1] == ("relisted", "")
    assert sorted(cache.keys()) == ["apps/changed", "apps/kept", "apps/new"]
    await until(lambda: cache.staleness() == 0)
    assert set(counts.failures) <= {"list", "watch"}
    warnings = [r for r in caplog.records if "endpoints cache cannot reach the API server" in r.getMessage()]
    assert [r.levelno for r in warnings] == [logging.WARNING] + [logging.DEBUG] * (len(warnings) - 1)  # once per outage
    assert any("endpoints cache back in sync" in r.getMessage() for r in caplog.records)


async def test_a_cut_watch_resumes_from_its_version_without_a_list(kube: FakeKubeAPI, api, make) -> None:
    """FakeKubeAPI stands in for the API server: a short outage cuts the open watch; the cache
    watches again from the last version it saw, and the server replays what happened since."""
    kube.create(pod("web-1", labels=INJECTED_LABELS))
    cache = make(api.list_pod_for_all_namespaces, name="pod", label_selector=INJECTED, backoff_min=0.5)
    assert await cache.wait_synced(10)
    await until(lambda: kube.calls["watch", "pods"] == 1)
    await kube.go_down()
    kube.create(pod("web-2", labels=INJECTED_LABELS))  # while no watch is open
    await kube.come_up()  # before the cache's retry (0.4 s at least)
    await until(lambda: "apps/web-2" in cache)
    assert kube.calls["list", "pods"] == 1 and kube.calls["watch", "pods"] == 2
    resumed = queries(kube, "/api/v1/pods", watch=True)[-1]
    assert resumed["resourceVersion"] == "2"  # the list's version: nothing happened in between


async def test_bookmarks_move_the_version_on(kube: FakeKubeAPI, api, make) -> None:
    """FakeKubeAPI stands in for the API server. Changes to pods the selector leaves out never reach
    a selective watch; a BOOKMARK carries the current version, so after compaction the next watch
    resumes from it instead of getting 410 Gone and relisting."""
    kube.create(pod("web-1", labels=INJECTED_LABELS))
    cache = make(api.list_pod_for_all_namespaces, name="pod", label_selector=INJECTED, watch_seconds=1)
    assert await cache.wait_synced(10)
    await until(lambda: kube.calls["watch", "pods"] == 1)
    for i in range(5):
        kube.create(pod(f"plain-{i}"))
    kube.bookmark()
    await asyncio.sleep(0.2)
    kube.compact()
    await until(lambda: kube.calls["watch", "pods"] >= 2)  # the server ended the 1 s watch
    kube.create(pod("web-2", labels=INJECTED_LABELS))
    await until(lambda: "apps/web-2" in cache)
    assert kube.calls["list", "pods"] == 1
    assert queries(kube, "/api/v1/pods", watch=True)[1]["resourceVersion"] == "7"


async def test_a_large_list_is_read_in_pages(kube: FakeKubeAPI, api, make) -> None:
    """FakeKubeAPI stands in for the API server and serves `limit`/`continue` pages."""
    for i in range(7):
        kube.create(endpoints(f"svc-{i}"))
    cache = make(api.list_endpoints_for_all_namespaces, name="endpoints", plural="endpoints", page_size=3)
    assert await cache.wait_synced(10)
    assert len(cache) == 7
    pages = queries(kube, "/api/v1/endpoints", watch=False)
    assert [p["limit"] for p in pages] == ["3", "3", "3"]
    assert "continue" not in pages[0] and all(p.get("continue") for p in pages[1:])


async def test_an_error_event_or_a_failing_list_backs_off_and_relists(kube: FakeKubeAPI, api, make) -> None:
    """FakeKubeAPI stands in for the API server; fail() makes it answer 500 twice to the list."""
    kube.create(endpoints("web"))
    counts = Counts()
    kube.fail(500, times=2, path=r"^/api/v1/endpoints$")
    cache = make(api.list_endpoints_for_all_namespaces, name="endpoints", plural="endpoints", metrics=counts)
    assert await cache.wait_synced(10)
    assert counts.failures[:2] == ["list", "list"] and cache.keys() == ["apps/web"]


async def test_handlers_without_a_loop_run_in_the_watch_thread(kube: FakeKubeAPI, api, make) -> None:
    """FakeKubeAPI stands in for the API server. A handler's exception is logged, not fatal."""
    kube.create(endpoints("web"))
    seen: list[tuple[str, str]] = []

    def handler(event: Event[Any]) -> None:
        seen.append((event.type, threading.current_thread().name))
        raise RuntimeError("a consumer's bug")

    cache: WatchCache[Any] = WatchCache(api.list_endpoints_for_all_namespaces, name="endpoints", plural="endpoints")
    cache.add_handler(handler)
    cache.start()
    try:
        assert await cache.wait_synced(10)
        kube.create(endpoints("api"))
        await until(lambda: "apps/api" in cache)
        assert seen == [("added", "endpoints-watch"), ("relisted", "endpoints-watch"), ("added", "endpoints-watch")]
    finally:
        await asyncio.to_thread(cache.stop)


async def test_stop_interrupts_an_idle_watch_at_once(kube: FakeKubeAPI, api) -> None:
    """FakeKubeAPI stands in for the API server; the watch would otherwise last 240 s."""
    cache: WatchCache[Any] = WatchCache(api.list_namespace, name="namespace")
    cache.start()
    assert await cache.wait_synced(10)
    await until(lambda: kube.calls["watch", "namespaces"] == 1)
    started = time.monotonic()
    await asyncio.to_thread(cache.stop)
    assert time.monotonic() - started < 2
    assert cache._thread is not None and not cache._thread.is_alive()
    assert not cache.in_sync


async def test_wait_synced_times_out_while_the_api_server_is_down(kube: FakeKubeAPI, api, make) -> None:
    """FakeKubeAPI stands in for the API server, down before the first list."""
    await kube.go_down()
    cache = make(api.list_namespace, name="namespace")
    assert await cache.wait_synced(0.3) is False
    assert not cache.synced.is_set() and cache.staleness() == float("inf")
    await kube.come_up()
    assert await cache.wait_synced(10)
