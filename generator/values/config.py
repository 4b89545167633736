"""Values → one immutable Config, validated before any pod is touched.

The chart's `values.yaml` defaults, the user's values files and `--set` are merged as Helm merges
them (see helmvalues), checked against `values-schema.yaml` (yamale) and against the chart's
cross-key `fail` rules, and turned into the few settings the engine needs. The webhook (which gets
the chart's merged values as one JSON file) and the CLI go through the same `load()`, so they
accept and refuse the same values with the same key named.
"""

from __future__ import annotations

import json
import functools
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import yamale
import yaml

from generator.values import chartkeys, helmvalues
from generator.base import consulns, paths, quantity, shellwords, yamlio
from generator.base.errors import ConfigError

RESERVED_CONSUL_NAMES = ("system", "universal", "consul", "operator", "root")
_CENTRAL_CONFIG_MIGRATE = "instead you must migrate to CRDs (see www.consul.io/docs/k8s/crds/upgrade-to-crds)"


@dataclass(frozen=True)
class Resources:
    """Requests and limits of one injected container; only the fields that are set."""

    requests: Mapping[str, str] = field(default_factory=dict)
    limits: Mapping[str, str] = field(default_factory=dict)

    def as_dict(self) -> dict:
        out: dict = {}
        if self.limits:
            out["limits"] = dict(self.limits)
        if self.requests:
            out["requests"] = dict(self.requests)
        return out


@dataclass(frozen=True)
class Config:
    """Everything the engine reads from values and the environment; nothing else is hidden."""

    values: Mapping[str, Any]
    release_name: str
    fullname: str
    consul_image: str
    consul_k8s_image: str
    envoy_image: str
    default_inject: bool
    allow_namespaces: frozenset[str]
    deny_namespaces: frozenset[str]
    tproxy_default: bool
    overwrite_probes_default: bool
    consul_dns_default: bool
    dns_env_var: str
    dns_ip: str | None
    metrics_default: bool
    metrics_default_key: str  # the values key that decided metrics_default (explain names it)
    merging_default: bool
    merged_metrics_port: int
    prometheus_scrape_port: int
    prometheus_scrape_path: str
    envoy_extra_args: tuple[str, ...] | None
    auth_method: str
    enable_namespaces: bool
    destination_namespace: str
    mirroring: bool
    mirroring_prefix: str
    partition: str
    # With managed ACLs and Consul namespaces, the policy the controllers attach to the Consul
    # namespaces they create (the Consul chart's server-acl-init creates it), else "".
    cross_namespace_policy: str
    # global.datacenter: the config-entry controller stamps it into every entry's Meta.
    datacenter: str
    openshift: bool
    log_level: str
    log_json: bool
    ca_cert: str | None
    sidecar_resources: Resources
    init_resources: Resources
    consul_sidecar_resources: Resources
    native_sidecar_default: bool
    image_override_namespaces: frozenset[str]
    # The compiled templates (render.Templates), set by engine.load(); None in bare settings.
    templates: Any = field(default=None, repr=False, compare=False)

    def consul_namespace(self, k8s_namespace: str) -> str:
        """The Consul namespace a pod of `k8s_namespace` is registered in ("" without namespaces)."""
        return consulns.consul_namespace(k8s_namespace, enabled=self.enable_namespaces,
                                         destination=self.destination_namespace, mirroring=self.mirroring,
                                         prefix=self.mirroring_prefix)


CROSS_NAMESPACE_POLICY = "cross-namespace-policy"  # the name the Consul chart's ACL setup gives it


def read_values_file(path: str | Path) -> dict:
    """One `-f` file; an empty file is an empty map, anything but a map is an error."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read values file: {exc.strerror or exc}"]) from exc
    try:
        data = yamlio.load(text)
    except yaml.YAMLError as exc:
        raise ConfigError([f"{path}: not valid YAML: {_one_line(str(exc))}"]) from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError([f"{path}: a values file must be a YAML map, got {type(data).__name__}"])
    return data


def merged_values(values_files: Sequence[str | Path] = (), sets: Sequence[str] = (), chart_defaults: bool = True) -> dict:
    """Chart defaults, then each values file in order, then `--set`, merged as Helm does.

    `chart_defaults=False` is for values Helm has already merged (the chart's ConfigMap): laying
    the defaults under them again would bring back keys the user deleted with `null`."""
    user: dict = {}
    for path in values_files:
        user = helmvalues.merge(user, read_values_file(path))
    for expr in sets:
        try:
            user = helmvalues.merge(user, helmvalues.parse_set(expr))
        except helmvalues.SetError as exc:
            raise ConfigError([str(exc)]) from exc
    return helmvalues.coalesce(read_values_file(paths.CHART_VALUES) if chart_defaults else {}, user)


_SCHEMA: Any = None


def schema_problems(values: dict, ignored: list[str] | None = None) -> list[str]:
    """One `path: message` line per path; the alternatives of an `any()` are said in one line
    (`client.enabled: expected a boolean or "-", got "true" (a string)`).

    A key this chart does not know but some Consul chart version had is not a problem: it is
    appended to `ignored` (with the versions) and its subtree is checked for typos."""
    global _SCHEMA
    if _SCHEMA is None:
        _SCHEMA = yamale.make_schema(str(paths.VALUES_SCHEMA))
    try:
        yamale.validate(_SCHEMA, [(values, "values")], strict=True, _raise_error=True)
    except yamale.YamaleError as exc:
        by_path: dict[str, list[str]] = {}
        for result in exc.results:
            for line in result.errors:
                path, _, message = line.partition(": ")
                by_path.setdefault(path, []).append(message)
        problems = []
        for path, messages in by_path.items():
            if messages == ["Unexpected element"]:
                problems += _foreign_key(path, values, ignored)
            else:
                problems.append(_schema_line(path, messages, values))
        return problems
    return []


def _foreign_key(path: str, values: Mapping[str, Any], ignored: list[str] | None) -> list[str]:
    """A key outside this chart's schema: another Consul chart version's (ignored), or a typo."""
    kind = chartkeys.kind(path)
    if kind == "unknown":
        parent = path.rpartition(".")[0]
        hint = chartkeys.hint(path, _schema_siblings(parent))
        suggestion = f'; did you mean "{parent + "." if parent else ""}{hint}"?' if hint else ""
        return [f"{path}: not a key of this chart nor of any Consul chart version (v0.30.0 to v1.9.11){suggestion}"]
    if ignored is not None:
        ignored.append(f"{path}: not used by this chart, ignored (a key of the Consul chart {chartkeys.versions(path)})")
    problems = []
    for bad in chartkeys.unknown_under(path, _get(values, path)):
        hint = chartkeys.hint(bad)
        suggestion = f'; did you mean "{bad.rpartition(".")[0]}.{hint}"?' if hint else ""
        problems.append(f"{bad}: not a key of any Consul chart version (v0.30.0 to v1.9.11){suggestion}")
    return problems


def _schema_siblings(parent: str) -> frozenset[str]:
    """Keys this chart's own defaults have at `parent` (new keys are not in the Consul chart's)."""
    defaults = read_values_file(paths.CHART_VALUES)
    node = _get(defaults, parent) if parent else defaults
    return frozenset(node) if isinstance(node, Mapping) else frozenset()


_EXPECTED = re.compile(r"^'.*' is not a (?P<kind>.+?)\.?$|^'.*' not in \((?P<enum>.*?),?\)$", re.S)
_KINDS = {"bool": "a boolean", "int": "an integer", "num": "a number", "null": "null", "str": "a string",
          "map": "a map", "list": "a list", "day": "a date", "timestamp": "a timestamp"}


def _schema_line(path: str, messages: list[str], values: Mapping[str, Any]) -> str:
    """yamale's messages for one path as one line; a type mismatch names what was expected and got."""
    expected = []
    for message in messages:
        match = _EXPECTED.match(message)
        if not match:
            return f"{path}: {messages[0]}"
        if match["enum"] is not None:
            expected.append(" or ".join(json.dumps(item.strip().strip("'")) for item in match["enum"].split(",") if item.strip()))
        else:
            expected.append(_KINDS.get(match["kind"], match["kind"]))
    got = _get(values, path, _MISSING) if "." in path or path in values else _MISSING
    shown = "" if got is _MISSING else f", got {json.dumps(got, default=str)} ({_KINDS.get(type(got).__name__, type(got).__name__)})"
    return f"{path}: expected {' or '.join(dict.fromkeys(expected))}{shown}"


_MISSING = object()


def load(
    values_files: Sequence[str | Path] = (),
    sets: Sequence[str] = (),
    *,
    release_name: str = "consul",
    environ: Mapping[str, str] | None = None,
    chart_defaults: bool = True,
    check_only: list[str] | None = None,
) -> Config:
    """Merge and validate: raise ConfigError listing every problem, or return the settings (a
    Config without templates: `engine.load()` compiles and self-tests those, so this module, the
    values layer, imports nothing of the engine).

    `check_only` (a list, for check-values) judges the values as the chart does: its cross-key
    rules apply only when it installs the injector (connectInject.enabled), and problems of the
    environment rather than the values (TLS on but no CONSUL_CACERT file) are appended to the
    list as warnings instead of failing."""
    env = os.environ if environ is None else environ
    values = merged_values(values_files, sets, chart_defaults)
    problems = schema_problems(values, check_only)
    chart_installs_injector = tristate(setting(values, "connectInject.enabled"), setting(values, "global.enabled"))
    rules = cross_key_problems(values) if check_only is None or chart_installs_injector else []
    problems += [p for p in rules if p.split(":", 1)[0] not in {q.split(":", 1)[0] for q in problems}]
    if problems:  # every problem in one run: a typo must not hide a cross-key rule
        raise ConfigError(problems)
    resources = {
        "sidecar": _resources(values, "connectInject.sidecarProxy.resources", problems),
        "init": _resources(values, "connectInject.initContainer.resources", problems),
        "consul_sidecar": _resources(values, "global.consulSidecarContainer.resources", problems),
    }
    extra_args = _envoy_extra_args(_get(values, "connectInject.envoyExtraArgs"), problems)
    env_problems: list[str] = []
    ca_cert = _ca_cert(values, env, env_problems)
    if check_only is None:
        problems += env_problems
    else:
        check_only.extend(f"{p} (the webhook needs it at run time; the values are fine)" for p in env_problems)
    if problems:
        raise ConfigError(problems)
    return _build(values, release_name, env, resources, extra_args, ca_cert)


def _build(values: dict[str, Any], release_name: str, env: Mapping[str, str], resources: dict[str, Resources],
           extra_args: tuple[str, ...] | None, ca_cert: str | None) -> Config:
    g = functools.partial(setting, values)
    fullname = compute_fullname(values, release_name)
    dns_env_var = fullname.upper().replace("-", "_") + "_DNS_SERVICE_HOST"
    metrics_default = g("connectInject.metrics.defaultEnabled")
    auth_method = g("connectInject.overrideAuthMethodName") or (
        f"{fullname}-k8s-auth-method" if g("global.acls.manageSystemACLs") else ""
    )
    return Config(
        values=values,
        release_name=release_name,
        fullname=fullname,
        consul_image=g("connectInject.imageConsul") or g("global.image"),
        consul_k8s_image=g("connectInject.image") or g("global.imageK8S"),
        envoy_image=g("global.imageEnvoy"),
        default_inject=bool(g("connectInject.default")),
        allow_namespaces=frozenset(g("connectInject.k8sAllowNamespaces") or []),
        deny_namespaces=frozenset(g("connectInject.k8sDenyNamespaces") or []),
        tproxy_default=bool(g("connectInject.transparentProxy.defaultEnabled")),
        overwrite_probes_default=bool(g("connectInject.transparentProxy.defaultOverwriteProbes")),
        # The reference chart tests plain truthiness here: dns.enabled "-" counts as on.
        # "-" for enableRedirection (the Consul chart's default from v1.0.0) follows transparent proxy.
        consul_dns_default=bool(g("dns.enabled")) and tristate(g("dns.enableRedirection"),
                                                                    g("connectInject.transparentProxy.defaultEnabled")),
        dns_env_var=dns_env_var,
        dns_ip=env.get(dns_env_var) or None,
        metrics_default=tristate(metrics_default, g("global.metrics.enabled")),
        metrics_default_key="global.metrics.enabled" if metrics_default == "-" else "connectInject.metrics.defaultEnabled",
        merging_default=bool(g("connectInject.metrics.defaultEnableMerging")),
        merged_metrics_port=int(g("connectInject.metrics.defaultMergedMetricsPort")),
        prometheus_scrape_port=int(g("connectInject.metrics.defaultPrometheusScrapePort")),
        prometheus_scrape_path=g("connectInject.metrics.defaultPrometheusScrapePath"),
        envoy_extra_args=extra_args,
        auth_method=auth_method,
        enable_namespaces=bool(g("global.enableConsulNamespaces")),
        cross_namespace_policy=(CROSS_NAMESPACE_POLICY if g("global.acls.manageSystemACLs")
                                and g("global.enableConsulNamespaces") else ""),
        datacenter=str(g("global.datacenter") or ""),
        destination_namespace=g("connectInject.consulNamespaces.consulDestinationNamespace") or "default",
        mirroring=bool(g("connectInject.consulNamespaces.mirroringK8S")),
        mirroring_prefix=g("connectInject.consulNamespaces.mirroringK8SPrefix") or "",
        partition=(g("global.adminPartitions.name") or "default") if g("global.adminPartitions.enabled") else "",
        openshift=bool(g("global.openshift.enabled")),
        log_level=g("connectInject.logLevel") or g("global.logLevel") or "info",
        log_json=bool(g("global.logJSON")),
        ca_cert=ca_cert,
        sidecar_resources=resources["sidecar"],
        init_resources=resources["init"],
        consul_sidecar_resources=resources["consul_sidecar"],
        native_sidecar_default=bool(g("connectInject.sidecarProxy.nativeSidecar")),
        image_override_namespaces=frozenset(g("connectInject.podOverrides.imageNamespaces") or []),
    )


def compute_fullname(values: Mapping[str, Any], release_name: str) -> str:
    """The chart's `consul.fullname`: fullnameOverride, global.name or `<release>-<name>`, ≤ 63."""
    name = values.get("fullnameOverride") or _get(values, "global.name")
    if not name:
        name = f"{release_name}-{values.get('nameOverride') or 'consul'}"
    name = name[:63]
    return name[:-1] if name.endswith("-") else name


def cross_key_problems(values: Mapping[str, Any]) -> list[str]:
    """The reference chart's `fail` guards, as `key: message` lines."""
    g = functools.partial(setting, values)
    problems: list[str] = []
    if not tristate(g("client.enabled"), g("global.enabled")):
        problems.append("client.enabled: clients must be enabled for connect injection")
    if g("client.grpc") is False:
        problems.append("client.grpc: client.grpc must be true for connect injection")
    namespaces = g("global.enableConsulNamespaces")
    if g("connectInject.consulNamespaces.mirroringK8S") and not namespaces:
        problems.append("connectInject.consulNamespaces.mirroringK8S: global.enableConsulNamespaces must be true if mirroringK8S=true")
    if g("global.adminPartitions.enabled") and not namespaces:
        problems.append("global.adminPartitions.enabled: global.enableConsulNamespaces must be true if global.adminPartitions.enabled=true")
    central = g("connectInject.centralConfig")
    if isinstance(central, dict):
        if str(central.get("enabled")).lower() == "false":
            problems.append("connectInject.centralConfig.enabled: connectInject.centralConfig.enabled cannot be set to false; to disable, set enable_central_service_config to false in server.extraConfig and client.extraConfig")
        if central.get("defaultProtocol"):
            problems.append(f"connectInject.centralConfig.defaultProtocol: connectInject.centralConfig.defaultProtocol is no longer supported; {_CENTRAL_CONFIG_MIGRATE}")
        proxy_defaults = central.get("proxyDefaults")
        if proxy_defaults and str(proxy_defaults).strip() not in ("{}", ""):
            problems.append(f"connectInject.centralConfig.proxyDefaults: connectInject.centralConfig.proxyDefaults is no longer supported; {_CENTRAL_CONFIG_MIGRATE}")
    if g("connectInject.imageEnvoy"):
        problems.append("connectInject.imageEnvoy: connectInject.imageEnvoy must be specified in global.imageEnvoy")
    if g("global.lifecycleSidecarContainer"):
        problems.append("global.lifecycleSidecarContainer: global.lifecycleSidecarContainer has been renamed to global.consulSidecarContainer. Please set values using global.consulSidecarContainer.")
    if g("global.bootstrapACLs"):
        problems.append("global.bootstrapACLs: global.bootstrapACLs was removed, use global.acls.manageSystemACLs instead")
    for key in ("connectInject.consulNamespaces.consulDestinationNamespace", "global.adminPartitions.name"):
        name = g(key)
        if name in RESERVED_CONSUL_NAMES:
            problems.append(f"{key}: The name {name} set for key {key} is reserved by Consul for future use.")
    if "*" in (g("connectInject.k8sDenyNamespaces") or []):
        problems.append('connectInject.k8sDenyNamespaces: "*" is not supported in the deny list; use k8sAllowNamespaces: [] to inject nothing')
    return problems


def tristate(value: Any, inherited: Any) -> bool:
    """The reference's `"-"` idiom: `"-"` inherits (global.enabled and the like)."""
    return bool(inherited) if value == "-" else bool(value)


def _resources(values: Mapping[str, Any], key: str, problems: list[str]) -> Resources:
    """Requests/limits from values (null fields left out), checked request ≤ limit."""
    block = setting(values, key) or {}
    out: dict[str, dict[str, str]] = {"requests": {}, "limits": {}}
    for kind in ("requests", "limits"):
        for res in ("cpu", "memory"):
            value = (block.get(kind) or {}).get(res)
            if value is not None:
                out[kind][res] = str(value)
    for res in ("cpu", "memory"):
        req, lim = out["requests"].get(res), out["limits"].get(res)
        if req is not None and lim is not None and quantity.exceeds(req, lim):
            problems.append(f'{key}.requests.{res}: request must be <= limit: {key}.requests.{res} value of "{req}" is greater than the {key}.limits.{res} value of "{lim}"')
    return Resources(requests=out["requests"], limits=out["limits"])


def _envoy_extra_args(raw: str | None, problems: list[str]) -> tuple[str, ...] | None:
    if raw is None:
        return None
    try:  # the same splitting and bounds as the pod annotation
        return shellwords.split(raw)
    except shellwords.SplitError as exc:
        problems.append(f"connectInject.envoyExtraArgs: {exc} (value {raw!r})")
        return None


def _ca_cert(values: Mapping[str, Any], env: Mapping[str, str], problems: list[str]) -> str | None:
    """With TLS on, the Consul CA (file named by CONSUL_CACERT) is embedded in every pod."""
    if not _get(values, "global.tls.enabled"):
        return None
    path = env.get("CONSUL_CACERT")
    if not path:
        problems.append("global.tls.enabled: TLS is on but CONSUL_CACERT does not name the Consul CA certificate file")
        return None
    try:
        pem = Path(path).read_bytes()
    except OSError as exc:
        problems.append(f"global.tls.enabled: cannot read the Consul CA certificate file {path!r} (CONSUL_CACERT): {exc}")
        return None
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding

    try:
        certificates = x509.load_pem_x509_certificates(pem)
    except ValueError:
        problems.append(f"global.tls.enabled: the file {path!r} (CONSUL_CACERT) holds no PEM certificate")
        return None
    # Only the certificates, re-encoded, reach the init script's heredoc: text around them in the
    # file (comments, a stray "EOF" line) never does.
    return "".join(cert.public_bytes(Encoding.PEM).decode() for cert in certificates)


@functools.lru_cache(maxsize=1)
def chart_defaults() -> dict[str, Any]:
    """chart/values.yaml: the one place a default is written (read once)."""
    return read_values_file(paths.CHART_VALUES)


def setting(values: Mapping[str, Any], dotted: str) -> Any:
    """The value at `dotted`, else the chart's default for it (values merged without the chart's
    defaults, or with a key deleted by `null`, fall back to chart/values.yaml, never to a copy)."""
    return _get(values, dotted, _get(chart_defaults(), dotted))


def _get(values: Mapping[str, Any], dotted: str, default: Any = None) -> Any:
    node: Any = values
    for part in dotted.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return default
        node = node[part]
    return default if node is None else node


def _one_line(text: str) -> str:
    return " ".join(text.split())
