"""Lease-based leader election (generator/kube/leader.py) against FakeKubeAPI.

Every test runs against FakeKubeAPI (tests/fakes/kube_api.py), the aiohttp stand-in for the API
server: kmock 0.8 has no resourceVersion, so it cannot answer 409 Conflict, which is what
makes two candidates racing for a Lease safe. Durations are short (a 2-3 s lease); tests wait
on the electors' callbacks with bounded timeouts, and timing assertions are lower bounds that
the protocol guarantees, or upper bounds with whole retry periods of slack.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

import pytest
from kubernetes import client
from prometheus_client import CollectorRegistry

from fakes.kube_api import FakeKubeAPI
from generator.kube.client import api_client_for
from generator.kube.leader import AlwaysLeader, ElectionTiming, LeaderElector, LeaderMetrics

NS = "consul"
LOCK = "consul-controller-lock"
FAST = ElectionTiming(lease_duration=2, renew_deadline=1.0, retry_period=0.2)


@pytest.fixture
async def kube():
    async with FakeKubeAPI() as k:
        yield k


def coordination(url: str) -> client.CoordinationV1Api:
    cfg = client.Configuration()
    cfg.host = url
    return client.CoordinationV1Api(api_client_for(cfg))


@dataclass
class Candidate:
    """One replica: an elector, its run() task, and what its callbacks saw."""

    elector: LeaderElector
    started: asyncio.Event = field(default_factory=asyncio.Event)
    stopped: asyncio.Event = field(default_factory=asyncio.Event)
    started_at: float = 0.0
    stopped_at: float = 0.0
    leader_when_stopped: bool | None = None
    lease_when_stopped: dict | None = None
    new_leaders: list[str] = field(default_factory=list)
    task: asyncio.Task | None = None

    async def lead(self, stop: asyncio.Event) -> None:
        self.started_at = time.monotonic()
        self.started.set()
        await stop.wait()

    def on_stopped(self) -> None:
        self.stopped_at = time.monotonic()
        self.leader_when_stopped = self.elector.is_leader()
        self.stopped.set()

    def start(self) -> Candidate:
        self.task = asyncio.create_task(self.elector.run(self.lead, self.on_stopped, self.new_leaders.append))
        return self


@pytest.fixture
async def candidates(kube: FakeKubeAPI):
    made: list[Candidate] = []

    def make(identity: str, timing: ElectionTiming = FAST, **kwargs) -> Candidate:
        c = Candidate(LeaderElector(coordination(kube.url), LOCK, NS, identity=identity, timing=timing, **kwargs))
        made.append(c)
        return c

    yield make
    for c in made:
        c.elector.request_stop()
        if c.task is not None:
            if not c.task.done():
                c.task.cancel()
            await asyncio.gather(c.task, return_exceptions=True)
        c.elector.close()


def lease(kube: FakeKubeAPI) -> dict:
    found = kube.get("coordination.k8s.io/v1", "Lease", NS, LOCK)
    assert found is not None
    return found["spec"]


async def until(predicate, timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.01)


async def test_one_leads_creating_the_lease_and_renews_it(kube: FakeKubeAPI, candidates) -> None:
    a = candidates("a").start()
    async with asyncio.timeout(5):
        await a.started.wait()
    b = candidates("b").start()
    spec = lease(kube)
    assert spec["holderIdentity"] == "a" and spec["leaseDurationSeconds"] == 2 and spec["leaseTransitions"] == 0
    assert spec["acquireTime"] == spec["renewTime"] and spec["renewTime"].endswith("Z")
    assert a.elector.is_leader() and a.elector.leader == "a"

    await until(lambda: lease(kube)["renewTime"] != spec["renewTime"])  # renewed
    await until(lambda: b.new_leaders == ["a"])                           # b saw a leading
    renewed = lease(kube)
    assert renewed["acquireTime"] == spec["acquireTime"] and renewed["leaseTransitions"] == 0
    assert not b.started.is_set() and not b.elector.is_leader()
    creates = [r for r in kube.journal if r.method == "POST"]
    assert len(creates) == 1  # b found the Lease; only a created it


async def test_standby_takes_over_within_the_lease_when_the_leader_dies(kube: FakeKubeAPI, candidates) -> None:
    a = candidates("a").start()
    async with asyncio.timeout(5):
        await a.started.wait()
    b = candidates("b").start()
    await until(lambda: b.new_leaders == ["a"])
    assert a.task is not None
    a.task.cancel()  # killed: no release, no more renewals
    died = time.monotonic()
    async with asyncio.timeout(FAST.lease_duration + 3 * FAST.retry_period * 2.2 + 2):
        await b.started.wait()
    waited = b.started_at - died
    # b may only take it once it has seen no change for a whole lease; a's last renewal was at
    # most one retry period before it died.
    assert waited >= FAST.lease_duration - FAST.retry_period
    spec = lease(kube)
    assert spec["holderIdentity"] == "b" and spec["leaseTransitions"] == 1
    assert b.new_leaders == ["a", "b"]


async def test_release_on_shutdown_hands_over_at_once(kube: FakeKubeAPI, candidates) -> None:
    slow_lease = ElectionTiming(lease_duration=30, renew_deadline=10, retry_period=0.2)
    registry = CollectorRegistry()
    a = candidates("a", slow_lease, metrics=LeaderMetrics(registry)).start()
    async with asyncio.timeout(5):
        await a.started.wait()
    assert registry.get_sample_value("leader_election_master_status", {"name": LOCK}) == 1
    b = candidates("b", slow_lease).start()
    await until(lambda: b.new_leaders == ["a"])

    a.elector.request_stop()
    assert a.task is not None
    async with asyncio.timeout(5):
        assert await a.task is True  # ended by our own choice
    released = lease(kube)
    assert released["holderIdentity"] == "" and released["leaseDurationSeconds"] == 1
    assert released["leaseTransitions"] == 0
    assert a.stopped.is_set() and not a.elector.is_leader()
    assert registry.get_sample_value("leader_election_master_status", {"name": LOCK}) == 0

    async with asyncio.timeout(5):  # far less than the 30 s lease
        await b.started.wait()
    spec = lease(kube)
    assert spec["holderIdentity"] == "b" and spec["leaseTransitions"] == 1 and spec["leaseDurationSeconds"] == 30


async def test_shutdown_keeps_renewing_until_the_work_in_flight_is_done(kube: FakeKubeAPI, candidates) -> None:
    """SIGTERM: the leader finishes its reconcile (longer than the lease here), then releases."""
    a = candidates("a")
    finishing = asyncio.Event()
    done = asyncio.Event()

    async def lead(stop: asyncio.Event) -> None:
        a.started.set()
        await stop.wait()
        finishing.set()
        await done.wait()  # the reconcile in flight

    a.task = asyncio.create_task(a.elector.run(lead, a.on_stopped))
    async with asyncio.timeout(5):
        await a.started.wait()
    a.elector.request_stop()
    await finishing.wait()
    renewed = lease(kube)["renewTime"]
    await until(lambda: lease(kube)["renewTime"] != renewed)  # still renewing while it drains
    assert a.elector.is_leader() and not a.stopped.is_set()
    done.set()
    async with asyncio.timeout(5):
        assert await a.task is True
    assert lease(kube)["holderIdentity"] == ""


@pytest.mark.parametrize("outage", ["refused", "hung"])
async def test_a_leader_that_cannot_renew_stops_leading_at_the_renew_deadline(
        kube: FakeKubeAPI, candidates, outage: str) -> None:
    a = candidates("a").start()
    async with asyncio.timeout(5):
        await a.started.wait()
    await until(lambda: lease(kube)["renewTime"] != lease(kube)["acquireTime"])
    if outage == "refused":
        await kube.go_down()
    else:
        kube.hang(path="/leases")  # requests are read and never answered
    cut = time.monotonic()
    async with asyncio.timeout(FAST.renew_deadline + 3):
        await a.stopped.wait()
    # Stopped no later than the renew deadline after the last renewal (which preceded the
    # outage), plus one loop turn; and is_leader() was already False when we were told.
    assert a.stopped_at - cut <= FAST.renew_deadline + 0.5
    assert a.leader_when_stopped is False
    assert a.task is not None
    async with asyncio.timeout(FAST.renew_deadline + 3):  # release is tried, bounded by its timeout
        assert await a.task is False
    assert lease(kube)["holderIdentity"] == "a"  # the release could not reach the server


async def test_is_leader_turns_false_at_the_deadline_by_the_clock_alone(kube: FakeKubeAPI, candidates) -> None:
    """A writer asking is_leader() sees the deadline even when the event loop is stalled (here a
    blocking call on it) and the renew loop cannot run to notice."""
    a = candidates("a").start()
    async with asyncio.timeout(5):
        await a.started.wait()
    assert a.elector.is_leader()
    time.sleep(FAST.renew_deadline + 0.1)  # the loop stalls: no renewal can happen meanwhile
    assert not a.elector.is_leader()
    async with asyncio.timeout(5):  # and when the loop runs again, leadership is over
        await a.stopped.wait()


async def test_racing_candidates_one_wins_the_other_gets_409(kube: FakeKubeAPI, candidates) -> None:
    """A Lease released by its holder: b reads it, another writer changes it before b's update
    lands (held back by the server), so b's update carries a stale resourceVersion."""
    kube.create({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                 "metadata": {"name": LOCK, "namespace": NS},
                 "spec": {"holderIdentity": "", "leaseDurationSeconds": 1, "leaseTransitions": 4}})
    kube.slow(0.3, method="PUT", times=1)
    b = candidates("b").start()
    await until(lambda: any(r.method == "PUT" for r in kube.journal))
    other = kube.patch("coordination.k8s.io/v1", "Lease", NS, LOCK, {"spec": {
        "holderIdentity": "other", "leaseDurationSeconds": 2, "leaseTransitions": 5}})
    await until(lambda: any(r.method == "PUT" and r.status == 409 for r in kube.journal))
    assert not b.started.is_set() and lease(kube)["holderIdentity"] == "other"
    assert lease(kube)["leaseTransitions"] == 5

    # "other" stops renewing: b takes over a lease later, counting one more transition.
    async with asyncio.timeout(2 + 3 * FAST.retry_period * 2.2 + 2):
        await b.started.wait()
    spec = lease(kube)
    assert spec["holderIdentity"] == "b" and spec["leaseTransitions"] == 6
    assert other["metadata"]["resourceVersion"] != kube.get(
        "coordination.k8s.io/v1", "Lease", NS, LOCK)["metadata"]["resourceVersion"]


async def test_simultaneous_start_elects_exactly_one(kube: FakeKubeAPI, candidates) -> None:
    group = [candidates(f"c{i}").start() for i in range(4)]
    await until(lambda: any(c.started.is_set() for c in group))
    await until(lambda: all(c.new_leaders for c in group))
    leaders = [c for c in group if c.started.is_set()]
    assert len(leaders) == 1 and all(c.new_leaders[-1] == leaders[0].elector.identity for c in group)
    assert lease(kube)["holderIdentity"] == leaders[0].elector.identity


async def test_request_stop_ends_a_standby(kube: FakeKubeAPI, candidates) -> None:
    a = candidates("a").start()
    async with asyncio.timeout(5):
        await a.started.wait()
    b = candidates("b").start()
    await until(lambda: b.new_leaders == ["a"])
    b.elector.request_stop()
    assert b.task is not None
    async with asyncio.timeout(FAST.retry_period * 3 + 1):
        assert await b.task is False
    assert not b.stopped.is_set()  # never led
    assert lease(kube)["holderIdentity"] == "a"


async def test_a_failing_lead_callback_still_releases(kube: FakeKubeAPI, candidates) -> None:
    a = candidates("a")

    async def lead(stop: asyncio.Event) -> None:
        raise RuntimeError("the controller broke")

    a.task = asyncio.create_task(a.elector.run(lead, a.on_stopped))
    with pytest.raises(RuntimeError, match="controller broke"):
        async with asyncio.timeout(5):
            await a.task
    assert lease(kube)["holderIdentity"] == "" and a.stopped.is_set()


def test_timing_is_validated_as_client_go_does() -> None:
    ElectionTiming()  # 15 / 10 / 2
    for bad in ({"lease_duration": 10, "renew_deadline": 10}, {"renew_deadline": 2.4, "retry_period": 2},
                {"lease_duration": 2.5, "renew_deadline": 1, "retry_period": 0.5}, {"retry_period": 0}):
        with pytest.raises(ValueError):
            ElectionTiming(**bad)


def test_default_identity_is_hostname_and_uuid(kube: FakeKubeAPI) -> None:
    import socket
    e = LeaderElector(coordination(kube.url), LOCK, NS)
    host, _, rest = e.identity.rpartition("_")
    assert host == socket.gethostname() and len(rest) == 36
    e.close()


async def test_always_leader_for_no_leader_elect() -> None:
    e = AlwaysLeader()
    seen: list[bool] = []

    async def lead(stop: asyncio.Event) -> None:
        seen.append(e.is_leader())
        await stop.wait()

    task = asyncio.create_task(e.run(lead))
    await until(lambda: seen == [True])
    e.request_stop()
    assert await task is True and not e.is_leader()
