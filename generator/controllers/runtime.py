"""The process around a controller: flags, health endpoints, leader election, SIGTERM.

Both controllers (the endpoints controller, later the config-entry controller) are long-running
subcommands with one contract (design.md "Controllers"): a plain-HTTP health listener with
`/healthz`, `/readyz` and `/metrics`; readiness once the watch caches have synced (not on Consul,
not on holding the Lease: a standby is ready); leader election on a Lease unless
`--no-leader-elect`; SIGTERM stops taking work, lets the reconcile in flight finish, releases the
Lease and exits 0. A controller hands this module a `Controller`; everything else is here.

A leader that loses its Lease stops writing at once (`LeaderElector.is_leader()` is checked
before every write) and campaigns again as a standby, rather than exiting as controller-runtime
does: a restart would only re-list everything to end up a standby anyway.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from aiohttp import web
from kubernetes import client as k8s
from prometheus_client import CollectorRegistry
from prometheus_client.aiohttp import make_aiohttp_handler

from generator.base.logs import LOGGER_NAME, log
from generator.kube.leader import AlwaysLeader, ElectionTiming, LeaderElector, LeaderMetrics
from generator.kube.workqueue import WorkQueue
from generator.webhook.server import Address, parse_address

logger = logging.getLogger(LOGGER_NAME + ".controller")

IN_CLUSTER_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
HEALTH_IDLE_TIMEOUT = 5.0  # the kubelet and Prometheus do not keep connections long


class Cache(Protocol):
    """What readiness needs of a watch cache (generator.kube.cache.WatchCache has it)."""

    name: str

    def start(self) -> None: ...
    def stop(self, timeout: float = 5.0) -> None: ...

    @property
    def synced(self) -> Any: ...  # a threading.Event set after the first successful list


@dataclass
class Controller:
    """What a controller gives the runtime.

    `lead(stop)` runs while this replica leads: it starts reconciling and returns soon after
    `stop` is set (leadership lost or SIGTERM), once the reconciles in flight have finished.
    `caches` are started before the campaign (a standby keeps them warm, so a takeover does not
    start from a cold list) and decide readiness. `close()` releases what the controller holds
    (its Consul session)."""

    name: str
    lease: str
    caches: Sequence[Cache]
    registry: CollectorRegistry
    lead: Callable[[asyncio.Event], Coroutine[Any, Any, None]]
    close: Callable[[], Awaitable[None]] | None = None
    problems: Callable[[], list[str]] = field(default=lambda: [])


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags every controller takes besides the values flags (design.md "Controllers")."""
    parser.add_argument("--release-namespace", default=None, metavar="NS",
                        help="namespace of the Consul release (and of the Lease); default: env POD_NAMESPACE, "
                             "else the in-cluster namespace, else default")
    parser.add_argument("--health-listen", type=parse_address, default=parse_address(":9445"), metavar="HOST:PORT",
                        help="plain-HTTP address of /healthz, /readyz and /metrics; default :9445")
    parser.add_argument("--no-leader-elect", dest="leader_elect", action="store_false",
                        help="run without leader election (one replica only)")
    parser.add_argument("--resync-period", type=float, default=300.0, metavar="SECONDS",
                        help="queue every object again this often (default 300; a no-change pass writes nothing)")
    parser.add_argument("--log-level", choices=("debug", "info", "warn", "error"), default="info")
    parser.add_argument("--log-json", action="store_true", help="one JSON object per log line")


def release_namespace(flag: str | None) -> str:
    """--release-namespace, else env POD_NAMESPACE, else the in-cluster namespace file, else default."""
    if flag:
        return flag
    if os.environ.get("POD_NAMESPACE"):
        return os.environ["POD_NAMESPACE"]
    try:
        return IN_CLUSTER_NAMESPACE.read_text().strip() or "default"
    except OSError:
        return "default"


class HealthServer:
    """/healthz (the process answers), /readyz (caches synced, no problems), /metrics."""

    def __init__(self, controller: Controller) -> None:
        self.controller = controller
        self.port = 0
        self._runner: web.AppRunner | None = None

    def problems(self) -> list[str]:
        found = [f"{cache.name} cache has not synced yet" for cache in self.controller.caches if not cache.synced.is_set()]
        return found + self.controller.problems()

    async def _healthz(self, _request: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    async def _readyz(self, _request: web.Request) -> web.Response:
        problems = self.problems()
        if problems:
            return web.Response(status=503, text="".join(f"not ready: {p}\n" for p in problems))
        return web.Response(text="ok\n")

    async def start(self, address: Address) -> None:
        app = web.Application()
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/readyz", self._readyz)
        app.router.add_get("/metrics", make_aiohttp_handler(self.controller.registry))
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False, keepalive_timeout=HEALTH_IDLE_TIMEOUT)
        await self._runner.setup()
        site = web.TCPSite(self._runner, address.host or None, address.port)
        await site.start()
        bound = self._runner.addresses
        self.port = int(bound[0][1]) if bound else address.port

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


async def synced_or_stopped(caches: Sequence[Any], stop: asyncio.Event) -> bool:
    """Wait until every cache has listed once (True), or until `stop` is set (False). As
    controller-runtime, no reconcile runs before: an object not yet seen would look deleted."""
    waits: list[asyncio.Future[Any]] = [asyncio.ensure_future(asyncio.gather(*(c.wait_synced() for c in caches))),
                                        asyncio.ensure_future(stop.wait())]
    await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    for task in waits:
        task.cancel()
    return not stop.is_set()


async def drive(queue: WorkQueue, keys: Callable[[], list[str]], resync_period: float, stop: asyncio.Event) -> None:
    """Lead with `queue`: every key now and every `resync_period`, until `stop`; then let the
    reconciles in flight finish (30 s at most)."""
    queue.start()
    for key in keys():
        queue.add(key)
    queue.resync(resync_period, keys)
    await stop.wait()
    await queue.shutdown(timeout=30)


def elector_for(args: argparse.Namespace, controller: Controller, namespace: str,
                api: k8s.ApiClient, timing: ElectionTiming | None = None) -> LeaderElector | AlwaysLeader:
    if not args.leader_elect:
        return AlwaysLeader()
    return LeaderElector(k8s.CoordinationV1Api(api), controller.lease, namespace, timing=timing,
                         metrics=LeaderMetrics(controller.registry))


async def run(controller: Controller, args: argparse.Namespace, api: k8s.ApiClient, *,
              timing: ElectionTiming | None = None,
              on_elector: Callable[[LeaderElector | AlwaysLeader], None] | None = None) -> int:
    """Serve health, keep the caches, campaign and lead until SIGTERM/SIGINT; 0 on a clean stop.
    `on_elector` receives the elector before the campaign (writers check its `is_leader()`)."""
    namespace = release_namespace(args.release_namespace)
    health = HealthServer(controller)
    try:
        await health.start(args.health_listen)
    except OSError as e:
        log(logger, logging.ERROR, "cannot listen on --health-listen", address=str(args.health_listen), error=str(e))
        return 1
    log(logger, logging.INFO, "controller starting", controller=controller.name, health_port=health.port,
        lease=f"{namespace}/{controller.lease}" if args.leader_elect else "none (--no-leader-elect)")
    elector = elector_for(args, controller, namespace, api, timing)
    if on_elector is not None:
        on_elector(elector)
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()

    def on_signal(name: str) -> None:
        log(logger, logging.INFO, "signal received: finishing the work in flight", signal=name)
        stopping.set()
        elector.request_stop()

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal, sig.name)
    for cache in controller.caches:
        cache.start()
    try:
        while not stopping.is_set():
            await elector.run(controller.lead, on_new_leader=lambda who: log(
                logger, logging.INFO, "new leader", leader=who))
            if not stopping.is_set():
                log(logger, logging.WARNING, "no longer the leader: campaigning again as a standby")
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
        for cache in controller.caches:
            cache.stop()
        if controller.close is not None:
            await controller.close()
        elector.close()
        await health.stop()
    log(logger, logging.INFO, "controller stopped", controller=controller.name)
    return 0
