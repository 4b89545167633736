"""The injector's settings (`Config`): what the pod engine reads from the values and the environment.

Built by `config.load()` from validated values; the engine (generator.inject.engine) adds the
compiled templates. Every default comes from chart/values.yaml through `Values.get()`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from generator.base import consulns, quantity, shellwords
import generator.values.shared as shared
from generator.values.rules import tristate
from generator.values.source import Values


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
    # The controllers' facts, here too while they read this section (their own sections,
    # values.controllers, carry the same): the policy given to the Consul namespaces they create
    # ("cross-namespace-policy" with managed ACLs and namespaces on, else "") and global.datacenter.
    cross_namespace_policy: str
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


RESOURCE_KEYS = {
    "sidecar": "connectInject.sidecarProxy.resources",
    "init": "connectInject.initContainer.resources",
    "consul_sidecar": "global.consulSidecarContainer.resources",
}


def build(v: Values, release_name: str, fullname: str, names: shared.ConsulNames, env: Mapping[str, str],
          ca_cert: str | None, problems: list[str]) -> Config:
    """The injector's settings; problems of single keys (resources, envoyExtraArgs) are appended."""
    dns_env_var = fullname.upper().replace("-", "_") + "_DNS_SERVICE_HOST"
    metrics_default = v.get("connectInject.metrics.defaultEnabled")
    tproxy_default = bool(v.get("connectInject.transparentProxy.defaultEnabled"))
    resources = {name: resources_at(v, key, problems) for name, key in RESOURCE_KEYS.items()}
    return Config(
        values=v.merged,
        release_name=release_name,
        fullname=fullname,
        consul_image=v.get("connectInject.imageConsul") or v.get("global.image"),
        consul_k8s_image=v.get("connectInject.image") or v.get("global.imageK8S"),
        envoy_image=v.get("global.imageEnvoy"),
        default_inject=bool(v.get("connectInject.default")),
        allow_namespaces=frozenset(v.get("connectInject.k8sAllowNamespaces") or ()),
        deny_namespaces=frozenset(v.get("connectInject.k8sDenyNamespaces") or ()),
        tproxy_default=tproxy_default,
        overwrite_probes_default=bool(v.get("connectInject.transparentProxy.defaultOverwriteProbes")),
        # The reference chart tests plain truthiness here: dns.enabled "-" counts as on.
        # "-" for enableRedirection (the Consul chart's default from v1.0.0) follows transparent proxy.
        consul_dns_default=bool(v.get("dns.enabled")) and tristate(v.get("dns.enableRedirection"), tproxy_default),
        dns_env_var=dns_env_var,
        dns_ip=env.get(dns_env_var) or None,
        metrics_default=tristate(metrics_default, v.get("global.metrics.enabled")),
        metrics_default_key="global.metrics.enabled" if metrics_default == "-" else "connectInject.metrics.defaultEnabled",
        merging_default=bool(v.get("connectInject.metrics.defaultEnableMerging")),
        merged_metrics_port=int(v.get("connectInject.metrics.defaultMergedMetricsPort")),
        prometheus_scrape_port=int(v.get("connectInject.metrics.defaultPrometheusScrapePort")),
        prometheus_scrape_path=v.get("connectInject.metrics.defaultPrometheusScrapePath"),
        envoy_extra_args=_envoy_extra_args(v.get("connectInject.envoyExtraArgs"), problems),
        auth_method=shared.auth_method(v, fullname),
        enable_namespaces=names.enable_consul_namespaces,
        destination_namespace=names.consul_destination_namespace,
        mirroring=names.enable_mirroring,
        mirroring_prefix=names.mirroring_prefix,
        partition=names.partition,
        cross_namespace_policy=names.cross_namespace_policy,
        datacenter=datacenter(v),
        openshift=bool(v.get("global.openshift.enabled")),
        log_level=shared.log_level(v, "connectInject.logLevel"),
        log_json=bool(v.get("global.logJSON")),
        ca_cert=ca_cert,
        sidecar_resources=resources["sidecar"],
        init_resources=resources["init"],
        consul_sidecar_resources=resources["consul_sidecar"],
        native_sidecar_default=bool(v.get("connectInject.sidecarProxy.nativeSidecar")),
        image_override_namespaces=frozenset(v.get("connectInject.podOverrides.imageNamespaces") or ()),
    )


def datacenter(v: Values) -> str:
    """global.datacenter (the config-entry controller stamps it into every entry's Meta)."""
    return str(v.get("global.datacenter") or "")


def resources_at(v: Values, key: str, problems: list[str]) -> Resources:
    """Requests/limits from values (null fields left out), checked request ≤ limit.

    Read with `given`: a block deleted with null means no resources, not the chart's."""
    block = v.given(key) or {}
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


def read_ca_cert(v: Values, env: Mapping[str, str], problems: list[str]) -> str | None:
    """With TLS on, the Consul CA (file named by CONSUL_CACERT) is embedded in every pod."""
    if not v.get("global.tls.enabled"):
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
