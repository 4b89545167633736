"""Reconcile one Endpoints object with the Consul client agents (reference §2-§4).

For each address of the Endpoints whose pod was injected: a managed pod's service and proxy are
registered with the agent on the pod's node (`<scheme>://<hostIP>:<port>`), and its readiness is
mirrored into the TTL check; a legacy pod gets the check only. Then the managed instances of this
Kubernetes Service that are no longer live are deregistered through every client agent (and,
with an auth method, their pods' login tokens deleted). Endpoints that are gone deregister all.

Where we do better than the reference (README, "Endpoints controller"):
- `AgentBook` remembers what each node's agent holds of ours (instances with a digest of what
  was sent, check statuses). A registration the agent already holds unchanged is not sent again,
  a check already at the right status is not read or written, and after the first listing of a
  Service on an agent its stale instances are found from the book: a no-change resync costs
  Consul nothing. When an agent restarts the controller forgets that node (`forget_node`) and
  registers everything on it again.
- A malformed annotation is that pod's error (`RegistrationError`: logged, counted, an Event on
  the pod) and never stops the other pods or the deregistration pass; Consul errors are
  collected and the key retried with backoff.
- An unreachable agent does not stop deregistration through the others.
- Every write is checked against `may_write()` (the Lease) the moment before it is sent.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from generator.base.logs import LOGGER_NAME, log
from generator.consul.client import Consul, ConsulClient
from generator.consul.errors import ConsulError, ConsulStatusError
from generator.endpoints import tokens
from generator.endpoints.errors import RegistrationError
from generator.endpoints.fields import mapping, string
from generator.endpoints.registration import (CHECK_NAME, MANAGED_BY, META_K8S_NAMESPACE, META_K8S_SERVICE,
                                              META_MANAGED_BY, META_POD_NAME, Health, PodKind, Registration,
                                              addresses, build, go_quote, health, needs, pod_kind)
from generator.endpoints.settings import Settings
from generator.endpoints.upstreams import ProxyDefaults

logger = logging.getLogger(LOGGER_NAME + ".controller.endpoints")

PROXY_DEFAULTS_TTL = 10.0  # seconds a proxy-defaults answer is reused across pods and reconciles
MANAGED_FILTER = f"Meta[{go_quote(META_MANAGED_BY)}] == {go_quote(MANAGED_BY)}"
CHECKS_FILTER = f"Name == {go_quote(CHECK_NAME)}"
CHECK_SUFFIX = "/kubernetes-health-check"
POD_CONCURRENCY = 8  # pods of one Endpoints registered at once (each pod's requests stay in order)


class World(Protocol):
    """The Kubernetes objects a reconcile reads (the watch caches; a dict in unit tests)."""

    def endpoints(self, namespace: str, name: str) -> Mapping[str, Any] | None: ...
    def pod(self, namespace: str, name: str) -> Mapping[str, Any] | None: ...
    def namespace_labels(self, namespace: str) -> Mapping[str, str] | None: ...
    def service(self, namespace: str, name: str) -> Mapping[str, Any] | None: ...
    def agents(self) -> Iterable[tuple[str, str]]:
        """(node name, agent pod IP) of every Consul client agent pod that has an IP."""
        ...


class NotLeader(Exception):
    """A write was about to be sent after the Lease was lost: the reconcile stops there."""


class ReconcileFailed(Exception):
    """Consul answered some requests with errors (or not at all): the key is retried."""

    def __init__(self, errors: list[str]) -> None:
        super().__init__(f"{len(errors)} error(s): " + "; ".join(errors[:5]) + ("; ..." if len(errors) > 5 else ""))
        self.errors = errors


@dataclass
class Instance:
    """A service instance (service or proxy) an agent holds for a Kubernetes Service."""

    service_id: str
    address: str
    pod_name: str
    consul_service: str
    digest: str | None = None  # of what we sent; None when only listed (re-register once)


@dataclass
class NodeBook:
    """What the agent on one node holds of ours, as far as this process knows."""

    # (consul namespace, k8s namespace, k8s service) -> service ID -> Instance
    instances: dict[tuple[str, str, str], dict[str, Instance]] = field(default_factory=dict)
    checks: dict[tuple[str, str], str] = field(default_factory=dict)  # (consul ns, check ID) -> status
    listed: set[str] = field(default_factory=set)  # Consul namespaces whose services and checks were listed


class AgentBook:
    """NodeBooks by node name. Registrations go to the pod's hostIP and deregistrations to the
    agent pod's IP: both are the agent on that node, so the node name is the key."""

    def __init__(self) -> None:
        self.nodes: dict[str, NodeBook] = {}

    def node(self, name: str) -> NodeBook:
        return self.nodes.setdefault(name, NodeBook())

    def forget_node(self, name: str) -> None:
        """The agent on `name` (re)started, or erred: assume it holds nothing we know of."""
        self.nodes.pop(name, None)


PodProblem = Callable[[Mapping[str, Any], str, str], None]  # pod, reason code, message


def _no_problem_sink(_pod: Mapping[str, Any], _reason: str, _message: str) -> None:
    pass


class Reconciler:
    """One Endpoints key at a time (the work queue never runs two of the same key)."""

    def __init__(self, world: World, consul: Consul, settings: Settings, *, auth_method: str = "",
                 may_write: Callable[[], bool] = lambda: True, on_pod_problem: PodProblem = _no_problem_sink,
                 on_request: Callable[[str], None] | None = None) -> None:
        self.world = world
        self.consul = consul
        self.settings = settings
        self.auth_method = auth_method
        self.may_write = may_write
        self.on_pod_problem = on_pod_problem
        self.on_request = on_request or (lambda _kind: None)
        self.book = AgentBook()
        self._proxy_defaults: tuple[float, ProxyDefaults] | None = None
        self._namespaces: set[str] = set()  # Consul namespaces known to exist
        self._listing: dict[tuple[str, str], asyncio.Lock] = {}  # one listing per (node, consul ns) at a time

    # -- the whole reconcile --

    async def reconcile(self, key: str) -> None:
        namespace, _, name = key.rpartition("/")
        if self.settings.ignores_namespace(namespace):
            return
        endpoints = self.world.endpoints(namespace, name)
        errors: list[str] = []
        live: set[str] | None = None
        if endpoints is not None:
            live = set()
            jobs = []
            agent_ips = dict(self.world.agents())  # node -> agent pod IP, read once per reconcile
            for address in addresses(endpoints):
                if not address.is_pod:
                    continue
                pod = self.world.pod(address.target_namespace, address.target_name)
                if pod is None or pod_kind(pod) is PodKind.NOT_INJECTED:
                    continue  # not live: an instance at its IP is deregistered
                live.add(string(mapping(pod.get("status")).get("podIP")) or address.ip)
                jobs.append(self._pod_errors(pod, name, namespace, address.ready, agent_ips))
            for found in await _bounded(jobs, POD_CONCURRENCY):
                errors += found
        errors += await self._deregister(namespace, name, live)
        if errors:
            raise ReconcileFailed(errors)

    # -- registration (§2) and health (§3) --

    async def _pod_errors(self, pod: Mapping[str, Any], endpoints_name: str, namespace: str, ready: bool,
                          agent_ips: Mapping[str, str]) -> list[str]:
        """One pod: its own problem is reported on it; Consul's errors come back for a retry."""
        try:
            await self._pod(pod, endpoints_name, namespace, ready, agent_ips)
        except RegistrationError as e:
            self.on_pod_problem(pod, e.reason or "bad-pod", e.problem)
        except ConsulError as e:
            self.book.forget_node(string(mapping(pod.get("spec")).get("nodeName")))
            meta = mapping(pod.get("metadata"))
            return [f"pod {string(meta.get('namespace'))}/{string(meta.get('name'))}: {e}"]
        return []

    async def _pod(self, pod: Mapping[str, Any], endpoints_name: str, namespace: str, ready: bool,
                   agent_ips: Mapping[str, str]) -> None:
        pod_namespace = string(mapping(pod.get("metadata")).get("namespace")) or namespace
        node = string(mapping(pod.get("spec")).get("nodeName"))
        host_ip = string(mapping(pod.get("status")).get("hostIP"))
        if not host_ip:
            return  # not scheduled yet: its Endpoints change again when it is
        if pod_kind(pod) is PodKind.LEGACY:
            check = health(pod, endpoints_name, ready, namespace)
            consul_ns = self.settings.consul_namespace(pod_namespace)
            book = await self._known(node, agent_ips.get(node, ""), consul_ns)
            await self._health(self.consul.agent(host_ip, consul_ns), book, consul_ns, check)
            return
        labels = self.world.namespace_labels(pod_namespace)
        need = needs(pod, self.settings, labels)
        service = self.world.service(namespace, endpoints_name) if need.service else None
        defaults = await self._proxy_defaults_now() if need.proxy_defaults else None
        reg = build(pod, endpoints_name=endpoints_name, endpoints_namespace=namespace, ready=ready,
                    settings=self.settings, namespace_labels=labels, service=service, proxy_defaults=defaults)
        for warning in reg.warnings:
            self.on_pod_problem(pod, "ignored-value", warning)
        await self._ensure_namespace(reg.consul_namespace)
        client = self.consul.agent(reg.host_ip or host_ip, reg.consul_namespace)
        book = await self._known(node, agent_ips.get(node, ""), reg.consul_namespace)
        await self._register(client, book, reg, namespace, endpoints_name)
        await self._health(client, book, reg.consul_namespace, reg.health)

    async def _register(self, client: ConsulClient, book: NodeBook, reg: Registration, namespace: str,
                        endpoints_name: str) -> None:
        held = book.instances.setdefault((reg.consul_namespace, namespace, endpoints_name), {})
        digest = reg.digest()
        known = held.get(reg.service_id)
        if known is not None and known.digest == digest and reg.proxy_id in held:
            return
        for body in (reg.service, reg.proxy):  # the proxy's alias check names the service: service first
            self._guard()
            self.on_request("register")
            await client.register_service(body)
        pod_name = reg.pod.rpartition("/")[2]
        held[reg.service_id] = Instance(reg.service_id, reg.address, pod_name, reg.service["Name"], digest)
        held[reg.proxy_id] = Instance(reg.proxy_id, reg.address, pod_name, reg.proxy["Name"], digest)

    async def _health(self, client: ConsulClient, book: NodeBook, consul_ns: str, check: Health) -> None:
        """§3: register the TTL check when the agent lacks it, else update it when its status differs."""
        where = (consul_ns, check.check_id)
        known = book.checks.get(where)
        if known == check.status:
            return
        if known is None:
            current = None
            if consul_ns not in book.listed:  # no agent pod to list on this node: ask for this one check
                self.on_request("read")
                found = await client.checks(check.filter)
                current = mapping(found.get(check.check_id)).get("Status") if check.check_id in found else None
            if current is None:
                self._guard()
                self.on_request("register")
                try:
                    await client.register_check(check.register_body())
                except ConsulStatusError as e:
                    if f'{check.service_id}" does not exist' in e.body:
                        raise ConsulError(f'service "{check.service_id}" not found in Consul: '
                                          "unable to register health check") from None
                    raise
            elif current == check.status:
                book.checks[where] = check.status
                return
        self._guard()
        self.on_request("update")
        await client.update_ttl(check.check_id, check.status, check.output)
        book.checks[where] = check.status

    # -- deregistration (§4) --

    async def _deregister(self, namespace: str, name: str, live: set[str] | None) -> list[str]:
        """Deregister the managed instances of `namespace/name` not at a live address (all of them
        when `live` is None) through every agent; an agent that fails is reported and skipped."""
        consul_ns = self.settings.consul_namespace(namespace)
        where = (consul_ns, namespace, name)
        errors: list[str] = []
        for node, agent_ip in self.world.agents():
            client = self.consul.agent(agent_ip, consul_ns)
            try:
                book = await self._known(node, agent_ip, consul_ns)
                held = book.instances.get(where, {})
                for sid, instance in list(held.items()):
                    if live is not None and instance.address in live:
                        continue
                    self._guard()
                    self.on_request("deregister")
                    await client.deregister_service(sid)
                    del held[sid]
                    book.checks.pop((consul_ns, f"{namespace}/{sid}{CHECK_SUFFIX}"), None)
                    if self.auth_method:
                        await tokens.delete_login_tokens(client, self.auth_method, instance.consul_service,
                                                         instance.pod_name, namespace, self._guard)
                if not held:
                    book.instances.pop(where, None)
            except ConsulError as e:
                self.book.forget_node(node)
                errors.append(f"agent {agent_ip} (node {node}): {e}")
        return errors

    async def _known(self, node: str, agent_ip: str, consul_ns: str) -> NodeBook:
        """The node's book, after one listing of what its agent holds of ours in `consul_ns` (our
        managed instances and our TTL checks) the first time: from then on the book knows, and a
        reconcile that changes nothing reads nothing. Without an agent pod on the node (`agent_ip`
        ""), the book stays unlisted and checks are looked up one by one, as the reference does."""
        book = self.book.node(node)
        if consul_ns in book.listed or not agent_ip:
            return book
        async with self._listing.setdefault((node, consul_ns), asyncio.Lock()):
            book = self.book.node(node)  # forget_node() may have replaced it meanwhile
            if consul_ns in book.listed:
                return book
            client = self.consul.agent(agent_ip, consul_ns)
            self.on_request("read")
            services = await client.services(MANAGED_FILTER)
            self.on_request("read")
            checks = await client.checks(CHECKS_FILTER)
            for sid, svc in services.items():
                meta = mapping(svc.get("Meta"))
                if string(meta.get(META_MANAGED_BY)) != MANAGED_BY:
                    continue  # a filter-less agent: never touch what is not ours
                where = (consul_ns, string(meta.get(META_K8S_NAMESPACE)), string(meta.get(META_K8S_SERVICE)))
                book.instances.setdefault(where, {}).setdefault(sid, Instance(
                    sid, string(svc.get("Address")), string(meta.get(META_POD_NAME)), string(svc.get("Service"))))
            for cid, chk in checks.items():
                if cid.endswith(CHECK_SUFFIX):
                    book.checks.setdefault((consul_ns, cid), string(mapping(chk).get("Status")))
            book.listed.add(consul_ns)
        return book

    # -- lookups --

    async def _proxy_defaults_now(self) -> ProxyDefaults:
        """`proxy-defaults/global` from the controller's own agent, reused for a few seconds;
        "unknown" when Consul cannot say (the reference then skips the mesh-gateway check)."""
        now = time.monotonic()
        if self._proxy_defaults is not None and now - self._proxy_defaults[0] < PROXY_DEFAULTS_TTL:
            return self._proxy_defaults[1]
        try:
            self.on_request("read")
            entry = await self.consul.local().config_entry("proxy-defaults", "global")
        except ConsulError as e:
            log(logger, logging.WARNING, "cannot read proxy-defaults: mesh gateway check skipped", error=str(e))
            return ProxyDefaults.unknown()
        answer = ProxyDefaults.absent() if entry is None else ProxyDefaults.found(
            string(mapping(entry.get("MeshGateway")).get("Mode")))
        self._proxy_defaults = (now, answer)
        return answer

    async def _ensure_namespace(self, consul_ns: str) -> None:
        """Our webhook has no side effects, so the Consul namespace is created here (§5.3)."""
        if not consul_ns or consul_ns in self._namespaces:
            return
        self._guard()
        self.on_request("namespace")
        await self.consul.local().ensure_namespace(consul_ns, self.settings.cross_namespace_policy)
        self._namespaces.add(consul_ns)

    def _guard(self) -> None:
        if not self.may_write():
            raise NotLeader("the Lease was lost: not writing to Consul")



async def _bounded(jobs: list[Any], limit: int) -> list[Any]:
    """Await `jobs` (coroutines), at most `limit` at a time, results in order."""
    semaphore = asyncio.Semaphore(limit)

    async def one(job: Any) -> Any:
        async with semaphore:
            return await job
    return list(await asyncio.gather(*(one(j) for j in jobs)))
