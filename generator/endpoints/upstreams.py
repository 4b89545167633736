"""`connect-service-upstreams` as the endpoints controller reads it (reference §6).

Same syntax and port rules as the webhook's `annotations.parse_upstreams` (a test checks that the
two agree on every value the webhook accepts), with the controller's own additions and one rule
less:

- with Consul namespaces or admin partitions on, a service is `name[.namespace[.partition]]`
  (`DestinationNamespace`, `DestinationPartition`); otherwise the whole name, dots kept;
- an entry with a datacenter (`svc:port:dc`) needs a `proxy-defaults` config entry whose mesh
  gateway mode is `local` or `remote`: the reference's two errors, word for word; when the lookup
  itself failed (Consul unreachable, 5xx, 403) the check is skipped, as in the reference;
- no environment-variable-name rule on service names (the webhook needs one for the
  `<NAME>_CONNECT_SERVICE_HOST` variables it writes; the controller writes none).

Where the reference panicked (an entry without a port, `prepared_query:<name>` without a port) or
silently dropped an entry whose port does not parse (the app's calls to it then failed), this is
the pod's error naming the entry. An entry whose port names no container port is dropped with a
warning, as v0.37 dropped it and as the webhook does. Empty entries (`a:1,,b:2`, a trailing comma)
are skipped: the webhook injects such pods, v0.37's controller panicked on them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from generator.endpoints.errors import LookupRequired
from generator.inject.annotations import MAX_UPSTREAMS, BadValue, PodPorts, go_int, parse_port, show

# The shape of a container port name (IANA_SVC_NAME); such a port that no container has is dropped.
_PORT_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
MESH_GATEWAY_MODES = ("local", "remote")


class MeshGatewayProblem(BadValue):
    """A cross-datacenter upstream, but proxy-defaults sets no usable mesh gateway mode: the fix is
    in Consul (a ProxyDefaults resource), not in the pod."""


@dataclass(frozen=True)
class ProxyDefaults:
    """What `GET /v1/config/proxy-defaults/global` answered on the controller's own agent.

    `state`: "found" (200; `mesh_gateway_mode` is its `MeshGateway.Mode`), "absent" (404), or
    "unknown" (any other failure: the reference skips the check rather than block on Consul)."""

    state: str
    mesh_gateway_mode: str = ""

    @classmethod
    def found(cls, mesh_gateway_mode: str) -> "ProxyDefaults":
        return cls("found", mesh_gateway_mode or "")

    @classmethod
    def absent(cls) -> "ProxyDefaults":
        return cls("absent")

    @classmethod
    def unknown(cls) -> "ProxyDefaults":
        return cls("unknown")


@dataclass(frozen=True)
class ConsulUpstream:
    """One upstream of the proxy registration."""

    name: str
    port: int
    namespace: str = ""
    partition: str = ""
    datacenter: str = ""
    prepared_query: bool = False

    def body(self) -> dict[str, Any]:
        """`api.Upstream` as the Go client serialises it (field order and omitted empties;
        `MeshGateway` is a struct and is always sent, as `{}`)."""
        out: dict[str, Any] = {"DestinationType": "prepared_query" if self.prepared_query else "service"}
        if self.partition:
            out["DestinationPartition"] = self.partition
        if self.namespace:
            out["DestinationNamespace"] = self.namespace
        out["DestinationName"] = self.name
        if self.datacenter:
            out["Datacenter"] = self.datacenter
        out["LocalBindPort"] = self.port
        out["MeshGateway"] = {}
        return out


def has_datacenter(raw: str) -> bool:
    """Whether reading `raw` needs the proxy-defaults lookup (an entry `svc:port:dc`)."""
    for entry in raw.split(","):
        parts = [p.strip() for p in entry.split(":", 2)]
        if len(parts) == 3 and parts[0] != "prepared_query":
            return True
    return False


def parse(raw: str, ports: PodPorts, *, split_names: bool,
          proxy_defaults: ProxyDefaults | None) -> tuple[tuple[ConsulUpstream, ...], tuple[str, ...]]:
    """Upstreams in annotation order, and warnings for dropped entries.

    `split_names`: Consul namespaces or partitions are on. `proxy_defaults` is only read when an
    entry has a datacenter (`has_datacenter`); BadValue says what is wrong with which entry."""
    upstreams: list[ConsulUpstream] = []
    warnings: list[str] = []
    entries = [entry for entry in raw.split(",") if entry.strip()]
    if len(entries) > MAX_UPSTREAMS:
        raise BadValue(f"more than {MAX_UPSTREAMS} upstreams")
    for entry in entries:
        parts = [p.strip() for p in entry.split(":", 2)]
        if parts[0] == "prepared_query":
            if len(parts) != 3 or not parts[1]:
                raise BadValue(f"upstream {show(entry)} is invalid: expected prepared_query:<name>:<port>")
            port = _port(entry, parts[2], ports, warnings)
            if port:
                upstreams.append(ConsulUpstream(parts[1], port, prepared_query=True))
            continue
        if len(parts) < 2:
            raise BadValue(f"upstream {show(entry)} is invalid: expected <service>:<port>[:<datacenter>] "
                           f"or prepared_query:<name>:<port>")
        name, namespace, partition = parts[0], "", ""
        if split_names:
            pieces = [p.strip() for p in parts[0].split(".", 2)]
            name = pieces[0]
            namespace = pieces[1] if len(pieces) > 1 else ""
            partition = pieces[2] if len(pieces) > 2 else ""
        if not name:
            raise BadValue(f"upstream {show(entry)} is invalid: it has no service name")
        datacenter = ""
        if len(parts) == 3:
            datacenter = parts[2]
            if not datacenter:
                raise BadValue(f"upstream {show(entry)} is invalid: it has an empty datacenter")
            _check_mesh_gateway(entry, proxy_defaults)
        port = _port(entry, parts[1], ports, warnings)
        if port:
            upstreams.append(ConsulUpstream(name, port, namespace, partition, datacenter))
    return tuple(upstreams), tuple(warnings)


def _check_mesh_gateway(entry: str, proxy_defaults: ProxyDefaults | None) -> None:
    """The reference's guard for cross-datacenter upstreams, with its messages (raw entry quoted)."""
    if proxy_defaults is None:
        raise LookupRequired("an upstream has a datacenter: pass the proxy-defaults lookup (see needs())")
    if proxy_defaults.state == "absent":
        raise MeshGatewayProblem(f"upstream {show(entry)} is invalid: there is no ProxyDefaults config to set mesh gateway mode")
    if proxy_defaults.state == "found" and proxy_defaults.mesh_gateway_mode not in MESH_GATEWAY_MODES:
        raise MeshGatewayProblem(f'upstream {show(entry)} is invalid: ProxyDefaults mesh gateway mode is neither "local" nor "remote"')


def _port(entry: str, text: str, ports: PodPorts, warnings: list[str]) -> int:
    """The local bind port; 0 when `text` names a container port this pod does not have (dropped)."""
    try:
        return parse_port(text, ports)
    except BadValue as exc:
        if _PORT_NAME.match(text) and go_int(text) is None:
            warnings.append(f"upstream {show(entry)} is ignored: no container of this pod has a port named {show(text)}")
            return 0
        raise BadValue(f"upstream {show(entry)} is invalid: port {show(text)} {exc}") from None
