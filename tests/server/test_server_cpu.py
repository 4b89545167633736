"""CPU work off the event loop: a costly review neither holds up other pods nor outlives its budget.

The costly review is made deterministic by wrapping the engine: a pod named `slow-...` burns CPU
in pure Python (as the 60,000-annotation pod of issue 8 did, 27 s) until the test releases it.
Costly pods are big ones (the engine's work is linear in its input), so `slow_pod()` is larger
than the bodies the server reviews on its event loop (INLINE_BODY_MAX).
"""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import pytest

from generator.webhook import server as server_mod
from generator.inject.review import no_labels

from .conftest import P, Webhook, admission_review, make_pod, metric_value

BURN_CAP = 8.0  # a burner never runs longer than this, whatever the test does


class Burner:
    """Wraps the engine's review(): pods named slow-* burn CPU until `release` (or BURN_CAP)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.started = threading.Event()
        self.release = threading.Event()
        self.finished = threading.Event()
        self.reviewed: list[str] = []
        real = server_mod.review

        def review(data: dict, config: Any, labels: Any = no_labels) -> Any:
            name = data["request"]["object"]["metadata"]["name"]
            self.reviewed.append(name)
            if name.startswith("slow-"):
                self.started.set()
                deadline = time.perf_counter() + BURN_CAP
                total = 0
                while not self.release.is_set() and time.perf_counter() < deadline:
                    for i in range(2000):  # pure Python: the thread holds the GIL between checks
                        total += i * i
                self.finished.set()
            return real(data, config, labels)

        monkeypatch.setattr(server_mod, "review", review)

    async def wait_started(self, timeout: float = 5.0) -> None:
        async with asyncio.timeout(timeout):
            while not self.started.is_set():
                await asyncio.sleep(0.005)


@pytest.fixture
def burner(monkeypatch):
    b = Burner(monkeypatch)
    yield b
    b.release.set()  # never leave a thread burning after the test


def slow_pod(name: str, annotations: dict[str, str] | None = None) -> dict:
    """A pod above INLINE_BODY_MAX, as a costly pod is: padded with an annotation the engine ignores.
    (Only a `slow-` name makes the burner burn; a big pod of another name goes to the pool too.)"""
    padding = {"example.com/padding": "x" * (server_mod.INLINE_BODY_MAX + 1)}
    return make_pod({**padding, **(annotations or {})}, name=name)


async def until(predicate, timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.01)


def scrape(server) -> str:
    from prometheus_client import generate_latest

    return generate_latest(server.metrics.registry).decode()


async def test_a_costly_review_does_not_hold_up_a_normal_pod(start_server, https, burner: Burner) -> None:
    """Issue 8 finding 4: a pod sent 0.5 s after a 27 s one waited 27 s. Now it is answered while
    the costly one is still being reviewed."""
    webhook = Webhook(await start_server(review_timeout=30), https)
    slow = asyncio.create_task(webhook.review(slow_pod("slow-1", {P + "connect-inject": "true"})))
    await burner.wait_started()

    started = time.perf_counter()
    answer = await asyncio.wait_for(webhook.review(make_pod({P + "connect-inject": "true"}, name="normal")), 10)
    elapsed = time.perf_counter() - started
    assert answer["response"]["allowed"] is True and "patch" in answer["response"]
    assert not slow.done() and not burner.finished.is_set(), "the normal pod waited for the costly one"
    assert elapsed < 1.5, f"normal pod took {elapsed:.2f}s while a review burned CPU"
    # Health probes are answered meanwhile too.
    assert (await webhook.get("/readyz"))[0] == 200

    burner.release.set()
    slow_answer = await asyncio.wait_for(slow, 10)
    assert slow_answer["response"]["allowed"] is True and "patch" in slow_answer["response"]


async def test_a_review_over_its_budget_is_answered_500_at_the_budget(start_server, https, burner: Burner, caplog) -> None:
    caplog.set_level("INFO", logger="connect-inject")
    server = await start_server(review_timeout=0.5)
    webhook = Webhook(server, https)

    started = time.perf_counter()
    status, body = await asyncio.wait_for(webhook.post(admission_review(slow_pod("slow-2"), uid="uid-slow")), 10)
    elapsed = time.perf_counter() - started
    assert status == 500 and body["kind"] == "Status" and body["reason"] == "ServerTimeout", body
    assert "0.5s" in body["message"] and "--review-timeout" in body["message"]
    assert elapsed < 1.5, f"answered after {elapsed:.2f}s, budget 0.5s"
    assert not burner.finished.is_set()  # answered at the budget, not when the review ended

    # The abandoned review still holds a worker, but the others serve the next pods.
    assert (await webhook.review(make_pod(name="after")))["response"]["allowed"] is True
    text = scrape(server)
    assert metric_value(text, "connect_inject_admission_requests_total", result="error", reason="review-timeout") == 1
    assert metric_value(text, "connect_inject_abandoned_reviews_running") == 1
    [record] = [r for r in caplog.records if r.getMessage() == "admission" and r.fields.get("reason") == "review-timeout"]
    assert record.levelname == "WARNING" and record.fields["uid"] == "uid-slow" and record.fields["status"] == 500

    burner.release.set()
    await until(lambda: metric_value(scrape(server), "connect_inject_abandoned_reviews_running") == 0)


async def test_the_budget_covers_waiting_for_a_worker(start_server, https, burner: Burner) -> None:
    """With every worker busy, a request is still answered at its budget, and its review, given
    up while queued, never runs."""
    server = await start_server(review_timeout=0.5, review_workers=1)
    webhook = Webhook(server, https)
    slow = asyncio.create_task(webhook.post(admission_review(slow_pod("slow-3"))))
    await burner.wait_started()
    started = time.perf_counter()
    status, body = await asyncio.wait_for(webhook.post(admission_review(slow_pod("queued"))), 10)
    assert status == 500 and body["reason"] == "ServerTimeout"
    assert time.perf_counter() - started < 1.5
    assert (await asyncio.wait_for(slow, 10))[0] == 500
    burner.release.set()
    assert (await webhook.review(make_pod(name="later")))["response"]["allowed"] is True  # the worker is back
    assert "queued" not in burner.reviewed


async def test_shutdown_waits_for_a_review_in_a_worker_and_delivers_its_answer(start_server, https, burner: Burner) -> None:
    server = await start_server(review_timeout=30)
    webhook = Webhook(server, https)
    slow = asyncio.create_task(webhook.review(slow_pod("slow-4"), uid="draining"))
    await burner.wait_started()
    assert server.in_flight == 1

    stopping = asyncio.create_task(server.stop())
    await until(lambda: not server._runner.sites)  # no longer accepting
    assert not stopping.done()  # waiting for the request in flight
    burner.release.set()
    answer = await asyncio.wait_for(slow, 10)
    assert answer["response"]["uid"] == "draining" and answer["response"]["allowed"] is True
    await asyncio.wait_for(stopping, 10)
    assert server.in_flight == 0


async def test_workload_reviews_run_in_the_pool_with_a_budget(start_server, https, monkeypatch) -> None:
    """/validate-workload decodes and reviews in a worker too; past its budget it still allows."""
    release = threading.Event()
    real = server_mod.review_workload

    def slow_review_workload(data):
        if data is not None:
            release.wait(BURN_CAP)  # holds its worker like a costly review
        return real(data)

    monkeypatch.setattr(server_mod, "review_workload", slow_review_workload)
    server = await start_server(review_timeout=0.3)
    url = f"https://127.0.0.1:{server.webhook_port}/validate-workload"
    try:
        started = time.perf_counter()
        async with https.post(url, json={"request": {"uid": "w"}}) as r:
            assert r.status == 200 and (await r.json())["response"]["allowed"] is True
        assert time.perf_counter() - started < 1.5
    finally:
        release.set()


async def test_small_requests_are_reviewed_on_the_event_loop_and_big_ones_in_the_pool(start_server, https, monkeypatch) -> None:
    """Handing a typical pod to a thread costs more than reviewing it; its work is bounded by its
    size. Bodies above INLINE_BODY_MAX go to the worker pool."""
    server = await start_server()
    webhook = Webhook(server, https)
    threads: dict[str, str] = {}
    real = server_mod.review

    def review(data: dict, config: Any, labels: Any = no_labels) -> Any:
        threads[data["request"]["object"]["metadata"]["name"]] = threading.current_thread().name
        return real(data, config, labels)

    monkeypatch.setattr(server_mod, "review", review)
    await webhook.review(make_pod({P + "connect-inject": "true"}, name="small"))
    await webhook.review(slow_pod("big", {P + "connect-inject": "true"}))
    assert threads["small"] == threading.main_thread().name
    assert threads["big"].startswith("review-")
