"""An asyncio work queue for controllers, with client-go's workqueue semantics.

Keys are the watch caches' `namespace/name` strings (`cache.key()`). What the queue guarantees:

- duplicates collapse: a key added ten times before a worker takes it is reconciled once;
- one key is never reconciled twice at the same time: a key added while it is being reconciled
  is reconciled again after that reconcile ends (client-go's dirty/processing sets);
- `workers` reconciles of different keys run concurrently;
- a reconcile that raises is retried after a per-key exponential backoff (`RateLimiter`), a
  reconcile that returns is forgotten (its backoff reset); returning a number of seconds
  requeues the key after that long (controller-runtime's `RequeueAfter`);
- `resync(period, keys)` adds every key the callback lists, every `period` seconds (an add
  does not wait for a pending backoff: a resync retries a failing key at once, as a fresh
  watch event would);
- `shutdown(timeout)` stops taking work (keys still queued or waiting out a backoff are
  dropped) and lets the reconciles in flight finish, cancelling those still running after
  `timeout` seconds.

Everything runs on one event loop; `add_threadsafe()` is the one entry point for other threads
(watch threads of the official client). Metrics are optional: `QueueMetrics(registry)` makes
controller-runtime's metric families in a registry, and every queue of a process labels them
with its name, so dashboards written for controller-runtime controllers work here.

Why our own: the official Python client has no work queue, and kopf's comes with its own
watching, peering and progress annotations on the objects, none of which we use (our caches and
Lease do those jobs). The queue needs only asyncio.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from generator.base.logs import LOGGER_NAME, log

logger = logging.getLogger(LOGGER_NAME + ".workqueue")

# client-go's DefaultControllerRateLimiter: per key 5 ms doubling to 1000 s, and overall a
# token bucket of 10 retries/s with a burst of 100, whichever asks for the longer wait.
BASE_DELAY = 0.005
MAX_DELAY = 1000.0
RETRY_QPS = 10.0
RETRY_BURST = 100

Reconcile = Callable[[str], Awaitable[float | None]]


def split_key(k: str) -> tuple[str, str]:
    """(namespace, name) of a cache key (`cache.key()`); namespace "" for a cluster-scoped object."""
    namespace, _, name = k.rpartition("/")
    return namespace, name


class RateLimiter:
    """How long a failing key waits before its next try.

    Per key: `base * 2**(failures - 1)` capped at `cap` (5 ms, 10 ms, ... ~82 s after 15
    failures, 1000 s from the 19th). Overall, with `qps`: a token bucket (`qps` per second,
    `burst` at once) over all retries, so that a dependency that fails every key (Consul down)
    is asked at most `qps` times a second once the burst is spent. The longer wait wins.
    """

    def __init__(self, base: float = BASE_DELAY, cap: float = MAX_DELAY, qps: float | None = RETRY_QPS,
                 burst: int = RETRY_BURST, clock: Callable[[], float] = time.monotonic) -> None:
        if base <= 0 or cap < base:
            raise ValueError("need 0 < base <= cap")
        self.base, self.cap, self.qps, self.burst, self.clock = base, cap, qps, burst, clock
        self._failures: dict[str, int] = {}
        self._tokens = float(burst)
        self._last = clock()

    def when(self, k: str) -> float:
        """Count one more failure of `k` and return the delay before its retry."""
        failures = self._failures.get(k, 0)
        self._failures[k] = failures + 1
        delay = self.cap if failures >= 64 else min(self.cap, self.base * 2 ** failures)
        if self.qps:
            now = self.clock()
            self._tokens = min(float(self.burst), self._tokens + (now - self._last) * self.qps)
            self._last = now
            self._tokens -= 1  # a reservation: later retries queue up behind this one
            if self._tokens < 0:
                delay = max(delay, -self._tokens / self.qps)
        return delay

    def forget(self, k: str) -> None:
        self._failures.pop(k, None)

    def failures(self, k: str) -> int:
        return self._failures.get(k, 0)


# controller-runtime's buckets: reconcile time 5 ms .. 60 s; queue times 10 ns .. 1000 s.
RECONCILE_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.6, 0.7,
                     0.8, 0.9, 1.0, 1.25, 1.5, 1.75, 2.0, 2.5, 3.0, 3.5, 4.0, 4.5, 5, 6, 7, 8, 9, 10, 15,
                     20, 25, 30, 40, 50, 60)
QUEUE_BUCKETS = tuple(1e-8 * 10 ** i for i in range(12))


class QueueMetrics:
    """controller-runtime's workqueue and reconcile metric families, once per registry.

    Names as controller-runtime exposes them (reference §7.4): `workqueue_*{name}` and
    `controller_runtime_*{controller}`; a queue's name is both labels.
    """

    def __init__(self, registry: CollectorRegistry) -> None:
        r = registry
        self.depth = Gauge("workqueue_depth", "Current depth of workqueue", ["name"], registry=r)
        self.adds = Counter("workqueue_adds", "Total number of adds handled by workqueue", ["name"], registry=r)
        self.retries = Counter("workqueue_retries", "Total number of retries handled by workqueue",
                               ["name"], registry=r)
        self.queue_duration = Histogram(
            "workqueue_queue_duration_seconds", "How long in seconds an item stays in workqueue before "
            "being requested", ["name"], buckets=QUEUE_BUCKETS, registry=r)
        self.work_duration = Histogram(
            "workqueue_work_duration_seconds", "How long in seconds processing an item from workqueue takes.",
            ["name"], buckets=QUEUE_BUCKETS, registry=r)
        self.unfinished = Gauge(
            "workqueue_unfinished_work_seconds", "How many seconds of work has been done that is in progress "
            "and hasn't been observed by work_duration.", ["name"], registry=r)
        self.longest = Gauge(
            "workqueue_longest_running_processor_seconds", "How many seconds has the longest running "
            "processor for workqueue been running.", ["name"], registry=r)
        self.reconciles = Counter("controller_runtime_reconcile", "Total number of reconciliations per "
                                  "controller", ["controller", "result"], registry=r)
        self.errors = Counter("controller_runtime_reconcile_errors", "Total number of reconciliation errors "
                              "per controller", ["controller"], registry=r)
        self.reconcile_time = Histogram(
            "controller_runtime_reconcile_time_seconds", "Length of time per reconciliation per controller",
            ["controller"], buckets=RECONCILE_BUCKETS, registry=r)
        self.max_workers = Gauge("controller_runtime_max_concurrent_reconciles", "Maximum number of concurrent "
                                 "reconciles per controller", ["controller"], registry=r)
        self.active = Gauge("controller_runtime_active_workers", "Number of currently used workers per "
                            "controller", ["controller"], registry=r)


@dataclass
class _State:
    queue: deque[str] = field(default_factory=deque)           # FIFO of keys ready for a worker
    dirty: set[str] = field(default_factory=set)               # queued, or re-added while processing
    processing: dict[str, float] = field(default_factory=dict)  # key -> monotonic start
    added_at: dict[str, float] = field(default_factory=dict)    # key -> when it became dirty
    waiting: dict[str, tuple[float, asyncio.TimerHandle]] = field(default_factory=dict)  # delayed adds


class WorkQueue:
    """Keys to reconcile, handed to `workers` concurrent calls of `reconcile(key)`.

    `reconcile` returns None (done), a number of seconds (requeue after that long), or raises
    (retry after the rate limiter's backoff; logged as controller-runtime logs "Reconciler error").
    """

    def __init__(self, name: str, reconcile: Reconcile, *, workers: int = 1,
                 rate_limiter: RateLimiter | None = None, metrics: QueueMetrics | None = None,
                 log_errors: bool = True) -> None:
        if workers < 1:
            raise ValueError("workers must be at least 1")
        self.name = name
        self.reconcile = reconcile
        self.workers = workers
        self.limiter = rate_limiter or RateLimiter()
        self.metrics = metrics
        self.log_errors = log_errors
        self._s = _State()
        self._wakeup = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._resyncs: list[asyncio.Task[None]] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None
        self._shutting_down = False
        self.done = asyncio.Event()  # set when every worker has returned
        if metrics is not None:
            metrics.max_workers.labels(name).set(workers)
            metrics.depth.labels(name).set(0)
            metrics.unfinished.labels(name).set_function(self._unfinished)
            metrics.longest.labels(name).set_function(self._longest)

    # -- adding --

    def add(self, k: str) -> None:
        """Queue `k` unless it is already queued; ignored once shutting down. Loop thread only."""
        if self._shutting_down or k in self._s.dirty:
            return
        s = self._s
        s.dirty.add(k)
        s.added_at[k] = time.monotonic()
        if self.metrics is not None:
            self.metrics.adds.labels(self.name).inc()
        if k in s.processing:  # queued again when the running reconcile ends
            return
        s.queue.append(k)
        self._depth_changed()
        self._wakeup.set()

    def add_threadsafe(self, k: str) -> None:
        """`add` from any thread (watch threads); before `start` only from the loop's thread."""
        if self._loop is None or threading.get_ident() == self._loop_thread:
            self.add(k)
        else:
            self._loop.call_soon_threadsafe(self.add, k)

    def add_after(self, k: str, delay: float) -> None:
        """Queue `k` in `delay` seconds; an earlier pending time for `k` is kept."""
        if self._shutting_down:
            return
        if delay <= 0:
            self.add(k)
            return
        loop = asyncio.get_running_loop()
        ready = loop.time() + delay
        pending = self._s.waiting.get(k)
        if pending is not None:
            if pending[0] <= ready:
                return
            pending[1].cancel()
        self._s.waiting[k] = (ready, loop.call_at(ready, self._ready, k))

    def _ready(self, k: str) -> None:
        self._s.waiting.pop(k, None)
        self.add(k)

    def add_rate_limited(self, k: str) -> None:
        """Queue `k` after its backoff (counts a failure)."""
        if self.metrics is not None:
            self.metrics.retries.labels(self.name).inc()
        self.add_after(k, self.limiter.when(k))

    def forget(self, k: str) -> None:
        """Reset `k`'s backoff (it succeeded)."""
        self.limiter.forget(k)

    def failures(self, k: str) -> int:
        return self.limiter.failures(k)

    def __len__(self) -> int:
        """Keys waiting for a worker (not those being reconciled or waiting out a delay)."""
        return len(self._s.queue)

    @property
    def processing(self) -> frozenset[str]:
        return frozenset(self._s.processing)

    @property
    def delayed(self) -> frozenset[str]:
        return frozenset(self._s.waiting)

    # -- running --

    def start(self) -> None:
        """Start the workers on the running loop."""
        if self._tasks:
            raise RuntimeError("work queue already started")
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        self._tasks = [asyncio.create_task(self._worker(i), name=f"{self.name}-worker-{i}")
                       for i in range(self.workers)]
        asyncio.gather(*self._tasks, return_exceptions=True).add_done_callback(lambda _: self.done.set())

    def resync(self, period: float, keys: Callable[[], Iterable[str]]) -> None:
        """Every `period` seconds, add every key `keys()` returns (until shutdown)."""
        async def loop() -> None:
            while not self._shutting_down:
                await asyncio.sleep(period)
                try:
                    for k in keys():
                        self.add(k)
                except Exception:  # a broken lister must not end the resync for good
                    logger.exception("resync of %s failed to list keys", self.name)
        self._resyncs.append(asyncio.create_task(loop(), name=f"{self.name}-resync"))

    async def _next(self) -> str | None:
        while not self._shutting_down:
            if self._s.queue:
                return self._s.queue.popleft()
            self._wakeup.clear()
            await self._wakeup.wait()
        return None

    async def _worker(self, index: int) -> None:
        s, m = self._s, self.metrics
        while (k := await self._next()) is not None:
            s.dirty.discard(k)
            start = time.monotonic()
            s.processing[k] = start
            self._depth_changed()
            if m is not None:
                m.queue_duration.labels(self.name).observe(start - s.added_at.pop(k, start))
                m.active.labels(self.name).inc()
            else:
                s.added_at.pop(k, None)
            try:
                await self._process(k)
            finally:
                del s.processing[k]
                if m is not None:
                    m.active.labels(self.name).dec()
                    m.work_duration.labels(self.name).observe(time.monotonic() - start)
                if k in s.dirty and not self._shutting_down:  # re-added while it ran
                    s.queue.append(k)
                    self._depth_changed()
                    self._wakeup.set()

    async def _process(self, k: str) -> None:
        m = self.metrics
        start = time.monotonic()
        try:
            after = await self.reconcile(k)
        except asyncio.CancelledError:
            raise
        except Exception as err:
            if m is not None:
                m.reconciles.labels(self.name, "error").inc()
                m.errors.labels(self.name).inc()
            if self.log_errors:
                namespace, name = split_key(k)
                log(logger, logging.ERROR, "Reconciler error", controller=self.name, namespace=namespace,
                    name=name, error=f"{type(err).__name__}: {err}")
            self.add_rate_limited(k)
        else:
            self.forget(k)
            if after is not None and after > 0:
                if m is not None:
                    m.reconciles.labels(self.name, "requeue_after").inc()
                self.add_after(k, after)
            elif m is not None:
                m.reconciles.labels(self.name, "success").inc()
        finally:
            if m is not None:
                m.reconcile_time.labels(self.name).observe(time.monotonic() - start)

    async def shutdown(self, timeout: float | None = None) -> bool:
        """Stop taking work and wait up to `timeout` s for the reconciles in flight.

        Returns True when they all finished, False when some were cancelled at the timeout.
        """
        self._shutting_down = True
        for _, timer in self._s.waiting.values():
            timer.cancel()
        self._s.waiting.clear()
        for task in self._resyncs:
            task.cancel()
        self._wakeup.set()
        if not self._tasks:
            self.done.set()
            return True
        _, pending = await asyncio.wait(self._tasks, timeout=timeout)
        for task in pending:
            task.cancel()
        if pending:
            log(logger, logging.WARNING, "reconciles still running at the shutdown timeout were cancelled",
                controller=self.name, keys=sorted(self._s.processing))
            await asyncio.wait(pending)
        return not pending

    # -- metrics helpers --

    def _depth_changed(self) -> None:
        if self.metrics is not None:
            self.metrics.depth.labels(self.name).set(len(self._s.queue))

    def _unfinished(self) -> float:
        now = time.monotonic()
        return sum(now - start for start in self._s.processing.values())

    def _longest(self) -> float:
        now = time.monotonic()
        return max((now - start for start in self._s.processing.values()), default=0.0)
