"""How a Consul agent reads request bodies, for the fake: Go's JSON decoding into Consul's structs.

Consul decodes with Go's `encoding/json` (field names match case-insensitively) after translating
snake_case aliases (`deregister_critical_service_after`), into structs whose absent fields take
their zero value; unknown keys are ignored, and a value of the wrong JSON type is a decode error
(`Request decode failed: json: cannot unmarshal string into Go struct field ... of type int`).
Durations (`Interval`, `TTL`, ...) are Go duration strings (`10s`, `100000h`) or nanoseconds.

`decode(value, STRUCT)` returns a dict with every field of the struct, canonical names and zero
values, so the fake's handlers never have to ask "was it sent, and in which spelling?".
"""

from __future__ import annotations

import re
from typing import Any


class DecodeError(ValueError):
    """The body does not decode into the endpoint's struct."""


class Struct:
    """A Go struct: its name (for messages) and its fields' types."""

    def __init__(self, name: str, fields: dict[str, Any]):
        self.name = name
        self.fields = fields
        self.lookup = {_norm(k): k for k in fields}
        # zero values: constants copied as a whole, value-struct fields built fresh each time
        self.constants = {k: (None if isinstance(t, tuple) else _ZERO[t])
                          for k, t in fields.items() if not isinstance(t, Struct)}
        self.nested = [(k, t) for k, t in fields.items() if isinstance(t, Struct)]

    def zero(self) -> dict[str, Any]:
        out = dict(self.constants)
        for name, struct in self.nested:
            out[name] = struct.zero()
        return out


_ZERO: dict[Any, Any] = {"str": "", "int": 0, "bool": False, "dur": 0, "any": None}


def _norm(key: str) -> str:
    return key.replace("_", "").replace("-", "").lower()


# Field types: "str", "int", "bool", "any" (interface{}), "dur" (time.Duration, in ns),
# ("list", T), ("map", T) (map[string]T), ("ptr", Struct) (nil when absent), or a Struct (a value).

MESH_GATEWAY = Struct("MeshGatewayConfig", {"Mode": "str"})
EXPOSE_PATH = Struct("ExposePath", {"ListenerPort": "int", "Path": "str", "LocalPathPort": "int", "Protocol": "str",
                                    "ParsedFromCheck": "bool"})
EXPOSE = Struct("ExposeConfig", {"Checks": "bool", "Paths": ("list", EXPOSE_PATH)})
TRANSPARENT_PROXY = Struct("TransparentProxyConfig", {"OutboundListenerPort": "int", "DialedDirectly": "bool"})
UPSTREAM = Struct("Upstream", {
    "DestinationType": "str", "DestinationNamespace": "str", "DestinationPartition": "str", "DestinationName": "str",
    "Datacenter": "str", "LocalBindAddress": "str", "LocalBindPort": "int", "LocalBindSocketPath": "str",
    "LocalBindSocketMode": "str", "Config": ("map", "any"), "MeshGateway": MESH_GATEWAY, "CentrallyConfigured": "bool"})
PROXY = Struct("ConnectProxyConfig", {
    "DestinationServiceName": "str", "DestinationServiceID": "str", "LocalServiceAddress": "str",
    "LocalServicePort": "int", "LocalServiceSocketPath": "str", "Mode": "str", "TransparentProxy": TRANSPARENT_PROXY,
    "Config": ("map", "any"), "Upstreams": ("list", UPSTREAM), "MeshGateway": MESH_GATEWAY, "Expose": EXPOSE})
_CHECK_TYPE_FIELDS: dict[str, Any] = {
    "CheckID": "str", "Name": "str", "Status": "str", "Notes": "str", "ScriptArgs": ("list", "str"),
    "HTTP": "str", "Header": ("map", ("list", "str")), "Method": "str", "Body": "str", "TCP": "str",
    "Interval": "dur", "AliasNode": "str", "AliasService": "str", "DockerContainerID": "str", "Shell": "str",
    "H2PING": "str", "GRPC": "str", "GRPCUseTLS": "bool", "TLSServerName": "str", "TLSSkipVerify": "bool",
    "Timeout": "dur", "TTL": "dur", "SuccessBeforePassing": "int", "FailuresBeforeCritical": "int",
    "DeregisterCriticalServiceAfter": "dur", "OutputMaxSize": "int"}
CHECK_TYPE = Struct("CheckType", _CHECK_TYPE_FIELDS)
CHECK_DEFINITION = Struct("CheckDefinition", {
    "ID": "str", "ServiceID": "str", "Token": "str", "Namespace": "str", "Partition": "str",
    **{k: v for k, v in _CHECK_TYPE_FIELDS.items() if k != "CheckID"}})
WEIGHTS = Struct("Weights", {"Passing": "int", "Warning": "int"})
SERVICE_ADDRESS = Struct("ServiceAddress", {"Address": "str", "Port": "int"})
CONNECT = Struct("ServiceConnect", {"Native": "bool", "SidecarService": "any"})
SERVICE_DEFINITION = Struct("ServiceDefinition", {
    "Kind": "str", "ID": "str", "Name": "str", "Tags": ("list", "str"), "Address": "str",
    "TaggedAddresses": ("map", SERVICE_ADDRESS), "Meta": ("map", "str"), "Port": "int", "SocketPath": "str",
    "Check": CHECK_TYPE, "Checks": ("list", ("ptr", CHECK_TYPE)), "Weights": ("ptr", WEIGHTS), "Token": "str",
    "EnableTagOverride": "bool", "Proxy": ("ptr", PROXY), "Connect": ("ptr", CONNECT),
    "Namespace": "str", "Partition": "str"})
CHECK_UPDATE = Struct("checkUpdate", {"Status": "str", "Output": "str"})
ACL_LINK = Struct("ACLLink", {"ID": "str", "Name": "str"})
NAMESPACE = Struct("Namespace", {
    "Name": "str", "Description": "str",
    "ACLs": ("ptr", Struct("NamespaceACLConfig", {"PolicyDefaults": ("list", ACL_LINK),
                                                  "RoleDefaults": ("list", ACL_LINK)})),
    "Meta": ("map", "str"), "Partition": "str"})
SERVICE_IDENTITY = Struct("ACLServiceIdentity", {"ServiceName": "str", "Datacenters": ("list", "str")})
ACL_TOKEN = Struct("ACLToken", {
    "AccessorID": "str", "SecretID": "str", "Description": "str", "Policies": ("list", ACL_LINK),
    "Roles": ("list", ACL_LINK), "ServiceIdentities": ("list", SERVICE_IDENTITY), "Local": "bool",
    "AuthMethod": "str", "Namespace": "str"})
ACL_POLICY = Struct("ACLPolicy", {"ID": "str", "Name": "str", "Description": "str", "Rules": "str",
                                  "Datacenters": ("list", "str"), "Namespace": "str"})
LOGIN = Struct("ACLLoginParams", {"AuthMethod": "str", "BearerToken": "str", "Meta": ("map", "str")})

_JSON_TYPE = {str: "string", bool: "bool", int: "number", float: "number", list: "array", dict: "object"}
_GO_TYPE = {"str": "string", "int": "int", "bool": "bool", "dur": "time.Duration"}


def _type_error(value: Any, where: str, expected: Any) -> DecodeError:
    got = _JSON_TYPE.get(type(value), "value")
    want = _GO_TYPE.get(expected, "struct") if isinstance(expected, str) else (
        "[]" if isinstance(expected, tuple) and expected[0] == "list" else
        "map" if isinstance(expected, tuple) else "struct")
    return DecodeError(f"json: cannot unmarshal {got} into Go struct field {where} of type {want}")


_DURATION_NUMBER = re.compile(r"\d*(?:\.\d*)?")
_DURATION_UNIT = re.compile(r"[^\d.]*")
_UNIT_NS = {"ns": 1, "us": 1_000, "µs": 1_000, "μs": 1_000, "ms": 1_000_000, "s": 1_000_000_000,
            "m": 60_000_000_000, "h": 3_600_000_000_000}


def parse_duration(text: str) -> int:
    """Go's time.ParseDuration, in nanoseconds, with its error messages."""
    s = text
    sign = 1
    if s[:1] in ("+", "-"):
        sign = -1 if s[0] == "-" else 1
        s = s[1:]
    if s == "0":
        return 0
    if not s:
        raise DecodeError(f'time: invalid duration "{text}"')
    total = 0.0
    pos = 0
    while pos < len(s):
        number = _DURATION_NUMBER.match(s, pos)
        assert number is not None
        if number.group() in ("", "."):
            raise DecodeError(f'time: invalid duration "{text}"')
        unit = _DURATION_UNIT.match(s, number.end())
        assert unit is not None
        if not unit.group():
            raise DecodeError(f'time: missing unit in duration "{text}"')
        if unit.group() not in _UNIT_NS:
            raise DecodeError(f'time: unknown unit "{unit.group()}" in duration "{text}"')
        total += float(number.group()) * _UNIT_NS[unit.group()]
        pos = unit.end()
    return sign * int(round(total))


def format_duration(ns: int) -> str:
    """Go's Duration.String(): `10s`, `1m30s`, `100000h0m0s`, `1.5ms`."""
    if ns == 0:
        return "0s"
    sign = "-" if ns < 0 else ""
    u = abs(ns)
    if u < 1_000_000_000:
        for unit, size in (("ms", 1_000_000), ("µs", 1_000), ("ns", 1)):
            if u >= size:
                return sign + _trim(u / size) + unit
    hours, rest = divmod(u, 3_600_000_000_000)
    minutes, rest = divmod(rest, 60_000_000_000)
    out = sign
    if hours:
        out += f"{hours}h"
    if hours or minutes:
        out += f"{minutes}m"
    return out + _trim(rest / 1_000_000_000) + "s"


def _trim(value: float) -> str:
    text = f"{value:.9f}".rstrip("0").rstrip(".")
    return text or "0"


def zero(kind: Any) -> Any:
    if isinstance(kind, Struct):
        return kind.zero()
    if isinstance(kind, tuple):
        return None
    return _ZERO[kind]


def decode(value: Any, kind: Any, where: str = "") -> Any:
    """`value` (parsed JSON) decoded as Go would into `kind`."""
    if value is None:
        return zero(kind)
    if isinstance(kind, Struct):
        if not isinstance(value, dict):
            raise _type_error(value, where or kind.name, kind)
        out = zero(kind)
        for key, item in value.items():
            name = kind.lookup.get(_norm(str(key)))
            if name is not None:
                out[name] = decode(item, kind.fields[name], f"{kind.name}.{name}")
        return out
    if isinstance(kind, tuple):
        shape, inner = kind
        if shape == "ptr":
            return decode(value, inner, where)
        if shape == "list":
            if not isinstance(value, list):
                raise _type_error(value, where, kind)
            return [decode(v, inner, where) for v in value]
        if not isinstance(value, dict):
            raise _type_error(value, where, kind)
        return {str(k): decode(v, inner, where) for k, v in value.items()}
    if kind == "any":
        return value
    if kind == "str":
        if not isinstance(value, str):
            raise _type_error(value, where, kind)
        return value
    if kind == "bool":
        if not isinstance(value, bool):
            raise _type_error(value, where, kind)
        return value
    if kind == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            raise _type_error(value, where, kind)
        return value
    if kind == "dur":
        if isinstance(value, str):
            return parse_duration(value)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise _type_error(value, where, kind)
    raise AssertionError(kind)
