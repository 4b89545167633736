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
from generator.endpoints.registration import (META_K8S_NAMESPACE, META_K8S_SERVICE, META_POD_NAME, PodKind,
                                              Health, Registration, addresses, build, health, needs,
                                              pod_kind, services_filter)
from generator.endpoints.settings import Settings
from generator.endpoints.upstreams import ProxyDefaults

logger = logging.getLogger(LOGGER_NAME + ".controller.endpoints")

PROXY_DEFAULTS_TTL = 10.0  # seconds a proxy-defaults answer is reused across pods and reconciles


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
    listed: set[tuple[str, str, str]] = field(default_factory=set)    # services listed on this agent


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
            for address in addresses(endpoints):
                if not address.is_pod:
                    continue
                pod = self.world.pod(address.target_namespace, address.target_name)
                if pod is None or pod_kind(pod) is PodKind.NOT_INJECTED:
                    continue  # not live: an instance at its IP is deregistered
                status = mapping(pod.get("status"))
                live.add(string(status.get("podIP")) or address.ip)
                try:
                    await self._pod(pod, name, namespace, address.ready)
                except RegistrationError as e:
                    self.on_pod_problem(pod, e.reason or "bad-pod", e.problem)
                except ConsulError as e:
                    self.book.forget_node(string(mapping(pod.get("spec")).get("nodeName")))
                    errors.append(f"pod {address.target_namespace}/{address.target_name}: {e}")
        errors += await self._deregister(namespace, name, live)
        if errors:
            raise ReconcileFailed(errors)

    # -- registration (§2) and health (§3) --

    async def _pod(self, pod: Mapping[str, Any], endpoints_name: str, namespace: str, ready: bool) -> None:
        pod_namespace = string(mapping(pod.get("metadata")).get("namespace")) or namespace
        node = string(mapping(pod.get("spec")).get("nodeName"))
        host_ip = string(mapping(pod.get("status")).get("hostIP"))
        if not host_ip:
            return  # not scheduled yet: its Endpoints change again when it is
        if pod_kind(pod) is PodKind.LEGACY:
            check = health(pod, endpoints_name, ready, namespace)
            consul_ns = self.settings.consul_namespace(pod_namespace)
            await self._health(self.consul.agent(host_ip, consul_ns), self.book.node(node), consul_ns, check)
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
        book = self.book.node(node)
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
            book = self.book.node(node)
            client = self.consul.agent(agent_ip, consul_ns)
            try:
                if where not in book.listed:
                    await self._list(client, book, where)
                held = book.instances.get(where, {})
                for sid, instance in list(held.items()):
                    if live is not None and instance.address in live:
                        continue
                    self._guard()
                    self.on_request("deregister")
                    await client.deregister_service(sid)
                    del held[sid]
                    self._forget_checks(book, consul_ns, sid)
                    if self.auth_method:
                        await tokens.delete_login_tokens(client, self.auth_method, instance.consul_service,
                                                         instance.pod_name, namespace, self._guard)
                if not held:
                    book.instances.pop(where, None)
            except ConsulError as e:
                self.book.forget_node(node)
                errors.append(f"agent {agent_ip} (node {node}): {e}")
        return errors

    async def _list(self, client: ConsulClient, book: NodeBook, where: tuple[str, str, str]) -> None:
        """What the agent holds for this Service (once per agent lifetime; then the book knows)."""
        _consul_ns, namespace, name = where
        self.on_request("read")
        found = await client.services(services_filter(name, namespace))
        held = book.instances.setdefault(where, {})
        for sid, svc in found.items():
            if sid in held:
                continue
            meta = mapping(svc.get("Meta"))
            if string(meta.get(META_K8S_SERVICE)) != name or string(meta.get(META_K8S_NAMESPACE)) != namespace:
                continue  # a filter-less fake or an old agent: never touch another Service's instance
            held[sid] = Instance(sid, string(svc.get("Address")), string(meta.get(META_POD_NAME)),
                                 string(svc.get("Service")))
        book.listed.add(where)

    @staticmethod
    def _forget_checks(book: NodeBook, consul_ns: str, service_id: str) -> None:
        for key in [k for k in book.checks if k[0] == consul_ns and k[1].endswith(f"/{service_id}/kubernetes-health-check")]:
            del book.checks[key]

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

