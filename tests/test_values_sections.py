"""The settings sections: `values.load()` returns the injector's, the endpoints controller's and the
config-entry controller's settings from the same values, and compiles no templates.

Expected values are the reference's (endpoints-controller.md §1.2, §5; crd-controller.md §2.5,
§3.3-3.4; chart-reference.md §1.2-1.3) for real values: the chart's defaults, managed ACLs,
Consul namespaces with mirroring, partitions, TLS and the kitchen sink.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from generator import values
from generator.base.errors import ConfigError
from generator.inject import engine
from generator.values import config as config_mod
from generator.values.controllers import ControllerSettings, EndpointsSettings
from generator.values.rules import RESERVED_CONSUL_NAMES
from generator.values.shared import ConsulNames

ROOT = Path(__file__).resolve().parent.parent
KITCHEN_SINK = ROOT / "chart" / "ci" / "kitchen-sink-values.yaml"
CA_ENV = {"CONSUL_CACERT": str(ROOT / "tests" / "golden" / "consul-ca.pem")}


def load(*sets: str, files: tuple[Path, ...] = (), release_name: str = "consul", env: dict | None = None) -> values.Settings:
    return values.load(list(files), list(sets), release_name=release_name, environ=env or {})


def test_defaults_endpoints() -> None:
    assert load().endpoints == EndpointsSettings(
        consul_release="consul",
        agent_labels={"app": "consul", "component": "client", "release": "consul"},
        tls_enabled=False, agent_scheme="http", agent_port=8500,
        allow_namespaces=frozenset({"*"}), deny_namespaces=frozenset(),
        enable_consul_namespaces=False, consul_destination_namespace="default",
        enable_mirroring=False, mirroring_prefix="", cross_namespace_policy="",
        enable_partitions=False, partition="",
        tproxy_default=True, overwrite_probes_default=True, metrics_default=False, prometheus_scrape_port=20200,
        auth_method="", log_level="info", log_json=False,
    )


def test_defaults_controller() -> None:
    assert load().controller == ControllerSettings(
        enabled=False, datacenter="dc1",
        enable_consul_namespaces=False, consul_destination_namespace="default",
        enable_mirroring=False, mirroring_prefix="", cross_namespace_policy="",
        enable_partitions=False, partition="",
        log_level="info", log_json=False,
    )


def test_defaults_no_consul_namespace_without_namespaces() -> None:
    settings = load()
    for section in (settings.injector, settings.endpoints, settings.controller):
        assert section.consul_namespace("apps") == ""


def test_load_returns_settings_only_and_the_engine_adds_the_templates() -> None:
    settings = load()
    assert settings.injector.templates is None
    config = engine.load([], [], environ={})
    assert config.templates is not None
    assert dataclasses.replace(config, templates=None) == settings.injector
    assert config_mod.load([], [], environ={}) == settings.injector


def test_acls_managed_auth_method_named_after_the_fullname() -> None:
    settings = load("global.acls.manageSystemACLs=true")
    assert settings.endpoints.auth_method == settings.injector.auth_method == "consul-consul-k8s-auth-method"
    assert load("global.acls.manageSystemACLs=true", release_name="mesh").endpoints.auth_method == "mesh-consul-k8s-auth-method"
    assert load("global.acls.manageSystemACLs=true", "global.name=dc1").endpoints.auth_method == "dc1-k8s-auth-method"
    # Without namespaces, no cross-namespace policy.
    assert settings.endpoints.cross_namespace_policy == settings.controller.cross_namespace_policy == ""


def test_acls_override_auth_method_wins_also_without_managed_acls() -> None:
    for sets in (("connectInject.overrideAuthMethodName=my-method",),
                 ("connectInject.overrideAuthMethodName=my-method", "global.acls.manageSystemACLs=true")):
        settings = load(*sets)
        assert settings.endpoints.auth_method == settings.injector.auth_method == "my-method"


def test_namespaces_with_mirroring() -> None:
    settings = load("global.enableConsulNamespaces=true", "connectInject.consulNamespaces.mirroringK8S=true",
                    "connectInject.consulNamespaces.mirroringK8SPrefix=k8s-", "global.acls.manageSystemACLs=true")
    names = {f.name: getattr(settings.endpoints, f.name) for f in dataclasses.fields(ConsulNames)}
    assert names == {"enable_consul_namespaces": True, "consul_destination_namespace": "default",
                     "enable_mirroring": True, "mirroring_prefix": "k8s-",
                     "cross_namespace_policy": "cross-namespace-policy", "enable_partitions": False, "partition": ""}
    assert {f: getattr(settings.controller, f) for f in names} == names
    for section in (settings.injector, settings.endpoints, settings.controller):
        assert section.consul_namespace("default") == "k8s-default"  # even for default (§5.1)
        assert section.consul_namespace("apps") == "k8s-apps"


def test_namespaces_with_a_destination_namespace() -> None:
    settings = load("global.enableConsulNamespaces=true", "connectInject.consulNamespaces.consulDestinationNamespace=team")
    for section in (settings.injector, settings.endpoints, settings.controller):
        assert section.consul_namespace("apps") == "team"
    assert settings.endpoints.cross_namespace_policy == ""  # ACLs not managed
    # Empty: Consul's default namespace (the reference's flag default).
    empty = load("global.enableConsulNamespaces=true", "connectInject.consulNamespaces.consulDestinationNamespace=")
    assert empty.endpoints.consul_namespace("apps") == empty.controller.consul_namespace("apps") == "default"


def test_partitions() -> None:
    settings = load("global.enableConsulNamespaces=true", "global.adminPartitions.enabled=true",
                    "global.adminPartitions.name=team-a")
    for section in (settings.endpoints, settings.controller):
        assert (section.enable_partitions, section.partition) == (True, "team-a")
    assert settings.injector.partition == "team-a"
    # A name that is not set when partitions are on is Consul's default partition; off, no partition.
    assert load("global.enableConsulNamespaces=true", "global.adminPartitions.enabled=true",
                "global.adminPartitions.name=").endpoints.partition == "default"
    assert load("global.adminPartitions.name=team-a").controller.partition == ""


def test_tls_agents_over_https_8501() -> None:
    endpoints = load("global.tls.enabled=true", env=CA_ENV).endpoints
    assert (endpoints.tls_enabled, endpoints.agent_scheme, endpoints.agent_port) == (True, "https", 8501)


def test_the_consul_release_names_the_client_agents() -> None:
    endpoints = load("global.consulRelease=consul-servers", release_name="injector").endpoints
    assert endpoints.consul_release == "consul-servers"
    assert endpoints.agent_labels == {"app": "consul", "component": "client", "release": "consul-servers"}
    assert load(release_name="injector").endpoints.agent_labels["release"] == "injector"


def test_the_consul_release_names_the_consul_objects() -> None:
    """global.consulRelease: the fullname of the Consul objects (auth method, DNS Service) is the
    Consul release's, as the chart's ConfigMap says it (global.name = consul.consulFullname) and as
    acl-init creates the auth method."""
    settings = load("global.consulRelease=consul-servers", "global.acls.manageSystemACLs=true", release_name="inj")
    assert settings.fullname == "consul-servers-consul"
    assert settings.injector.auth_method == settings.endpoints.auth_method == "consul-servers-consul-k8s-auth-method"
    assert settings.injector.dns_env_var == "CONSUL_SERVERS_CONSUL_DNS_SERVICE_HOST"
    aclinit = pytest.importorskip("generator.aclinit.settings")
    created = aclinit.from_values(settings.values, consul_release="consul-servers", namespace="consul",
                                  auth_method_service_account="inj-consul-connect-inject-auth-method")
    assert created.auth_method == settings.injector.auth_method


def test_allow_and_deny_namespaces() -> None:
    endpoints = load("connectInject.k8sAllowNamespaces={apps,web}", "connectInject.k8sDenyNamespaces={legacy}").endpoints
    assert (endpoints.allow_namespaces, endpoints.deny_namespaces) == (frozenset({"apps", "web"}), frozenset({"legacy"}))
    assert load("connectInject.k8sAllowNamespaces={}").endpoints.allow_namespaces == frozenset()


def test_annotation_defaults_of_the_registrations() -> None:
    endpoints = load("connectInject.transparentProxy.defaultEnabled=false",
                     "connectInject.transparentProxy.defaultOverwriteProbes=false",
                     "global.metrics.enabled=true", "connectInject.metrics.defaultPrometheusScrapePort=20300").endpoints
    assert (endpoints.tproxy_default, endpoints.overwrite_probes_default, endpoints.metrics_default,
            endpoints.prometheus_scrape_port) == (False, False, True, 20300)  # metrics "-" follows global.metrics


@pytest.mark.parametrize("sets,injector,endpoints,controller", [
    ((), "info", "info", "info"),
    (("global.logLevel=warn",), "warn", "warn", "warn"),
    (("connectInject.logLevel=trace",), "trace", "trace", "info"),
    (("controller.logLevel=debug",), "info", "info", "debug"),
    (("global.logLevel=error", "controller.logLevel=",), "error", "error", "error"),
])
def test_log_level_of_each_component(sets, injector, endpoints, controller) -> None:
    settings = load(*sets)
    assert (settings.injector.log_level, settings.endpoints.log_level, settings.controller.log_level) == (injector, endpoints, controller)


def test_datacenter_and_log_json() -> None:
    settings = load("global.datacenter=dc-east", "global.logJSON=true")
    assert settings.controller.datacenter == "dc-east"
    assert settings.injector.log_json and settings.endpoints.log_json and settings.controller.log_json


def test_the_kitchen_sink() -> None:
    settings = load(files=(KITCHEN_SINK,), env=CA_ENV)
    assert settings.fullname == "mesh"
    assert settings.endpoints == EndpointsSettings(
        consul_release="consul",
        agent_labels={"app": "consul", "component": "client", "release": "consul"},
        tls_enabled=True, agent_scheme="https", agent_port=8501,
        allow_namespaces=settings.injector.allow_namespaces, deny_namespaces=settings.injector.deny_namespaces,
        enable_consul_namespaces=True, consul_destination_namespace=settings.injector.destination_namespace,
        enable_mirroring=settings.injector.mirroring, mirroring_prefix=settings.injector.mirroring_prefix,
        cross_namespace_policy="cross-namespace-policy",
        enable_partitions=True, partition="default",
        tproxy_default=True, overwrite_probes_default=True, metrics_default=True, prometheus_scrape_port=20201,
        auth_method="mesh-k8s-auth-method", log_level="info", log_json=True,
    )
    assert settings.controller == ControllerSettings(
        enabled=True, datacenter="dc1",
        enable_consul_namespaces=True, consul_destination_namespace=settings.endpoints.consul_destination_namespace,
        enable_mirroring=settings.endpoints.enable_mirroring, mirroring_prefix=settings.endpoints.mirroring_prefix,
        cross_namespace_policy="cross-namespace-policy", enable_partitions=True, partition="default",
        log_level="info", log_json=True,  # controller.logLevel; global.logLevel (debug) only fills in ""
    )


def test_the_controller_switch() -> None:
    assert load("controller.enabled=true").controller.enabled is True


def test_the_sections_refuse_what_the_chart_refuses() -> None:
    with pytest.raises(ConfigError) as exc:
        load("global.enableConsulNamespaces=true", "global.adminPartitions.enabled=true", "global.adminPartitions.name=root")
    assert exc.value.problems == ["global.adminPartitions.name: The name root set for key global.adminPartitions.name is reserved by Consul for future use."]


def test_the_reserved_names_are_the_charts() -> None:
    """consul.reservedNamesFailer in _helpers.tpl lists the same names as the engine."""
    helpers = (ROOT / "chart" / "templates" / "_helpers.tpl").read_text()
    block = helpers[helpers.index('define "consul.reservedNamesFailer"'):]
    listed = re.search(r"has \$name \(list ([^)]*)\)", block)
    assert listed and tuple(re.findall(r'"([^"]+)"', listed.group(1))) == RESERVED_CONSUL_NAMES


@pytest.mark.parametrize("sets", [
    (),
    ("global.enableConsulNamespaces=true", "connectInject.consulNamespaces.mirroringK8S=true",
     "connectInject.consulNamespaces.mirroringK8SPrefix=k8s-", "global.acls.manageSystemACLs=true"),
    ("global.enableConsulNamespaces=true", "global.adminPartitions.enabled=true", "global.adminPartitions.name=p",
     "connectInject.k8sDenyNamespaces={legacy}", "connectInject.overrideAuthMethodName=m", "global.metrics.enabled=true"),
])
def test_the_endpoints_section_says_what_the_controller_derives_today(sets) -> None:
    """The endpoints controller's own Settings are taken field for field from this section
    (Settings.from_section): nothing derived a second time."""
    bridge = pytest.importorskip("generator.endpoints.settings").Settings
    settings = load(*sets)
    theirs = dataclasses.asdict(bridge.from_section(settings.endpoints))
    ours = {name: getattr(settings.endpoints, name) for name in theirs}
    assert ours == theirs


@pytest.mark.parametrize("sets", [
    (),
    ("global.datacenter=dc-east", "global.enableConsulNamespaces=true", "connectInject.consulNamespaces.mirroringK8S=true",
     "connectInject.consulNamespaces.mirroringK8SPrefix=k8s-", "global.acls.manageSystemACLs=true"),
    ("global.enableConsulNamespaces=true", "global.adminPartitions.enabled=true", "global.adminPartitions.name=p",
     "connectInject.consulNamespaces.consulDestinationNamespace=team"),
])
def test_the_controller_section_says_what_the_controller_derives_today(sets) -> None:
    """The config-entry controller's reconcile settings are taken from this section
    (settings_from): nothing derived a second time."""
    entry = pytest.importorskip("generator.entrycontroller.controller")
    settings = load(*sets)
    theirs = entry.settings_from(settings.controller)
    ours = settings.controller
    meta = theirs.consul_meta
    assert (theirs.datacenter, theirs.cross_namespace_policy) == (ours.datacenter, ours.cross_namespace_policy)
    assert (meta.partitions_enabled, meta.partition, meta.namespaces_enabled, meta.destination_namespace,
            meta.mirroring, meta.prefix) == (ours.enable_partitions, ours.partition, ours.enable_consul_namespaces,
                                             ours.consul_destination_namespace, ours.enable_mirroring,
                                             ours.mirroring_prefix)
