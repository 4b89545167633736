"""The settings of the two controllers, from the same values as the injector's.

`EndpointsSettings`: what reaches the endpoints controller (`connect-inject endpoints-controller`;
reference: endpoints-controller.md §1.2, the `inject-connect` flags the chart sets from values).
`ControllerSettings`: what reaches the config-entry controller (`connect-inject controller`,
`controller.*`; reference: crd-controller.md §3.3-3.4).

Both are frozen and hold only what the values (and `--release-name`) say. What a process takes
from its environment or flags stays there: the Consul address, token and CA (`CONSUL_HTTP_ADDR`,
`CONSUL_HTTP_TOKEN[_FILE]`, `CONSUL_CACERT`), `--release-namespace`, and the level it logs at
(`--log-level`, which the chart sets from the section's `log_level`, `trace` as `debug`;
tests/chart/test_log_level.py). Each field's comment names the values key it comes from; every
default is chart/values.yaml's.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Mapping

import generator.values.shared as shared
from generator.base import consulns
from generator.values.injector import Config
from generator.values.source import Values

# The Consul client agents' HTTP API on every node (hostPorts of the Consul chart's client
# DaemonSet); the chart points CONSUL_HTTP_ADDR at one of them on the pod's node.
AGENT_HTTP_PORT = 8500
AGENT_HTTPS_PORT = 8501


@dataclass(frozen=True)
class EndpointsSettings:
    """The endpoints controller's settings (reference endpoints-controller.md §1.2)."""

    # The Consul release whose client agents the controller talks to: global.consulRelease, else
    # --release-name (the chart passes the same name as --release-name); shared.consul_release().
    consul_release: str
    # Labels of that release's client agent pods, listed in --release-namespace (reference §1.3,
    # §1.5): app=consul (the reference's literal, not consul.name), component=client,
    # release=consul_release. Deregistration goes through every such pod.
    agent_labels: Mapping[str, str]
    # Consul over TLS (global.tls.enabled): the agents are reached at https://<ip>:8501, else at
    # http://<ip>:8500 (agent_scheme, agent_port). This is what the chart writes into
    # CONSUL_HTTP_ADDR; a process that has CONSUL_HTTP_ADDR takes scheme and port from it
    # (design.md "Controllers"), these are the values' word for the same thing.
    tls_enabled: bool
    agent_scheme: str
    agent_port: int
    # Kubernetes namespaces whose Endpoints are reconciled (connectInject.k8sAllowNamespaces,
    # chart default ["*"]; "*" = all; [] = none). kube-system, kube-public and
    # local-path-storage are never reconciled (the controller's rule, not a setting).
    allow_namespaces: frozenset[str]
    # Never reconciled; wins over the allow list (connectInject.k8sDenyNamespaces).
    deny_namespaces: frozenset[str]
    # Consul Enterprise namespaces (global.enableConsulNamespaces): registrations carry
    # `Namespace` and every request about a service carries `?ns=`. The seven fields from here to
    # `partition` are shared.ConsulNames, the same for the three components.
    enable_consul_namespaces: bool
    # The Consul namespace of every service when not mirroring
    # (connectInject.consulNamespaces.consulDestinationNamespace; empty: "default").
    consul_destination_namespace: str
    # Consul namespace = mirroring_prefix + Kubernetes namespace
    # (connectInject.consulNamespaces.mirroringK8S, .mirroringK8SPrefix); wins over the destination.
    enable_mirroring: bool
    mirroring_prefix: str
    # ACL policy the Consul namespaces the controller creates get as a default (reference §5.3,
    # §5.4): "cross-namespace-policy" with global.acls.manageSystemACLs and namespaces on, else "".
    cross_namespace_policy: str
    # Admin partitions (global.adminPartitions.enabled): upstreams parse as
    # name[.namespace[.partition]], and `partition` (global.adminPartitions.name, empty:
    # "default") goes on every Consul request as `?partition=`, never in bodies. "" when off.
    enable_partitions: bool
    partition: str
    # Defaults of the pod annotations the registrations read, as the injector's:
    # connectInject.transparentProxy.defaultEnabled, .defaultOverwriteProbes,
    # connectInject.metrics.defaultEnabled ("-": global.metrics.enabled),
    # connectInject.metrics.defaultPrometheusScrapePort (1024-65535, checked by the schema).
    tproxy_default: bool
    overwrite_probes_default: bool
    metrics_default: bool
    prometheus_scrape_port: int
    # The ACL auth method of injected pods' login tokens, deleted when their instance is
    # deregistered (reference §4.3): connectInject.overrideAuthMethodName, else
    # "<fullname>-k8s-auth-method" with global.acls.manageSystemACLs (fullname: the Consul
    # release's, see shared.compute_fullname), else "" (no token cleanup). The same name the
    # injector gives connect-init and acl-init creates.
    auth_method: str
    # connectInject.logLevel, else global.logLevel (may be "trace"); global.logJSON.
    log_level: str
    log_json: bool

    def consul_namespace(self, k8s_namespace: str) -> str:
        """The reference's `namespaces.ConsulNamespace` (§5.1): "" without namespaces, else the
        mirrored name (prefix `k8s-` makes `default` into `k8s-default`), else the destination."""
        return consulns.consul_namespace(k8s_namespace, enabled=self.enable_consul_namespaces,
                                         destination=self.consul_destination_namespace,
                                         mirroring=self.enable_mirroring, prefix=self.mirroring_prefix)


@dataclass(frozen=True)
class ControllerSettings:
    """The config-entry controller's settings (reference crd-controller.md §2.5, §2.6, §3.3)."""

    # controller.enabled: the chart installs the controller (its CRDs, Deployment and webhook).
    enabled: bool
    # global.datacenter: entry meta `consul.hashicorp.com/source-datacenter` (the reference
    # refuses to start when it is empty: "-datacenter must be set").
    datacenter: str
    # Consul namespaces, as for the endpoints controller and from the same keys (the reference
    # chart passes connectInject.consulNamespaces.* to the controller too):
    # global.enableConsulNamespaces; connectInject.consulNamespaces.consulDestinationNamespace
    # (empty: "default"), .mirroringK8S, .mirroringK8SPrefix; the cross-namespace policy given to
    # the namespaces it creates ("cross-namespace-policy" with managed ACLs, else "").
    enable_consul_namespaces: bool
    consul_destination_namespace: str
    enable_mirroring: bool
    mirroring_prefix: str
    cross_namespace_policy: str
    # global.adminPartitions.enabled (partition-aware validation) and the partition of every
    # Consul request (global.adminPartitions.name, empty: "default"; "" when off).
    enable_partitions: bool
    partition: str
    # controller.logLevel, else global.logLevel (may be "trace"); global.logJSON.
    log_level: str
    log_json: bool

    def consul_namespace(self, k8s_namespace: str) -> str:
        """The Consul namespace of a namespaced entry whose mirroring source is `k8s_namespace`
        (crd-controller.md §2.5 rule 2); entries that name their own namespace, global kinds and
        `*` are the controller's business."""
        return consulns.consul_namespace(k8s_namespace, enabled=self.enable_consul_namespaces,
                                         destination=self.consul_destination_namespace,
                                         mirroring=self.enable_mirroring, prefix=self.mirroring_prefix)


def build_endpoints(v: Values, consul_release: str, injector: Config, names: shared.ConsulNames) -> EndpointsSettings:
    """The endpoints controller's settings; what it shares with the injector is the injector's."""
    tls = bool(v.get("global.tls.enabled"))
    return EndpointsSettings(
        consul_release=consul_release,
        agent_labels={"app": "consul", "component": "client", "release": consul_release},
        tls_enabled=tls,
        agent_scheme="https" if tls else "http",
        agent_port=AGENT_HTTPS_PORT if tls else AGENT_HTTP_PORT,
        allow_namespaces=injector.allow_namespaces,
        deny_namespaces=injector.deny_namespaces,
        **dataclasses.asdict(names),
        tproxy_default=injector.tproxy_default,
        overwrite_probes_default=injector.overwrite_probes_default,
        metrics_default=injector.metrics_default,
        prometheus_scrape_port=injector.prometheus_scrape_port,
        auth_method=injector.auth_method,
        log_level=injector.log_level,
        log_json=injector.log_json,
    )


def build_controller(v: Values, injector: Config, names: shared.ConsulNames) -> ControllerSettings:
    """The config-entry controller's settings."""
    return ControllerSettings(
        enabled=bool(v.get("controller.enabled")),
        datacenter=injector.datacenter,
        **dataclasses.asdict(names),
        log_level=shared.log_level(v, "controller.logLevel"),
        log_json=bool(v.get("global.logJSON")),
    )
