"""What `acl-init` creates, derived from the values (the same file the Consul release reads).

Names follow the Consul release, never ours: the objects are the Consul chart's, consumed by
pods it injected before the split and by ours after (install-beside-consul.md §1.6). Its
fullname is the Consul chart's `consul.fullname` computed for the Consul release's name
(`fullnameOverride`, else `global.name`, else `<NAME>-consul`).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from generator.aclinit import rules
from generator.values.config import compute_fullname, setting, tristate

DEFAULT_K8S_HOST = "https://kubernetes.default.svc"  # the reference's defaultKubernetesHost
CROSS_NAMESPACE_POLICY = "cross-namespace-policy"
CROSS_NAMESPACE_DESCRIPTION = "Policy to allow permissions to cross Consul namespaces for k8s services"
ANONYMOUS_POLICY = "anonymous-token-policy"
ANONYMOUS_DESCRIPTION = "Anonymous token Policy"
ANONYMOUS_ACCESSOR = "00000000-0000-0000-0000-000000000002"  # Consul's anonymous token
AUTH_METHOD_DESCRIPTION = "Kubernetes Auth Method"
BINDING_RULE_DESCRIPTION = "Kubernetes binding rule"
BINDING_RULE_BIND_NAME = "${serviceaccount.name}"
TOKEN_KEY = "token"  # data key of every token Secret (the reference's common.ACLTokenSecretKey)


@dataclass(frozen=True)
class TokenSecret:
    """Where the management token is kept: a Secret of the Consul release and its key."""

    name: str
    key: str
    source: str  # the values key that named it, for messages


@dataclass(frozen=True)
class Settings:
    """Everything `acl-init` writes, as plain data (tests build it from values)."""

    namespace: str                 # Kubernetes namespace of both releases (the Secrets)
    consul_release: str
    fullname: str                  # the Consul release's fullname (C)
    auth_method_service_account: str
    inject: bool                   # our chart runs the injector: auth method, rule, inject token
    controller: bool               # our chart runs the config-entry controller: controller token
    binding_rule_selector: str
    k8s_host: str
    enable_namespaces: bool
    destination_namespace: str
    mirroring: bool
    mirroring_prefix: str
    partition: str
    federation: bool
    management_secret: TokenSecret

    @property
    def auth_method(self) -> str:
        return f"{self.fullname}-k8s-auth-method"

    @property
    def inject_secret(self) -> str:
        return f"{self.fullname}-connect-inject-acl-token"

    @property
    def controller_secret(self) -> str:
        return f"{self.fullname}-controller-acl-token"

    @property
    def auth_method_namespace(self) -> str:
        """The Consul namespace of the auth method and its binding rule ("" = none / default):
        the destination namespace, unless mirroring (then `default`, as the reference)."""
        if self.enable_namespaces and not self.mirroring:
            return self.destination_namespace
        return ""

    def policy_name(self, base: str, datacenter: str, primary: bool) -> str:
        """`<base>-token`, with `-<dc>` in a secondary datacenter of a federation (names of
        replicated global policies must be unique)."""
        name = f"{base}-token"
        return f"{name}-{datacenter}" if self.federation and not primary else name

    def inject_rules(self) -> str:
        return rules.inject_rules(self.enable_namespaces, self.partition)

    def controller_rules(self) -> str:
        return rules.controller_rules(self.enable_namespaces, self.destination_namespace, self.mirroring,
                                      self.mirroring_prefix, self.partition)

    def cross_namespace_rules(self) -> str:
        return rules.cross_namespace_rules(self.partition)

    def anonymous_rules(self) -> str:
        return rules.anonymous_rules(self.enable_namespaces, bool(self.partition))

    def needs_anonymous_policy(self, primary: bool) -> bool:
        """The reference's createAnonymousPolicy for connect inject: in the primary datacenter of a
        federation, cross-datacenter requests arrive without the pod's token; the Consul release
        stops writing this policy once its own injector is off (unless its DNS is on)."""
        return primary and self.inject and self.federation


def from_values(values: Mapping[str, Any], *, consul_release: str, namespace: str,
                auth_method_service_account: str) -> Settings:
    """The settings for a Consul release named `consul_release` in `namespace`."""
    g = functools.partial(setting, values)
    external = values.get("externalServers") if isinstance(values.get("externalServers"), Mapping) else {}
    host = (external or {}).get("k8sAuthMethodHost") if (external or {}).get("enabled") else None
    namespaces = bool(g("global.enableConsulNamespaces"))
    return Settings(
        namespace=namespace,
        consul_release=consul_release,
        fullname=compute_fullname(values, consul_release),
        auth_method_service_account=auth_method_service_account,
        inject=tristate(g("connectInject.enabled"), g("global.enabled")),
        controller=bool(g("controller.enabled")),
        binding_rule_selector=g("connectInject.aclBindingRuleSelector") or "",
        k8s_host=str(host or DEFAULT_K8S_HOST),
        enable_namespaces=namespaces,
        destination_namespace=g("connectInject.consulNamespaces.consulDestinationNamespace") or "default",
        mirroring=namespaces and bool(g("connectInject.consulNamespaces.mirroringK8S")),
        mirroring_prefix=g("connectInject.consulNamespaces.mirroringK8SPrefix") or "",
        partition=(g("global.adminPartitions.name") or "default") if g("global.adminPartitions.enabled") else "",
        federation=bool(g("global.federation.enabled")),
        management_secret=_management_secret(values, compute_fullname(values, consul_release)),
    )


def _management_secret(values: Mapping[str, Any], fullname: str) -> TokenSecret:
    """The reference's order (§1.2): `global.acls.bootstrapToken` when both keys are set, else
    `global.acls.replicationToken` (a secondary datacenter: the replication token is the
    management token there), else the Secret server-acl-init wrote when it bootstrapped the ACLs."""
    for key_path in ("global.acls.bootstrapToken", "global.acls.replicationToken"):
        name = setting(values, key_path + ".secretName")
        key = setting(values, key_path + ".secretKey")
        if name and key:
            return TokenSecret(str(name), str(key), key_path)
    return TokenSecret(f"{fullname}-bootstrap-acl-token", TOKEN_KEY, "the Consul chart's ACL bootstrap")
