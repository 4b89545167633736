"""The Consul namespace of a Kubernetes namespace: one rule for the injector, both controllers.

consul-k8s maps a Kubernetes namespace to a Consul (Enterprise) namespace the same way everywhere
(`namespaces.ConsulNamespace`): none without Consul namespaces, the prefixed Kubernetes namespace
with mirroring, else the one destination namespace.
"""

from __future__ import annotations


def consul_namespace(k8s_namespace: str, *, enabled: bool, destination: str, mirroring: bool, prefix: str) -> str:
    """"" (no `ns` parameter) without Consul namespaces; mirroring wins over the destination."""
    if not enabled:
        return ""
    if mirroring:
        return f"{prefix}{k8s_namespace}"
    return destination
