"""The single table of `consul.hashicorp.com/` pod annotations the injector reads.

Parsing, validation, unknown-key warnings (with a did-you-mean) and the README's annotation table
all come from `TABLE`, so a new annotation is one row here. Values are parsed strictly: a value the
reference would silently mangle or paste into a root shell script (reference D5, D6) is a 400 that
names the annotation and the value.
"""

from __future__ import annotations

import difflib
import functools
import json
import ipaddress
import re
from dataclasses import dataclass
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
    """One annotation: how it is parsed and what the README says of it."""

    key: str
    kind: str
    default: str
    doc: str
    parse: Callable[[str, PodPorts | None], Any] | None = None
    empty_is_unset: bool = False
    removed: str = ""

    @property
    def full(self) -> str:
        return PREFIX + self.key


_PROTOCOL_REMOVED = (
    'the "consul.hashicorp.com/connect-service-protocol" annotation is no longer supported. Instead, '
    "create a ServiceDefaults resource (see www.consul.io/docs/k8s/crds/upgrade-to-crds)"
)
_SYNC_REMOVED = (
    'the "consul.hashicorp.com/connect-sync-period" annotation is no longer supported because '
    "consul-sidecar is no longer injected to periodically register services"
)

TABLE: tuple[Spec, ...] = (
    Spec("connect-inject", "bool", "`connectInject.default`", "Inject this pod (`true`) or never (`false`).", parse_bool),
    Spec("connect-inject-status", "written", "set on injection", "`injected` once injected; a pod carrying it is not injected again."),
    Spec("connect-service", "string", "the Kubernetes Service name", "Consul service name; with ACLs also passed to `connect-init` as `-service-name`.", parse_string),
    Spec("connect-service-port", "port or port name", "first port of the first container (written if absent)", "Port the application listens on; also the default `service-metrics-port`.", parse_service_port, empty_is_unset=True),
    Spec("connect-service-upstreams", "upstream list", "none", "Comma-separated `service:port[:datacenter]`, `service.namespace:port` or `prepared_query:name:port`; each service gets `<NAME>_CONNECT_SERVICE_HOST`/`_PORT` env vars.", parse_upstreams),
    Spec("service-tags", "string", "none", "Comma-separated tags of the Consul service and its proxy.", parse_string),
    Spec("connect-service-tags", "string", "none", "Deprecated alias of `service-tags` (appended after them).", parse_string),
    Spec("service-meta-", "string", "none", "`service-meta-<key>`: meta `<key>` of the Consul service and its proxy.", parse_string),
    Spec("sidecar-proxy-cpu-limit", "quantity", "`connectInject.sidecarProxy.resources.limits.cpu`", "CPU limit of `envoy-sidecar`.", parse_quantity),
    Spec("sidecar-proxy-cpu-request", "quantity", "`connectInject.sidecarProxy.resources.requests.cpu`", "CPU request of `envoy-sidecar`.", parse_quantity),
    Spec("sidecar-proxy-memory-limit", "quantity", "`connectInject.sidecarProxy.resources.limits.memory`", "Memory limit of `envoy-sidecar`.", parse_quantity),
    Spec("sidecar-proxy-memory-request", "quantity", "`connectInject.sidecarProxy.resources.requests.memory`", "Memory request of `envoy-sidecar`.", parse_quantity),
    Spec("envoy-extra-args", "arguments", "`connectInject.envoyExtraArgs`", "Extra Envoy arguments, split like a shell; replaces the values default (even when empty).", parse_args),
    Spec("enable-metrics", "bool", "`connectInject.metrics.defaultEnabled`", "Envoy Prometheus listener and `prometheus.io/*` annotations.", parse_bool, empty_is_unset=True),
    Spec("enable-metrics-merging", "bool", "`connectInject.metrics.defaultEnableMerging`", "Run `consul-sidecar` to serve Envoy and application metrics merged.", parse_bool, empty_is_unset=True),
    Spec("merged-metrics-port", "port 1024-65535", "`connectInject.metrics.defaultMergedMetricsPort`", "Port of the merged metrics server.", parse_unprivileged_port, empty_is_unset=True),
    Spec("prometheus-scrape-port", "port 1024-65535", "`connectInject.metrics.defaultPrometheusScrapePort`", "Port Prometheus scrapes (`prometheus.io/port`).", parse_unprivileged_port, empty_is_unset=True),
    Spec("prometheus-scrape-path", "string", "`connectInject.metrics.defaultPrometheusScrapePath`", "Path Prometheus scrapes (`prometheus.io/path`).", parse_string, empty_is_unset=True),
    Spec("service-metrics-port", "port or port name", "`connect-service-port`", "Port where the application serves its metrics (for merging).", parse_port, empty_is_unset=True),
    Spec("service-metrics-path", "string", "`/metrics`", "Path where the application serves its metrics.", parse_string, empty_is_unset=True),
    Spec("transparent-proxy", "bool", "namespace label, then `connectInject.transparentProxy.defaultEnabled`", "Redirect all pod traffic through Envoy.", parse_bool),
    Spec("transparent-proxy-overwrite-probes", "bool", "`connectInject.transparentProxy.defaultOverwriteProbes`", "Point HTTP probes at Envoy-exposed ports 20300+i, 20400+i, 20500+i (transparent proxy only).", parse_bool),
    Spec("transparent-proxy-exclude-inbound-ports", "port list", "none", "Inbound ports not redirected to Envoy.", parse_port_list),
    Spec("transparent-proxy-exclude-outbound-ports", "port list", "none", "Outbound ports not redirected to Envoy.", parse_port_list),
    Spec("transparent-proxy-exclude-outbound-cidrs", "CIDR list", "none", "Outbound addresses or CIDRs not redirected to Envoy.", parse_cidr_list),
    Spec("transparent-proxy-exclude-uids", "UID list", "none", "User IDs whose traffic is not redirected.", parse_uid_list),
    Spec("native-sidecar", "bool", "`connectInject.sidecarProxy.nativeSidecar`", "Inject `envoy-sidecar` (and `consul-sidecar`) as native sidecars: init containers with `restartPolicy: Always` (Kubernetes 1.29+), so Jobs complete.", parse_bool),
    Spec("extra-templates", "template list", "none", "Comma-separated names of extra templates from `connectInject.templates` to apply after the built-ins, in order.", parse_template_names),
    Spec("consul-dns", "bool", "namespace label, then `dns.enabled` and `dns.enableRedirection`", "Send the pod's DNS to Consul DNS (transparent proxy only).", parse_bool),
    Spec("original-pod", "written", "set on injection", "The pod as received, as JSON (read by the endpoints controller)."),
    Spec("consul-namespace", "written", "set with Consul namespaces", "The Consul namespace the pod is registered in."),
    Spec("connect-service-protocol", "removed", "-", "Removed: a pod carrying it is refused.", removed=_PROTOCOL_REMOVED),
    Spec("connect-sync-period", "removed", "-", "Removed: a pod carrying it is refused.", removed=_SYNC_REMOVED),
)
BY_KEY: dict[str, Spec] = {spec.key: spec for spec in TABLE}
META_PREFIX = "service-meta-"

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


class Parsed(dict):
    """Annotation keys (without the prefix) to parsed values; absent or empty-means-unset
    annotations are left out. `errors` holds, per key, why a value was refused: the plan decides
    which are fatal (v0.37 never read some values in some configurations)."""

    def __init__(self) -> None:
        super().__init__()
        self.errors: dict[str, str] = {}


def parse(annotations: Mapping[str, str], pod: Mapping[str, Any]) -> Parsed:
    """Parse every known annotation present, recording each bad key and value in `errors`."""
    ports = PodPorts(pod)
    parsed = Parsed()
    errors = parsed.errors
    for full, raw in annotations.items():
        if not full.startswith(PREFIX):
            continue
        spec = BY_KEY.get(full[len(PREFIX) :])
        if spec is None or spec.parse is None or (spec.empty_is_unset and raw == ""):
            continue
        try:
            parsed[spec.key] = spec.parse(raw if isinstance(raw, str) else str(raw), ports)
        except BadValue as exc:
            errors[spec.key] = f'annotation "{full}" has invalid value {show(raw)}: {exc}'
    if PREFIX + META_PREFIX in annotations:
        errors[META_PREFIX] = f'annotation "{PREFIX}{META_PREFIX}" has no meta key after "{META_PREFIX}"'
    return parsed


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
    warnings = []
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
        rows.append(f"| {name} | {spec.kind} | {spec.default} | {spec.doc} |")
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
