"""Facts that more than one component derives from the values: one function each.

The injector, the endpoints controller and the config-entry controller name things the same way
(fullname, ACL auth method), put things in the same Consul namespaces and partitions and read their
log level by the same rule, so each is written once, here. (The Consul namespace of a Kubernetes
namespace is base/consulns, which the sections' `consul_namespace()` call.)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from generator.values.source import Values

# Consul's own name of the namespace and of the partition that always exist: an empty
# consulDestinationNamespace or adminPartitions.name means this one (the reference's flag default).
CONSUL_DEFAULT = "default"
# The ACL policy the Consul chart's server-acl-init creates (cross-namespace service discovery) and
# the reference attaches to the Consul namespaces it creates, with managed ACLs and namespaces on.
CROSS_NAMESPACE_POLICY = "cross-namespace-policy"
# `consul.name`, the chart's name in object names, unless nameOverride.
CHART_NAME = "consul"


def consul_release(v: Values, release_name: str) -> str:
    """The Consul chart release whose objects the components use: global.consulRelease, else the
    release name (--release-name; the chart passes global.consulRelease or its own)."""
    return str(v.get("global.consulRelease") or release_name)


def compute_fullname(values: Values | Mapping[str, Any], release_name: str) -> str:
    """The Consul chart's `consul.fullname`: fullnameOverride, global.name or `<release>-<name>`,
    ≤ 63. The components name the Consul release's objects with it (auth method, DNS Service), so
    `release_name` is the Consul release's (consul_release()); the chart's ConfigMap carries it as
    global.name (consul.consulFullname)."""
    v = values if isinstance(values, Values) else Values(values)
    name = v.get("fullnameOverride") or v.get("global.name")
    if not name:
        name = f"{release_name}-{v.get('nameOverride') or CHART_NAME}"
    name = name[:63]
    return name[:-1] if name.endswith("-") else name


def log_level(v: Values, component_key: str) -> str:
    """`<component>.logLevel`, or global.logLevel when that is empty (the chart's `default`).

    As the values say it (the injected consul-sidecar takes `trace`); the chart maps `trace` to
    `debug` for our own processes' `--log-level`."""
    return str(v.get(component_key) or v.get("global.logLevel"))


def auth_method(v: Values, fullname: str) -> str:
    """The ACL auth method injected pods log in with and whose tokens are cleaned up with them:
    connectInject.overrideAuthMethodName, else `<fullname>-k8s-auth-method` with
    global.acls.manageSystemACLs, else "" (no ACL login)."""
    override = v.get("connectInject.overrideAuthMethodName")
    if override:
        return str(override)
    return f"{fullname}-k8s-auth-method" if v.get("global.acls.manageSystemACLs") else ""


@dataclass(frozen=True)
class ConsulNames:
    """Where in Consul the components put things: Consul Enterprise namespaces and partitions.

    The same for the three components (the reference chart passes the injector's namespace values
    to the controller too); the sections copy these fields under the same names."""

    # global.enableConsulNamespaces
    enable_consul_namespaces: bool
    # connectInject.consulNamespaces.consulDestinationNamespace (empty: Consul's "default")
    consul_destination_namespace: str
    # connectInject.consulNamespaces.mirroringK8S and .mirroringK8SPrefix
    enable_mirroring: bool
    mirroring_prefix: str
    # CROSS_NAMESPACE_POLICY with global.acls.manageSystemACLs and namespaces on, else ""
    cross_namespace_policy: str
    # global.adminPartitions.enabled; the partition of every Consul request,
    # global.adminPartitions.name (empty: Consul's "default"), "" when partitions are off
    enable_partitions: bool
    partition: str


def consul_names(v: Values) -> ConsulNames:
    namespaces = bool(v.get("global.enableConsulNamespaces"))
    partitions = bool(v.get("global.adminPartitions.enabled"))
    return ConsulNames(
        enable_consul_namespaces=namespaces,
        consul_destination_namespace=str(v.get("connectInject.consulNamespaces.consulDestinationNamespace") or CONSUL_DEFAULT),
        enable_mirroring=bool(v.get("connectInject.consulNamespaces.mirroringK8S")),
        mirroring_prefix=str(v.get("connectInject.consulNamespaces.mirroringK8SPrefix") or ""),
        cross_namespace_policy=CROSS_NAMESPACE_POLICY if namespaces and v.get("global.acls.manageSystemACLs") else "",
        enable_partitions=partitions,
        partition=str(v.get("global.adminPartitions.name") or CONSUL_DEFAULT) if partitions else "",
    )
