"""What the controller's registrations depend on besides the pod, and the Consul namespace mapping.

`Settings` holds the reference's `inject-connect` flags that reach the endpoints controller
(reference §1.2), by the chart values they come from. It is self-contained so the builder can be
tested without values; `Settings.from_section()` takes it from the values layer's endpoints section
(generator/values/controllers.py), where each field's values key and default are decided.
"""

from __future__ import annotations

import dataclasses
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
    # Not read by the registration builder; the reconciler gives it to the namespaces it creates
    # (generator.consul: ensure_namespace, the reference's EnsureExists body).
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
    def from_section(cls, section: Any) -> "Settings":
        """From the values layer's endpoints section (generator.values.controllers.EndpointsSettings),
        whose fields of the same names come from the chart's values."""
        return cls(**{f.name: getattr(section, f.name) for f in dataclasses.fields(cls)})
