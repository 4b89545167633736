"""Which Consul namespace (`ns=`) a config entry is read, written and deleted in.

The config-entry controller's rule (reference crd-controller §2.5, the reference's
`consulNamespace` and `namespaces.ConsulNamespace`), kept beside the client because every
config-entry call depends on it and a wrong `ns` silently writes somewhere else. Pure: the
caller passes the entry's own namespace, the resource's mirroring source and its flags.
"""

from __future__ import annotations

WILDCARD = "*"
DEFAULT = "default"


def consul_namespace(k8s_namespace: str, *, enable_namespaces: bool, destination_namespace: str,
                     mirroring: bool, mirroring_prefix: str) -> str:
    """The Consul namespace for a Kubernetes namespace ("" with namespaces off: no `ns=`).
    Mirroring wins over the destination namespace."""
    if not enable_namespaces:
        return ""
    if mirroring:
        return f"{mirroring_prefix}{k8s_namespace}"
    return destination_namespace


def config_entry_namespace(entry_namespace: str, mirroring_source: str, global_resource: bool, *,
                           enable_namespaces: bool, destination_namespace: str = DEFAULT, mirroring: bool = False,
                           mirroring_prefix: str = "") -> str:
    """`ns` for one config entry.

    - `entry_namespace`: the namespace the Consul entry carries itself (ServiceIntentions: its
      webhook-defaulted `spec.destination.namespace`; PartitionExports: always `default`); it
      wins, even with namespaces off.
    - `mirroring_source`: the resource's Kubernetes namespace (ServiceIntentions: its destination
      namespace; global kinds: `default`).
    - `global_resource`: ProxyDefaults and Mesh, which are never prefixed or mirrored.
    A global resource or a `*` source lands in that namespace as is when namespaces are on.
    """
    if entry_namespace:
        return entry_namespace
    if not global_resource and mirroring_source != WILDCARD:
        return consul_namespace(mirroring_source, enable_namespaces=enable_namespaces,
                                destination_namespace=destination_namespace, mirroring=mirroring,
                                mirroring_prefix=mirroring_prefix)
    return mirroring_source if enable_namespaces else ""
