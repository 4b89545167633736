"""What the controller's registrations depend on besides the pod, and the Consul namespace mapping.

`Settings` holds the reference's `inject-connect` flags that reach the endpoints controller
(reference §1.2), by the chart values they come from. It is self-contained so the builder can be
tested without values; `Settings.from_config()` derives it from the webhook's `Config` (the same
values keys), until the values layer grows an endpoints section of its own.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from generator.base import consulns

# Namespaces never reconciled, whatever the allow list says (reference §1.4.1; the webhook's own
# list lacks local-path-storage).
SYSTEM_NAMESPACES = frozenset({"kube-system", "kube-public", "local-path-storage"})
WILDCARD = "*"
DEFAULT_NAMESPACE = "default"


@dataclass(frozen=True)
class Settings:
    # Kubernetes namespaces whose Endpoints are reconciled (`connectInject.k8sAllowNamespaces`,
    # chart default ["*"]; "*" = all). The reference's flag default, an empty set, reconciles
    # nothing (R10); this default is the chart's.
    allow_namespaces: frozenset[str] = frozenset({WILDCARD})
    # Never reconciled, checked before the allow list (`connectInject.k8sDenyNamespaces`).
    deny_namespaces: frozenset[str] = frozenset()
    # Consul Enterprise namespaces on (`global.enableConsulNamespaces`): registrations carry
    # `Namespace` and every request to the pod's agent `?ns=`.
    enable_consul_namespaces: bool = False
    # The Consul namespace of every pod when not mirroring
    # (`connectInject.consulNamespaces.consulDestinationNamespace`).
    consul_destination_namespace: str = DEFAULT_NAMESPACE
    # Consul namespace = `mirroring_prefix` + Kubernetes namespace
    # (`connectInject.consulNamespaces.mirroringK8S` / `.mirroringK8SPrefix`); wins over the destination.
    enable_mirroring: bool = False
    mirroring_prefix: str = ""
    # ACL policy attached by default to the Consul namespaces the controller creates (reference §5.3):
    # `cross-namespace-policy` when `global.acls.manageSystemACLs` and namespaces are on, else "".
    # Not read by the registration builder; `namespace_body()` uses it.
    cross_namespace_policy: str = ""
    # Admin partitions on (`global.adminPartitions.enabled`): upstreams parse as
    # `name[.namespace[.partition]]` (also with namespaces on).
    enable_partitions: bool = False
    # `?partition=` on every Consul request when non-empty (`global.adminPartitions.name`); never in bodies.
    partition: str = ""
    # Transparent proxy when neither the pod annotation nor its namespace label says
    # (`connectInject.transparentProxy.defaultEnabled`).
    tproxy_default: bool = True
    # Expose HTTP probes through Envoy under transparent proxy unless the pod says
    # (`connectInject.transparentProxy.defaultOverwriteProbes`).
    overwrite_probes_default: bool = True
    # `envoy_prometheus_bind_addr` in the proxy's config unless the pod says
    # (`connectInject.metrics.defaultEnabled`, "-" = `global.metrics.enabled`).
    metrics_default: bool = False
    # Port of `envoy_prometheus_bind_addr` unless the pod says
    # (`connectInject.metrics.defaultPrometheusScrapePort`, 1024-65535, checked by the values layer).
    prometheus_scrape_port: int = 20200

    def consul_namespace(self, k8s_namespace: str) -> str:
        """`namespaces.ConsulNamespace` (reference §5.1): "" without namespaces, else the mirrored
        name (even for `default`: prefix `k8s-` gives `k8s-default`), else the destination."""
        return consulns.consul_namespace(k8s_namespace, enabled=self.enable_consul_namespaces,
                                         destination=self.consul_destination_namespace,
                                         mirroring=self.enable_mirroring, prefix=self.mirroring_prefix)

    def query(self, consul_namespace: str) -> dict[str, str]:
        """Query parameters of every request about a service in `consul_namespace` (§1.5, §5.6)."""
        params = {}
        if consul_namespace:
            params["ns"] = consul_namespace
        if self.partition:
            params["partition"] = self.partition
        return params

    def ignores_namespace(self, namespace: str) -> bool:
        """Reference §1.4.1, in its order: system namespaces, then the deny list, then the allow list."""
        if namespace in SYSTEM_NAMESPACES or namespace in self.deny_namespaces:
            return True
        return WILDCARD not in self.allow_namespaces and namespace not in self.allow_namespaces

    @classmethod
    def from_config(cls, config: Any) -> "Settings":
        """From the webhook's values `Config` (generator.values.config): the same keys mean the same."""
        return cls(
            allow_namespaces=frozenset(config.allow_namespaces),
            deny_namespaces=frozenset(config.deny_namespaces),
            enable_consul_namespaces=bool(config.enable_namespaces),
            consul_destination_namespace=config.destination_namespace or DEFAULT_NAMESPACE,
            enable_mirroring=bool(config.mirroring),
            mirroring_prefix=config.mirroring_prefix or "",
            cross_namespace_policy=config.cross_namespace_policy,
            enable_partitions=bool(config.partition),
            partition=config.partition or "",
            tproxy_default=bool(config.tproxy_default),
            overwrite_probes_default=bool(config.overwrite_probes_default),
            metrics_default=bool(config.metrics_default),
            prometheus_scrape_port=int(config.prometheus_scrape_port),
        )


def namespace_to_create(consul_namespace: str) -> str | None:
    """The Consul namespace to make sure of before registering (reference §5.2 step 1, §5.3):
    none without namespaces, none for `*` and `default` (which always exists)."""
    if not consul_namespace or consul_namespace in (WILDCARD, DEFAULT_NAMESPACE):
        return None
    return consul_namespace


def namespace_body(name: str, settings: Settings) -> dict[str, Any]:
    """`PUT /v1/namespace` body, as the reference's `EnsureExists` sends it (reference §5.2)."""
    policies = [{"ID": "", "Name": settings.cross_namespace_policy}] if settings.cross_namespace_policy else None
    return {
        "Name": name,
        "Description": "Auto-generated by consul-k8s",
        "ACLs": {"PolicyDefaults": policies, "RoleDefaults": None},
        "Meta": {"external-source": "kubernetes"},
    }
