"""The controllers' work queue (generator/kube/workqueue.py): client-go's semantics on asyncio.

No server is involved: the reconcile functions here are test doubles that record their calls
and wait on events the test sets, so no assertion depends on how fast the machine is.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time

import pytest
from prometheus_client import CollectorRegistry

from generator.kube.workqueue import QueueMetrics, RateLimiter, WorkQueue, split_key


class Recorder:
    """A reconcile that records calls, can be held on an event, and fails on demand."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.times: dict[str, list[float]] = {}
        self.active: dict[str, int] = {}
        self.max_active: dict[str, int] = {}
        self.concurrent = 0
        self.max_concurrent = 0
        self.gate: dict[str, asyncio.Event] = {}
        self.fail: dict[str, int] = {}          # key -> failures still to raise
        self.requeue: dict[str, float] = {}     # key -> seconds to return once
        self.changed = asyncio.Event()

    async def __call__(self, k: str) -> float | None:
        self.calls.append(k)
        self.times.setdefault(k, []).append(time.monotonic())
        self.active[k] = self.active.get(k, 0) + 1
        self.max_active[k] = max(self.max_active.get(k, 0), self.active[k])
        self.concurrent += 1
        self.max_concurrent = max(self.max_concurrent, self.concurrent)
        self.changed.set()
        try:
            if k in self.gate:
                await self.gate[k].wait()
            if self.fail.get(k, 0) > 0:
                self.fail[k] -= 1
                raise RuntimeError(f"consul said no to {k}")
            return self.requeue.pop(k, None)
        finally:
            self.active[k] -= 1
            self.concurrent -= 1

    async def wait(self, predicate, timeout: float = 5.0) -> None:
        async with asyncio.timeout(timeout):
            while not predicate():
                self.changed.clear()
                await self.changed.wait()


@pytest.fixture
async def queues():
    made: list[WorkQueue] = []

    def make(reconcile, **kwargs) -> WorkQueue:
        q = WorkQueue("endpoints", reconcile, **kwargs)
        made.append(q)
        return q

    yield make
    for q in made:
        await q.shutdown(timeout=1)


def test_split_key() -> None:
    assert split_key("apps/web") == ("apps", "web") and split_key("apps") == ("", "apps")


async def test_duplicates_collapse(queues) -> None:
    rec = Recorder()
    q = queues(rec, workers=4)
    for _ in range(10):
        q.add("apps/web")
    q.add("apps/db")
    assert len(q) == 2
    q.start()
    await rec.wait(lambda: len(rec.calls) == 2)
    await asyncio.sleep(0)  # workers return to the queue: nothing more was waiting
    assert sorted(rec.calls) == ["apps/db", "apps/web"] and len(q) == 0


async def test_a_key_is_never_reconciled_twice_at_once(queues) -> None:
    rec = Recorder()
    rec.gate["apps/web"] = asyncio.Event()
    q = queues(rec, workers=4)
    q.start()
    q.add("apps/web")
    await rec.wait(lambda: rec.calls == ["apps/web"])
    for _ in range(3):  # added while being reconciled: once more, after, not now
        q.add("apps/web")
    q.add("apps/db")
    await rec.wait(lambda: "apps/db" in rec.calls)
    assert rec.calls.count("apps/web") == 1 and q.processing == {"apps/web"}
    rec.gate["apps/web"].set()
    await rec.wait(lambda: rec.calls.count("apps/web") == 2 and rec.active["apps/web"] == 0)
    assert rec.max_active["apps/web"] == 1
    assert len(q) == 0 and not q.processing


async def test_different_keys_run_concurrently_up_to_the_worker_count(queues) -> None:
    rec = Recorder()
    release = asyncio.Event()
    for k in "abcde":
        rec.gate[k] = release
    q = queues(rec, workers=3)
    q.start()
    for k in "abcde":
        q.add(k)
    await rec.wait(lambda: rec.concurrent == 3)
    assert len(q) == 2  # two keys wait for a free worker
    release.set()
    await rec.wait(lambda: len(rec.calls) == 5 and rec.concurrent == 0)
    assert rec.max_concurrent == 3


def test_rate_limiter_backoff_and_token_bucket() -> None:
    per_key = RateLimiter(qps=None)
    assert [per_key.when("k") for _ in range(4)] == [0.005, 0.01, 0.02, 0.04]
    assert per_key.failures("k") == 4 and per_key.when("other") == 0.005
    for _ in range(30):
        last = per_key.when("k")
    assert last == 1000.0  # capped
    per_key.forget("k")
    assert per_key.failures("k") == 0 and per_key.when("k") == 0.005

    now = [0.0]
    bucket = RateLimiter(base=0.001, cap=10, qps=2, burst=2, clock=lambda: now[0])
    assert [bucket.when(f"k{i}") for i in range(4)] == [0.001, 0.001, 0.5, 1.0]  # burst, then 2/s
    now[0] = 10.0  # the bucket refills up to the burst
    assert bucket.when("k9") == 0.001


async def test_failures_retry_with_growing_backoff_and_success_forgets(queues, caplog) -> None:
    rec = Recorder()
    rec.fail["apps/web"] = 3
    q = queues(rec, rate_limiter=RateLimiter(base=0.02, cap=0.05, qps=None))
    q.start()
    with caplog.at_level(logging.ERROR):
        q.add("apps/web")
        await rec.wait(lambda: len(rec.calls) == 4 and rec.active["apps/web"] == 0)
    await asyncio.sleep(0)
    assert q.failures("apps/web") == 0  # forgotten on success
    t = rec.times["apps/web"]
    gaps = [b - a for a, b in zip(t, t[1:])]
    assert gaps[0] >= 0.02 and gaps[1] >= 0.04 and gaps[2] >= 0.05  # 20 ms, 40 ms, then the 50 ms cap
    errors = [r for r in caplog.records if r.getMessage() == "Reconciler error"]
    assert len(errors) == 3 and errors[0].fields["name"] == "web" and "consul said no" in errors[0].fields["error"]


async def test_requeue_after_and_add_after_keeps_the_earlier_time(queues) -> None:
    rec = Recorder()
    rec.requeue["a"] = 0.05
    q = queues(rec)
    q.start()
    q.add("a")
    await rec.wait(lambda: rec.calls == ["a", "a"])
    assert rec.times["a"][1] - rec.times["a"][0] >= 0.05

    q.add_after("b", 60)
    q.add_after("b", 0.01)  # sooner: replaces
    q.add_after("b", 30)    # later: ignored
    await rec.wait(lambda: "b" in rec.calls)
    assert q.delayed == frozenset()


async def test_add_from_another_thread(queues) -> None:
    rec = Recorder()
    q = queues(rec)
    q.start()
    thread = threading.Thread(target=lambda: [q.add_threadsafe(f"ns/p{i}") for i in range(20)])
    thread.start()
    await rec.wait(lambda: len(rec.calls) == 20)
    thread.join()


async def test_resync_adds_every_listed_key_periodically(queues) -> None:
    rec = Recorder()
    q = queues(rec, workers=2)
    q.start()
    q.resync(0.02, lambda: ["ns/a", "ns/b"])
    await rec.wait(lambda: rec.calls.count("ns/a") >= 2 and rec.calls.count("ns/b") >= 2)


async def test_resync_retries_a_failing_key_without_waiting_for_its_backoff(queues) -> None:
    rec = Recorder()
    rec.fail["ns/a"] = 1
    q = queues(rec, rate_limiter=RateLimiter(base=600, cap=600, qps=None))  # ten minutes of backoff
    q.start()
    q.add("ns/a")
    await rec.wait(lambda: q.delayed == {"ns/a"})
    q.add("ns/a")  # what a resync or a new watch event does
    await rec.wait(lambda: rec.calls == ["ns/a", "ns/a"] and rec.active["ns/a"] == 0)


async def test_shutdown_finishes_the_reconcile_in_flight_and_drops_the_rest(queues) -> None:
    rec = Recorder()
    rec.gate["a"] = asyncio.Event()
    q = queues(rec, workers=1)
    q.start()
    for k in ("a", "b", "c"):
        q.add(k)
    q.add_after("d", 0.01)
    await rec.wait(lambda: rec.calls == ["a"])
    stopping = asyncio.create_task(q.shutdown(timeout=5))
    await asyncio.sleep(0)
    q.add("e")                 # ignored: no new work once shutting down
    assert not stopping.done()  # waits for "a"
    rec.gate["a"].set()
    assert await stopping is True
    assert rec.calls == ["a"] and rec.active["a"] == 0 and q.done.is_set()


async def test_shutdown_timeout_cancels_a_stuck_reconcile(queues, caplog) -> None:
    rec = Recorder()
    rec.gate["stuck"] = asyncio.Event()  # never set
    q = queues(rec)
    q.start()
    q.add("stuck")
    await rec.wait(lambda: rec.calls == ["stuck"])
    with caplog.at_level(logging.WARNING):
        assert await q.shutdown(timeout=0.05) is False
    assert rec.active["stuck"] == 0  # it was cancelled, its finally ran
    assert any(r.fields.get("keys") == ["stuck"] for r in caplog.records if hasattr(r, "fields"))


async def test_metrics(queues) -> None:
    registry = CollectorRegistry()
    metrics = QueueMetrics(registry)
    rec = Recorder()
    rec.fail["bad"] = 1
    rec.requeue["later"] = 0.01
    q = queues(rec, workers=2, metrics=metrics, rate_limiter=RateLimiter(base=0.01, qps=None))
    q.start()
    for k in ("ok", "bad", "later"):
        q.add(k)
    await rec.wait(lambda: rec.calls.count("bad") == 2 and rec.calls.count("later") == 2 and rec.concurrent == 0)
    await asyncio.sleep(0)

    def value(sample: str, **labels: str) -> float | None:
        return registry.get_sample_value(sample, labels)

    assert value("controller_runtime_reconcile_total", controller="endpoints", result="success") == 3
    assert value("controller_runtime_reconcile_total", controller="endpoints", result="error") == 1
    assert value("controller_runtime_reconcile_total", controller="endpoints", result="requeue_after") == 1
    assert value("controller_runtime_reconcile_errors_total", controller="endpoints") == 1
    assert value("controller_runtime_reconcile_time_seconds_count", controller="endpoints") == 5
    assert value("controller_runtime_max_concurrent_reconciles", controller="endpoints") == 2
    assert value("controller_runtime_active_workers", controller="endpoints") == 0
    assert value("workqueue_adds_total", name="endpoints") == 5
    assert value("workqueue_retries_total", name="endpoints") == 1
    assert value("workqueue_depth", name="endpoints") == 0
    assert value("workqueue_queue_duration_seconds_count", name="endpoints") == 5
    assert value("workqueue_longest_running_processor_seconds", name="endpoints") == 0
