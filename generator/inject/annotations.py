"""The single table of `consul.hashicorp.com/` pod annotations the injector reads.

Parsing, validation, unknown-key warnings (with a did-you-mean) and the README's annotation table
all come from `TABLE`. Each row names the `Annotations` field it fills (`parse()` returns that
frozen dataclass: the plan reads attributes, never key strings) and the chart values its default
comes from, so a new annotation is one row here plus its field (a test checks that they match).
Values are parsed strictly: a value the reference would silently mangle or paste into a root shell
script (reference D5, D6) is a 400 that names the annotation and the value.
"""

from __future__ import annotations

import difflib
import functools
import json
import ipaddress
import re
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from typing import Any, Callable, Mapping

from generator.base import quantity, shellwords

PREFIX = "consul.hashicorp.com/"
_GO_TRUE = ("1", "t", "T", "TRUE", "true", "True")
_GO_FALSE = ("0", "f", "F", "FALSE", "false", "False")
_ENV_NAME = re.compile(r"^[-._a-zA-Z][-._a-zA-Z0-9]*$")
_DIGITS = re.compile(r"^[0-9]{1,10}$")  # ASCII only: str.isdigit() also accepts "²" and "٨"
_PORT_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")  # the shape of a container port name
# Bounds on what one pod may ask for, far above real use, so work and output stay small: each
# upstream adds two env vars to every container, each list item a line of the root init script.
MAX_UPSTREAMS = 1000
MAX_LIST_ITEMS = 1000
MAX_ENVOY_ARGS = shellwords.MAX_ARGS
MAX_ENVOY_ARGS_CHARS = shellwords.MAX_CHARS
MAX_TEMPLATES = 32
# Unknown keys get a did-you-mean for the first few only; the rest are counted in one warning.
MAX_UNKNOWN_WARNINGS = 20
_MAX_HINT_KEY = 80  # longer keys are no typo of a known one (the longest is under 45 characters)


@dataclass(frozen=True)
class Upstream:
    """One entry of `connect-service-upstreams`."""

    name: str
    port: int
    datacenter: str = ""
    prepared_query: bool = False
    missing_port: str = ""  # a port name no container has: v0.37 dropped such an entry

    @property
    def env_prefix(self) -> str | None:
        """`<NAME>` of `<NAME>_CONNECT_SERVICE_HOST/PORT`; prepared queries get no env vars."""
        return None if self.prepared_query else self.name.upper().replace("-", "_")


class PodPorts:
    """Container port names of a pod: named ports are looked up across all containers, first wins."""

    def __init__(self, pod: Mapping[str, Any]):
        self.by_name: dict[str, int] = {}
        for container in (pod.get("spec") or {}).get("containers") or []:
            for port in (container or {}).get("ports") or []:
                name = (port or {}).get("name")
                if name and name not in self.by_name and isinstance(port.get("containerPort"), int):
                    self.by_name[name] = port["containerPort"]


class BadValue(ValueError):
    """Why a value is invalid; the caller adds the annotation key and the value."""


def go_int(text: str) -> int | None:
    """Go's `strconv.ParseInt(s, 0, 32)`, which the reference uses for ports (0x50, 010 octal)."""
    body, sign = text, 1
    if body[:1] in ("+", "-"):
        sign, body = (-1 if body[0] == "-" else 1), body[1:]
    base = 10
    if body[:2] in ("0x", "0X"):
        base, body = 16, body[2:]
    elif body[:2] in ("0b", "0B"):
        base, body = 2, body[2:]
    elif body[:2] in ("0o", "0O"):
        base, body = 8, body[2:]
    elif len(body) > 1 and body[0] == "0":
        base, body = 8, body[1:]
    try:
        value = sign * int(body, base) if body and body.isalnum() and body.isascii() else None
    except ValueError:
        return None
    return value if value is not None and -(2**31) <= value < 2**31 else None


def parse_bool(raw: str, _ports: PodPorts | None = None) -> bool:
    if raw in _GO_TRUE:
        return True
    if raw in _GO_FALSE:
        return False
    raise BadValue("must be a boolean (true, false, 1, 0, t, f, TRUE, FALSE, True, False)")


def _port(raw: str, ports: PodPorts | None, low: int, high: int, *, named: bool = True) -> int:
    text = raw.strip()
    value = ports.by_name.get(text) if (named and ports is not None) else None
    if value is None:
        value = go_int(text)
    if value is None:
        what = "a port number or the name of a container port of this pod" if named else "a port number"
        raise BadValue(f"must be {what}")
    if not low <= value <= high:
        raise BadValue(f"port {value} is not in the range {low}-{high}")
    return value


def parse_port(raw: str, ports: PodPorts | None = None) -> int:
    return _port(raw, ports, 1, 65535)


def parse_service_port(raw: str, ports: PodPorts | None = None) -> int:
    """`connect-service-port`: one port (several, comma-separated, came in consul-k8s 0.41)."""
    if "," in raw:
        raise BadValue("several ports per pod (comma-separated, with one connect-service each) came in consul-k8s 0.41; "
                       "this injector follows v0.37: one service port per pod")
    return parse_port(raw, ports)


def parse_unprivileged_port(raw: str, ports: PodPorts | None = None) -> int:
    return _port(raw, ports, 1024, 65535)


def parse_quantity(raw: str, _ports: PodPorts | None = None) -> str:
    try:
        quantity.parse(raw)
    except ValueError as exc:
        raise BadValue(f"not a Kubernetes quantity (such as 100m or 128Mi): {exc}") from None
    return raw


def parse_args(raw: str, _ports: PodPorts | None = None) -> tuple[str, ...]:
    """Split like a shell (exactly as shlex.split), refusing more than MAX_ENVOY_ARGS tokens."""
    try:
        return shellwords.split(raw)
    except shellwords.SplitError as exc:
        raise BadValue(str(exc)) from None


def _items(raw: str, limit: int = MAX_LIST_ITEMS, what: str = "items") -> list[str]:
    items = [item.strip() for item in raw.split(",") if item.strip()]
    if len(items) > limit:
        raise BadValue(f"more than {limit} {what}")
    return items


def parse_port_list(raw: str, _ports: PodPorts | None = None) -> tuple[str, ...]:
    items = _items(raw)
    for item in items:
        if not _DIGITS.match(item) or not 1 <= int(item) <= 65535:
            raise BadValue(f"{_clip(item)!r} is not a port number 1-65535")
    return tuple(items)


def parse_cidr_list(raw: str, _ports: PodPorts | None = None) -> tuple[str, ...]:
    items = _items(raw)
    for item in items:
        try:
            ipaddress.ip_network(item, strict=False)
        except ValueError:
            raise BadValue(f"{_clip(item)!r} is not an IPv4 or IPv6 address or CIDR") from None
    return tuple(items)


def parse_uid_list(raw: str, _ports: PodPorts | None = None) -> tuple[str, ...]:
    items = _items(raw)
    for item in items:
        if not _DIGITS.match(item) or int(item) > 2**32 - 2:
            raise BadValue(f"{_clip(item)!r} is not a user ID (a non-negative integer)")
    return tuple(items)


def parse_upstreams(raw: str, ports: PodPorts | None = None) -> tuple[Upstream, ...]:
    """`svc:port[:dc]`, `svc.ns:port`, `prepared_query:name:port`, comma-separated."""
    upstreams = []
    for entry in _items(raw, MAX_UPSTREAMS, "upstreams"):
        parts = [p.strip() for p in entry.split(":", 2)]
        if parts[0] == "prepared_query":
            if len(parts) != 3 or not parts[1]:
                raise BadValue(f"entry {entry!r} must be prepared_query:<name>:<port>")
            upstreams.append(_upstream(parts[1], _upstream_port(entry, parts[2], ports), prepared_query=True))
            continue
        if len(parts) < 2 or not parts[0]:
            raise BadValue(f"entry {entry!r} must be <service>:<port>[:<datacenter>]")
        if len(parts) == 3 and not parts[2]:
            raise BadValue(f"entry {entry!r} has an empty datacenter")
        upstream = _upstream(parts[0], _upstream_port(entry, parts[1], ports), parts[2] if len(parts) == 3 else "")
        if not _ENV_NAME.match(upstream.env_prefix or ""):
            raise BadValue(f"entry {entry!r}: service name {parts[0]!r} cannot form an environment variable name")
        upstreams.append(upstream)
    return tuple(upstreams)


def _upstream_port(entry: str, text: str, ports: PodPorts | None) -> int | str:
    """The port, or the port name when no container has it (the entry is then dropped, as v0.37 did)."""
    try:
        return parse_port(text, ports)
    except BadValue as exc:
        if ports is not None and _PORT_NAME.match(text) and go_int(text) is None:
            return text
        raise BadValue(f"entry {_clip(entry)!r}: port {_clip(text)!r} {exc}") from None


def _upstream(name: str, port: int | str, datacenter: str = "", prepared_query: bool = False) -> Upstream:
    if isinstance(port, str):
        return Upstream(name, 0, datacenter, prepared_query, missing_port=port)
    return Upstream(name, port, datacenter, prepared_query)


def parse_string(raw: str, _ports: PodPorts | None = None) -> str:
    return raw


_TEMPLATE_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


def parse_template_names(raw: str, _ports: PodPorts | None = None) -> tuple[str, ...]:
    """Names of extra templates, in order; whether each exists is checked against the Config."""
    names = tuple(_items(raw, MAX_TEMPLATES, "template names"))
    for name in names:
        if not _TEMPLATE_NAME.match(name):
            raise BadValue(f"{_clip(name)!r} is not a template name (lower-case letters, digits and -)")
    if len(set(names)) != len(names):
        twice = sorted({name for name in names if names.count(name) > 1})
        raise BadValue(f"names {', '.join(twice)} more than once")
    return names


@dataclass(frozen=True)
class Spec:
    """One annotation: the `Annotations` field it fills, how it is parsed, where its default comes
    from and what the README says of it."""

    key: str
    field: str  # the attribute of `Annotations` that parse() fills
    kind: str
    doc: str
    parse: Callable[[str, PodPorts | None], Any] | None = None  # None: written by injection, or removed
    # The chart values the default comes from (keys of chart/values.yaml); plan, explain and the
    # README read them here.
    values_keys: tuple[str, ...] = ()
    default: str = ""  # the README's Default when no values key gives it
    namespace_label: bool = False  # a namespace label of the same key comes before the values default
    empty_is_unset: bool = False
    removed: str = ""

    @property
    def full(self) -> str:
        return PREFIX + self.key

    @property
    def values_text(self) -> str:
        """The values keys behind the default, as messages name them ("dns.enabled and dns.enableRedirection")."""
        return " and ".join(self.values_keys)

    @property
    def default_column(self) -> str:
        """The README's Default column."""
        if not self.values_keys:
            return self.default
        keys = " and ".join(f"`{key}`" for key in self.values_keys)
        return f"namespace label, then {keys}" if self.namespace_label else keys

    def invalid(self, raw: Any, why: BadValue) -> str:
        """The message for a value this annotation refuses (the same from parse() and decide)."""
        return f'annotation "{self.full}" has invalid value {show(raw)}: {why}'


_PROTOCOL_REMOVED = (
    'the "consul.hashicorp.com/connect-service-protocol" annotation is no longer supported. Instead, '
    "create a ServiceDefaults resource (see www.consul.io/docs/k8s/crds/upgrade-to-crds)"
)
_SYNC_REMOVED = (
    'the "consul.hashicorp.com/connect-sync-period" annotation is no longer supported because '
    "consul-sidecar is no longer injected to periodically register services"
)
META_PREFIX = "service-meta-"
_METRICS = "connectInject.metrics."
_SIDECAR_RESOURCES = "connectInject.sidecarProxy.resources."
_TPROXY = "connectInject.transparentProxy."

# The rows other modules refer to are named where they are defined (NAME := Spec(...)), so a reader
# names a row by attribute, never by a key string.
TABLE: tuple[Spec, ...] = (
    CONNECT_INJECT := Spec("connect-inject", "connect_inject", "bool", "Inject this pod (`true`) or never (`false`).", parse_bool, values_keys=("connectInject.default",)),
    INJECT_STATUS := Spec("connect-inject-status", "connect_inject_status", "written", "`injected` once injected; a pod carrying it is not injected again.", default="set on injection"),
    Spec("connect-service", "connect_service", "string", "Consul service name; with ACLs also passed to `connect-init` as `-service-name`.", parse_string, default="the Kubernetes Service name"),
    CONNECT_SERVICE_PORT := Spec("connect-service-port", "connect_service_port", "port or port name", "Port the application listens on; also the default `service-metrics-port`.", parse_service_port, default="first port of the first container (written if absent)", empty_is_unset=True),
    CONNECT_SERVICE_UPSTREAMS := Spec("connect-service-upstreams", "connect_service_upstreams", "upstream list", "Comma-separated `service:port[:datacenter]`, `service.namespace:port` or `prepared_query:name:port`; each service gets `<NAME>_CONNECT_SERVICE_HOST`/`_PORT` env vars.", parse_upstreams, default="none"),
    Spec("service-tags", "service_tags", "string", "Comma-separated tags of the Consul service and its proxy.", parse_string, default="none"),
    Spec("connect-service-tags", "connect_service_tags", "string", "Deprecated alias of `service-tags` (appended after them).", parse_string, default="none"),
    SERVICE_META := Spec(META_PREFIX, "service_meta", "string", "`service-meta-<key>`: meta `<key>` of the Consul service and its proxy.", parse_string, default="none"),
    SIDECAR_CPU_LIMIT := Spec("sidecar-proxy-cpu-limit", "sidecar_proxy_cpu_limit", "quantity", "CPU limit of `envoy-sidecar`.", parse_quantity, values_keys=(_SIDECAR_RESOURCES + "limits.cpu",)),
    SIDECAR_CPU_REQUEST := Spec("sidecar-proxy-cpu-request", "sidecar_proxy_cpu_request", "quantity", "CPU request of `envoy-sidecar`.", parse_quantity, values_keys=(_SIDECAR_RESOURCES + "requests.cpu",)),
    SIDECAR_MEMORY_LIMIT := Spec("sidecar-proxy-memory-limit", "sidecar_proxy_memory_limit", "quantity", "Memory limit of `envoy-sidecar`.", parse_quantity, values_keys=(_SIDECAR_RESOURCES + "limits.memory",)),
    SIDECAR_MEMORY_REQUEST := Spec("sidecar-proxy-memory-request", "sidecar_proxy_memory_request", "quantity", "Memory request of `envoy-sidecar`.", parse_quantity, values_keys=(_SIDECAR_RESOURCES + "requests.memory",)),
    Spec("envoy-extra-args", "envoy_extra_args", "arguments", "Extra Envoy arguments, split like a shell; replaces the values default (even when empty).", parse_args, values_keys=("connectInject.envoyExtraArgs",)),
    ENABLE_METRICS := Spec("enable-metrics", "enable_metrics", "bool", "Envoy Prometheus listener and `prometheus.io/*` annotations.", parse_bool, values_keys=(_METRICS + "defaultEnabled",), empty_is_unset=True),
    ENABLE_METRICS_MERGING := Spec("enable-metrics-merging", "enable_metrics_merging", "bool", "Run `consul-sidecar` to serve Envoy and application metrics merged.", parse_bool, values_keys=(_METRICS + "defaultEnableMerging",), empty_is_unset=True),
    MERGED_METRICS_PORT := Spec("merged-metrics-port", "merged_metrics_port", "port 1024-65535", "Port of the merged metrics server.", parse_unprivileged_port, values_keys=(_METRICS + "defaultMergedMetricsPort",), empty_is_unset=True),
    Spec("prometheus-scrape-port", "prometheus_scrape_port", "port 1024-65535", "Port Prometheus scrapes (`prometheus.io/port`).", parse_unprivileged_port, values_keys=(_METRICS + "defaultPrometheusScrapePort",), empty_is_unset=True),
    Spec("prometheus-scrape-path", "prometheus_scrape_path", "string", "Path Prometheus scrapes (`prometheus.io/path`).", parse_string, values_keys=(_METRICS + "defaultPrometheusScrapePath",), empty_is_unset=True),
    SERVICE_METRICS_PORT := Spec("service-metrics-port", "service_metrics_port", "port or port name", "Port where the application serves its metrics (for merging).", parse_port, default="`connect-service-port`", empty_is_unset=True),
    Spec("service-metrics-path", "service_metrics_path", "string", "Path where the application serves its metrics.", parse_string, default="`/metrics`", empty_is_unset=True),
    TRANSPARENT_PROXY := Spec("transparent-proxy", "transparent_proxy", "bool", "Redirect all pod traffic through Envoy.", parse_bool, values_keys=(_TPROXY + "defaultEnabled",), namespace_label=True),
    OVERWRITE_PROBES := Spec("transparent-proxy-overwrite-probes", "transparent_proxy_overwrite_probes", "bool", "Point HTTP probes at Envoy-exposed ports 20300+i, 20400+i, 20500+i (transparent proxy only).", parse_bool, values_keys=(_TPROXY + "defaultOverwriteProbes",)),
    Spec("transparent-proxy-exclude-inbound-ports", "transparent_proxy_exclude_inbound_ports", "port list", "Inbound ports not redirected to Envoy.", parse_port_list, default="none"),
    Spec("transparent-proxy-exclude-outbound-ports", "transparent_proxy_exclude_outbound_ports", "port list", "Outbound ports not redirected to Envoy.", parse_port_list, default="none"),
    Spec("transparent-proxy-exclude-outbound-cidrs", "transparent_proxy_exclude_outbound_cidrs", "CIDR list", "Outbound addresses or CIDRs not redirected to Envoy.", parse_cidr_list, default="none"),
    Spec("transparent-proxy-exclude-uids", "transparent_proxy_exclude_uids", "UID list", "User IDs whose traffic is not redirected.", parse_uid_list, default="none"),
    NATIVE_SIDECAR := Spec("native-sidecar", "native_sidecar", "bool", "Inject `envoy-sidecar` (and `consul-sidecar`) as native sidecars: init containers with `restartPolicy: Always` (Kubernetes 1.29+), so Jobs complete.", parse_bool, values_keys=("connectInject.sidecarProxy.nativeSidecar",)),
    EXTRA_TEMPLATES := Spec("extra-templates", "extra_templates", "template list", "Comma-separated names of extra templates from `connectInject.templates` to apply after the built-ins, in order.", parse_template_names, default="none"),
    CONSUL_DNS := Spec("consul-dns", "consul_dns", "bool", "Send the pod's DNS to Consul DNS (transparent proxy only).", parse_bool, values_keys=("dns.enabled", "dns.enableRedirection"), namespace_label=True),
    ORIGINAL_POD := Spec("original-pod", "original_pod", "written", "The pod as received, as JSON (read by the endpoints controller).", default="set on injection"),
    CONSUL_NAMESPACE := Spec("consul-namespace", "consul_namespace", "written", "The Consul namespace the pod is registered in.", default="set with Consul namespaces"),
    Spec("connect-service-protocol", "connect_service_protocol", "removed", "Removed: a pod carrying it is refused.", default="-", removed=_PROTOCOL_REMOVED),
    Spec("connect-sync-period", "connect_sync_period", "removed", "Removed: a pod carrying it is refused.", default="-", removed=_SYNC_REMOVED),
)
BY_KEY: dict[str, Spec] = {spec.key: spec for spec in TABLE}

# Annotations of later consul-k8s releases: known, so a user gets "not supported" instead of a typo hint.
LATER: dict[str, str] = {
    "kubernetes-service": "0.43", "connect-inject-mount-volume": "0.43", "consul-envoy-proxy-concurrency": "0.45",
    "consul-sidecar-cpu-limit": "0.40", "consul-sidecar-cpu-request": "0.40", "consul-sidecar-memory-limit": "0.40",
    "consul-sidecar-memory-request": "0.40", "prometheus-ca-file": "0.46", "prometheus-ca-path": "0.46",
    "prometheus-cert-file": "0.46", "prometheus-key-file": "0.46", "consul-sidecar-user-volume": "0.46",
    "consul-sidecar-user-volume-mount": "0.46", "transparent-proxy-status": "0.48", "redirect-traffic-config": "0.48",
    "use-proxy-health-check": "1.1", "enable-sidecar-proxy-lifecycle": "1.1",
    "enable-sidecar-proxy-lifecycle-shutdown-drain-listeners": "1.1", "sidecar-proxy-lifecycle-shutdown-grace-period-seconds": "1.1",
    "sidecar-proxy-lifecycle-startup-grace-period-seconds": "1.1", "sidecar-proxy-lifecycle-graceful-port": "1.1",
    "sidecar-proxy-lifecycle-graceful-shutdown-path": "1.1", "sidecar-proxy-lifecycle-graceful-startup-path": "1.1",
    "sidecar-proxy-startup-failure-seconds": "1.x", "sidecar-proxy-liveness-failure-seconds": "1.x",
    "proxy-config-map": "1.x", "gateway-kind": "1.x", "gateway-consul-service-name": "1.x",
    "mesh-gateway-container-port": "1.x", "gateway-wan-address-source": "1.x", "gateway-wan-address-static": "1.x",
    "gateway-wan-port": "1.x", "gateway-namespace": "1.x", "peering-version": "1.x", "consul-k8s-version": "1.x",
    "connect-k8s-version": "1.x", "enable-consul-dataplane-as-sidecar": "1.x",
}
_KNOWN_KEYS = [spec.key for spec in TABLE if spec.key != META_PREFIX]
# Written by the chart on its own pods; not for pod authors, but not unknown either.
OTHER_KNOWN = ("config-checksum",)


@dataclass(frozen=True)
class Annotations:
    """A pod's `consul.hashicorp.com/` annotations, parsed: one attribute per TABLE row (its `field`),
    None when the pod does not set it (or sets an empty-means-unset one to "", or sets a bad value:
    `errors` says why). The plan decides which errors are fatal (v0.37 never read some values in
    some configurations). Written and removed annotations hold their text as received."""

    connect_inject: bool | None = None
    connect_inject_status: str | None = None
    connect_service: str | None = None
    connect_service_port: int | None = None
    connect_service_upstreams: tuple[Upstream, ...] | None = None
    service_tags: str | None = None
    connect_service_tags: str | None = None
    service_meta: Mapping[str, str] | None = None  # `service-meta-<key>`: <key> → value
    sidecar_proxy_cpu_limit: str | None = None
    sidecar_proxy_cpu_request: str | None = None
    sidecar_proxy_memory_limit: str | None = None
    sidecar_proxy_memory_request: str | None = None
    envoy_extra_args: tuple[str, ...] | None = None
    enable_metrics: bool | None = None
    enable_metrics_merging: bool | None = None
    merged_metrics_port: int | None = None
    prometheus_scrape_port: int | None = None
    prometheus_scrape_path: str | None = None
    service_metrics_port: int | None = None
    service_metrics_path: str | None = None
    transparent_proxy: bool | None = None
    transparent_proxy_overwrite_probes: bool | None = None
    transparent_proxy_exclude_inbound_ports: tuple[str, ...] | None = None
    transparent_proxy_exclude_outbound_ports: tuple[str, ...] | None = None
    transparent_proxy_exclude_outbound_cidrs: tuple[str, ...] | None = None
    transparent_proxy_exclude_uids: tuple[str, ...] | None = None
    native_sidecar: bool | None = None
    extra_templates: tuple[str, ...] | None = None
    consul_dns: bool | None = None
    original_pod: str | None = None
    consul_namespace: str | None = None
    connect_service_protocol: str | None = None
    connect_sync_period: str | None = None
    # Not annotations: why values were refused (row key → message, in the pod's order), and the
    # pod's annotations as received (read-only; shared, not copied).
    errors: Mapping[str, str] = dataclass_field(default_factory=dict)
    raw: Mapping[str, str] = dataclass_field(default_factory=dict)

    def given(self, spec: Spec) -> bool:
        """Whether the pod carries the annotation at all (even empty, or with a bad value)."""
        return spec.full in self.raw


NOT_ANNOTATIONS = ("errors", "raw")  # the Annotations fields no TABLE row fills
_UNSET: dict[str, Any] = {spec.field: None for spec in TABLE}


def _annotations(values: dict[str, Any], errors: dict[str, str], raw: Mapping[str, str]) -> Annotations:
    """An Annotations holding `values` (field → parsed value), every other field None.

    The same object as `Annotations(**values, errors=errors, raw=raw)` (a test checks it), built
    without the generated __init__: a frozen dataclass's __init__ sets each of the 35 fields through
    object.__setattr__, which costs more than parsing a typical pod's annotations does."""
    parsed = object.__new__(Annotations)
    state = parsed.__dict__
    state.update(_UNSET)
    state.update(values)
    state["errors"] = errors
    state["raw"] = raw
    return parsed


def parse(annotations: Mapping[str, str], pod: Mapping[str, Any]) -> Annotations:
    """Parse every known annotation present, recording each bad key and value in `errors`."""
    ports = PodPorts(pod)
    values: dict[str, Any] = {}
    errors: dict[str, str] = {}
    meta: dict[str, str] | None = None
    for full, raw in annotations.items():
        if not full.startswith(PREFIX):
            continue
        key = full[len(PREFIX) :]
        spec = BY_KEY.get(key)
        if spec is None:
            if key.startswith(META_PREFIX):
                if meta is None:
                    meta = values[SERVICE_META.field] = {}
                meta[key[len(META_PREFIX) :]] = raw if isinstance(raw, str) else str(raw)
            continue
        if spec.parse is None:  # written by injection, or removed (refused before parsing)
            values[spec.field] = raw
            continue
        if spec is SERVICE_META or (spec.empty_is_unset and raw == ""):
            continue  # a bare `service-meta-` has no meta key: an error, below
        try:
            values[spec.field] = spec.parse(raw if isinstance(raw, str) else str(raw), ports)
        except BadValue as exc:
            errors[spec.key] = spec.invalid(raw, exc)
    if SERVICE_META.full in annotations:
        errors[SERVICE_META.key] = f'annotation "{SERVICE_META.full}" has no meta key after "{META_PREFIX}"'
    return _annotations(values, errors, annotations)


def removed_error(annotations: Mapping[str, str]) -> str | None:
    """The reference's exact refusal for the removed annotations (checked before anything else)."""
    for spec in TABLE:
        if spec.removed and spec.full in annotations:
            return spec.removed
    return None


def unknown_warnings(annotations: Mapping[str, str], where: str = "") -> list[str]:
    """A warning per unrecognised `consul.hashicorp.com/` key, with the closest known key.

    Bounded: only the first MAX_UNKNOWN_WARNINGS keys are examined for a hint (difflib is
    quadratic in key length, and 60,000 keys once took 27 s); the rest are counted in one line."""
    warnings: list[str] = []
    more = 0
    place = f" on {where}" if where else ""
    for full in annotations:
        if not isinstance(full, str) or not full.startswith(PREFIX):
            continue
        key = full[len(PREFIX) :]
        if key in BY_KEY or key in OTHER_KNOWN or (key.startswith(META_PREFIX) and key != META_PREFIX):
            continue
        if len(warnings) == MAX_UNKNOWN_WARNINGS:
            more += 1
            continue
        if key in LATER:
            warnings.append(f'annotation "{full}"{place} is not supported by this injector (it arrived in consul-k8s {LATER[key]}) and has no effect')
            continue
        hint = _hint(key) if len(key) <= _MAX_HINT_KEY else None
        suggestion = f'; did you mean "{PREFIX}{hint}"?' if hint else ""
        warnings.append(f'unknown annotation {show(full)}{place} has no effect{suggestion}')
    if more:
        warnings.append(f"{more} more unknown {PREFIX} annotations{place} have no effect")
    return warnings


@functools.lru_cache(maxsize=1024)
def _hint(key: str) -> str | None:
    """The known key `key` is a typo of, if any (pods of one workload repeat the same typos)."""
    hint = difflib.get_close_matches(key, _KNOWN_KEYS, n=1, cutoff=0.8)
    return hint[0] if hint else None


def markdown_table() -> str:
    """The README's annotation reference, generated so it cannot drift from the code."""
    rows = ["| Annotation | Type | Default | Meaning |", "|---|---|---|---|"]
    for spec in TABLE:
        name = f"`{spec.full}<key>`" if spec.key == META_PREFIX else f"`{spec.full}`"
        rows.append(f"| {name} | {spec.kind} | {spec.default_column} | {spec.doc} |")
    return "\n".join(rows)


# JSON escapes C0 controls, quotes and backslashes; these it leaves raw, yet they break or reorder
# a line on a terminal: DEL, C1 controls, the Unicode line separators and the bidi controls.
_UNPRINTABLE = re.compile("[\x7f-\x9f\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def show(raw: Any) -> str:
    """A value for a one-line message: JSON (a string double-quoted), with control and
    line-breaking characters escaped, cut to a readable length. Every denial, warning and
    check-values line shows a bad value this way."""
    text = json.dumps(_clip(raw) if isinstance(raw, str) else raw, ensure_ascii=False, default=str)
    text = _UNPRINTABLE.sub(lambda m: "\\u%04x" % ord(m.group()), text)
    return text if isinstance(raw, str) else _clip(text)


def _clip(text: str, limit: int = 200) -> str:
    """`text`, or its first `limit` characters and how long it was: messages stay short."""
    return text if len(text) <= limit else f"{text[:limit]}… ({len(text)} characters)"


if __name__ == "__main__":
    print(markdown_table())
