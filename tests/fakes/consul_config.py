"""Consul's config entries as its servers keep them, for the fake (tests/fakes/consul_agent.py).

Written from Consul's documentation of `/v1/config` and its 1.10 server behaviour (reference
crd-controller §5), not from our client. The HTTP handlers in consul_agent.py call `ConfigStore`;
tests may call it directly to seed or inspect state.

What it models:
- state `entries[(partition, namespace, kind, name)]` with CreateIndex/ModifyIndex from the
  cluster's one raft index; OSS keeps everything in (`""`, `default`); Enterprise defaults both
  to `default`, a non-default namespace must exist (writes) and partitions are free-form;
- decoding as `DecodeConfigEntry` does: `Kind`/`kind` required (`Payload does not contain a
  kind/Kind key at the top level`), unknown kind (`invalid config entry kind: <k>`), keys matched
  case-insensitively and in snake_case (`mesh_gateway`), unknown keys at any depth rejected as
  go-multierror text (`invalid config key "Listeners[0].Services[0].Namespace"`; in OSS a key
  ending in `namespace` adds `, namespaces are a consul enterprise feature`) — all 400
  `Bad request: Request decoding failed: ...`;
- normalisation and validation (500, server-side): proxy-defaults is always named `global` (1.10
  renames), mesh is `mesh` and has no Name key, other kinds need a Name, service-defaults'
  Protocol lower-cased, splitter weights summing to 100, intentions' actions and duplicate
  sources; intentions sources gain `Precedence` and `Type: "consul"`, service-defaults and
  proxy-defaults read back with `MeshGateway`/`Expose`/`TransparentProxy` `{}` when absent;
- the graph checks of §5.4, on every write and delete that could change them: a
  router/splitter on a service whose protocol does not permit it, inconsistent protocols along
  a discovery chain, L7 intentions on a non-HTTP service, ingress listener protocols;
- `cas` on writes and deletes (checked before the graph, as the state store does).

Server errors reach the caller through a client agent in real clusters, where the agent's RPC
layer prefixes them with `rpc error making call: ` (reference §2.4); `ConfigStore.rpc_prefix`
(on by default, since the fake is client agents) decides.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable
from typing import Any

DEFAULT = "default"
RPC_PREFIX = "rpc error making call: "
HTTP_LIKE = ("http", "http2", "grpc")
DISCOVERY_CHAIN_KINDS = ("service-defaults", "proxy-defaults", "service-router", "service-splitter",
                         "service-resolver")


class ApiError(Exception):
    """An HTTP error answer: status and plain-text body, as Consul writes them (shared with
    consul_agent.py, which re-exports it)."""

    def __init__(self, status: int, body: str):
        super().__init__(f"{status} {body}")
        self.status = status
        self.body = body


# ---------------------------------------------------------------------------------------------
# Schemas: Consul 1.10/1.11's config-entry structs, field names only.
# A value is None (a scalar, a string map, or interface{}: anything goes below it), a dict (a
# struct), [dict] (a list of structs) or {"*": dict} (a map of structs). ENT marks the fields of a
# squashed EnterpriseMeta: in OSS the struct has no such field, so the key is unknown.
# ---------------------------------------------------------------------------------------------

ENT = "enterprise-only"
_ENT_META = {"Namespace": ENT, "Partition": ENT}
_MESH_GATEWAY = {"Mode": None}
_TPROXY = {"OutboundListenerPort": None, "DialedDirectly": None}
_EXPOSE = {"Checks": None, "Paths": [{"ListenerPort": None, "Path": None, "LocalPathPort": None, "Protocol": None,
                                      "ParsedFromCheck": None}]}
_UPSTREAM_CONFIG = {"Name": None, **_ENT_META, "EnvoyListenerJSON": None, "EnvoyClusterJSON": None,
                    "Protocol": None, "ConnectTimeoutMs": None,
                    "Limits": {"MaxConnections": None, "MaxPendingRequests": None, "MaxConcurrentRequests": None},
                    "PassiveHealthCheck": {"Interval": None, "MaxFailures": None}, "MeshGateway": _MESH_GATEWAY}
_HEADERS = {"Add": None, "Set": None, "Remove": None}
_HEADER_MATCH = [{"Name": None, "Present": None, "Exact": None, "Prefix": None, "Suffix": None, "Regex": None,
                  "Invert": None}]
_HTTP_MATCH = {"PathExact": None, "PathPrefix": None, "PathRegex": None, "Header": _HEADER_MATCH,
               "QueryParam": [{"Name": None, "Present": None, "Exact": None, "Regex": None}], "Methods": None}
_TLS_SDS = {"ClusterName": None, "CertResource": None}

SCHEMAS: dict[str, dict[str, Any]] = {
    "service-defaults": {"Kind": None, "Name": None, "Protocol": None, "Mode": None, "TransparentProxy": _TPROXY,
                         "MeshGateway": _MESH_GATEWAY, "Expose": _EXPOSE, "ExternalSNI": None,
                         "UpstreamConfig": {"Overrides": [_UPSTREAM_CONFIG], "Defaults": _UPSTREAM_CONFIG},
                         "Meta": None, **_ENT_META},
    "proxy-defaults": {"Kind": None, "Name": None, "Config": None, "Mode": None, "TransparentProxy": _TPROXY,
                       "MeshGateway": _MESH_GATEWAY, "Expose": _EXPOSE, "Meta": None, **_ENT_META},
    "service-router": {"Kind": None, "Name": None, "Meta": None, **_ENT_META, "Routes": [{
        "Match": {"HTTP": _HTTP_MATCH},
        "Destination": {"Service": None, "ServiceSubset": None, "Namespace": None, "Partition": None,
                        "PrefixRewrite": None, "RequestTimeout": None, "NumRetries": None,
                        "RetryOnConnectFailure": None, "RetryOnStatusCodes": None, "RequestHeaders": _HEADERS,
                        "ResponseHeaders": _HEADERS}}]},
    "service-splitter": {"Kind": None, "Name": None, "Meta": None, **_ENT_META, "Splits": [{
        "Weight": None, "Service": None, "ServiceSubset": None, "Namespace": None, "Partition": None,
        "RequestHeaders": _HEADERS, "ResponseHeaders": _HEADERS}]},
    "service-resolver": {"Kind": None, "Name": None, "Meta": None, **_ENT_META, "DefaultSubset": None,
                         "Subsets": {"*": {"Filter": None, "OnlyPassing": None}},
                         "Redirect": {"Service": None, "ServiceSubset": None, "Namespace": None, "Partition": None,
                                      "Datacenter": None},
                         "Failover": {"*": {"Service": None, "ServiceSubset": None, "Namespace": None,
                                            "Datacenters": None}},
                         "ConnectTimeout": None,
                         "LoadBalancer": {"Policy": None,
                                          "RingHashConfig": {"MinimumRingSize": None, "MaximumRingSize": None},
                                          "LeastRequestConfig": {"ChoiceCount": None},
                                          "HashPolicies": [{"Field": None, "FieldValue": None,
                                                            "CookieConfig": {"Session": None, "TTL": None,
                                                                             "Path": None},
                                                            "SourceIP": None, "Terminal": None}]}},
    "ingress-gateway": {"Kind": None, "Name": None, "Meta": None, **_ENT_META,
                        "TLS": {"Enabled": None, "SDS": _TLS_SDS},
                        "Listeners": [{"Port": None, "Protocol": None, "TLS": {"Enabled": None, "SDS": _TLS_SDS},
                                       "Services": [{"Name": None, "Hosts": None, **_ENT_META,
                                                     "TLS": {"SDS": _TLS_SDS}, "RequestHeaders": _HEADERS,
                                                     "ResponseHeaders": _HEADERS}]}]},
    "terminating-gateway": {"Kind": None, "Name": None, "Meta": None, **_ENT_META,
                            "Services": [{"Name": None, **_ENT_META, "CAFile": None, "CertFile": None,
                                          "KeyFile": None, "SNI": None}]},
    "service-intentions": {"Kind": None, "Name": None, "Meta": None, **_ENT_META, "Sources": [{
        "Name": None, **_ENT_META, "Action": None, "Precedence": None, "LegacyID": None, "Type": None,
        "Description": None, "LegacyMeta": None, "LegacyCreateTime": None, "LegacyUpdateTime": None,
        "Permissions": [{"Action": None, "HTTP": {"PathExact": None, "PathPrefix": None, "PathRegex": None,
                                                  "Header": _HEADER_MATCH, "Methods": None}}]}]},
    "mesh": {"Kind": None, "TransparentProxy": {"MeshDestinationsOnly": None}, "Meta": None, **_ENT_META},
    "partition-exports": {"Kind": None, "Name": None, "Meta": None, "Partition": ENT,
                          "Services": [{"Name": None, "Namespace": None, "Consumers": [{"Partition": None}]}]},
    "exported-services": {"Kind": None, "Name": None, "Meta": None, "Partition": ENT,
                          "Services": [{"Name": None, "Namespace": None, "Consumers": [{"Partition": None}]}]},
}
KINDS = tuple(SCHEMAS)


def _norm(key: str) -> str:
    """How mapstructure (with Consul's snake_case aliases) matches a key to a field."""
    return key.replace("_", "").lower()


def decode_entry(raw: Any, enterprise: bool) -> dict[str, Any]:
    """`structs.DecodeConfigEntry`: the entry with canonical key names, or ApiError 400."""
    if not isinstance(raw, dict):
        raise _decode_error("json: cannot unmarshal into Go value of type map[string]interface {}")
    kind = raw["Kind"] if "Kind" in raw else raw.get("kind", None)
    if "Kind" not in raw and "kind" not in raw:
        raise _decode_error("Payload does not contain a kind/Kind key at the top level")
    if not isinstance(kind, str):
        raise _decode_error("Kind value in payload is not a string")
    if kind not in SCHEMAS:
        raise _decode_error(f"invalid config entry kind: {kind}")
    unused: list[str] = []
    out = _decode(raw, SCHEMAS[kind], "", enterprise, unused, top=True)
    problems = []
    for key in sorted(unused):
        leaf = key.rsplit(".", 1)[-1]
        if leaf in ("CreateIndex", "ModifyIndex") and "." not in key:
            continue
        if key in ("kind", "Kind"):
            continue
        if leaf.lower().endswith("namespace") and not enterprise:
            problems.append(f'invalid config key "{key}", namespaces are a consul enterprise feature')
        else:
            problems.append(f'invalid config key "{key}"')
    if problems:
        raise _decode_error(_multierror(problems))
    out["Kind"] = kind
    return out


def _decode(value: Any, schema: Any, path: str, enterprise: bool, unused: list[str], top: bool = False) -> Any:
    if schema is None or not isinstance(value, (dict, list)):
        return copy.deepcopy(value)
    if isinstance(schema, list):
        if not isinstance(value, list):
            return copy.deepcopy(value)
        return [_decode(v, schema[0], f"{path}[{i}]", enterprise, unused) for i, v in enumerate(value)]
    if not isinstance(value, dict):
        return copy.deepcopy(value)
    if set(schema) == {"*"}:
        return {k: _decode(v, schema["*"], f"{path}[{k}]", enterprise, unused) for k, v in value.items()}
    lookup = {_norm(k): k for k, t in schema.items() if enterprise or t != ENT}
    out: dict[str, Any] = {}
    for key, item in value.items():
        name = lookup.get(_norm(key))
        if name is None:
            unused.append(f"{path}.{key}" if path else key)
            continue
        out[name] = _decode(item, schema[name], f"{path}.{name}" if path else name, enterprise, unused)
    return out


def _decode_error(reason: str) -> ApiError:
    return ApiError(400, f"Bad request: Request decoding failed: {reason}")


def _multierror(errors: list[str]) -> str:
    head = "1 error occurred:" if len(errors) == 1 else f"{len(errors)} errors occurred:"
    return head + "".join(f"\n\t* {e}" for e in errors) + "\n\n"


def _go_float(value: float) -> str:
    """Go's `%f`."""
    return f"{value:f}"


def _intention_precedence(destination: str, source: str) -> int:
    """Consul's intention precedence (namespaces exact in OSS): 9 exact→exact down to 7/6 for
    wildcards; destination `*` starts at 6."""
    base = 6 if destination == "*" else 9
    return base - (1 if source == "*" else 0)


# ---------------------------------------------------------------------------------------------
# The store
# ---------------------------------------------------------------------------------------------

Key = tuple[str, str, str, str]  # (partition, namespace, kind, name)


class ConfigStore:
    """Config entries on the Consul servers. `next_index` is the cluster's raft index; `changed`
    is called after every change (wakes waiters, invalidates cached proxy views);
    `namespace_exists` tells whether an Enterprise namespace exists."""

    def __init__(self, *, enterprise: bool, next_index: Callable[[], int], changed: Callable[[], None],
                 namespace_exists: Callable[[str], bool], rpc_prefix: bool = True):
        self.enterprise = enterprise
        self.next_index = next_index
        self.changed = changed
        self.namespace_exists = namespace_exists
        self.rpc_prefix = rpc_prefix
        self.entries: dict[Key, dict[str, Any]] = {}

    # -- scoping --

    def scope(self, ns: str = "", partition: str = "") -> tuple[str, str]:
        """(partition, namespace) an entry lives in: OSS has one of each."""
        if not self.enterprise:
            return "", DEFAULT
        return partition or DEFAULT, ns or DEFAULT

    def _server_error(self, message: str, status: int = 500) -> ApiError:
        return ApiError(status, (RPC_PREFIX if self.rpc_prefix else "") + message)

    # -- reads --

    def get(self, kind: str, name: str, ns: str = "", partition: str = "") -> dict[str, Any] | None:
        """The stored entry (not a copy), or None."""
        if kind == "mesh" and name != "mesh":
            return None
        p, n = self.scope(ns, partition)
        return self.entries.get((p, n, kind, name))

    def read(self, kind: str, name: str, ns: str = "", partition: str = "") -> dict[str, Any]:
        """GET /v1/config/<kind>/<name>: the entry as Consul shows it, or 404."""
        if kind not in SCHEMAS:
            raise self._server_error(f"invalid config entry kind: {kind}")
        entry = self.get(kind, name, ns, partition)
        if entry is None:
            raise ApiError(404, f'Config entry not found for "{kind}" / "{name}"')
        return self.view(entry)

    def list_entries(self, kind: str, ns: str = "", partition: str = "") -> list[dict[str, Any]]:
        """GET /v1/config/<kind>: entries of a kind in one namespace (`*`: every namespace), by name."""
        if kind not in SCHEMAS:
            raise self._server_error(f"invalid config entry kind: {kind}")
        p, n = self.scope(ns, partition)
        found = [(key, e) for key, e in self.entries.items()
                 if key[2] == kind and key[0] == p and (n == "*" or key[1] == n)]
        return [self.view(e) for _, e in sorted(found, key=lambda kv: (kv[0][3], kv[0][1]))]

    def view(self, entry: dict[str, Any]) -> dict[str, Any]:
        """What a read returns: the stored entry plus the fields Consul's structs always show."""
        out = copy.deepcopy(entry)
        if out["Kind"] in ("service-defaults", "proxy-defaults"):
            for key in ("TransparentProxy", "MeshGateway", "Expose"):
                out.setdefault(key, {})
        return out

    # -- writes --

    def apply(self, body: Any, ns: str = "", partition: str = "", cas: str | None = None,
              validate: bool = True) -> bool:
        """PUT /v1/config. True when written; False when `cas` lost. Raises ApiError."""
        entry = decode_entry(body, self.enterprise)
        if self.enterprise:  # the body's own Namespace/Partition win over the query's
            ns = entry.pop("Namespace", "") or ns
            partition = entry.pop("Partition", "") or partition
        p, n = self.scope(ns, partition)
        cas_index = _parse_cas(cas)
        self._normalize(entry)
        if validate:
            self._validate(entry)
        if self.enterprise and n not in ("", DEFAULT) and not self.namespace_exists(n):
            raise self._server_error(f'Namespace "{n}" does not exist')  # approximated: Enterprise code is not public
        key: Key = (p, n, entry["Kind"], entry.get("Name", "mesh"))
        previous = self.entries.get(key)
        if cas_index is not None:
            if cas_index == 0 and previous is not None:
                return False
            if cas_index != 0 and (previous is None or previous["ModifyIndex"] != cas_index):
                return False
        if validate:
            self._check_graph(key, entry)
        entry["CreateIndex"] = previous["CreateIndex"] if previous else self.next_index()
        entry["ModifyIndex"] = entry["CreateIndex"] if previous is None else self.next_index()
        if self.enterprise:
            entry["Namespace"], entry["Partition"] = n, p
        self.entries[key] = entry
        self.changed()
        return True

    def delete(self, kind: str, name: str, ns: str = "", partition: str = "", cas: str | None = None,
               validate: bool = True) -> bool:
        """DELETE /v1/config/<kind>/<name>. Absent: done (True without cas, False with)."""
        if kind not in SCHEMAS:
            raise ApiError(400, f"Bad request: invalid config entry kind: {kind}")
        cas_index = _parse_cas(cas)
        if kind == "proxy-defaults":
            name = "global"
        if kind == "mesh":
            name = "mesh"
        p, n = self.scope(ns, partition)
        key: Key = (p, n, kind, name)
        previous = self.entries.get(key)
        if cas_index is not None and (previous is None or previous["ModifyIndex"] != cas_index):
            return False
        if previous is None:
            return True
        if validate:
            self._check_graph(key, None)
        del self.entries[key]
        self.next_index()
        self.changed()
        return True

    # -- normalisation and validation (the servers' Normalize/Validate) --

    def _normalize(self, entry: dict[str, Any]) -> None:
        kind = entry["Kind"]
        if kind == "proxy-defaults":
            entry["Name"] = "global"  # Consul 1.10 renames silently (later versions reject)
        if kind == "service-defaults" and isinstance(entry.get("Protocol"), str):
            entry["Protocol"] = entry["Protocol"].lower()
        if kind == "service-intentions":
            for source in entry.get("Sources") or []:
                if isinstance(source, dict):
                    source["Precedence"] = _intention_precedence(entry.get("Name", ""), source.get("Name", ""))
                    source["Type"] = "consul"

    def _validate(self, entry: dict[str, Any]) -> None:
        kind = entry["Kind"]
        if kind != "mesh" and not entry.get("Name"):
            raise self._server_error("Name is required")
        if kind == "service-splitter":
            splits = entry.get("Splits") or []
            if not splits:
                raise self._server_error("no splits configured")
            total = sum(round(float(s.get("Weight") or 0) * 100) for s in splits)
            if total != 10000:
                raise self._server_error(f"the sum of all split weights must be 100, not {_go_float(total / 100)}")
        if kind == "service-intentions":
            seen: set[tuple[str, str]] = set()
            for i, source in enumerate(entry.get("Sources") or []):
                name = source.get("Name") or ""
                if not name:
                    raise self._server_error(f"Sources[{i}].Name is required")
                ident = (source.get("Namespace") or DEFAULT, name)
                if ident in seen:
                    raise self._server_error(f'Sources[{i}] defines "{name}" more than once')
                seen.add(ident)
                action = source.get("Action") or ""
                if source.get("Permissions"):
                    if action:
                        raise self._server_error(f"Sources[{i}].Action must be omitted if Permissions are specified")
                elif action not in ("allow", "deny"):
                    raise self._server_error(f"Sources[{i}].Action must be set to 'allow' or 'deny'")

    # -- graph checks (the state store's validateProposedConfigEntryInGraph) --

    def protocol(self, entries: dict[Key, dict[str, Any]], p: str, n: str, service: str) -> str:
        """A service's protocol: its service-defaults, else proxy-defaults' `protocol`, else tcp."""
        sd = entries.get((p, n, "service-defaults", service))
        if sd and sd.get("Protocol"):
            return str(sd["Protocol"]).lower()
        pd = entries.get((p, DEFAULT if self.enterprise else n, "proxy-defaults", "global"))
        config = (pd or {}).get("Config") or {}
        proto = next((v for k, v in config.items() if k.lower() == "protocol"), "") if isinstance(config, dict) else ""
        return str(proto).lower() if proto else "tcp"

    def _check_graph(self, key: Key, proposed: dict[str, Any] | None) -> None:
        """Reject a write (`proposed`) or delete (None) that would leave an invalid graph. Only
        what the change can affect is checked, as Consul does: chains that reach the changed
        service (every chain for proxy-defaults), its L7 intentions, ingress listeners naming it."""
        p, n, kind, name = key
        if kind not in DISCOVERY_CHAIN_KINDS + ("service-intentions", "ingress-gateway"):
            return
        entries = dict(self.entries)
        if proposed is None:
            entries.pop(key, None)
        else:
            entries[key] = proposed
        every = kind == "proxy-defaults"
        if kind in DISCOVERY_CHAIN_KINDS:
            tops = {k[3] for k in entries if k[0] == p and k[1] == n and k[2] in DISCOVERY_CHAIN_KINDS[2:]}
            if not every:
                tops.add(name)
            for top in sorted(tops):
                if every or top == name or name in self._reach(entries, p, n, top):
                    self._compile(entries, p, n, top)
        if kind in DISCOVERY_CHAIN_KINDS or kind == "service-intentions":
            for (ep, en, ek, ename), entry in sorted(entries.items()):
                if ek != "service-intentions" or (ep, en) != (p, n) or ename == "*" or not (every or ename == name):
                    continue
                if any(isinstance(s, dict) and s.get("Permissions") for s in entry.get("Sources") or []):
                    proto = self.protocol(entries, p, n, ename)
                    if proto not in HTTP_LIKE:
                        raise self._server_error(f'service "{ename}" has protocol "{proto}", '
                                                 "which is incompatible with L7 intentions permissions")
        if kind in ("service-defaults", "proxy-defaults", "ingress-gateway"):
            for gateway_key, entry in sorted(entries.items()):
                if gateway_key[2] != "ingress-gateway" or gateway_key[0] != p:
                    continue
                if kind == "ingress-gateway" and gateway_key != key:
                    continue
                for listener in entry.get("Listeners") or []:
                    lp = str(listener.get("Protocol") or "tcp").lower()
                    if lp == "tcp":
                        continue
                    for svc in listener.get("Services") or []:
                        sname = svc.get("Name") or ""
                        sns = (svc.get("Namespace") or gateway_key[1]) if self.enterprise else gateway_key[1]
                        if sname == "*" or not (every or kind == "ingress-gateway" or (sns, sname) == (n, name)):
                            continue
                        proto = self.protocol(entries, p, sns, sname)
                        if proto != lp:
                            raise self._server_error(f'service "{sname}" has protocol "{proto}", which does not '
                                                     f'match defined listener protocol "{lp}"')

    def _reach(self, entries: dict[Key, dict[str, Any]], p: str, n: str, top: str) -> set[str]:
        """Services the chain of `top` can lead to (routes, splits, redirects, failovers)."""
        reached: set[str] = set()
        pending = [(n, top)]
        while pending:
            sns, svc = pending.pop()
            if svc in reached:
                continue
            reached.add(svc)
            pending.extend(self._next_hops(entries, p, sns, svc, routes=svc == top, splits=True))
        return reached

    def _next_hops(self, entries: dict[Key, dict[str, Any]], p: str, ns: str, svc: str, *, routes: bool,
                   splits: bool) -> list[tuple[str, str]]:
        hops: list[tuple[str, str]] = []
        if routes:
            for route in (entries.get((p, ns, "service-router", svc)) or {}).get("Routes") or []:
                dest = route.get("Destination") or {}
                hops.append((dest.get("Namespace") or ns, dest.get("Service") or svc))
        if splits:
            for split in (entries.get((p, ns, "service-splitter", svc)) or {}).get("Splits") or []:
                hops.append((split.get("Namespace") or ns, split.get("Service") or svc))
        resolver = entries.get((p, ns, "service-resolver", svc)) or {}
        redirect = resolver.get("Redirect") or {}
        if redirect.get("Service") and not redirect.get("Datacenter"):
            hops.append((redirect.get("Namespace") or ns, redirect["Service"]))
        for failover in (resolver.get("Failover") or {}).values():
            if isinstance(failover, dict) and failover.get("Service"):
                hops.append((failover.get("Namespace") or ns, failover["Service"]))
        return hops

    def _compile(self, entries: dict[Key, dict[str, Any]], p: str, n: str, top: str) -> None:
        """The discovery-chain compiler's protocol rules for the chain of `top`: every service it
        reaches has `top`'s protocol, and a router or splitter needs an HTTP-like protocol (with
        another protocol they are ignored, then refused)."""
        proto = self.protocol(entries, p, n, top)
        advanced = proto in HTTP_LIKE
        seen: set[tuple[str, str]] = set()
        pending = [(n, top)]
        while pending:
            sns, svc = pending.pop()
            if (sns, svc) in seen:
                continue
            seen.add((sns, svc))
            if (sns, svc) != (n, top):
                other = self.protocol(entries, p, sns, svc)
                if other != proto:
                    raise self._server_error(f'discovery chain "{top}" uses inconsistent protocols; '
                                             f'service "{svc}" has "{other}" which is not "{proto}"')
            pending.extend(self._next_hops(entries, p, sns, svc, routes=advanced and (sns, svc) == (n, top),
                                           splits=advanced))
        if not advanced and ((p, n, "service-router", top) in entries or (p, n, "service-splitter", top) in entries):
            raise self._server_error(f'discovery chain "{top}" uses a protocol "{proto}" that does not permit '
                                     "advanced routing or splitting behavior")

    # -- seeding and assertions --

    def all(self) -> list[dict[str, Any]]:
        return [self.entries[k] for k in sorted(self.entries)]

    def clear(self) -> None:
        self.entries.clear()


def _parse_cas(cas: str | None) -> int | None:
    """`strconv.ParseUint(cas, 10, 64)`; its error text is what Consul answers (500)."""
    if cas is None or cas == "":
        return None
    if not re.fullmatch(r"[0-9]+", cas) or int(cas) >= 2 ** 64:
        raise ApiError(500, f'strconv.ParseUint: parsing "{cas}": invalid syntax')
    return int(cas)

