"""`connect-inject endpoints-controller`: the caches, the queue and the reconciler, wired.

What it watches (reference §1.3), each through one list+watch cache holding only what the
reconcile reads, so memory follows the mesh rather than the cluster:
- Endpoints, all namespaces: every change queues `namespace/name`;
- Pods labelled `consul.hashicorp.com/connect-inject-status=injected` (the webhook labels every
  pod it injects): a change of one queues the Endpoints that list it (annotations can be edited
  after injection), found through an index kept from the Endpoints events;
- the Consul client agent pods (`app=consul, component=client, release=<--release-name>` in
  `--release-namespace`): when one is (re)started and ready, what we knew its agent held is
  forgotten and every Endpoints with an address on its node is queued, so a restarted agent gets
  its registrations back;
- Namespaces (their transparent-proxy label) and Services (cluster IP and ports, for transparent
  proxy), read only.

A periodic resync queues every Endpoints (the reference's informer resync); with nothing changed it
sends Consul nothing (see reconciler.py). Only the leader reconciles; the caches run on every
replica, so a standby that takes over starts warm.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import logging
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

from kubernetes import client as k8s
from prometheus_client import CollectorRegistry, Counter

from generator.base import logs
from generator.base.logs import LOGGER_NAME, log
from generator.consul.client import Consul
from generator.consul.config import ConsulConfig
from generator.consul.errors import ConsulConfigError
from generator.controllers import runtime
from generator.endpoints.fields import mapping, string
from generator.endpoints.reconciler import Reconciler
from generator.endpoints.registration import INJECT_STATUS, INJECTED, addresses
from generator.endpoints.settings import Settings
from generator.values.controllers import EndpointsSettings
from generator.kube.cache import Event, WatchCache, key as cache_key
from generator.kube.client import controller_api_client
from generator.kube.workqueue import QueueMetrics, RateLimiter, WorkQueue

logger = logging.getLogger(LOGGER_NAME + ".controller.endpoints")

LEASE = "consul-controller-lock"
WORKERS = 8               # concurrent reconciles of different Endpoints
RESYNC_SECONDS = 300.0    # every Endpoints again (cheap: a no-change reconcile sends nothing)
RETRY_BASE, RETRY_CAP = 0.5, 30.0  # an unreachable Consul is retried at least every 30 s
MAX_EVENT_MESSAGE = 1024
MAX_MESSAGES_PER_POD = 32  # problems remembered per pod (not reported again while remembered)


# -- what the caches keep (only the fields the reconcile reads) --

def slim_endpoints(obj: dict[str, Any]) -> dict[str, Any]:
    meta = mapping(obj.get("metadata"))
    return {"metadata": {"name": meta.get("name"), "namespace": meta.get("namespace"),
                         "labels": meta.get("labels") or {}},
            "subsets": obj.get("subsets") or []}


def slim_pod(obj: dict[str, Any]) -> dict[str, Any]:
    meta = mapping(obj.get("metadata"))
    spec = mapping(obj.get("spec"))
    status = mapping(obj.get("status"))
    return {"metadata": {k: meta.get(k) for k in ("name", "namespace", "uid", "labels", "annotations")},
            "spec": {k: spec.get(k) for k in ("nodeName", "hostNetwork", "containers", "initContainers")
                     if spec.get(k) is not None},
            "status": {k: status.get(k) for k in ("podIP", "hostIP", "phase", "conditions", "containerStatuses")
                       if status.get(k) is not None}}


def namespace_labels(obj: dict[str, Any]) -> dict[str, str]:
    return dict(mapping(obj.get("metadata")).get("labels") or {})


def slim_service(obj: dict[str, Any]) -> dict[str, Any]:
    meta = mapping(obj.get("metadata"))
    spec = mapping(obj.get("spec"))
    return {"metadata": {"name": meta.get("name"), "namespace": meta.get("namespace")},
            "spec": {k: spec.get(k) for k in ("clusterIP", "ports") if spec.get(k) is not None}}


def agent_state(pod: Mapping[str, Any]) -> tuple[Any, ...] | None:
    """What identifies one run of an agent, or None while it is not running and ready (§1.3:
    a pod without a Ready condition counts as ready)."""
    status = mapping(pod.get("status"))
    if status.get("phase") != "Running":
        return None
    for condition in status.get("conditions") or []:
        if isinstance(condition, dict) and condition.get("type") == "Ready" and condition.get("status") != "True":
            return None
    restarts = sum(int(c.get("restartCount") or 0) for c in status.get("containerStatuses") or [] if isinstance(c, dict))
    return (mapping(pod.get("metadata")).get("uid"), status.get("podIP"), restarts)


class Caches:
    """The watch caches, readable as the reconciler's `World`."""

    def __init__(self, core: k8s.CoreV1Api, release_name: str, release_namespace: str) -> None:
        self.endpoints: WatchCache[dict[str, Any]] = WatchCache(
            core.list_endpoints_for_all_namespaces, name="endpoints", plural="endpoints", transform=slim_endpoints)
        self.pods: WatchCache[dict[str, Any]] = WatchCache(
            core.list_pod_for_all_namespaces, name="injected-pod", label_selector=f"{INJECT_STATUS}={INJECTED}",
            transform=slim_pod)
        self.agents: WatchCache[dict[str, Any]] = WatchCache(
            functools.partial(core.list_namespaced_pod, release_namespace), name="consul-agent",
            label_selector=f"app=consul,component=client,release={release_name}", transform=slim_pod)
        self.namespaces: WatchCache[dict[str, str]] = WatchCache(
            core.list_namespace, name="namespace", transform=namespace_labels)
        self.services: WatchCache[dict[str, Any]] = WatchCache(
            core.list_service_for_all_namespaces, name="service", transform=slim_service)

    @property
    def all(self) -> list[WatchCache[Any]]:
        return [self.endpoints, self.pods, self.agents, self.namespaces, self.services]

    # World
    def endpoints_of(self, namespace: str, name: str) -> Mapping[str, Any] | None:
        return self.endpoints.get(cache_key(namespace, name))

    def pod(self, namespace: str, name: str) -> Mapping[str, Any] | None:
        return self.pods.get(cache_key(namespace, name))

    def namespace_labels(self, namespace: str) -> Mapping[str, str] | None:
        return self.namespaces.get(namespace)

    def service(self, namespace: str, name: str) -> Mapping[str, Any] | None:
        return self.services.get(cache_key(namespace, name))

    def agents_by_node(self) -> list[tuple[str, str]]:
        out = []
        for pod in self.agents.values():
            node = string(mapping(pod.get("spec")).get("nodeName"))
            ip = string(mapping(pod.get("status")).get("podIP"))
            if node and ip:
                out.append((node, ip))
        return out


class _World:
    """Adapts Caches to the reconciler's World protocol (its `endpoints` name is the cache's)."""

    def __init__(self, caches: Caches) -> None:
        self.c = caches

    def endpoints(self, namespace: str, name: str) -> Mapping[str, Any] | None:
        return self.c.endpoints_of(namespace, name)

    def pod(self, namespace: str, name: str) -> Mapping[str, Any] | None:
        return self.c.pod(namespace, name)

    def namespace_labels(self, namespace: str) -> Mapping[str, str] | None:
        return self.c.namespace_labels(namespace)

    def service(self, namespace: str, name: str) -> Mapping[str, Any] | None:
        return self.c.service(namespace, name)

    def agents(self) -> list[tuple[str, str]]:
        return self.c.agents_by_node()


class PodEvents:
    """Kubernetes Events on pods the controller cannot register as written, once per problem
    and pod (a resync does not repeat them), and a counter by reason."""

    def __init__(self, core: k8s.CoreV1Api, registry: CollectorRegistry, may_write: Any) -> None:
        self.core = core
        self.may_write = may_write
        self.sent: dict[str, set[str]] = {}  # pod uid -> messages already reported
        self.problems = Counter("consul_endpoints_pod_problems", "Pods whose annotations or spec the endpoints "
                                "controller could not use as written, by reason.", ["reason"], registry=registry)

    def report(self, pod: Mapping[str, Any], reason: str, message: str) -> None:
        meta = mapping(pod.get("metadata"))
        namespace, name, uid = string(meta.get("namespace")), string(meta.get("name")), string(meta.get("uid"))
        seen = self.sent.setdefault(uid or f"{namespace}/{name}", set())
        if message in seen:
            return
        if len(seen) >= MAX_MESSAGES_PER_POD:  # a pod edited over and over: memory stays bounded
            seen.clear()
        seen.add(message)
        self.problems.labels(reason).inc()
        level = logging.INFO if reason == "ignored-value" else logging.WARNING
        log(logger, level, "pod not registered as written" if level > logging.INFO else "pod value ignored",
            pod=f"{namespace}/{name}", reason=reason, problem=message)
        if self.may_write():
            asyncio.get_running_loop().run_in_executor(None, self._create, namespace, name, uid, reason, message)

    def forget(self, uid: str) -> None:
        self.sent.pop(uid, None)

    def _create(self, namespace: str, name: str, uid: str, reason: str, message: str) -> None:
        now = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        body = {"metadata": {"generateName": f"{name}.", "namespace": namespace},
                "involvedObject": {"apiVersion": "v1", "kind": "Pod", "name": name, "namespace": namespace, "uid": uid},
                "reason": "ConsulRegistration" if reason != "ignored-value" else "ConsulValueIgnored",
                "message": message[:MAX_EVENT_MESSAGE], "type": "Warning" if reason != "ignored-value" else "Normal",
                "source": {"component": "consul-endpoints-controller"}, "firstTimestamp": now, "lastTimestamp": now,
                "count": 1}
        try:
            self.core.create_namespaced_event(namespace, body, _request_timeout=5)
        except Exception as e:  # an Event is a courtesy: never a reconcile failure
            log(logger, logging.DEBUG, "could not create an Event", pod=f"{namespace}/{name}", error=str(e))


class EndpointsController:
    """Builds the runtime.Controller: handlers from the caches into the queue, the reconciler."""

    def __init__(self, args: argparse.Namespace, config: EndpointsSettings, api: k8s.ApiClient, consul: Consul,
                 settings: Settings | None = None, *, workers: int = WORKERS, resync: float = RESYNC_SECONDS) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.core = k8s.CoreV1Api(api)
        self.consul = consul
        self.caches = Caches(self.core, args.release_name, runtime.release_namespace(args.release_namespace))
        self.settings = settings or Settings.from_section(config)
        self.elector_is_leader = lambda: True  # replaced by run() with the elector's
        self.events = PodEvents(self.core, self.registry, lambda: self.elector_is_leader())
        self.reconciler = Reconciler(_World(self.caches), consul, self.settings, auth_method=config.auth_method,
                                     may_write=lambda: self.elector_is_leader(), on_pod_problem=self.events.report,
                                     on_request=self._count)
        self.requests = Counter("consul_endpoints_consul_requests", "Requests sent to Consul agents by the endpoints "
                                "controller, by kind.", ["kind"], registry=self.registry)
        self.workers = workers
        self.resync_period = resync
        self.queue: WorkQueue | None = None
        self._queue_metrics = QueueMetrics(self.registry)
        self._pods_index: dict[str, set[str]] = {}  # pod key -> Endpoints keys listing it
        self._agent_runs: dict[str, tuple[Any, ...] | None] = {}
        self._agent_runs_seen: set[str] = set()  # agents seen running once (later runs are restarts)

    def _count(self, kind: str) -> None:
        self.requests.labels(kind).inc()

    # -- events into the queue (on the loop) --

    def _add(self, key: str) -> None:
        if self.queue is not None:
            self.queue.add(key)

    def on_endpoints(self, event: Event[dict[str, Any]]) -> None:
        if event.type == "relisted":
            for key in self.caches.endpoints.keys():
                self._add(key)
            return
        for obj, present in ((event.old, False), (event.obj, event.type != "deleted")):
            for address in addresses(obj or {}):
                if address.is_pod:
                    pod_key = cache_key(address.target_namespace, address.target_name)
                    if present:
                        self._pods_index.setdefault(pod_key, set()).add(event.key)
                    elif pod_key in self._pods_index:
                        self._pods_index[pod_key].discard(event.key)
                        if not self._pods_index[pod_key]:
                            del self._pods_index[pod_key]
        self._add(event.key)

    def on_pod(self, event: Event[dict[str, Any]]) -> None:
        if event.type == "relisted":
            return
        if event.type == "deleted" and event.obj is not None:
            self.events.forget(string(mapping(event.obj.get("metadata")).get("uid")))
        for key in self._pods_index.get(event.key, ()):
            self._add(key)

    def on_agent(self, event: Event[dict[str, Any]]) -> None:
        if event.type == "relisted" or event.obj is None:
            return
        node = string(mapping(event.obj.get("spec")).get("nodeName"))
        run = None if event.type == "deleted" else agent_state(event.obj)
        before = self._agent_runs.get(event.key)
        self._agent_runs[event.key] = run
        if run is None or run == before or not node:
            return
        if event.key in self._agent_runs_seen:
            log(logger, logging.INFO, "Consul client agent restarted: registering every service on its node again",
                agent=event.key, node=node)
        self._agent_runs_seen.add(event.key)
        self.reconciler.book.forget_node(node)
        for key, endpoints in self.caches.endpoints.items():
            if any(a.node_name == node for a in addresses(endpoints)):
                self._add(key)

    # -- leading --

    async def lead(self, stop: asyncio.Event) -> None:
        self.reconciler.book = type(self.reconciler.book)()  # a new leader trusts nothing it knew
        # As controller-runtime: no reconcile before every cache has listed once (a pod not yet
        # seen would look "not injected" and its instance would be deregistered).
        if not await runtime.synced_or_stopped(list(self.caches.all), stop):
            return
        queue = WorkQueue("endpoints", self._reconcile, workers=self.workers,
                          rate_limiter=RateLimiter(RETRY_BASE, RETRY_CAP), metrics=self._queue_metrics)
        self.queue = queue
        try:
            await runtime.drive(queue, self.caches.endpoints.keys, self.resync_period, stop)
        finally:
            self.queue = None

    async def _reconcile(self, key: str) -> None:
        await self.reconciler.reconcile(key)

    def controller(self, loop: asyncio.AbstractEventLoop) -> runtime.Controller:
        self.caches.endpoints.add_handler(self.on_endpoints, loop)
        self.caches.pods.add_handler(self.on_pod, loop)
        self.caches.agents.add_handler(self.on_agent, loop)
        return runtime.Controller(name="endpoints-controller", lease=LEASE, caches=self.caches.all,
                                  registry=self.registry, lead=self.lead, close=self.consul.close)


async def serve(args: argparse.Namespace, config: EndpointsSettings, api: k8s.ApiClient) -> int:
    """Run until SIGTERM; the exit code."""
    consul = Consul(ConsulConfig.from_env(partition=config.partition or ""))
    endpoints = EndpointsController(args, config, api, consul, resync=args.resync_period)
    controller = endpoints.controller(asyncio.get_running_loop())

    def bind(elector: Any) -> None:
        endpoints.elector_is_leader = elector.is_leader
    return await runtime.run(controller, args, api, on_elector=bind)


def main(args: argparse.Namespace, config: EndpointsSettings) -> int:
    """`connect-inject endpoints-controller`: 0 after SIGTERM, 1 on a startup problem."""
    logs.setup(args.log_level, args.log_json)
    try:
        api = controller_api_client()
    except Exception as e:  # a broken kubeconfig: say which, no traceback
        log(logger, logging.ERROR, "cannot load the Kubernetes configuration", error=str(e))
        return 1
    if api is None:
        log(logger, logging.ERROR, "no Kubernetes API: set KUBECONFIG or run in a cluster")
        return 1
    try:
        return asyncio.run(serve(args, config, api))
    except ConsulConfigError as e:
        log(logger, logging.ERROR, "bad Consul settings", error=str(e))
        return 1
