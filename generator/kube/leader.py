"""Leader election on a `coordination.k8s.io/v1` Lease, with client-go's semantics, for asyncio.

One replica of a controller holds the Lease and reconciles; the others wait as standbys and
take over when the holder stops renewing. What client-go's `leaderelection` does, this does:

- the Lease is created when missing (holder us, `leaseTransitions` 0);
- a standby takes the Lease when it has expired: `leaseDurationSeconds` have passed on *our*
  clock since we last saw the Lease's spec change (clock skew between nodes does not matter),
  or at once when its `holderIdentity` is empty (released); taking it increments
  `leaseTransitions` and sets `acquireTime`;
- the holder renews every `retry_period` (`renewTime`; `acquireTime` and transitions kept), first
  by an update of the Lease it last wrote and, when that fails, by a fresh read;
- every write is a replace carrying the `resourceVersion` last read, so of two candidates racing
  for an expired Lease one gets 409 Conflict and stays a standby (it tries again next period);
- a holder that has not renewed for `renew_deadline` stops leading: `is_leader()` turns False
  at that instant by the local clock (writers check it synchronously before writing, even when
  the renewing request is stuck), `on_stopped_leading()` is called and the `stop` event handed
  to `on_started_leading` is set. `renew_deadline` < `lease_duration` leaves the difference as
  the margin during which nobody else can have taken the Lease;
- on shutdown (`request_stop()`), a leader keeps renewing while its `on_started_leading`
  finishes the work in flight, then releases the Lease as client-go does with
  `ReleaseOnCancel`: holder cleared, `leaseDurationSeconds` 1, so a standby takes over at its
  next try instead of waiting out the lease.

The identity is `<hostname>_<uuid>` like controller-runtime's. Defaults are controller-runtime's
(design.md "Controllers"): 15 s lease, 10 s renew deadline, 2 s retry; standbys retry with
client-go's jitter (up to 1.2 periods more).

Why not the official client's `kubernetes.leaderelection`: it locks a ConfigMap annotation only
(no Lease lock), calls `sys.exit` on bad settings, never releases, and its renew loop cannot be
stopped. The sync client's calls run on a small thread pool of their own, each with a request
timeout and an asyncio deadline, so the decisions (all in the event loop) never wait longer
than the renew deadline allows.

Use (the SIGTERM handler, on the event loop, calls `elector.request_stop()`):

    elector = LeaderElector(coordination_api, "consul-controller-lock", namespace)
    async def lead(stop: asyncio.Event) -> None:
        queue.start()
        await stop.wait()                  # leadership lost, or request_stop()
        await queue.shutdown(timeout=30)   # the reconciles in flight end; each checks
                                           # elector.is_leader() before every write
    await elector.run(lead)                # then the Lease is released; exit 0

`AlwaysLeader` has the same interface for `--no-leader-elect`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import socket
import time
import uuid
from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException
from prometheus_client import CollectorRegistry, Gauge

from generator.base.logs import LOGGER_NAME, log

logger = logging.getLogger(LOGGER_NAME + ".leader-election")

JITTER = 1.2  # client-go's JitterFactor for the standby's retries

Lease = dict[str, Any]
Spec = dict[str, Any]
StartedLeading = Callable[[asyncio.Event], Coroutine[Any, Any, None]]


@dataclass(frozen=True)
class ElectionTiming:
    """Seconds; validated as client-go validates them."""

    lease_duration: float = 15.0
    renew_deadline: float = 10.0
    retry_period: float = 2.0

    def __post_init__(self) -> None:
        if self.lease_duration != int(self.lease_duration) or self.lease_duration < 1:
            raise ValueError("lease_duration must be a whole number of seconds >= 1 (leaseDurationSeconds)")
        if self.lease_duration <= self.renew_deadline:
            raise ValueError("lease_duration must be greater than renew_deadline")
        if self.renew_deadline <= JITTER * self.retry_period:
            raise ValueError("renew_deadline must be greater than retry_period * 1.2")
        if self.retry_period <= 0:
            raise ValueError("retry_period must be positive")


class LeaderMetrics:
    """client-go's `leader_election_master_status{name}` gauge (1 while leading)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.status = Gauge("leader_election_master_status", "Gauge of if the reporting system is master of "
                            "the relevant lease, 0 indicates backup, 1 indicates master. 'name' is the string "
                            "used to identify the lease.", ["name"], registry=registry)


def default_identity() -> str:
    return f"{socket.gethostname()}_{uuid.uuid4()}"


def _micro_time(now: datetime) -> str:
    """metav1.MicroTime: RFC 3339 with exactly six fractional digits (the API server insists)."""
    return now.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class LeaderElector:
    """Campaigns for the Lease `namespace/name`; see the module docstring."""

    def __init__(self, api: client.CoordinationV1Api, name: str, namespace: str, *,
                 identity: str | None = None, timing: ElectionTiming | None = None,
                 release_on_cancel: bool = True, metrics: LeaderMetrics | None = None,
                 request_timeout: float | None = None) -> None:
        self.api = api
        self.name = name
        self.namespace = namespace
        self.identity = identity or default_identity()
        self.timing = timing or ElectionTiming()
        self.release_on_cancel = release_on_cancel
        self.metrics = metrics
        # Each API call's own bound: two tries fit in the renew deadline.
        self.request_timeout = request_timeout or self.timing.renew_deadline / 2
        self._executor = ThreadPoolExecutor(max_workers=4, thread_name_prefix=f"lease-{name}")
        self._lease: Lease | None = None        # the Lease as last read or written (its resourceVersion)
        self._observed: Spec | None = None      # its spec
        self._observed_at = 0.0                 # monotonic time the spec last changed, to our eyes
        self._renewed_at = 0.0                  # monotonic send time of our last successful write as holder
        self._leading = False
        self._reported_leader = ""  # as client-go: an empty holder is not news at start
        self._on_new_leader: Callable[[str], None] | None = None
        self._stopping = asyncio.Event()
        if metrics is not None:
            metrics.status.labels(name).set(0)

    # -- what callers read --

    def is_leader(self) -> bool:
        """True while we hold the Lease and have renewed it within the renew deadline.

        Synchronous and clock-based: it turns False the moment the deadline passes, before the
        renew loop gives up, so a write checked against it never happens after that instant."""
        return (self._leading and self._holder()
                and time.monotonic() < self._renewed_at + self.timing.renew_deadline)

    @property
    def leader(self) -> str:
        """The holder we last observed ("" when none)."""
        return (self._observed or {}).get("holderIdentity") or ""

    def request_stop(self) -> None:
        """Shut down: a standby stops campaigning; a leader's `stop` event is set, and the Lease
        is released once `on_started_leading` returns. Call it on the event loop (a signal
        handler installed with `loop.add_signal_handler` is)."""
        self._stopping.set()

    # -- the election --

    async def run(self, on_started_leading: StartedLeading,
                  on_stopped_leading: Callable[[], None] | None = None,
                  on_new_leader: Callable[[str], None] | None = None) -> bool:
        """Campaign, lead, and return when leadership is over (or `request_stop()` came first).

        `on_started_leading(stop)` runs as a task once we hold the Lease; `stop` is set when
        leadership is lost or a stop is requested, and the callback must return soon after.
        `on_stopped_leading()` is called synchronously the moment leading ends (lost: at the
        renew deadline; stopped: after the release). `on_new_leader(identity)` on each change of
        holder we observe. Returns True when leadership ended by our own choice (stop requested,
        or the callback returned), False when the Lease was lost or never held.
        """
        self._on_new_leader = on_new_leader
        try:
            if not await self._acquire():
                return False
            stop = asyncio.Event()
            self._leading = True
            self._set_status(1)
            lead = asyncio.create_task(on_started_leading(stop), name=f"lead-{self.name}")
            renew = asyncio.create_task(self._renew_loop(), name=f"renew-{self.name}")
            stopping = asyncio.create_task(self._stopping.wait())
            try:
                await asyncio.wait({lead, renew, stopping}, return_when=asyncio.FIRST_COMPLETED)
                if not renew.done():
                    stop.set()  # stop requested, or the callback returned on its own
                    await asyncio.wait({lead, renew}, return_when=asyncio.FIRST_COMPLETED)
                lost = renew.done()
                if lost:
                    self._stopped_leading(on_stopped_leading)
                    stop.set()
                    log(logger, logging.ERROR, "leader election lost: stopped leading", lease=self._describe(),
                        identity=self.identity)
                await asyncio.wait({lead})
            except asyncio.CancelledError:  # run() itself cancelled: no drain, no release
                lead.cancel()
                raise
            finally:
                for task in (renew, stopping):
                    task.cancel()
                await asyncio.gather(renew, stopping, return_exceptions=True)
            if self.release_on_cancel:
                await self._release()
            if not lost:
                self._stopped_leading(on_stopped_leading)
            lead.result()  # the callback's exception, if any, is the caller's
            return not lost
        finally:
            self._leading = False
            self._set_status(0)

    def _stopped_leading(self, callback: Callable[[], None] | None) -> None:
        if not self._leading:
            return
        self._leading = False
        self._set_status(0)
        if callback is not None:
            callback()

    async def _acquire(self) -> bool:
        log(logger, logging.INFO, "attempting to acquire leader lease", lease=self._describe(),
            identity=self.identity)
        while not self._stopping.is_set():
            sent = time.monotonic()
            if await self._attempt(sent + self.request_timeout):
                self._renewed_at = sent
                log(logger, logging.INFO, "successfully acquired lease", lease=self._describe(),
                    identity=self.identity)
                return True
            delay = self.timing.retry_period * (1 + random.random() * JITTER)
            try:
                await asyncio.wait_for(self._stopping.wait(), delay)
            except TimeoutError:
                pass
        return False

    async def _renew_loop(self) -> None:
        """Renew every retry period; return (lost) when the renew deadline passes without one."""
        t = self.timing
        while True:
            await asyncio.sleep(t.retry_period)
            while True:
                deadline = self._renewed_at + t.renew_deadline
                sent = time.monotonic()
                if sent >= deadline:
                    return
                if await self._attempt(min(deadline, sent + self.request_timeout)) and time.monotonic() < deadline:
                    self._renewed_at = sent
                    break
                if not self._holder():  # someone else holds it now: no point retrying
                    return
                await asyncio.sleep(max(0.0, min(t.retry_period, deadline - time.monotonic())))

    async def _attempt(self, deadline: float) -> bool:
        """One tryAcquireOrRenew bounded by `deadline` (monotonic); any failure is False."""
        try:
            async with asyncio.timeout_at(self._loop_time(deadline)):
                ok = await self._try_acquire_or_renew(deadline)
        except TimeoutError:
            log(logger, logging.WARNING, "lease request timed out", lease=self._describe())
            ok = False
        except ApiException as err:
            log(logger, logging.WARNING, "error retrieving or updating the lease", lease=self._describe(),
                status=err.status, reason=err.reason)
            ok = False
        except Exception as err:  # connection refused, reset, ...: the API server is unreachable
            log(logger, logging.WARNING, "cannot reach the API server for the lease", lease=self._describe(),
                error=f"{type(err).__name__}: {err}")
            ok = False
        self._report_transition()
        return ok

    async def _try_acquire_or_renew(self, deadline: float) -> bool:
        now = _micro_time(datetime.now(timezone.utc))
        record: Spec = {"holderIdentity": self.identity,
                        "leaseDurationSeconds": int(self.timing.lease_duration),
                        "acquireTime": now, "renewTime": now}

        # 1. The leader's fast path: update the Lease as we last wrote it.
        if self._holder() and self._valid() and self._lease is not None and self._observed is not None:
            record.update(acquireTime=self._observed.get("acquireTime"),
                          leaseTransitions=self._observed.get("leaseTransitions", 0))
            try:
                self._written(await self._replace(record, deadline))
                return True
            except ApiException as err:
                log(logger, logging.INFO, "failed to update the lease optimistically, falling back to a read",
                    lease=self._describe(), status=err.status)

        # 2. Read it, or create it.
        try:
            lease = await self._call(self.api.read_namespaced_lease, deadline, self.name, self.namespace)
        except ApiException as err:
            if err.status != 404:
                raise
            record["leaseTransitions"] = 0
            body = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                    "metadata": {"name": self.name, "namespace": self.namespace}, "spec": record}
            self._written(await self._call(self.api.create_namespaced_lease, deadline, self.namespace, body))
            return True
        self._lease = lease
        spec = lease.get("spec") or {}
        if spec != self._observed:
            self._observed, self._observed_at = spec, time.monotonic()

        # 3. Held by someone else and not expired: stay a standby.
        if spec.get("holderIdentity") and self._valid() and not self._holder():
            return False

        # 4. Take it (a transition) or renew it, with the resourceVersion just read.
        if self._holder():
            record.update(acquireTime=spec.get("acquireTime"), leaseTransitions=spec.get("leaseTransitions", 0))
        else:
            record["leaseTransitions"] = (spec.get("leaseTransitions") or 0) + 1
        try:
            self._written(await self._replace(record, deadline))
        except ApiException as err:
            if err.status == 409:  # another candidate wrote first: read again next time
                log(logger, logging.INFO, "lease changed while we updated it (409)", lease=self._describe())
                return False
            raise
        return True

    async def _release(self) -> None:
        """Give the Lease up if we hold it (holder cleared, leaseDurationSeconds 1)."""
        if not self._holder() or self._lease is None or self._observed is None:
            return
        now = _micro_time(datetime.now(timezone.utc))
        record = {"holderIdentity": "", "leaseDurationSeconds": 1, "acquireTime": now, "renewTime": now,
                  "leaseTransitions": self._observed.get("leaseTransitions", 0)}
        deadline = time.monotonic() + self.request_timeout
        try:
            async with asyncio.timeout_at(self._loop_time(deadline)):
                self._written(await self._replace(record, deadline))
            log(logger, logging.INFO, "released the leader lease", lease=self._describe(), identity=self.identity)
        except Exception as err:
            log(logger, logging.ERROR, "failed to release the leader lease", lease=self._describe(),
                error=f"{type(err).__name__}: {err}")

    # -- helpers --

    def _holder(self) -> bool:
        return self.leader == self.identity

    def _valid(self) -> bool:
        duration = (self._observed or {}).get("leaseDurationSeconds") or 0
        return self._observed_at + duration > time.monotonic()

    def _written(self, lease: Lease) -> None:
        self._lease = lease
        self._observed, self._observed_at = lease.get("spec") or {}, time.monotonic()

    async def _replace(self, record: Spec, deadline: float) -> Lease:
        assert self._lease is not None
        body = dict(self._lease, spec=record)  # metadata carries the resourceVersion we read
        return await self._call(self.api.replace_namespaced_lease, deadline, self.name, self.namespace, body)

    async def _call(self, method: Callable[..., Any], deadline: float, *args: Any) -> Lease:
        """Run one client call on our threads, its socket timeout what is left of `deadline`."""
        timeout = max(0.05, deadline - time.monotonic())

        def call() -> Lease:
            resp = method(*args, _preload_content=False, _request_timeout=timeout)
            try:
                return json.loads(resp.data)
            finally:
                resp.release_conn()

        return await asyncio.get_running_loop().run_in_executor(self._executor, call)

    @staticmethod
    def _loop_time(deadline: float) -> float:
        """A monotonic deadline on the event loop's clock."""
        return asyncio.get_running_loop().time() + (deadline - time.monotonic())

    def _report_transition(self) -> None:
        leader = self.leader
        if leader == self._reported_leader:
            return
        self._reported_leader = leader
        if leader:
            log(logger, logging.INFO, "new leader elected", lease=self._describe(), leader=leader)
        if self._on_new_leader is not None:
            self._on_new_leader(leader)

    def _set_status(self, value: int) -> None:
        if self.metrics is not None:
            self.metrics.status.labels(self.name).set(value)

    def _describe(self) -> str:
        return f"{self.namespace}/{self.name}"

    def close(self) -> None:
        """Let go of the request threads (a request still running ends at its timeout)."""
        self._executor.shutdown(wait=False, cancel_futures=True)


class AlwaysLeader:
    """`--no-leader-elect`: the same interface, leading at once and until `request_stop()`."""

    identity = "no-leader-election"
    leader = identity

    def __init__(self) -> None:
        self._stopping = asyncio.Event()
        self._leading = False

    def is_leader(self) -> bool:
        return self._leading

    def request_stop(self) -> None:
        self._stopping.set()

    async def run(self, on_started_leading: StartedLeading,
                  on_stopped_leading: Callable[[], None] | None = None,
                  on_new_leader: Callable[[str], None] | None = None) -> bool:
        self._leading = True
        stop = asyncio.Event()
        lead = asyncio.create_task(on_started_leading(stop))
        stopping = asyncio.create_task(self._stopping.wait())
        try:
            await asyncio.wait({lead, stopping}, return_when=asyncio.FIRST_COMPLETED)
            stop.set()
            await asyncio.wait({lead})
        finally:
            stopping.cancel()
            self._leading = False
            if on_stopped_leading is not None:
                on_stopped_leading()
        lead.result()
        return True

    def close(self) -> None:
        pass
