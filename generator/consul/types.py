"""Consul request bodies as typed values, serialised exactly as the Go `api` client does.

The reference controller sends `api.AgentServiceRegistration` and friends through Go's
`encoding/json`, so the agent sees Consul's PascalCase field names with the struct tags'
`omitempty` rules. `to_json()` reproduces them field for field (reference §2.6), including the
fields Go always writes: `Check` and `Checks` (null when unset), the proxy's `MeshGateway` and
`Expose` (`{}`: non-pointer structs), every upstream's `MeshGateway`, `ServiceAddress.Port` and
the check update's `Status`/`Output`. Key order follows the Go structs (irrelevant to Consul,
but it keeps journal dumps comparable with the reference's).

Responses are plain JSON objects; the TypedDicts below name the fields we read.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypedDict

Json = dict[str, Any]

# Check statuses (api.HealthPassing ...) and the proxy kind/mode strings.
PASSING, WARNING, CRITICAL = "passing", "warning", "critical"
KIND_CONNECT_PROXY = "connect-proxy"
MODE_TRANSPARENT = "transparent"


def _put(out: Json, key: str, value: Any) -> None:
    """Go's `omitempty`: skip false, 0, "", and empty or nil maps/slices."""
    if value is None or value is False:
        return
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value == 0:
        return
    if isinstance(value, (str, list, tuple, dict)) and not value:
        return
    out[key] = value


@dataclass(frozen=True)
class ServiceAddress:
    """api.ServiceAddress: both fields always written."""

    address: str
    port: int = 0

    def to_json(self) -> Json:
        return {"Address": self.address, "Port": self.port}


@dataclass(frozen=True)
class ServiceCheck:
    """api.AgentServiceCheck: a check defined with a service (`Check`/`Checks`)."""

    check_id: str = ""
    name: str = ""
    interval: str = ""
    timeout: str = ""
    ttl: str = ""
    http: str = ""
    header: Mapping[str, Sequence[str]] | None = None
    method: str = ""
    body: str = ""
    tcp: str = ""
    status: str = ""
    notes: str = ""
    tls_skip_verify: bool = False
    grpc: str = ""
    grpc_use_tls: bool = False
    alias_node: str = ""
    alias_service: str = ""
    success_before_passing: int = 0
    failures_before_critical: int = 0
    deregister_critical_service_after: str = ""

    def _check_fields(self, out: Json, *, with_name: bool = True) -> Json:
        _put(out, "CheckID", self.check_id)
        if with_name:
            _put(out, "Name", self.name)
        _put(out, "Interval", self.interval)
        _put(out, "Timeout", self.timeout)
        _put(out, "TTL", self.ttl)
        _put(out, "HTTP", self.http)
        _put(out, "Header", {k: list(v) for k, v in (self.header or {}).items()})
        _put(out, "Method", self.method)
        _put(out, "Body", self.body)
        _put(out, "TCP", self.tcp)
        _put(out, "Status", self.status)
        if with_name:
            _put(out, "Notes", self.notes)
        _put(out, "TLSSkipVerify", self.tls_skip_verify)
        _put(out, "GRPC", self.grpc)
        _put(out, "GRPCUseTLS", self.grpc_use_tls)
        _put(out, "AliasNode", self.alias_node)
        _put(out, "AliasService", self.alias_service)
        _put(out, "SuccessBeforePassing", self.success_before_passing)
        _put(out, "FailuresBeforeCritical", self.failures_before_critical)
        _put(out, "DeregisterCriticalServiceAfter", self.deregister_critical_service_after)
        return out

    def to_json(self) -> Json:
        return self._check_fields({})


@dataclass(frozen=True)
class CheckRegistration(ServiceCheck):
    """api.AgentCheckRegistration (PUT /v1/agent/check/register).

    Go embeds AgentServiceCheck; the outer `ID`, `Name`, `Notes`, `ServiceID` shadow the embedded
    fields of the same JSON name, which is why `Name`/`Notes` appear once, first.
    """

    id: str = ""
    service_id: str = ""
    namespace: str = ""

    def to_json(self) -> Json:
        out: Json = {}
        _put(out, "ID", self.id)
        _put(out, "Name", self.name)
        _put(out, "Notes", self.notes)
        _put(out, "ServiceID", self.service_id)
        self._check_fields(out, with_name=False)
        _put(out, "Namespace", self.namespace)
        return out


@dataclass(frozen=True)
class Upstream:
    """api.Upstream. `DestinationName` and `MeshGateway` are always written."""

    destination_name: str
    destination_type: str = ""
    destination_partition: str = ""
    destination_namespace: str = ""
    datacenter: str = ""
    local_bind_address: str = ""
    local_bind_port: int = 0
    config: Mapping[str, Any] | None = None
    mesh_gateway_mode: str = ""

    def to_json(self) -> Json:
        out: Json = {}
        _put(out, "DestinationType", self.destination_type)
        _put(out, "DestinationPartition", self.destination_partition)
        _put(out, "DestinationNamespace", self.destination_namespace)
        out["DestinationName"] = self.destination_name
        _put(out, "Datacenter", self.datacenter)
        _put(out, "LocalBindAddress", self.local_bind_address)
        _put(out, "LocalBindPort", self.local_bind_port)
        _put(out, "Config", dict(self.config or {}))
        out["MeshGateway"] = _mesh_gateway(self.mesh_gateway_mode)
        return out


def _mesh_gateway(mode: str) -> Json:
    return {"Mode": mode} if mode else {}


@dataclass(frozen=True)
class ExposePath:
    """api.ExposePath (every field omitempty)."""

    listener_port: int = 0
    path: str = ""
    local_path_port: int = 0
    protocol: str = ""

    def to_json(self) -> Json:
        out: Json = {}
        _put(out, "ListenerPort", self.listener_port)
        _put(out, "Path", self.path)
        _put(out, "LocalPathPort", self.local_path_port)
        _put(out, "Protocol", self.protocol)
        return out


@dataclass(frozen=True)
class ProxyConfig:
    """api.AgentServiceConnectProxyConfig. `MeshGateway` and `Expose` are always written."""

    destination_service_name: str = ""
    destination_service_id: str = ""
    local_service_address: str = ""
    local_service_port: int = 0
    mode: str = ""
    config: Mapping[str, Any] | None = None
    upstreams: Sequence[Upstream] = ()
    mesh_gateway_mode: str = ""
    expose_checks: bool = False
    expose_paths: Sequence[ExposePath] = ()

    def to_json(self) -> Json:
        out: Json = {}
        _put(out, "DestinationServiceName", self.destination_service_name)
        _put(out, "DestinationServiceID", self.destination_service_id)
        _put(out, "LocalServiceAddress", self.local_service_address)
        _put(out, "LocalServicePort", self.local_service_port)
        _put(out, "Mode", self.mode)
        _put(out, "Config", dict(self.config or {}))
        _put(out, "Upstreams", [u.to_json() for u in self.upstreams])
        out["MeshGateway"] = _mesh_gateway(self.mesh_gateway_mode)
        expose: Json = {}
        _put(expose, "Checks", self.expose_checks)
        _put(expose, "Paths", [p.to_json() for p in self.expose_paths])
        out["Expose"] = expose
        return out


@dataclass(frozen=True)
class ServiceRegistration:
    """api.AgentServiceRegistration (PUT /v1/agent/service/register)."""

    name: str
    id: str = ""
    kind: str = ""
    tags: Sequence[str] = ()
    port: int = 0
    address: str = ""
    tagged_addresses: Mapping[str, ServiceAddress] | None = None
    enable_tag_override: bool = False
    meta: Mapping[str, str] | None = None
    weights: tuple[int, int] | None = None  # (passing, warning)
    check: ServiceCheck | None = None
    checks: Sequence[ServiceCheck] | None = None
    proxy: ProxyConfig | None = None
    namespace: str = ""

    def to_json(self) -> Json:
        out: Json = {}
        _put(out, "Kind", self.kind)
        _put(out, "ID", self.id)
        _put(out, "Name", self.name)
        _put(out, "Tags", list(self.tags))
        _put(out, "Port", self.port)
        _put(out, "Address", self.address)
        _put(out, "TaggedAddresses", {k: v.to_json() for k, v in (self.tagged_addresses or {}).items()})
        _put(out, "EnableTagOverride", self.enable_tag_override)
        _put(out, "Meta", dict(self.meta or {}))
        if self.weights is not None:
            out["Weights"] = {"Passing": self.weights[0], "Warning": self.weights[1]}
        out["Check"] = self.check.to_json() if self.check is not None else None
        out["Checks"] = [c.to_json() for c in self.checks] if self.checks is not None else None
        if self.proxy is not None:
            out["Proxy"] = self.proxy.to_json()
        _put(out, "Namespace", self.namespace)
        return out


def check_update(status: str, output: str) -> Json:
    """The body of PUT /v1/agent/check/update/<id> (Go's checkUpdate: both fields always)."""
    return {"Status": status, "Output": output}


def namespace_body(name: str, *, description: str = "", policy_defaults: Sequence[str] | None = None,
                   meta: Mapping[str, str] | None = None) -> Json:
    """api.Namespace for PUT /v1/namespace (reference §5.2): `ACLs` is always written, its
    lists are null when empty; policies are linked by name (`{"ID": "", "Name": ...}`)."""
    out: Json = {"Name": name}
    _put(out, "Description", description)
    out["ACLs"] = {"PolicyDefaults": [{"ID": "", "Name": p} for p in policy_defaults] if policy_defaults else None,
                   "RoleDefaults": None}
    _put(out, "Meta", dict(meta or {}))
    return out


# -- responses (the fields we read; Consul sends more) --

class AgentWeights(TypedDict):
    Passing: int
    Warning: int


class AgentService(TypedDict, total=False):
    """An entry of GET /v1/agent/services."""

    Kind: str
    ID: str
    Service: str
    Tags: list[str]
    Meta: dict[str, str]
    Port: int
    Address: str
    TaggedAddresses: dict[str, Json]
    Weights: AgentWeights
    EnableTagOverride: bool
    Proxy: Json
    Connect: Json
    Namespace: str
    Partition: str
    Datacenter: str


class AgentCheck(TypedDict, total=False):
    """An entry of GET /v1/agent/checks."""

    Node: str
    CheckID: str
    Name: str
    Status: str
    Notes: str
    Output: str
    ServiceID: str
    ServiceName: str
    ServiceTags: list[str]
    Type: str
    Namespace: str


class ACLTokenListEntry(TypedDict, total=False):
    """An entry of GET /v1/acl/tokens."""

    AccessorID: str
    SecretID: str
    Description: str
    Policies: list[Json]
    ServiceIdentities: list[Json]
    Local: bool
    AuthMethod: str
    Namespace: str


class NamespaceInfo(TypedDict, total=False):
    """GET /v1/namespace/<name> and PUT /v1/namespace answers."""

    Name: str
    Description: str
    ACLs: Json
    Meta: dict[str, str]
    CreateIndex: int
    ModifyIndex: int


__all__ = ["ACLTokenListEntry", "AgentCheck", "AgentService", "CheckRegistration", "ExposePath", "Json",
           "NamespaceInfo", "ProxyConfig", "ServiceAddress", "ServiceCheck", "ServiceRegistration", "Upstream",
           "check_update", "namespace_body", "PASSING", "WARNING", "CRITICAL", "KIND_CONNECT_PROXY",
           "MODE_TRANSPARENT"]
