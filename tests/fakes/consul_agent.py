"""Fake Consul client agents on loopback, from Consul's documented agent API (reference §9).

Topology: one aiohttp application listening on several loopback addresses with one port
(`127.0.0.2:P`, `127.0.0.3:P`, ...), one simulated client agent per address, as a cluster has one
agent per node reached at the node's IP on the shared port 8500. Which agent answers is decided
by the local address the request arrived on. Agent-local state (services, checks) lives in each
`FakeAgent`; what Consul servers hold (config entries, namespaces, ACL tokens and policies, the
catalog as the union of the agents' services) lives in `FakeConsul`.

Behaviour follows Consul 1.10/1.11's documentation and agent code, not our client:
- registration defaults: ID ← Name; Weights {1,1}; Tags []; Meta {}; `lan_ipv4`/`wan_ipv4` (or
  `_ipv6`) tagged addresses added for an IP service address; upstreams' `DestinationType` ←
  `service`; check IDs `service:<id>` (`:<n>` 1-based when several), names
  `Service '<name>' check`, status `critical` unless given; re-registration keeps the status and
  output of checks with the same ID, keeps unmentioned checks unless `replace-existing-checks`;
- validation with Consul's 400 bodies (`Bad request: Missing service name`, `Invalid Service Meta`,
  `Validation failed`, `Invalid check`), `ServiceID "x" does not exist` (500) for a check on an
  unknown service, `CheckID "x" does not have associated TTL` (500), unknown service deregistration
  404 (switchable to 200 with `deregister_unknown_ok`);
- central config: a connect-proxy is shown with `proxy-defaults` / `service-defaults` merged in
  (Config keys it lacks, Mode, MeshGateway mode, Expose), as the agent's service manager does;
  the `/v1/config` endpoints themselves (decoding, indexes, `cas`, namespaces, partitions and the
  servers' graph checks) are `consul_config.ConfigStore`, `FakeConsul.config`;
- alias checks report the aliased service's health, TTL checks expire to `critical` (`TTL expired`);
- Enterprise mode: namespaces (`ns` query, `X-Consul-Namespace`, body `Namespace`; `ns=*` lists
  all), `partition` recorded; OSS mode answers 400 to a non-empty `ns` or `partition`. As real
  client agents do (hashicorp/consul#8123), an agent accepts a service in a namespace that does not
  exist, but it never reaches the catalog (`unsynced()` lists such services);
- ACLs when `acl_enabled`: requests need a known token (`X-Consul-Token`, `Authorization: Bearer`
  or `?token=`), else 403 `Permission denied` (none) / `ACL not found` (unknown); rules are not
  enforced. With ACLs off the `/v1/acl/*` endpoints answer 401 `ACL support disabled`.

For tests: `journal` (every request: agent, method, path, query, headers, JSON body, status),
fault injection (`fail()` with a forced status, delay, or a reset connection; `down()`/`up()` stop
and restart an agent's listener; `restart()` also loses its state), seeding helpers, and a private
`/_fake/...` HTTP API (state, reset, journal, faults, seed) for a fake run in another process:
`python -m tests.fakes.consul_agent --agents 2 --port 18500`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import copy
import ipaddress
import json
import re
import signal
import socket
import ssl
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

from aiohttp import web

from .consul_acl import ROUTES as ACL_ROUTES
from .consul_acl import ACLObjects
from .consul_config import ApiError, ConfigStore
from .consul_decode import (ACL_POLICY, ACL_TOKEN, CHECK_DEFINITION, CHECK_UPDATE, LOGIN, NAMESPACE,
                            SERVICE_DEFINITION, DecodeError, decode, format_duration)
from .consul_filter import AGENT_CHECK, AGENT_SERVICE, CATALOG_SERVICE, FilterError, Predicate, compile_filter, equalities

PASSING, WARNING, CRITICAL = "passing", "warning", "critical"
STATUSES = (PASSING, WARNING, CRITICAL)
DEFAULT = "default"
MANAGEMENT_POLICY = {"ID": "00000000-0000-0000-0000-000000000001", "Name": "global-management"}
ANONYMOUS_ACCESSOR = "00000000-0000-0000-0000-000000000002"  # Consul's anonymous token
PROXY_KINDS = ("connect-proxy",)
SERVICE_KINDS = ("", "connect-proxy", "mesh-gateway", "terminating-gateway", "ingress-gateway")
_META_KEY = re.compile(r"^[a-zA-Z0-9_-]+$")
_NAMESPACE_NAME = re.compile(r"^[a-zA-Z0-9](?:[a-zA-Z0-9_-]{0,62}[a-zA-Z0-9])?$")
JOURNAL_HEADERS = ("X-Consul-Token", "X-Consul-Namespace", "User-Agent", "Content-Type", "Authorization")


def bad_request(reason: str) -> ApiError:
    """Consul's BadRequestError: 400 `Bad request: <reason>`."""
    return ApiError(400, f"Bad request: {reason}")


def _multierror(errors: list[str]) -> str:
    """hashicorp/go-multierror's text."""
    head = "1 error occurred:" if len(errors) == 1 else f"{len(errors)} errors occurred:"
    return head + "".join(f"\n\t* {e}" for e in errors) + "\n\n"


def _omit(out: dict[str, Any], key: str, value: Any) -> None:
    """Go's omitempty."""
    if value is None or value is False or value == "" or (isinstance(value, (list, dict)) and not value):
        return
    if isinstance(value, int) and not isinstance(value, bool) and value == 0:
        return
    out[key] = value


# ---------------------------------------------------------------------------------------------
# Journal and faults
# ---------------------------------------------------------------------------------------------

@dataclass
class Call:
    """One request as the fake received it, and the status it answered (-1: the connection was
    reset by a fault; 0: no answer yet)."""

    agent: str
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any
    status: int = 0
    time: float = 0.0
    fault: bool = False

    @property
    def ns(self) -> str:
        return self.query.get("ns", "")

    @property
    def token(self) -> str:
        return self.headers.get("X-Consul-Token", "")


@dataclass
class Fault:
    """Injected misbehaviour for requests matching agent, method and path (regex, searched).

    `delay` seconds first; then `reset` drops the connection without an answer, or `status`
    answers with `body`; with neither, the request is then served normally (a slow agent).
    `times` limits how many requests it affects (None: until cleared).
    """

    path: str = ""
    method: str | None = None
    agent: str | None = None
    status: int | None = None
    body: str = ""
    delay: float = 0.0
    reset: bool = False
    times: int | None = None
    hits: int = 0

    def __post_init__(self) -> None:
        self._rx = re.compile(self.path)

    def matches(self, agent: str, method: str, path: str) -> bool:
        if self.times is not None and self.hits >= self.times:
            return False
        return ((self.agent is None or self.agent == agent) and (self.method is None or self.method == method)
                and self._rx.search(path) is not None)


# ---------------------------------------------------------------------------------------------
# One client agent
# ---------------------------------------------------------------------------------------------

class FakeAgent:
    """The local state of one Consul client agent (its services and checks, per namespace)."""

    def __init__(self, cluster: FakeConsul, ip: str, node: str):
        self.cluster = cluster
        self.ip = ip
        self.node = node
        self.services: dict[tuple[str, str], dict[str, Any]] = {}  # (ns, ID) -> stored service
        self.checks: dict[tuple[str, str], dict[str, Any]] = {}    # (ns, CheckID) -> stored check
        # Indexes, so that thousands of services cost no more per request than a handful:
        self._service_checks: dict[tuple[str, str], set[str]] = {}  # (ns, ServiceID or "") -> CheckIDs
        self._meta_index: dict[tuple[str, str, str], set[str]] = {}  # (ns, Meta key, value) -> IDs
        self.listening = False
        self.site: web.TCPSite | None = None
        self.restarts = 0

    def __repr__(self) -> str:
        return f"FakeAgent({self.ip}, node={self.node}, services={len(self.services)}, checks={len(self.checks)})"

    @property
    def address(self) -> str:
        return f"{self.cluster.scheme}://{self.ip}:{self.cluster.port}"

    def reset(self) -> None:
        self.services.clear()
        self.checks.clear()
        self._service_checks.clear()
        self._meta_index.clear()

    def _store_service(self, ns: str, service: dict[str, Any]) -> None:
        self._drop_service(ns, service["ID"])
        self.services[(ns, service["ID"])] = service
        for key, value in service["Meta"].items():
            self._meta_index.setdefault((ns, key, value), set()).add(service["ID"])

    def _drop_service(self, ns: str, service_id: str) -> None:
        old = self.services.pop((ns, service_id), None)
        if old is not None:
            for key, value in old["Meta"].items():
                ids = self._meta_index.get((ns, key, value))
                if ids is not None:
                    ids.discard(service_id)
                    if not ids:
                        del self._meta_index[(ns, key, value)]

    def _store_check(self, ns: str, check: dict[str, Any]) -> None:
        self._drop_check(ns, check["CheckID"])
        self.checks[(ns, check["CheckID"])] = check
        self._service_checks.setdefault((ns, check["ServiceID"]), set()).add(check["CheckID"])

    def _drop_check(self, ns: str, check_id: str) -> dict[str, Any] | None:
        old = self.checks.pop((ns, check_id), None)
        if old is not None:
            ids = self._service_checks.get((ns, old["ServiceID"]))
            if ids is not None:
                ids.discard(check_id)
                if not ids:
                    del self._service_checks[(ns, old["ServiceID"])]
        return old

    def checks_of(self, service_id: str, ns: str = DEFAULT) -> list[dict[str, Any]]:
        """The stored checks of one service ("" = the node's own checks)."""
        return [self.checks[(ns, cid)] for cid in sorted(self._service_checks.get((ns, service_id), ()))]

    # -- services --

    def register(self, body: Any, ns: str = DEFAULT, partition: str = "", *,
                 replace_existing_checks: bool = False) -> dict[str, Any]:
        """PUT /v1/agent/service/register. `body` is the JSON object; raises ApiError."""
        try:
            args = decode(body, SERVICE_DEFINITION)
        except DecodeError as err:
            raise bad_request(f"Request decode failed: {err}") from None
        if self.cluster.enterprise and args["Namespace"]:
            ns = args["Namespace"]
        if not args["Name"]:
            raise bad_request("Missing service name")
        if args["Address"] in ("0.0.0.0", "::", "[::]"):
            raise bad_request("Invalid service address")
        allowed = {"consul-wan-federation"} if args["Kind"] == "mesh-gateway" else set()
        if problem := _meta_problem(args["Meta"] or {}, allowed):
            raise bad_request(f"Invalid Service Meta: {problem}")
        if args["Connect"] and args["Connect"].get("SidecarService") is not None:
            raise ApiError(400, "fake Consul: Connect.SidecarService is not supported")
        if args["Kind"] not in SERVICE_KINDS:
            kind_error = f"invalid service kind: {args['Kind']!r}"
            raise bad_request(f"Validation failed: {_multierror([kind_error])}")
        service = self._node_service(args, ns, partition)
        if errors := _validate_service(service):
            raise bad_request(f"Validation failed: {_multierror(errors)}")
        check_types = []
        candidates = ([args["Check"]] if any(v for v in args["Check"].values()) else []) + \
                     [c for c in (args["Checks"] or []) if c is not None]
        for chk in candidates:
            if problem := _check_type_problem(chk):
                raise bad_request(f"Invalid check: {problem}")
            check_types.append(chk)
        for chk in check_types:
            if chk["Status"] and chk["Status"] not in STATUSES:
                raise bad_request("Status for checks must 'passing', 'warning', 'critical'")
        for name in ("lan_ipv4", "wan_ipv4"):
            sa = service["TaggedAddresses"].get(name)
            if sa and not _is_ip(sa["Address"], 4):
                raise ApiError(500, f'Service tagged address "{name}" must be a valid ipv4 address')
        for name in ("lan_ipv6", "wan_ipv6"):
            sa = service["TaggedAddresses"].get(name)
            if sa and not _is_ip(sa["Address"], 6):
                raise ApiError(500, f'Service tagged address "{name}" must be a valid ipv6 address')
        self._add_default_tagged_addresses(service)
        key = (ns, service["ID"])
        previous = self.services.get(key)
        service["CreateIndex"] = previous["CreateIndex"] if previous else self.cluster.next_index()
        service["ModifyIndex"] = self.cluster.next_index()
        existing = set(self._service_checks.get(key, ()))
        kept: set[str] = set()
        self._store_service(ns, service)
        for i, chk in enumerate(check_types):
            check_id = chk["CheckID"] or (f"service:{service['ID']}" + (f":{i + 1}" if len(check_types) > 1 else ""))
            kept.add(check_id)
            self._put_check(ns, partition, check_id, chk, name=chk["Name"] or f"Service '{service['Service']}' check",
                            notes=chk["Notes"], service=service, status=chk["Status"] or CRITICAL)
        if replace_existing_checks:
            for check_id in existing - kept:
                self._drop_check(ns, check_id)
        self.cluster.changed()
        return service

    def _node_service(self, args: dict[str, Any], ns: str, partition: str) -> dict[str, Any]:
        proxy = args["Proxy"]
        if proxy is not None:
            for upstream in proxy["Upstreams"] or []:
                if not upstream["DestinationType"]:
                    upstream["DestinationType"] = "service"
        weights = args["Weights"] or {"Passing": 1, "Warning": 1}
        return {"Kind": args["Kind"], "ID": args["ID"] or args["Name"], "Service": args["Name"],
                "Tags": list(args["Tags"] or []), "Address": args["Address"],
                "TaggedAddresses": dict(args["TaggedAddresses"] or {}), "Meta": dict(args["Meta"] or {}),
                "Port": args["Port"], "SocketPath": args["SocketPath"], "Weights": weights,
                "EnableTagOverride": args["EnableTagOverride"], "Proxy": proxy, "Connect": args["Connect"],
                "Namespace": ns, "Partition": partition}

    @staticmethod
    def _add_default_tagged_addresses(service: dict[str, Any]) -> None:
        """The agent adds lan/wan tagged addresses for an IP service address (agent.addServiceInternal)."""
        version = 4 if _is_ip(service["Address"], 4) else 6 if _is_ip(service["Address"], 6) else 0
        if version:
            for name in (f"lan_ipv{version}", f"wan_ipv{version}"):
                service["TaggedAddresses"].setdefault(name, {"Address": service["Address"], "Port": service["Port"]})

    def _put_check(self, ns: str, partition: str, check_id: str, chk: dict[str, Any], *, name: str, notes: str,
                   service: dict[str, Any] | None, status: str) -> dict[str, Any]:
        previous = self.checks.get((ns, check_id))
        check = {
            "CheckID": check_id, "Name": name, "Status": status, "Notes": notes, "Output": "",
            "ServiceID": service["ID"] if service else "", "ServiceName": service["Service"] if service else "",
            "Type": _check_type(chk), "Interval": format_duration(chk["Interval"]) if chk["Interval"] else "",
            "Timeout": format_duration(chk["Timeout"]) if chk["Timeout"] else "", "TTL": chk["TTL"],
            "AliasService": chk["AliasService"], "AliasNode": chk["AliasNode"], "TCP": chk["TCP"], "HTTP": chk["HTTP"],
            "Namespace": ns, "Partition": partition, "Deadline": None,
        }
        if previous is not None:  # re-registration keeps the check's state
            self._refresh(previous)
            check["Status"], check["Output"] = previous["Status"], previous["Output"]
        if check["Type"] == "ttl":
            check["Deadline"] = time.monotonic() + chk["TTL"] / 1e9
        self._store_check(ns, check)
        return check

    def deregister(self, service_id: str, ns: str = DEFAULT) -> None:
        """PUT /v1/agent/service/deregister/<id>: the service and all its checks."""
        if (ns, service_id) not in self.services:
            if self.cluster.deregister_unknown_ok:
                return
            shown = f"{ns}/{service_id}" if self.cluster.enterprise else service_id
            raise ApiError(404, f'Unknown service ID "{shown}". Ensure that the service ID is passed, not the service name.')
        self._drop_service(ns, service_id)
        for check_id in list(self._service_checks.get((ns, service_id), ())):
            self._drop_check(ns, check_id)
        self.cluster.changed()

    def service_view(self, service: dict[str, Any]) -> dict[str, Any]:
        """The AgentService JSON of GET /v1/agent/services (cached until central config changes;
        callers must not modify it)."""
        cached = service.get("_view")
        if cached is not None and cached[0] == self.cluster.config_version:
            return cached[1]
        view = self._build_service_view(service)
        service["_view"] = (self.cluster.config_version, view)
        return view

    def _build_service_view(self, service: dict[str, Any]) -> dict[str, Any]:
        merged = self.cluster.merge_central_config(service)
        out: dict[str, Any] = {}
        _omit(out, "Kind", service["Kind"])
        out.update({"ID": service["ID"], "Service": service["Service"], "Tags": list(service["Tags"]),
                    "Meta": dict(service["Meta"]), "Port": service["Port"], "Address": service["Address"]})
        _omit(out, "SocketPath", service["SocketPath"])
        _omit(out, "TaggedAddresses", {k: dict(v) for k, v in service["TaggedAddresses"].items()})
        out["Weights"] = dict(service["Weights"])
        out["EnableTagOverride"] = service["EnableTagOverride"]
        if service["Kind"] in PROXY_KINDS or service["Kind"].endswith("-gateway"):
            out["Proxy"] = _proxy_view(merged)
        if service["Connect"] and service["Connect"].get("Native"):
            out["Connect"] = {"Native": True}
        if self.cluster.enterprise:
            out["Namespace"] = service["Namespace"]
            out["Partition"] = service["Partition"] or DEFAULT
        out["Datacenter"] = self.cluster.datacenter
        return out

    def service_views(self, ns: str = DEFAULT, predicate: Predicate | None = None) -> dict[str, dict[str, Any]]:
        """GET /v1/agent/services: ID -> AgentService in `ns` ("*": all) matching `predicate`."""
        out: dict[str, dict[str, Any]] = {}
        for (sns, sid), service in self._service_candidates(ns, predicate):
            view = self.service_view(service)
            if predicate is None or predicate(view):
                out[sid] = view
        return out

    def _service_candidates(self, ns: str, predicate: Predicate | None) -> Iterable[tuple[tuple[str, str], dict[str, Any]]]:
        """Services that may match: narrowed by an index when the filter pins a Meta value or the ID."""
        if ns != "*" and predicate is not None:
            best: set[str] | None = None
            for path, value in equalities(predicate):
                if len(path) == 2 and path[0] == "Meta" and isinstance(value, str):
                    ids = self._meta_index.get((ns, path[1], value), set())
                elif path == ("ID",):
                    ids = {value}
                else:
                    continue
                if best is None or len(ids) < len(best):
                    best = ids
            if best is not None:
                return [((ns, sid), self.services[(ns, sid)]) for sid in sorted(best) if (ns, sid) in self.services]
        return [(k, v) for k, v in self.services.items() if ns == "*" or k[0] == ns]

    # -- checks --

    def register_check(self, body: Any, ns: str = DEFAULT, partition: str = "") -> dict[str, Any]:
        """PUT /v1/agent/check/register."""
        try:
            args = decode(body, CHECK_DEFINITION)
        except DecodeError as err:
            raise bad_request(f"Request decode failed: {err}") from None
        if self.cluster.enterprise and args["Namespace"]:
            ns = args["Namespace"]
        if not args["Name"]:
            raise bad_request("Missing check name")
        if args["Status"] and args["Status"] not in STATUSES:
            raise bad_request("Bad check status")
        if problem := _check_type_problem(args):
            raise bad_request(f"Invalid check: {problem}")
        service = None
        if args["ServiceID"]:
            service = self.services.get((ns, args["ServiceID"]))
            if service is None:
                shown = f"{ns}/{args['ServiceID']}" if self.cluster.enterprise else args["ServiceID"]
                raise ApiError(500, f'ServiceID "{shown}" does not exist')
        check_id = args["ID"] or args["Name"]
        check = self._put_check(ns, partition, check_id, args, name=args["Name"], notes=args["Notes"], service=service,
                                status=args["Status"] or CRITICAL)
        self.cluster.changed()
        return check

    def deregister_check(self, check_id: str, ns: str = DEFAULT) -> None:
        if self._drop_check(ns, check_id) is None:
            raise ApiError(404, f'Unknown check ID "{check_id}". Ensure that the check ID is passed, not the check name.')
        self.cluster.changed()

    def update_ttl(self, check_id: str, status: str, output: str, ns: str = DEFAULT) -> None:
        """PUT /v1/agent/check/update/<id>."""
        if status not in STATUSES:
            raise bad_request(f"Invalid check status: '{status}'")
        check = self.checks.get((ns, check_id))
        if check is None or check["Type"] != "ttl":
            shown = f"{ns}/{check_id}" if self.cluster.enterprise else check_id
            raise ApiError(500, f'CheckID "{shown}" does not have associated TTL')
        if len(output) > 4096:  # the agent's default check output limit
            output = output[:4096] + " ...\nOutput truncated"
        check["Status"], check["Output"] = status, output
        check["Deadline"] = time.monotonic() + check["TTL"] / 1e9
        self.cluster.changed()

    def _refresh(self, check: dict[str, Any]) -> None:
        """Time-dependent state: an expired TTL check is critical."""
        if check["Type"] == "ttl" and check["Deadline"] is not None and time.monotonic() > check["Deadline"]:
            check["Status"], check["Output"], check["Deadline"] = CRITICAL, "TTL expired", None

    def _alias_status(self, check: dict[str, Any]) -> tuple[str, str]:
        """What an alias check reports: the aliased local service's checks (Consul's CheckAlias)."""
        ns, target = check["Namespace"], check["AliasService"]
        status, message, found = PASSING, "No checks found.", False
        for other in self.checks_of("", ns) + self.checks_of(target, ns):
            if other is check or other["Type"] == "alias":
                continue
            if other["ServiceID"] == target:
                found = True
            self._refresh(other)
            if other["Status"] in (CRITICAL, WARNING):
                status, message = other["Status"], f'Aliased check "{other["Name"]}" failing: {other["Output"]}'
                if status == CRITICAL:
                    break
            elif status == PASSING:
                message = "All checks passing."
        if not found and (ns, target) not in self.services:
            status, message = CRITICAL, f"Service {target} could not be found on node {self.node}"
        return status, message

    def check_view(self, check: dict[str, Any]) -> dict[str, Any]:
        """The AgentCheck JSON of GET /v1/agent/checks."""
        self._refresh(check)
        status, output = check["Status"], check["Output"]
        if check["Type"] == "alias" and check["AliasService"] and not check["AliasNode"] and self.cluster.alias_checks:
            status, output = self._alias_status(check)
        service = self.services.get((check["Namespace"], check["ServiceID"])) if check["ServiceID"] else None
        out = {"Node": self.node, "CheckID": check["CheckID"], "Name": check["Name"], "Status": status,
               "Notes": check["Notes"], "Output": output, "ServiceID": check["ServiceID"],
               "ServiceName": check["ServiceName"], "ServiceTags": list(service["Tags"]) if service else [],
               "Type": check["Type"], "Interval": check["Interval"], "Timeout": check["Timeout"], "ExposedPort": 0,
               "Definition": {}, "CreateIndex": 0, "ModifyIndex": 0}
        if self.cluster.enterprise:
            out["Namespace"] = check["Namespace"]
            out["Partition"] = check["Partition"] or DEFAULT
        return out

    def check_views(self, ns: str = DEFAULT, predicate: Predicate | None = None) -> dict[str, dict[str, Any]]:
        """GET /v1/agent/checks: CheckID -> AgentCheck in `ns` ("*": all) matching `predicate`."""
        candidates: Iterable[tuple[tuple[str, str], dict[str, Any]]] | None = None
        if ns != "*" and predicate is not None:
            for path, value in equalities(predicate):
                if path == ("CheckID",):
                    candidates = [((ns, value), self.checks[(ns, value)])] if (ns, value) in self.checks else []
                    break
                if path == ("ServiceID",):
                    candidates = [((ns, c["CheckID"]), c) for c in self.checks_of(value, ns)]
        if candidates is None:
            candidates = [(k, v) for k, v in self.checks.items() if ns == "*" or k[0] == ns]
        out: dict[str, dict[str, Any]] = {}
        for (_, cid), check in candidates:
            view = self.check_view(check)
            if predicate is None or predicate(view):
                out[cid] = view
        return out

    # -- shortcuts for tests --

    def service(self, service_id: str, ns: str = DEFAULT) -> dict[str, Any] | None:
        """The AgentService view of one service, or None."""
        stored = self.services.get((ns, service_id))
        return None if stored is None else copy.deepcopy(self.service_view(stored))

    def check(self, check_id: str, ns: str = DEFAULT) -> dict[str, Any] | None:
        stored = self.checks.get((ns, check_id))
        return None if stored is None else self.check_view(stored)

    def set_check_status(self, check_id: str, status: str, output: str = "", ns: str = DEFAULT) -> None:
        """Change any check's status, as its probe would (a TCP check turning passing)."""
        check = self.checks[(ns, check_id)]
        check["Status"], check["Output"] = status, output
        self.cluster.changed()


def _is_ip(text: str, version: int) -> bool:
    try:
        return ipaddress.ip_address(text).version == version
    except ValueError:
        return False


def _meta_problem(meta: dict[str, str], allowed_consul_keys: set[str]) -> str:
    """structs.ValidateServiceMetadata."""
    if len(meta) > 64:
        return "Node metadata cannot contain more than 64 key/value pairs"
    for key in sorted(meta):
        value = meta[key]
        problem = ""
        if key == "":
            problem = "Key cannot be blank"
        elif not _META_KEY.match(key):
            problem = "Key contains invalid characters"
        elif len(key) > 128:
            problem = "Key is too long (limit: 128 characters)"
        elif key.startswith("consul-") and key not in allowed_consul_keys:
            problem = "Key prefix 'consul-' is reserved for internal use"
        elif len(value) > 512:
            problem = "Value is too long (limit: 512 characters)"
        if problem:
            return f"Couldn't load metadata pair ('{key}', '{value}'): {problem}"
    return ""


def _validate_service(service: dict[str, Any]) -> list[str]:
    """structs.NodeService.Validate, the parts that concern connect proxies."""
    errors: list[str] = []
    if service["Kind"] == "connect-proxy":
        proxy = service["Proxy"] or {}
        if not (proxy.get("DestinationServiceName") or "").strip():
            errors.append("Proxy.DestinationServiceName must be non-empty for Connect proxy services")
        if proxy.get("DestinationServiceName") == "*":
            errors.append("Proxy.DestinationServiceName must not be a wildcard for Connect proxy services")
        if service["Port"] == 0 and not service["SocketPath"]:
            errors.append("Port or SocketPath must be set for a Connect proxy")
        bind_addresses: set[str] = set()
        for upstream in proxy.get("Upstreams") or []:
            if not upstream["DestinationName"]:
                errors.append("upstream destination name cannot be empty")
            elif (upstream["LocalBindPort"] == 0 and not upstream["LocalBindSocketPath"]
                  and not upstream["CentrallyConfigured"]):
                errors.append("upstream local bind port or local socket path must be defined and nonzero")
            if upstream["LocalBindPort"]:
                host = upstream["LocalBindAddress"] or "127.0.0.1"
                bind = f"[{host}]:{upstream['LocalBindPort']}" if ":" in host else f"{host}:{upstream['LocalBindPort']}"
                if bind in bind_addresses:
                    errors.append(f"upstreams cannot contain duplicates of {bind}")
                bind_addresses.add(bind)
    return errors


def _check_type(chk: dict[str, Any]) -> str:
    """CheckType.Type()."""
    if chk["GRPC"]:
        return "grpc"
    if chk["HTTP"]:
        return "http"
    if chk["TTL"] > 0:
        return "ttl"
    if chk["TCP"]:
        return "tcp"
    if chk["AliasNode"] or chk["AliasService"]:
        return "alias"
    if chk["DockerContainerID"]:
        return "docker"
    if chk["ScriptArgs"]:
        return "script"
    if chk["H2PING"]:
        return "h2ping"
    return ""


def _check_type_problem(chk: dict[str, Any]) -> str:
    """CheckType.Validate()."""
    interval_check = bool(chk["ScriptArgs"] or chk["HTTP"] or chk["TCP"] or chk["GRPC"] or chk["H2PING"])
    alias = bool(chk["AliasNode"] or chk["AliasService"])
    if chk["Interval"] > 0 and chk["TTL"] > 0:
        return "Interval and TTL cannot both be specified"
    if interval_check and chk["Interval"] <= 0:
        return "Interval must be > 0 for Script, HTTP, H2PING, or TCP checks"
    if interval_check and alias:
        return "Interval cannot be set for Alias checks"
    if alias and chk["TTL"] > 0:
        return "TTL must be not be set for Alias checks"
    if not interval_check and not alias and chk["TTL"] <= 0:
        return "TTL must be > 0 for TTL checks"
    if chk["OutputMaxSize"] < 0:
        return "MaxOutputMaxSize must be positive"
    return ""


def _proxy_view(proxy: dict[str, Any] | None) -> dict[str, Any]:
    """api.AgentServiceConnectProxyConfig JSON (omitempty fields; MeshGateway/Expose always)."""
    proxy = proxy or {}
    out: dict[str, Any] = {}
    for key in ("DestinationServiceName", "DestinationServiceID", "LocalServiceAddress", "LocalServicePort",
                "LocalServiceSocketPath", "Mode"):
        _omit(out, key, proxy.get(key))
    tproxy = proxy.get("TransparentProxy") or {}
    if any(tproxy.values()):
        out["TransparentProxy"] = {k: v for k, v in tproxy.items() if v}
    _omit(out, "Config", proxy.get("Config") or {})
    upstreams = []
    for upstream in proxy.get("Upstreams") or []:
        entry: dict[str, Any] = {}
        for key in ("DestinationType", "DestinationPartition", "DestinationNamespace"):
            _omit(entry, key, upstream[key])
        entry["DestinationName"] = upstream["DestinationName"]
        for key in ("Datacenter", "LocalBindAddress", "LocalBindPort", "LocalBindSocketPath", "LocalBindSocketMode",
                    "Config"):
            _omit(entry, key, upstream[key])
        entry["MeshGateway"] = {"Mode": upstream["MeshGateway"]["Mode"]} if upstream["MeshGateway"]["Mode"] else {}
        _omit(entry, "CentrallyConfigured", upstream["CentrallyConfigured"])
        upstreams.append(entry)
    _omit(out, "Upstreams", upstreams)
    mode = (proxy.get("MeshGateway") or {}).get("Mode", "")
    out["MeshGateway"] = {"Mode": mode} if mode else {}
    expose = proxy.get("Expose") or {}
    expose_out: dict[str, Any] = {}
    _omit(expose_out, "Checks", expose.get("Checks"))
    paths = []
    for path in expose.get("Paths") or []:
        p: dict[str, Any] = {}
        for key in ("ListenerPort", "Path", "LocalPathPort", "Protocol", "ParsedFromCheck"):
            _omit(p, key, path.get(key))
        paths.append(p)
    _omit(expose_out, "Paths", paths)
    out["Expose"] = expose_out
    return out


# ---------------------------------------------------------------------------------------------
# The cluster: agents, servers' state, HTTP
# ---------------------------------------------------------------------------------------------

class FakeConsul:
    """Fake Consul: `agents` client agents on 127.0.0.2, 127.0.0.3, ... sharing one port.

    `agents` is a count or a list of loopback IPs. `port` 0 picks a free one. `ssl_context`
    serves https (one certificate for every agent IP). Use `async with FakeConsul(...) as consul`
    or `await start()` / `await stop()`.
    """

    def __init__(self, agents: int | Iterable[str] = 1, *, port: int = 0, enterprise: bool = False,
                 acl_enabled: bool = False, master_token: str = "root", datacenter: str = "dc1",
                 ssl_context: ssl.SSLContext | None = None, nodes: Iterable[str] | None = None,
                 deregister_unknown_ok: bool = False, alias_checks: bool = True, central_config: bool = True,
                 journal_limit: int | None = None, rpc_prefix: bool = True, primary_datacenter: str | None = None):
        ips = [f"127.0.0.{i + 2}" for i in range(agents)] if isinstance(agents, int) else list(agents)
        names = list(nodes) if nodes is not None else [f"node-{i + 1}" for i in range(len(ips))]
        self.enterprise = enterprise
        self.acl_enabled = acl_enabled
        self.master_token = master_token
        self.datacenter = datacenter
        self.primary_datacenter = primary_datacenter or datacenter  # agent/self Config.PrimaryDatacenter
        self.ssl_context = ssl_context
        self.deregister_unknown_ok = deregister_unknown_ok
        self.alias_checks = alias_checks
        self.central_config = central_config
        self.rpc_prefix = rpc_prefix  # server errors as a client agent relays them (consul_config.py)
        self.requested_port = port
        self.port = 0
        self.agents = [FakeAgent(self, ip, node) for ip, node in zip(ips, names, strict=True)]
        self._by_ip = {a.ip: a for a in self.agents}
        self.journal: deque[Call] = deque(maxlen=journal_limit)
        self.faults: list[Fault] = []
        self.login_bindings: dict[str, str] = {}  # bearer token (JWT) -> service account name
        self.auth_methods: set[str] = set()
        self.index = 1
        self.config_version = 0  # bumps when config entries change (cached proxy views depend on them)
        self.version = 0  # bumps on every state change (cheap "did anything change" for tests)
        self._changed = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self.reset_servers()

    # -- lifecycle --

    @property
    def scheme(self) -> str:
        return "https" if self.ssl_context is not None else "http"

    @property
    def address(self) -> str:
        """The first agent's address (what CONSUL_HTTP_ADDR names in a single-agent test)."""
        return self.agents[0].address

    def agent(self, key: str | int = 0) -> FakeAgent:
        """An agent by IP or index."""
        return self.agents[key] if isinstance(key, int) else self._by_ip[key]

    async def __aenter__(self) -> FakeConsul:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def start(self) -> None:
        app = web.Application(client_max_size=8 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=0.5,
                                     handler_cancellation=True)
        await self._runner.setup()
        for attempt in range(20):
            self.port = self.requested_port or _free_port(self.agents[0].ip)
            try:
                for agent in self.agents:
                    await self._listen(agent)
                return
            except OSError:
                for agent in self.agents:
                    await self._unlisten(agent)
                if self.requested_port or attempt == 19:
                    raise

    async def stop(self) -> None:
        if self._runner is not None:
            for agent in self.agents:
                agent.listening = False
            await self._runner.cleanup()
            self._runner = None

    async def _listen(self, agent: FakeAgent) -> None:
        assert self._runner is not None
        site = web.TCPSite(self._runner, agent.ip, self.port, ssl_context=self.ssl_context, reuse_address=True)
        await site.start()
        agent.site, agent.listening = site, True

    async def _unlisten(self, agent: FakeAgent) -> None:
        agent.listening = False
        if agent.site is not None:
            with contextlib.suppress(Exception):
                await agent.site.stop()
            agent.site = None
        # Drop the agent's open (keep-alive) connections too, as a dead process would.
        server = self._runner.server if self._runner is not None else None
        for handler, transport in list(getattr(server, "_connections", {}).items()):
            sock = transport.get_extra_info("sockname")
            if sock and sock[0] == agent.ip:
                transport.abort()

    async def down(self, agent: str | int = 0) -> None:
        """The agent stops listening: connections are refused, open ones reset."""
        await self._unlisten(self.agent(agent))

    async def up(self, agent: str | int = 0) -> None:
        a = self.agent(agent)
        if not a.listening:
            await self._listen(a)

    async def restart(self, agent: str | int = 0, downtime: float = 0.0) -> None:
        """The agent process restarts: down, all its services and checks lost, up again."""
        a = self.agent(agent)
        await self._unlisten(a)
        a.reset()
        a.restarts += 1
        self.changed()
        if downtime:
            await asyncio.sleep(downtime)
        await self._listen(a)

    # -- state shared by the agents (the servers) --

    def reset_servers(self) -> None:
        self.config_version = getattr(self, "config_version", 0) + 1
        self.namespaces: dict[str, dict[str, Any]] = {}
        self.config = ConfigStore(enterprise=self.enterprise, next_index=self.next_index,
                                  changed=self._config_changed, namespace_exists=self.namespaces.__contains__,
                                  rpc_prefix=self.rpc_prefix)
        self.tokens: dict[str, dict[str, Any]] = {}    # AccessorID -> token
        self.policies: dict[str, dict[str, Any]] = {}  # ID -> policy
        self.acl = ACLObjects()                         # auth methods, binding rules (consul_acl.py)
        if self.enterprise:
            self.namespaces[DEFAULT] = {"Name": DEFAULT, "Description": "Builtin Default Namespace",
                                        "ACLs": {"PolicyDefaults": [], "RoleDefaults": []},
                                        "CreateIndex": 1, "ModifyIndex": 1}
        if self.acl_enabled:
            self.policies[MANAGEMENT_POLICY["ID"]] = {**MANAGEMENT_POLICY, "Description": "Builtin Policy",
                                                      "Rules": "", "Namespace": DEFAULT}
            self.add_token(secret=self.master_token, description="Master Token", policies=[MANAGEMENT_POLICY["Name"]])
            # Consul creates the anonymous token with this fixed accessor when ACLs bootstrap.
            self.add_token(secret="anonymous", accessor=ANONYMOUS_ACCESSOR, description="Anonymous Token")

    def reset(self) -> None:
        """Forget everything: agents' and servers' state, journal, faults."""
        for agent in self.agents:
            agent.reset()
        self.journal.clear()
        self.faults.clear()
        self.login_bindings.clear()
        self.auth_methods.clear()
        self.reset_servers()
        self.changed()

    def next_index(self) -> int:
        self.index += 1
        return self.index

    def changed(self) -> None:
        self.version += 1
        self._changed.set()

    async def wait_for(self, condition: Callable[[], bool], timeout: float = 5.0) -> None:
        """Wait until `condition()` holds, re-checked after every state change; TimeoutError else."""
        deadline = asyncio.get_running_loop().time() + timeout
        while not condition():
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                raise TimeoutError("condition not met within %.1fs" % timeout)
            self._changed.clear()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._changed.wait(), min(remaining, 0.05))

    def _config_changed(self) -> None:
        self.config_version += 1
        self.changed()

    @property
    def config_entries(self) -> dict[tuple[str, str, str, str], dict[str, Any]]:
        """Stored config entries by (partition, namespace, kind, name); see consul_config.py."""
        return self.config.entries

    def set_config_entry(self, entry: dict[str, Any], ns: str = DEFAULT, partition: str = "", *,
                         validate: bool = False) -> dict[str, Any]:
        """Seed a config entry as PUT /v1/config stores it (decoded and normalised: proxy-defaults
        is always `global`). The graph checks are skipped unless `validate`, so a test can build
        any state, including one Consul would have refused. ApiError when it does not decode."""
        self.config.apply(entry, ns, partition, validate=validate)
        kind = entry.get("Kind", entry.get("kind"))
        name = "global" if kind == "proxy-defaults" else "mesh" if kind == "mesh" else entry.get("Name", "")
        stored = self.config.get(str(kind), name, entry.get("Namespace") or ns, entry.get("Partition") or partition)
        assert stored is not None
        return stored

    def config_entry(self, kind: str, name: str, ns: str = DEFAULT, partition: str = "") -> dict[str, Any] | None:
        """The stored entry (as kept, before the read view's defaults), or None."""
        return self.config.get(kind, name, ns, partition)

    def delete_config_entry(self, kind: str, name: str, ns: str = DEFAULT, partition: str = "") -> None:
        """Remove an entry without the graph checks (an operator's change behind our back)."""
        self.config.delete(kind, name, ns, partition, validate=False)

    def merge_central_config(self, service: dict[str, Any]) -> dict[str, Any] | None:
        """A connect-proxy's Proxy with proxy-defaults and service-defaults applied where the
        registration left a field empty (the agent's service manager; upstream defaults are not
        modelled). Registration > service-defaults > proxy-defaults."""
        proxy = service["Proxy"]
        if proxy is None or service["Kind"] != "connect-proxy" or not self.central_config:
            return proxy
        pd = self.config.get("proxy-defaults", "global") or {}
        sd = self.config.get("service-defaults", proxy["DestinationServiceName"], service["Namespace"]) or {}
        if not pd and not sd:
            return proxy
        merged = dict(proxy)
        config = dict(pd.get("Config") or {})
        if sd.get("Protocol"):
            config["protocol"] = sd["Protocol"]
        merged["Config"] = {**config, **(proxy["Config"] or {})}
        if not proxy["Mode"]:
            merged["Mode"] = sd.get("Mode") or pd.get("Mode") or ""
        gateway = (sd.get("MeshGateway") or {}).get("Mode") or (pd.get("MeshGateway") or {}).get("Mode") or ""
        if not proxy["MeshGateway"]["Mode"] and gateway:
            merged["MeshGateway"] = {"Mode": gateway}
        expose = dict(proxy["Expose"])
        defaults = sd.get("Expose") or pd.get("Expose") or {}
        if not expose.get("Checks") and defaults.get("Checks"):
            expose["Checks"] = True
        if not expose.get("Paths") and defaults.get("Paths"):
            expose["Paths"] = [{"ListenerPort": p.get("ListenerPort", 0), "Path": p.get("Path", ""),
                                "LocalPathPort": p.get("LocalPathPort", 0), "Protocol": p.get("Protocol", ""),
                                "ParsedFromCheck": False} for p in defaults["Paths"]]
        merged["Expose"] = expose
        return merged

    def add_namespace(self, name: str, *, description: str = "", policy_defaults: Iterable[str] = (),
                      meta: dict[str, str] | None = None) -> dict[str, Any]:
        """Create a namespace (Enterprise), policy defaults given by name."""
        links = [{"ID": self._policy_by_name(p)["ID"] if self.acl_enabled else "", "Name": p} for p in policy_defaults]
        ns = {"Name": name, "Description": description, "ACLs": {"PolicyDefaults": links, "RoleDefaults": []},
              "Meta": dict(meta or {}), "CreateIndex": self.next_index()}
        ns["ModifyIndex"] = ns["CreateIndex"]
        self.namespaces[name] = ns
        self.changed()
        return ns

    def add_policy(self, name: str, rules: str = "", description: str = "",
                   datacenters: Iterable[str] = ()) -> dict[str, Any]:
        policy = {"ID": str(uuid.uuid4()), "Name": name, "Description": description, "Rules": rules,
                  "Datacenters": list(datacenters), "Namespace": DEFAULT, "CreateIndex": self.next_index()}
        policy["ModifyIndex"] = policy["CreateIndex"]
        self.policies[policy["ID"]] = policy
        self.changed()
        return policy

    def _policy_by_name(self, name: str) -> dict[str, Any]:
        for policy in self.policies.values():
            if policy["Name"] == name:
                return policy
        raise KeyError(name)

    def add_token(self, *, secret: str | None = None, accessor: str | None = None, description: str = "",
                  auth_method: str = "", service_identities: Iterable[str] = (), policies: Iterable[str] = (),
                  namespace: str = DEFAULT, local: bool = False) -> dict[str, Any]:
        """Store an ACL token (no ACL checks). Policies by name."""
        links = []
        for name in policies:
            try:
                links.append({"ID": self._policy_by_name(name)["ID"], "Name": name})
            except KeyError:
                links.append({"ID": str(uuid.uuid4()), "Name": name})
        token = {"AccessorID": accessor or str(uuid.uuid4()), "SecretID": secret or str(uuid.uuid4()),
                 "Description": description, "Policies": links, "Roles": [],
                 "ServiceIdentities": [{"ServiceName": s} for s in service_identities], "NodeIdentities": [],
                 "Local": local, "AuthMethod": auth_method,
                 "CreateTime": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "Hash": "", "Legacy": False,
                 "Namespace": namespace if self.enterprise else DEFAULT, "CreateIndex": self.next_index()}
        token["ModifyIndex"] = token["CreateIndex"]
        self.tokens[token["AccessorID"]] = token
        self.changed()
        return token

    def login(self, auth_method: str, bearer_token: str, meta: dict[str, str] | None = None,
              ns: str = DEFAULT) -> dict[str, Any]:
        """POST /v1/acl/login: a token bound to the service account `login_bindings` names."""
        if auth_method not in self.auth_methods:
            raise ApiError(403, "ACL not found")  # Consul: the auth method is looked up like an ACL object
        account = self.login_bindings.get(bearer_token)
        if account is None:
            raise ApiError(403, "Permission denied")
        description = "token created via login"
        if meta:
            description += ": " + json.dumps(meta, sort_keys=True, separators=(",", ":"))
        return self.add_token(description=description, auth_method=auth_method, service_identities=[account],
                              namespace=ns, local=True)

    def token_by_secret(self, secret: str) -> dict[str, Any] | None:
        for token in self.tokens.values():
            if token["SecretID"] == secret:
                return token
        return None

    # -- catalog and assertions --

    def catalog_service(self, name: str, ns: str = DEFAULT) -> list[dict[str, Any]]:
        """GET /v1/catalog/service/<name>: instances across agents, by node then service ID."""
        out = []
        for agent in sorted(self.agents, key=lambda a: a.node):
            for (sns, sid), service in sorted(agent.services.items(), key=lambda kv: kv[0][1]):
                if service["Service"] != name or (ns != "*" and sns != ns) or not self._synced(sns):
                    continue
                out.append(self._catalog_entry(agent, service))
        return out

    def _synced(self, ns: str) -> bool:
        return not self.enterprise or ns in self.namespaces

    def unsynced(self) -> list[tuple[str, str, str]]:
        """(agent IP, namespace, service ID) of services anti-entropy cannot sync (no such namespace)."""
        return [(a.ip, ns, sid) for a in self.agents for (ns, sid) in a.services if not self._synced(ns)]

    def _catalog_entry(self, agent: FakeAgent, service: dict[str, Any]) -> dict[str, Any]:
        view = agent.service_view(service)
        entry = {"ID": str(uuid.uuid5(uuid.NAMESPACE_DNS, agent.node)), "Node": agent.node, "Address": agent.ip,
                 "Datacenter": self.datacenter, "TaggedAddresses": {"lan": agent.ip, "lan_ipv4": agent.ip,
                                                                    "wan": agent.ip, "wan_ipv4": agent.ip},
                 "NodeMeta": {"consul-network-segment": ""}, "ServiceKind": service["Kind"],
                 "ServiceID": service["ID"], "ServiceName": service["Service"], "ServiceTags": list(service["Tags"]),
                 "ServiceAddress": service["Address"], "ServiceTaggedAddresses": view.get("TaggedAddresses", {}),
                 "ServiceWeights": dict(service["Weights"]), "ServiceMeta": dict(service["Meta"]),
                 "ServicePort": service["Port"], "ServiceEnableTagOverride": service["EnableTagOverride"],
                 "ServiceProxy": view.get("Proxy") or {"MeshGateway": {}, "Expose": {}},
                 "ServiceConnect": view.get("Connect") or {},
                 "CreateIndex": service["CreateIndex"], "ModifyIndex": service["ModifyIndex"]}
        if self.enterprise:
            entry["Namespace"] = service["Namespace"]
        return entry

    def services(self, ns: str = "*") -> dict[tuple[str, str], dict[str, Any]]:
        """Every agent's services: (agent IP, service ID) -> AgentService view."""
        return {(a.ip, sid): view for a in self.agents for sid, view in a.service_views(ns).items()}

    def checks(self, ns: str = "*") -> dict[tuple[str, str], dict[str, Any]]:
        return {(a.ip, cid): view for a in self.agents for cid, view in a.check_views(ns).items()}

    def state(self) -> dict[str, Any]:
        """A JSON-able dump of everything (GET /_fake/state)."""
        return {"agents": {a.ip: {"node": a.node, "listening": a.listening, "restarts": a.restarts,
                                  "services": a.service_views("*"), "checks": a.check_views("*")}
                           for a in self.agents},
                "config_entries": self.config.all(), "namespaces": list(self.namespaces.values()),
                "tokens": list(self.tokens.values()), "policies": list(self.policies.values()),
                "auth_methods": list(self.acl.auth_methods.values()),
                "binding_rules": list(self.acl.binding_rules.values()),
                "unsynced": self.unsynced()}

    # -- journal and faults --

    def calls(self, method: str | None = None, path: str | None = None, agent: str | None = None) -> list[Call]:
        """Journal entries by method, path (a regex that must match the whole path) and agent IP."""
        rx = re.compile(path) if path is not None else None
        return [c for c in self.journal if (method is None or c.method == method)
                and (rx is None or rx.fullmatch(c.path)) and (agent is None or c.agent == agent)]

    def writes(self, agent: str | None = None) -> list[Call]:
        return [c for c in self.journal if c.method in ("PUT", "POST", "DELETE") and (agent is None or c.agent == agent)]

    def clear_journal(self) -> None:
        self.journal.clear()

    def fail(self, path: str = "", *, method: str | None = None, agent: str | int | None = None,
             status: int | None = None, body: str = "", delay: float = 0.0, reset: bool = False,
             times: int | None = None) -> Fault:
        """Install a fault (see Fault); returns it so a test can read `hits` or remove it."""
        ip = self.agent(agent).ip if isinstance(agent, int) else agent
        fault = Fault(path=path, method=method, agent=ip, status=status, body=body, delay=delay, reset=reset,
                      times=times)
        self.faults.append(fault)
        return fault

    def clear_faults(self) -> None:
        self.faults.clear()

    # -- HTTP --

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        if request.path.startswith("/_fake/"):
            return await self._control(request)
        sock = request.transport.get_extra_info("sockname") if request.transport else None
        agent = self._by_ip.get(sock[0]) if sock else None
        if agent is None or not agent.listening:
            if request.transport is not None:
                request.transport.abort()
            raise web.HTTPServiceUnavailable(text="agent down")
        raw = await request.read()
        body: Any = None
        if raw:
            try:
                body = json.loads(raw)
            except ValueError:
                body = raw.decode("utf-8", "replace")
        call = Call(agent=agent.ip, method=request.method, path=request.path, query=dict(request.query),
                    headers={h: request.headers[h] for h in JOURNAL_HEADERS if h in request.headers},
                    body=body, time=time.time())
        self.journal.append(call)
        fault = next((f for f in self.faults if f.matches(agent.ip, request.method, request.path)), None)
        if fault is not None:
            fault.hits += 1
            call.fault = True
            if fault.delay:
                await asyncio.sleep(fault.delay)
            if fault.reset:
                call.status = -1
                if request.transport is not None:
                    request.transport.abort()
                raise web.HTTPServiceUnavailable(text="connection reset by fault")
            if fault.status is not None:
                call.status = fault.status
                return web.Response(status=fault.status, text=fault.body)
        try:
            if self.acl_enabled:
                self._authorize(request)
            status, payload = self._route(agent, request, body, raw)
        except ApiError as err:
            call.status = err.status
            return web.Response(status=err.status, text=err.body)
        call.status = status
        headers = {"X-Consul-Index": str(self.index), "X-Consul-KnownLeader": "true", "X-Consul-LastContact": "0"} \
            if request.method == "GET" else {}
        if isinstance(payload, str):
            return web.Response(status=status, text=payload, headers=headers)
        if payload is None:
            return web.Response(status=status, headers=headers)
        return web.json_response(payload, status=status, headers=headers)

    def _authorize(self, request: web.Request) -> None:
        if request.path.startswith("/v1/acl/login"):
            return
        secret = request.headers.get("X-Consul-Token", "") or request.query.get("token", "")
        auth = request.headers.get("Authorization", "")
        if not secret and auth.lower().startswith("bearer "):
            secret = auth[7:].strip()
        if not secret:
            raise ApiError(403, "Permission denied")
        if self.token_by_secret(secret) is None:
            raise ApiError(403, "ACL not found")

    def _namespace(self, request: web.Request) -> str:
        query = request.query.get("ns", "")
        header = request.headers.get("X-Consul-Namespace", "")
        if not self.enterprise:
            if query:
                raise bad_request('Invalid query parameter: "ns" - Namespaces are a Consul Enterprise feature')
            if header:
                raise bad_request('Invalid header: "X-Consul-Namespace" - Namespaces are a Consul Enterprise feature')
            return DEFAULT
        return query or header or DEFAULT

    def _partition(self, request: web.Request) -> str:
        partition = request.query.get("partition", "")
        if partition and not self.enterprise:
            raise bad_request('Invalid query parameter: "partition" - Partitions are a Consul Enterprise feature')
        return partition

    def _filter(self, request: web.Request, schema: Any) -> Predicate | None:
        expr = request.query.get("filter", "")
        if not expr:
            return None
        try:
            return compile_filter(expr, schema)
        except FilterError as err:
            raise bad_request(f"Failed to create boolean expression evaluator: {err}") from None

    def _require_acl(self) -> None:
        if not self.acl_enabled:
            raise ApiError(401, "ACL support disabled")

    def _route(self, agent: FakeAgent, request: web.Request, body: Any, raw: bytes) -> tuple[int, Any]:
        """Dispatch one request: (status, JSON payload | text | None)."""
        method, path = request.method, request.path
        for route_method, rx, handler in _ROUTES:
            m = rx.fullmatch(path)
            if m is None:
                continue
            if method not in route_method:
                raise ApiError(405, f"method {method} not allowed")
            ns = self._namespace(request)
            partition = self._partition(request)
            return handler(self, agent, request, body, ns, partition, **m.groupdict())
        raise ApiError(404, "404 page not found")

    # route handlers: (self, agent, request, body, ns, partition, **path params) -> (status, payload)

    def _h_register(self, agent: FakeAgent, request: web.Request, body: Any, ns: str, partition: str) -> tuple[int, Any]:
        if body is not None and not isinstance(body, dict):
            raise bad_request("Request decode failed: json: cannot unmarshal into Go value of type structs.ServiceDefinition")
        flag = request.query.get("replace-existing-checks")
        replace = flag is not None and flag.lower() in ("", "1", "t", "true")
        agent.register(body or {}, ns, partition, replace_existing_checks=replace)
        return 200, None

    def _h_deregister(self, agent: FakeAgent, request: web.Request, body: Any, ns: str, partition: str,
                      id: str) -> tuple[int, Any]:
        agent.deregister(id, ns)
        return 200, None

    def _h_services(self, agent: FakeAgent, request: web.Request, body: Any, ns: str, partition: str) -> tuple[int, Any]:
        return 200, agent.service_views(ns, self._filter(request, AGENT_SERVICE))

    def _h_service(self, agent: FakeAgent, request: web.Request, body: Any, ns: str, partition: str,
                   id: str) -> tuple[int, Any]:
        view = agent.service(id, ns)
        if view is None:
            raise ApiError(404, f"unknown service ID: {id}")
        return 200, {**view, "ContentHash": f"{hash(json.dumps(view, sort_keys=True)) & 0xffffffffffffffff:016x}"}

    def _h_checks(self, agent: FakeAgent, request: web.Request, body: Any, ns: str, partition: str) -> tuple[int, Any]:
        return 200, agent.check_views(ns, self._filter(request, AGENT_CHECK))

    def _h_check_register(self, agent: FakeAgent, request: web.Request, body: Any, ns: str,
                          partition: str) -> tuple[int, Any]:
        agent.register_check(body if isinstance(body, dict) else {}, ns, partition)
        return 200, None

    def _h_check_deregister(self, agent: FakeAgent, request: web.Request, body: Any, ns: str, partition: str,
                            id: str) -> tuple[int, Any]:
        agent.deregister_check(id, ns)
        return 200, None

    def _h_check_update(self, agent: FakeAgent, request: web.Request, body: Any, ns: str, partition: str,
                        id: str) -> tuple[int, Any]:
        try:
            update = decode(body, CHECK_UPDATE)
        except DecodeError as err:
            raise bad_request(f"Request decode failed: {err}") from None
        agent.update_ttl(id, update["Status"], update["Output"], ns)
        return 200, None

    def _h_check_mark(self, agent: FakeAgent, request: web.Request, body: Any, ns: str, partition: str,
                      verb: str, id: str) -> tuple[int, Any]:
        status = {"pass": PASSING, "warn": WARNING, "fail": CRITICAL}[verb]
        agent.update_ttl(id, status, request.query.get("note", ""), ns)
        return 200, None

    def _h_health(self, agent: FakeAgent, request: web.Request, body: Any, ns: str, partition: str,
                  by: str, key: str) -> tuple[int, Any]:
        services = [s for (sns, sid), s in agent.services.items()
                    if sns == ns and (s["Service"] == key if by == "name" else sid == key)]
        as_json = request.query.get("format", "text") == "json"
        if not services:
            what = "ServiceName" if by == "name" else "ServiceId"
            if as_json:
                raise ApiError(404, f"{what} {key} Not Found")
            return 404, f"{what} {key} Not Found"
        results = []
        worst = PASSING
        for service in services:
            checks = [agent.check_view(c) for c in agent.checks_of(service["ID"], ns)]
            status = _aggregate(c["Status"] for c in checks)
            worst = _aggregate([worst, status])
            results.append({"AggregatedStatus": status, "Service": agent.service_view(service), "Checks": checks})
        code = {PASSING: 200, WARNING: 429, CRITICAL: 503}[worst]
        if by == "id":
            return code, results[0] if as_json else results[0]["AggregatedStatus"]
        return code, results if as_json else worst

    def _h_self(self, agent: FakeAgent, request: web.Request, body: Any, ns: str, partition: str) -> tuple[int, Any]:
        return 200, {"Config": {"Datacenter": self.datacenter, "PrimaryDatacenter": self.primary_datacenter,
                                "NodeName": agent.node, "Server": False, "Version": "1.10.4"},
                     "Member": {"Name": agent.node, "Addr": agent.ip, "Port": 8301, "Status": 1}}

    def _h_leader(self, agent: FakeAgent, request: web.Request, body: Any, ns: str, partition: str) -> tuple[int, Any]:
        return 200, "127.0.0.1:8300"

    def _h_catalog_service(self, agent: FakeAgent, request: web.Request, body: Any, ns: str, partition: str,
                           name: str) -> tuple[int, Any]:
        entries = self.catalog_service(name, ns)
        predicate = self._filter(request, CATALOG_SERVICE)
        return 200, [e for e in entries if predicate is None or predicate(e)]

    def _h_catalog_services(self, agent: FakeAgent, request: web.Request, body: Any, ns: str,
                            partition: str) -> tuple[int, Any]:
        out: dict[str, list[str]] = {}
        for a in self.agents:
            for (sns, _), service in a.services.items():
                if (ns == "*" or sns == ns) and self._synced(sns):
                    tags = out.setdefault(service["Service"], [])
                    tags.extend(t for t in service["Tags"] if t not in tags)
        return 200, out

    def _h_config_get(self, agent: FakeAgent, request: web.Request, body: Any, ns: str, partition: str,
                      kind: str, name: str) -> tuple[int, Any]:
        return 200, self.config.read(kind, name, ns, partition)

    def _h_config_delete(self, agent: FakeAgent, request: web.Request, body: Any, ns: str, partition: str,
                         kind: str, name: str) -> tuple[int, Any]:
        cas = request.query.get("cas")
        deleted = self.config.delete(kind, name, ns, partition, cas=cas)
        return 200, (deleted if cas else {})  # Consul answers the boolean only to a CAS delete

    def _h_config_list(self, agent: FakeAgent, request: web.Request, body: Any, ns: str, partition: str,
                       kind: str) -> tuple[int, Any]:
        return 200, self.config.list_entries(kind, ns, partition)

    def _h_config_put(self, agent: FakeAgent, request: web.Request, body: Any, ns: str, partition: str) -> tuple[int, Any]:
        if body is None:
            raise bad_request("Request decoding failed: EOF")
        if isinstance(body, str):
            raise bad_request(f"Request decoding failed: invalid character {body[:1]!r} looking for beginning of value")
        return 200, self.config.apply(body, ns, partition, cas=request.query.get("cas"))

    def _h_namespace_get(self, agent: FakeAgent, request: web.Request, body: Any, ns: str, partition: str,
                         name: str) -> tuple[int, Any]:
        if not self.enterprise:
            raise ApiError(404, "404 page not found")
        if name not in self.namespaces:
            return 404, ""
        return 200, self.namespaces[name]

    def _h_namespace_put(self, agent: FakeAgent, request: web.Request, body: Any, ns: str, partition: str) -> tuple[int, Any]:
        if not self.enterprise:
            raise ApiError(404, "404 page not found")
        try:
            spec = decode(body, NAMESPACE)
        except DecodeError as err:
            raise bad_request(f"Request decode failed: {err}") from None
        name = spec["Name"]
        if not name:
            raise bad_request("Must specify a Name for Namespace creation")
        if not _NAMESPACE_NAME.match(name):
            raise bad_request(f'Invalid Namespace name "{name}", must be valid DNS hostname label (up to 64 characters)')
        if name in self.namespaces:
            raise ApiError(500, f'Namespace "{name}" already exists')
        links = []
        for link in (spec["ACLs"] or {}).get("PolicyDefaults") or []:
            if not self.acl_enabled:
                links.append(link)
                continue
            found = self.policies.get(link["ID"]) if link["ID"] else None
            if found is None and link["Name"]:
                found = next((p for p in self.policies.values() if p["Name"] == link["Name"]), None)
            if found is None:
                raise ApiError(500, f'Invalid Namespace: policy default "{link["Name"] or link["ID"]}" does not exist')
            links.append({"ID": found["ID"], "Name": found["Name"]})
        created = self.add_namespace(name, description=spec["Description"], meta=spec["Meta"] or {})
        created["ACLs"] = {"PolicyDefaults": links, "RoleDefaults": (spec["ACLs"] or {}).get("RoleDefaults") or []}
        return 200, created

    def _h_namespaces(self, agent: FakeAgent, request: web.Request, body: Any, ns: str, partition: str) -> tuple[int, Any]:
        if not self.enterprise:
            raise ApiError(404, "404 page not found")
        return 200, [self.namespaces[n] for n in sorted(self.namespaces)]

    def _h_tokens(self, agent: FakeAgent, request: web.Request, body: Any, ns: str, partition: str) -> tuple[int, Any]:
        self._require_acl()
        method = request.query.get("authmethod", "")
        policy = request.query.get("policy", "")
        out = []
        for token in self.tokens.values():
            if ns != "*" and token["Namespace"] != ns:
                continue
            if method and token["AuthMethod"] != method:
                continue
            if policy and policy not in {p["ID"] for p in token["Policies"]}:
                continue
            out.append(_token_list_entry(token, self.enterprise))
        return 200, out

    def _h_token_get(self, agent: FakeAgent, request: web.Request, body: Any, ns: str, partition: str,
                     id: str) -> tuple[int, Any]:
        self._require_acl()
        token = self.tokens.get(id)
        if token is None or (ns != "*" and token["Namespace"] != ns):
            raise ApiError(403, "ACL not found")
        return 200, _token_view(token, self.enterprise)

    def _h_token_delete(self, agent: FakeAgent, request: web.Request, body: Any, ns: str, partition: str,
                        id: str) -> tuple[int, Any]:
        self._require_acl()
        token = self.tokens.get(id)
        if token is None or token["Namespace"] != ns:
            raise ApiError(403, "ACL not found")
        del self.tokens[id]
        self.changed()
        return 200, True

    def _h_token_create(self, agent: FakeAgent, request: web.Request, body: Any, ns: str, partition: str) -> tuple[int, Any]:
        self._require_acl()
        try:
            spec = decode(body, ACL_TOKEN)
        except DecodeError as err:
            raise bad_request(f"Request decode failed: {err}") from None
        token = self.add_token(secret=spec["SecretID"] or None, accessor=spec["AccessorID"] or None,
                               description=spec["Description"], auth_method=spec["AuthMethod"],
                               service_identities=[s["ServiceName"] for s in spec["ServiceIdentities"] or []],
                               policies=[p["Name"] for p in spec["Policies"] or [] if p["Name"]],
                               namespace=spec["Namespace"] or ns, local=spec["Local"])
        return 200, _token_view(token, self.enterprise)

    def _h_token_update(self, agent: FakeAgent, request: web.Request, body: Any, ns: str, partition: str,
                        id: str) -> tuple[int, Any]:
        """PUT /v1/acl/token/:AccessorID: replaces the token's Description and links (the SecretID
        and AccessorID cannot change; a body naming another AccessorID is a 400)."""
        self._require_acl()
        token = self.tokens.get(id)
        if token is None:
            raise ApiError(403, "ACL not found")
        try:
            spec = decode(body, ACL_TOKEN)
        except DecodeError as err:
            raise bad_request(f"Request decode failed: {err}") from None
        if spec["AccessorID"] and spec["AccessorID"] != id:
            raise bad_request("Token Accessor ID in URL and payload do not match")
        links = []
        for link in spec["Policies"] or []:
            try:
                links.append({"ID": self._policy_by_name(link["Name"])["ID"], "Name": link["Name"]})
            except KeyError:
                raise bad_request(f"cannot find policy {link['Name']}") from None
        token.update(Description=spec["Description"] or token["Description"], Policies=links,
                     ModifyIndex=self.next_index())
        self.changed()
        return 200, _token_view(token, self.enterprise)

    def _h_login(self, agent: FakeAgent, request: web.Request, body: Any, ns: str, partition: str) -> tuple[int, Any]:
        self._require_acl()
        try:
            spec = decode(body, LOGIN)
        except DecodeError as err:
            raise bad_request(f"Request decode failed: {err}") from None
        return 200, _token_view(self.login(spec["AuthMethod"], spec["BearerToken"], spec["Meta"], ns), self.enterprise)

    def _h_policy_put(self, agent: FakeAgent, request: web.Request, body: Any, ns: str, partition: str) -> tuple[int, Any]:
        self._require_acl()
        try:
            spec = decode(body, ACL_POLICY)
        except DecodeError as err:
            raise bad_request(f"Request decode failed: {err}") from None
        if not spec["Name"]:
            raise bad_request("Invalid Policy: no Name is set")
        if any(p["Name"] == spec["Name"] for p in self.policies.values()):
            raise ApiError(500, f'Invalid Policy: A Policy with Name "{spec["Name"]}" already exists')
        policy = self.add_policy(spec["Name"], spec["Rules"], spec["Description"], spec["Datacenters"] or [])
        return 200, {k: v for k, v in policy.items() if k != "Datacenters" or v}

    def _h_policies(self, agent: FakeAgent, request: web.Request, body: Any, ns: str, partition: str) -> tuple[int, Any]:
        self._require_acl()
        return 200, [{k: p[k] for k in ("ID", "Name", "Description", "CreateIndex", "ModifyIndex") if k in p}
                     for p in self.policies.values()]

    # -- the private control API --

    async def _control(self, request: web.Request) -> web.StreamResponse:
        path, method = request.path, request.method
        body = await request.json() if request.can_read_body else None
        if path == "/_fake/state" and method == "GET":
            return web.json_response(self.state())
        if path == "/_fake/reset" and method == "POST":
            self.reset()
            return web.json_response(True)
        if path == "/_fake/journal":
            if method == "DELETE":
                self.clear_journal()
                return web.json_response(True)
            return web.json_response([asdict(c) for c in self.journal])
        if path == "/_fake/faults":
            if method == "DELETE":
                self.clear_faults()
                return web.json_response(True)
            if method == "POST":
                fault = self.fail(**(body or {}))
                return web.json_response({k: v for k, v in asdict(fault).items()})
            return web.json_response([asdict(f) for f in self.faults])
        m = re.fullmatch(r"/_fake/agents/([^/]+)/(down|up|restart)", path)
        if m and method == "POST":
            await {"down": self.down, "up": self.up, "restart": self.restart}[m.group(2)](m.group(1))
            return web.json_response(True)
        if path == "/_fake/seed" and method == "POST":
            try:
                self.seed(body or {})
            except ApiError as err:
                return web.Response(status=err.status, text=err.body)
            return web.json_response(True)
        return web.Response(status=404, text="unknown fake control path")

    def seed(self, spec: dict[str, Any]) -> None:
        """Seed state from one JSON document (the /_fake/seed body):
        {"services": [{"agent": ip, "ns": ..., "registration": {...}}], "checks": [{"agent", "ns", "registration"}],
         "config_entries": [...], "namespaces": [name | {"Name", ...}], "policies": [name],
         "tokens": [{add_token kwargs}], "auth_methods": [name], "login_bindings": {jwt: sa}}"""
        for name in spec.get("policies", []):
            self.add_policy(name)
        for ns in spec.get("namespaces", []):
            if isinstance(ns, str):
                self.add_namespace(ns)
            else:
                self.add_namespace(ns["Name"], description=ns.get("Description", ""),
                                   policy_defaults=ns.get("PolicyDefaults", []), meta=ns.get("Meta"))
        for entry in spec.get("config_entries", []):
            self.set_config_entry(entry)
        for item in spec.get("services", []):
            self.agent(item.get("agent", 0)).register(item["registration"], item.get("ns", DEFAULT))
        for item in spec.get("checks", []):
            self.agent(item.get("agent", 0)).register_check(item["registration"], item.get("ns", DEFAULT))
        for token in spec.get("tokens", []):
            self.add_token(**token)
        self.auth_methods.update(spec.get("auth_methods", []))
        self.login_bindings.update(spec.get("login_bindings", {}))


def _aggregate(statuses: Iterable[str]) -> str:
    worst = PASSING
    for status in statuses:
        if status == CRITICAL:
            return CRITICAL
        if status == WARNING:
            worst = WARNING
    return worst


def _token_list_entry(token: dict[str, Any], enterprise: bool) -> dict[str, Any]:
    out: dict[str, Any] = {"AccessorID": token["AccessorID"], "SecretID": token["SecretID"],
                           "Description": token["Description"]}
    for key in ("Policies", "Roles", "ServiceIdentities", "NodeIdentities"):
        _omit(out, key, token[key])
    out["Local"] = token["Local"]
    _omit(out, "AuthMethod", token["AuthMethod"])
    out.update({"CreateTime": token["CreateTime"], "Hash": token["Hash"], "Legacy": token["Legacy"]})
    if enterprise:
        out["Namespace"] = token["Namespace"]
    out.update({"CreateIndex": token["CreateIndex"], "ModifyIndex": token["ModifyIndex"]})
    return out


def _token_view(token: dict[str, Any], enterprise: bool) -> dict[str, Any]:
    return _token_list_entry(token, enterprise)


def _free_port(ip: str) -> int:
    with socket.socket() as s:
        s.bind((ip, 0))
        return int(s.getsockname()[1])


Handler = Callable[..., tuple[int, Any]]


def _r(methods: str, pattern: str, handler: Handler) -> tuple[tuple[str, ...], re.Pattern[str], Handler]:
    return tuple(methods.split(",")), re.compile(pattern), handler


# Order matters where patterns overlap (`check/update/...` before the generic forms).
_ROUTES = [
    _r("PUT", r"/v1/agent/service/register", FakeConsul._h_register),
    _r("PUT", r"/v1/agent/service/deregister/(?P<id>.+)", FakeConsul._h_deregister),
    _r("GET", r"/v1/agent/services", FakeConsul._h_services),
    _r("GET", r"/v1/agent/service/(?P<id>.+)", FakeConsul._h_service),
    _r("GET", r"/v1/agent/checks", FakeConsul._h_checks),
    _r("PUT", r"/v1/agent/check/register", FakeConsul._h_check_register),
    _r("PUT", r"/v1/agent/check/deregister/(?P<id>.+)", FakeConsul._h_check_deregister),
    _r("PUT", r"/v1/agent/check/update/(?P<id>.+)", FakeConsul._h_check_update),
    _r("PUT", r"/v1/agent/check/(?P<verb>pass|warn|fail)/(?P<id>.+)", FakeConsul._h_check_mark),
    _r("GET", r"/v1/agent/health/service/(?P<by>name|id)/(?P<key>.+)", FakeConsul._h_health),
    _r("GET", r"/v1/agent/self", FakeConsul._h_self),
    _r("GET", r"/v1/status/leader", FakeConsul._h_leader),
    _r("GET", r"/v1/catalog/service/(?P<name>[^/]+)", FakeConsul._h_catalog_service),
    _r("GET", r"/v1/catalog/services", FakeConsul._h_catalog_services),
    _r("GET", r"/v1/config/(?P<kind>[^/]+)/(?P<name>[^/]+)", FakeConsul._h_config_get),
    _r("DELETE", r"/v1/config/(?P<kind>[^/]+)/(?P<name>[^/]+)", FakeConsul._h_config_delete),
    _r("GET", r"/v1/config/(?P<kind>[^/]+)", FakeConsul._h_config_list),
    _r("PUT", r"/v1/config", FakeConsul._h_config_put),
    _r("GET", r"/v1/namespace/(?P<name>[^/]+)", FakeConsul._h_namespace_get),
    _r("PUT", r"/v1/namespace", FakeConsul._h_namespace_put),
    _r("GET", r"/v1/namespaces", FakeConsul._h_namespaces),
    _r("GET", r"/v1/acl/tokens", FakeConsul._h_tokens),
    _r("PUT", r"/v1/acl/token", FakeConsul._h_token_create),
    _r("GET", r"/v1/acl/token/(?P<id>[^/]+)", FakeConsul._h_token_get),
    _r("PUT", r"/v1/acl/token/(?P<id>[^/]+)", FakeConsul._h_token_update),
    _r("DELETE", r"/v1/acl/token/(?P<id>[^/]+)", FakeConsul._h_token_delete),
    _r("POST,PUT", r"/v1/acl/login", FakeConsul._h_login),
    _r("PUT", r"/v1/acl/policy", FakeConsul._h_policy_put),
    _r("GET", r"/v1/acl/policies", FakeConsul._h_policies),
]


# The ACL objects of consul_acl.py come first: `/v1/acl/token/self` before `/v1/acl/token/<id>`.
_ROUTES[:0] = [_r(methods, pattern, handler) for methods, pattern, handler in ACL_ROUTES]


# A route whose path matches for several methods (config get/delete) must not 405 early.
def _merge_routes() -> None:
    merged: dict[str, tuple[tuple[str, ...], re.Pattern[str], dict[str, Callable[..., tuple[int, Any]]]]] = {}
    for methods, rx, handler in _ROUTES:
        entry = merged.setdefault(rx.pattern, ((), rx, {}))
        table = entry[2]
        for m in methods:
            table[m] = handler
        merged[rx.pattern] = (tuple(table), rx, table)
    _ROUTES[:] = [(methods, rx, _dispatch_on_method(table)) for methods, rx, table in merged.values()]


def _dispatch_on_method(table: dict[str, Callable[..., tuple[int, Any]]]) -> Callable[..., tuple[int, Any]]:
    def handler(self: FakeConsul, agent: FakeAgent, request: web.Request, *args: Any, **kw: Any) -> tuple[int, Any]:
        return table[request.method](self, agent, request, *args, **kw)
    return handler


_merge_routes()


@contextlib.asynccontextmanager
async def running(agents: int | Iterable[str] = 1, **kwargs: Any) -> AsyncIterator[FakeConsul]:
    """`async with running(2, enterprise=True) as consul:` for fixtures and scripts."""
    fake = FakeConsul(agents, **kwargs)
    await fake.start()
    try:
        yield fake
    finally:
        await fake.stop()


async def _main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Run fake Consul client agents until SIGINT/SIGTERM.")
    parser.add_argument("--agents", type=int, default=1, help="number of agents (127.0.0.2, 127.0.0.3, ...)")
    parser.add_argument("--port", type=int, default=0, help="shared port (0: a free one)")
    parser.add_argument("--enterprise", action="store_true", help="namespaces and partitions")
    parser.add_argument("--acl-token", default="", help="enable ACLs with this management token")
    parser.add_argument("--no-rpc-prefix", action="store_true",
                        help="server errors without `rpc error making call: ` (as a server agent answers)")
    args = parser.parse_args(argv)
    fake = FakeConsul(args.agents, port=args.port, enterprise=args.enterprise, acl_enabled=bool(args.acl_token),
                      master_token=args.acl_token or "root", rpc_prefix=not args.no_rpc_prefix)
    await fake.start()
    print(json.dumps({"agents": [a.address for a in fake.agents], "port": fake.port}), flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await fake.stop()


if __name__ == "__main__":
    asyncio.run(_main())
