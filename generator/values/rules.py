"""The chart's cross-key `fail` guards, in Python, with the chart's messages.

`chart/templates/_helpers.tpl` (`consul.injector.validate`, `consul.reservedNamesFailer`) refuses
the same values with the same words; tests/chart/test_cross_key_rules.py
renders each case through Helm and compares. Each problem is a `key: message` line.
"""

from __future__ import annotations

from typing import Any, Mapping

from generator.values.source import Values

# Names Consul keeps for itself: not a Consul namespace nor a partition (consul.reservedNamesFailer).
RESERVED_CONSUL_NAMES = ("system", "universal", "consul", "operator", "root")
# The keys that name a Consul namespace or partition, checked against RESERVED_CONSUL_NAMES.
CONSUL_NAME_KEYS = ("connectInject.consulNamespaces.consulDestinationNamespace", "global.adminPartitions.name")
_CENTRAL_CONFIG_MIGRATE = "instead you must migrate to CRDs (see www.consul.io/docs/k8s/crds/upgrade-to-crds)"


def tristate(value: Any, inherited: Any) -> bool:
    """The reference's `"-"` idiom: `"-"` inherits (global.enabled and the like)."""
    return bool(inherited) if value == "-" else bool(value)


def reserved_name_problem(key: str, name: Any) -> str | None:
    """`key: The name ... is reserved ...` when `name` is one Consul keeps, else None."""
    if name in RESERVED_CONSUL_NAMES:
        return f"{key}: The name {name} set for key {key} is reserved by Consul for future use."
    return None


def cross_key_problems(values: Values | Mapping[str, Any]) -> list[str]:
    """The reference chart's `fail` guards, as `key: message` lines."""
    v = values if isinstance(values, Values) else Values(values)
    problems: list[str] = []
    if not tristate(v.get("client.enabled"), v.get("global.enabled")):
        problems.append("client.enabled: clients must be enabled for connect injection")
    if v.get("client.grpc") is False:
        problems.append("client.grpc: client.grpc must be true for connect injection")
    namespaces = v.get("global.enableConsulNamespaces")
    if v.get("connectInject.consulNamespaces.mirroringK8S") and not namespaces:
        problems.append("connectInject.consulNamespaces.mirroringK8S: global.enableConsulNamespaces must be true if mirroringK8S=true")
    if v.get("global.adminPartitions.enabled") and not namespaces:
        problems.append("global.adminPartitions.enabled: global.enableConsulNamespaces must be true if global.adminPartitions.enabled=true")
    central = v.get("connectInject.centralConfig")
    if isinstance(central, Mapping):
        if str(central.get("enabled")).lower() == "false":
            problems.append("connectInject.centralConfig.enabled: connectInject.centralConfig.enabled cannot be set to false; to disable, set enable_central_service_config to false in server.extraConfig and client.extraConfig")
        if central.get("defaultProtocol"):
            problems.append(f"connectInject.centralConfig.defaultProtocol: connectInject.centralConfig.defaultProtocol is no longer supported; {_CENTRAL_CONFIG_MIGRATE}")
        proxy_defaults = central.get("proxyDefaults")
        if proxy_defaults and str(proxy_defaults).strip() not in ("{}", ""):
            problems.append(f"connectInject.centralConfig.proxyDefaults: connectInject.centralConfig.proxyDefaults is no longer supported; {_CENTRAL_CONFIG_MIGRATE}")
    if v.get("connectInject.imageEnvoy"):
        problems.append("connectInject.imageEnvoy: connectInject.imageEnvoy must be specified in global.imageEnvoy")
    if v.get("global.lifecycleSidecarContainer"):
        problems.append("global.lifecycleSidecarContainer: global.lifecycleSidecarContainer has been renamed to global.consulSidecarContainer. Please set values using global.consulSidecarContainer.")
    if v.get("global.bootstrapACLs"):
        problems.append("global.bootstrapACLs: global.bootstrapACLs was removed, use global.acls.manageSystemACLs instead")
    for key in CONSUL_NAME_KEYS:
        if problem := reserved_name_problem(key, v.get(key)):
            problems.append(problem)
    if "*" in (v.get("connectInject.k8sDenyNamespaces") or ()):
        problems.append('connectInject.k8sDenyNamespaces: "*" is not supported in the deny list; use k8sAllowNamespaces: [] to inject nothing')
    return problems
