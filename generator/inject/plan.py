"""What to inject into one pod: every per-pod decision, computed once, before any template runs.

Precedence is the reference's everywhere: pod annotation, then namespace label (transparent proxy
and Consul DNS), then the values default. Templates only read the resulting Plan, so they hold no
business logic beyond `if` and `for`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

from generator.base import quantity
from generator.inject.annotations import (
    CONNECT_SERVICE_PORT, CONNECT_SERVICE_UPSTREAMS, CONSUL_DNS, ENABLE_METRICS, ENABLE_METRICS_MERGING, EXTRA_TEMPLATES,
    MERGED_METRICS_PORT, NATIVE_SIDECAR, OVERWRITE_PROBES, PREFIX, SERVICE_METRICS_PORT, SIDECAR_CPU_LIMIT, TRANSPARENT_PROXY,
    Annotations, BadValue, Spec, Upstream, parse_bool, show,
)
from generator.values.config import Config, Resources
from generator.base.errors import InjectorFault, PodError
from generator.base.podcontract import ENVOY_UID, INJECTED_NAMES, SA_TOKEN_PATH


@dataclass(frozen=True)
class Plan:
    namespace: str
    service_port: int | None
    default_service_port: str | None  # written as connect-service-port when the pod has none
    upstreams: tuple[Upstream, ...]
    tproxy: bool
    overwrite_probes: bool
    consul_dns: bool
    dns_ip: str
    exclude_inbound_ports: tuple[str, ...]
    exclude_outbound_ports: tuple[str, ...]
    exclude_outbound_cidrs: tuple[str, ...]
    exclude_uids: tuple[str, ...]
    metrics: bool
    merging: bool
    merged_metrics_port: int
    prometheus_scrape_port: int
    prometheus_scrape_path: str
    service_metrics_port: int
    service_metrics_path: str
    envoy_args: tuple[str, ...]
    envoy_resources: Resources
    envoy_security_context: bool
    consul_namespace: str
    service_name: str
    service_account: str
    sa_token_mount: Mapping[str, Any] | None = field(default=None)
    native_sidecar: bool = False
    extra_templates: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()  # for the response: values v0.37 ignored, settings turned off
    image_overrides: bool = False  # may this pod replace a sidecar's image (values, per namespace)
    # Where each layered setting came from ("annotation", "namespace label", "values"), for explain.
    sources: Mapping[str, str] = field(default_factory=dict)


def make_plan(config: Config, pod: Mapping[str, Any], namespace: str, ann: Annotations,
              ns_labels: Mapping[str, str]) -> Plan:
    """Resolve every setting for `pod`; PodError for what its author got wrong."""
    spec = pod.get("spec") or {}
    sources: dict[str, str] = {}
    warnings: list[str] = []
    tproxy = _layered(ann.transparent_proxy, TRANSPARENT_PROXY, ns_labels, namespace, config.tproxy_default, sources)
    consul_dns = _layered(ann.consul_dns, CONSUL_DNS, ns_labels, namespace, config.consul_dns_default, sources)
    sources[ENABLE_METRICS.key] = "annotation" if ann.enable_metrics is not None else "values"
    sources[ENABLE_METRICS_MERGING.key] = "annotation" if ann.enable_metrics_merging is not None else "values"
    sources[OVERWRITE_PROBES.key] = "annotation" if ann.transparent_proxy_overwrite_probes is not None else "values"
    sources[NATIVE_SIDECAR.key] = "annotation" if ann.native_sidecar is not None else "values"
    if ann.enable_metrics is None:
        sources[ENABLE_METRICS.key] = f"values {config.metrics_default_key}"
    errors = dict(ann.errors)
    default_port, default_number = _default_service_port(spec, ann)
    if CONNECT_SERVICE_PORT.key in errors and ann.service_metrics_port is not None:
        warnings.append(errors.pop(CONNECT_SERVICE_PORT.key) + f" (ignored: {SERVICE_METRICS_PORT.key} is set, and the injector "
                        f"reads {CONNECT_SERVICE_PORT.key} only as its default, as v0.37 did)")
    # An attribute is None only when the pod did not set the annotation (False, 0, "" and () are values).
    service_port = default_number if ann.connect_service_port is None else ann.connect_service_port
    metrics = config.metrics_default if ann.enable_metrics is None else ann.enable_metrics
    service_metrics_port = (service_port or 0) if ann.service_metrics_port is None else ann.service_metrics_port
    merging_asked = config.merging_default if ann.enable_metrics_merging is None else ann.enable_metrics_merging
    merging = bool(metrics and merging_asked and service_metrics_port > 0)
    if ann.enable_metrics_merging and not metrics:
        origin = f"the annotation {ENABLE_METRICS.full}" if ann.enable_metrics is not None else sources[ENABLE_METRICS.key]
        warnings.append(f'annotation "{ENABLE_METRICS_MERGING.full}" is "true" but has no effect: metrics are off for this pod '
                        f"(from {origin})")
    if MERGED_METRICS_PORT.key in errors and not merging:
        warnings.append(errors.pop(MERGED_METRICS_PORT.key) + " (ignored: metrics merging is off for this pod, as v0.37 did)")
    if errors:
        raise PodError("; ".join(errors.values()))
    extras = () if ann.extra_templates is None else ann.extra_templates
    unknown = [name for name in extras if name not in config.templates.extras]
    if unknown:
        known = ", ".join(config.templates.extras) or "none (define them in connectInject.templates)"
        raise PodError(f'annotation "{EXTRA_TEMPLATES.full}" names unknown template(s) {", ".join(unknown)}; known extra templates: {known}')
    upstreams = _upstreams(() if ann.connect_service_upstreams is None else ann.connect_service_upstreams, warnings)
    tproxy = _host_network_tproxy(spec, tproxy, sources, warnings)
    if consul_dns and sources.get(TRANSPARENT_PROXY.key) == "hostNetwork" and sources.get(CONSUL_DNS.key) != "values":
        warnings.append(f"Consul DNS ({sources[CONSUL_DNS.key]} {CONSUL_DNS.full}) has no effect: it works through "
                        f"transparent proxy, which is off for this hostNetwork pod")
    envoy_security = tproxy or not config.openshift
    if envoy_security:
        _check_envoy_uid(spec)
    if consul_dns and tproxy and not config.dns_ip:
        where = {"annotation": f'the annotation "{CONSUL_DNS.full}"',
                 "namespace label": f'the label "{CONSUL_DNS.full}" of namespace "{namespace}"'}.get(sources[CONSUL_DNS.key])
        problem = (f"Consul DNS cannot be used: the injector's environment variable {config.dns_env_var} (the Consul DNS "
                   f"Service IP) is not set")
        if where:  # the pod (or its namespace) asked for what this installation does not have
            raise PodError(f"{where} asks for Consul DNS, but this installation has none: {config.dns_env_var} is not set "
                           f"in the injector (is dns.enabled off in the Consul release?)", "consul-dns-unavailable")
        raise InjectorFault(f"{problem} ({CONSUL_DNS.values_text} turn it on for every pod)")
    return Plan(
        namespace=namespace,
        service_port=service_port,
        default_service_port=default_port,
        upstreams=upstreams,
        tproxy=tproxy,
        overwrite_probes=config.overwrite_probes_default if ann.transparent_proxy_overwrite_probes is None else ann.transparent_proxy_overwrite_probes,
        consul_dns=consul_dns,
        dns_ip=(config.dns_ip or "") if consul_dns else "",
        exclude_inbound_ports=() if ann.transparent_proxy_exclude_inbound_ports is None else ann.transparent_proxy_exclude_inbound_ports,
        exclude_outbound_ports=() if ann.transparent_proxy_exclude_outbound_ports is None else ann.transparent_proxy_exclude_outbound_ports,
        exclude_outbound_cidrs=() if ann.transparent_proxy_exclude_outbound_cidrs is None else ann.transparent_proxy_exclude_outbound_cidrs,
        exclude_uids=() if ann.transparent_proxy_exclude_uids is None else ann.transparent_proxy_exclude_uids,
        metrics=metrics,
        merging=merging,
        merged_metrics_port=config.merged_metrics_port if ann.merged_metrics_port is None else ann.merged_metrics_port,
        prometheus_scrape_port=config.prometheus_scrape_port if ann.prometheus_scrape_port is None else ann.prometheus_scrape_port,
        prometheus_scrape_path=config.prometheus_scrape_path if ann.prometheus_scrape_path is None else ann.prometheus_scrape_path,
        service_metrics_port=service_metrics_port,
        service_metrics_path="/metrics" if ann.service_metrics_path is None else ann.service_metrics_path,
        envoy_args=(config.envoy_extra_args or ()) if ann.envoy_extra_args is None else ann.envoy_extra_args,
        envoy_resources=_envoy_resources(config, ann),
        envoy_security_context=envoy_security,
        consul_namespace=config.consul_namespace(namespace),
        service_name="" if ann.connect_service is None else ann.connect_service,
        service_account=spec.get("serviceAccountName") or "",
        sa_token_mount=_sa_token_mount(spec, config.auth_method),
        native_sidecar=config.native_sidecar_default if ann.native_sidecar is None else ann.native_sidecar,
        extra_templates=extras,
        warnings=tuple(warnings),
        image_overrides=bool({"*", namespace} & config.image_override_namespaces),
        sources=sources,
    )


def _upstreams(upstreams: tuple[Upstream, ...], warnings: list[str]) -> tuple[Upstream, ...]:
    """Entries whose port names no container port are dropped, with a warning (v0.37 dropped them)."""
    kept = []
    for upstream in upstreams:
        if upstream.missing_port:
            warnings.append(f'annotation "{CONNECT_SERVICE_UPSTREAMS.full}": entry for "{upstream.name}" is ignored: '
                            f'no container of this pod has a port named "{upstream.missing_port}"')
        else:
            kept.append(upstream)
    return tuple(kept)


def _host_network_tproxy(spec: Mapping[str, Any], tproxy: bool, sources: dict[str, str], warnings: list[str]) -> bool:
    """Transparent proxy on a hostNetwork pod would write iptables rules into the node's network
    namespace: refused when the pod asks for it, turned off (with a warning) when it is a default."""
    if not tproxy or spec.get("hostNetwork") is not True:
        return tproxy
    if sources.get(TRANSPARENT_PROXY.key) == "annotation":
        raise PodError(f'annotation "{TRANSPARENT_PROXY.full}" is "true" on a pod with hostNetwork: true: its traffic '
                       f"redirection rules would be written into the node's network namespace and capture the node's "
                       f"traffic; use transparent-proxy \"false\" for host-network pods", "host-network")
    warnings.append(f"transparent proxy is off for this pod: it has hostNetwork: true, and redirection rules would be "
                    f"written into the node's network namespace (default from the {sources.get(TRANSPARENT_PROXY.key)})")
    sources[TRANSPARENT_PROXY.key] = "hostNetwork"
    return False


def _layered(value: bool | None, row: Spec, labels: Mapping[str, str], namespace: str, default: bool,
             sources: dict[str, str]) -> bool:
    """Annotation (`value`, None when unset) > namespace label of the same key > values default."""
    if value is not None:
        sources[row.key] = "annotation"
        return value
    raw = labels.get(row.full)
    if raw is None:
        sources[row.key] = "values"
        return default
    sources[row.key] = "namespace label"
    try:
        return parse_bool(raw)
    except BadValue as exc:
        raise PodError(f'namespace "{namespace}" label "{row.full}" has invalid value {show(raw)}: {exc}', "bad-namespace-label") from None


def _default_service_port(spec: Mapping[str, Any], ann: Annotations) -> tuple[str | None, int | None]:
    """The reference writes the first container's first port (name, else number) if unset.

    Returns (annotation value to write, port number); (None, None) when nothing is written. The
    first port of the first container is also what its name resolves to (named ports: first wins).
    """
    if ann.given(CONNECT_SERVICE_PORT):  # even empty (unset) or with a bad value
        return None, None
    containers = spec.get("containers") or []
    ports = (containers[0] or {}).get("ports") if containers else None
    if not ports or not isinstance((ports[0] or {}).get("containerPort"), int):
        return None, None
    first = ports[0]
    return str(first.get("name") or first["containerPort"]), first["containerPort"]


def _check_envoy_uid(spec: Mapping[str, Any]) -> None:
    if ((spec.get("securityContext") or {}).get("runAsUser")) == ENVOY_UID:
        raise PodError(f"pod security context cannot have the same uid as envoy: {ENVOY_UID}", "envoy-uid")
    # Containers that run beside Envoy: the app's, and init containers with restartPolicy: Always
    # (native sidecars). Declared injected containers are overrides, checked in overrides.py.
    running = [*(spec.get("containers") or []),
               *(c for c in spec.get("initContainers") or [] if (c or {}).get("restartPolicy") == "Always")]
    for container in running:
        if container.get("name") in INJECTED_NAMES:
            continue
        if ((container or {}).get("securityContext") or {}).get("runAsUser") == ENVOY_UID:
            raise PodError(
                f'container "{container.get("name", "")}" has runAsUser set to the same uid "{ENVOY_UID}" as envoy which is not allowed',
                "envoy-uid",
            )


# The values block the envoy-sidecar resource annotations default to, as their rows name it
# (connectInject.sidecarProxy.resources).
_RESOURCES_KEY = SIDECAR_CPU_LIMIT.values_keys[0].rsplit(".", 2)[0]


def _envoy_resources(config: Config, ann: Annotations) -> Resources:
    """Annotation per field, else the values default; request ≤ limit unless the limit is 0."""
    out: dict[str, dict[str, str]] = {"requests": dict(config.sidecar_resources.requests), "limits": dict(config.sidecar_resources.limits)}
    for value, kind, res in ((ann.sidecar_proxy_cpu_request, "requests", "cpu"), (ann.sidecar_proxy_memory_request, "requests", "memory"),
                             (ann.sidecar_proxy_cpu_limit, "limits", "cpu"), (ann.sidecar_proxy_memory_limit, "limits", "memory")):
        if value is not None:
            out[kind][res] = value
    for res in ("cpu", "memory"):
        req, lim = out["requests"].get(res), out["limits"].get(res)
        if req is not None and lim is not None and quantity.exceeds(req, lim):
            raise PodError(
                f'envoy-sidecar {res} request "{req}" is greater than its limit "{lim}" '
                f"(annotations {PREFIX}sidecar-proxy-{res}-request / -limit, defaults {_RESOURCES_KEY})"
            )
    return Resources(requests=out["requests"], limits=out["limits"])


def _sa_token_mount(spec: Mapping[str, Any], auth_method: str) -> Mapping[str, Any] | None:
    """With ACLs, `connect-init` logs in with the pod's service account token: reuse its mount."""
    if not auth_method:
        return None
    found = None
    for container in spec.get("containers") or []:
        for mount in (container or {}).get("volumeMounts") or []:
            if (mount or {}).get("mountPath") == SA_TOKEN_PATH:
                found = mount
    if found is None:
        raise PodError(
            f"ACL auth method {auth_method!r} needs the service account token, but no container mounts it at "
            f"{SA_TOKEN_PATH} (is automountServiceAccountToken false on the pod or its service account?)",
            "missing-token-mount",
        )
    # Only the volume's name comes from the pod; the root init container mounts it read-only.
    return {"name": found.get("name"), "readOnly": True, "mountPath": SA_TOKEN_PATH}
