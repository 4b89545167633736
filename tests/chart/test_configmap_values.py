"""The values ConfigMap holds what the three components read, and nothing else of global, client,
dns and controller.

The ConfigMap is readable by anyone with the `view` role, and the Consul chart's values carry
secrets in keys this chart does not use (client.extraEnvironmentVars, the ACL, gossip and licence
Secret references, ...). Those never reach it. Its list of keys is exactly the keys the settings
read (generator/values), and from the ConfigMap alone (`--values values.json --no-chart-defaults`,
as the chart starts the webhook and the controllers) the injector, the endpoints controller and
the config-entry controller get the same settings as from the whole values, and the engine injects
exactly the golden pods it injects from the whole values.
"""

from __future__ import annotations

import dataclasses
import gzip
import json
import re
import sys
from pathlib import Path

import pytest

from helmrender import CHART, ROOT, merge_values, render

sys.path.insert(0, str(ROOT / "tests"))  # golden_cases (tests/), also when only tests/chart runs

import golden_cases  # noqa: E402

from generator.inject import engine  # noqa: E402
from generator.values import config as values_config, helmvalues, source  # noqa: E402
from generator.inject.review import no_labels  # noqa: E402
from generator.inject.workloads import inject_stream  # noqa: E402
from generator.base.yamlio import dump_stream, read_stream  # noqa: E402

ENABLED = {"connectInject": {"enabled": True}}
# Values of the Consul chart that hold secrets or name them; each string is a marker to look for.
SECRETS = {
    "client": {
        "extraEnvironmentVars": {"CONSUL_HTTP_TOKEN": "marker-client-env-token"},
        "extraConfig": '{"acl": {"tokens": {"agent": "marker-client-agent-token"}}}',
        "snapshotAgent": {"configSecret": {"secretName": "marker-snapshot-secret"}},
    },
    "global": {
        "acls": {"bootstrapToken": {"secretName": "marker-bootstrap-secret", "secretKey": "marker-bootstrap-key"},
                 "replicationToken": {"secretName": "marker-replication-secret", "secretKey": "token"}},
        "gossipEncryption": {"secretName": "marker-gossip-secret", "secretKey": "marker-gossip-key"},
        "enterpriseLicense": {"secretName": "marker-license-secret", "secretKey": "license"},
        "tls": {"caKey": {"secretName": "marker-ca-key-secret", "secretKey": "tls.key"}},
        "federation": {"k8sAuthMethodHost": "marker-federation-host"},
    },
    "dns": {"annotations": "marker-dns-annotation: x"},
    "server": {"extraConfig": '{"acl": {"tokens": {"initial_management": "marker-server-token"}}}'},
}
MARKERS = sorted({w for w in json.dumps(SECRETS).replace('"', " ").replace(",", " ").split() if w.startswith("marker-")})


def injector_configmap(rendered) -> dict:
    """The injector's values ConfigMap (the kitchen sink also has the config-entry controller's)."""
    (found,) = [o for o in rendered.objects if o["kind"] == "ConfigMap"
                and o["metadata"].get("labels", {}).get("component") == "connect-injector"]
    return found


def values_json(rendered) -> dict:
    return json.loads(injector_configmap(rendered)["data"]["values.json"])


@pytest.mark.parametrize("base", ["enabled", "kitchen-sink"])
def test_secrets_in_values_the_engine_does_not_read_never_reach_the_manifests(base: str, helm: str | None) -> None:
    values = [ENABLED] if base == "enabled" else [CHART / "ci" / "kitchen-sink-values.yaml"]
    rendered = render([*values, SECRETS], helm=helm)
    everything = "".join(text for name, text in rendered.files.items() if "/acl-init-" not in name)
    assert [m for m in MARKERS if m in everything] == []
    # The ACL bootstrap Job reads the management token from the Secret global.acls.bootstrapToken
    # names: that reference (never a token) is all it gets of the secrets.
    acl_init = "".join(text for name, text in rendered.files.items() if "/acl-init-" in name)
    assert [m for m in MARKERS if m in acl_init
            and not m.startswith(("marker-bootstrap-", "marker-replication-secret"))] == []
    # The webhook still gets its settings: the ConfigMap is not just empty.
    config = values_json(rendered)
    assert config["client"] == {"enabled": True if base == "kitchen-sink" else "-", "grpc": True}
    assert config["global"]["acls"] == {"manageSystemACLs": base == "kitchen-sink"}
    assert config["connectInject"]["enabled"] is True


def test_the_configmap_keeps_all_of_connect_inject(helm: str | None) -> None:
    """Templates from connectInject.templates may read any of `values.connectInject`."""
    rendered = render([CHART / "ci" / "kitchen-sink-values.yaml", SECRETS], helm=helm)
    merged = merge_values(CHART / "values.yaml", CHART / "ci" / "kitchen-sink-values.yaml")
    # Helm 3 keeps the chart defaults' nulls, Helm 4 drops them; the engine reads both as unset.
    assert _without_nulls(values_json(rendered)["connectInject"]) == _without_nulls(merged["connectInject"])


def _without_nulls(value):
    if isinstance(value, dict):
        return {k: _without_nulls(v) for k, v in value.items() if v is not None}
    return value


def _inject(values_file: Path, case: golden_cases.Case) -> str:
    """The golden case's input through the engine loaded from `values_file` as `serve` loads it."""
    config = engine.load([values_file], environ=case.env, chart_defaults=False)
    outcome = inject_stream(read_stream(str(case.input)), config, case.namespace, no_labels)
    return golden_cases.render(dump_stream(outcome.objects), outcome.warnings + outcome.errors)


@pytest.mark.parametrize("case", golden_cases.cases(), ids=lambda c: c.name)
def test_the_engine_injects_the_golden_pods_from_the_configmap(case: golden_cases.Case, helm: str | None,
                                                                tmp_path: Path) -> None:
    """Each golden case's --set values, rendered by the chart (with secrets beside them): the
    engine reads the ConfigMap and injects byte for byte the golden output."""
    case_values: dict = {}
    for expr in case.sets:
        case_values = helmvalues.merge(case_values, helmvalues.parse_set(expr))
    rendered = render([ENABLED, case_values, SECRETS], helm=helm)
    values_file = tmp_path / "values.json"
    values_file.write_text(injector_configmap(rendered)["data"]["values.json"])
    assert _inject(values_file, case) == case.expected_path.read_text()


KITCHEN_SINK_VARIANTS = {
    "as-is": ({}, ("-partition=\"default\"", "-acl-auth-method=", "-consul-dns-ip=", "-consul-service-namespace=")),
    "global-log-level": ({"connectInject": {"logLevel": ""}}, ("-log-level=debug",)),
    "partition-name": ({"global": {"adminPartitions": {"name": "team-a"}}}, ("-partition=\"team-a\"",)),
    "dns-off": ({"dns": {"enabled": False}}, ("-acl-auth-method=",)),
}


@pytest.mark.parametrize("variant", sorted(KITCHEN_SINK_VARIANTS))
def test_the_kitchen_sink_injects_the_same_from_the_configmap_as_from_the_whole_values(variant: str, helm: str | None,
                                                                                       tmp_path: Path) -> None:
    """Every feature on (partitions, ACLs, TLS, mirroring, metrics, DNS): the ConfigMap is enough."""
    extra, flags = KITCHEN_SINK_VARIANTS[variant]
    kitchen_sink = tmp_path / "kitchen-sink.yaml"
    kitchen_sink.write_text(json.dumps(merge_values(CHART / "ci" / "kitchen-sink-values.yaml", extra)))
    rendered = render([kitchen_sink, SECRETS], helm=helm)
    values_file = tmp_path / "values.json"
    values_file.write_text(injector_configmap(rendered)["data"]["values.json"])
    case = golden_cases.Case("kitchen-sink", golden_cases.GOLDEN / "docs-examples-sa-token.yaml", namespace="apps",
                             env={"CONSUL_CACERT": str(golden_cases.GOLDEN / "consul-ca.pem"),
                                  "MESH_DNS_SERVICE_HOST": "10.96.0.53"})
    whole = engine.load([kitchen_sink], environ=case.env)
    outcome = inject_stream(read_stream(str(case.input)), whole, case.namespace, no_labels)
    expected = golden_cases.render(dump_stream(outcome.objects), outcome.warnings + outcome.errors)
    assert [flag for flag in flags if flag not in expected] == []  # what this variant is about
    assert ("-consul-dns-ip=" in expected) == (variant != "dns-off")
    assert _inject(values_file, case) == expected


@pytest.mark.parametrize("variant", sorted(KITCHEN_SINK_VARIANTS))
def test_the_endpoints_controller_reads_the_same_settings_from_the_configmap(variant: str, helm: str | None,
                                                                              tmp_path: Path) -> None:
    """The endpoints controller runs from the injector's ConfigMap (`--values values.json
    --no-chart-defaults`): its settings (namespaces, mirroring, partitions, transparent proxy,
    metrics, the ACL auth method and cross-namespace policy) equal those of the whole values."""
    from generator.endpoints.settings import Settings
    from generator.values import config as values_config

    extra, _flags = KITCHEN_SINK_VARIANTS[variant]
    kitchen_sink = tmp_path / "kitchen-sink.yaml"
    kitchen_sink.write_text(json.dumps(merge_values(CHART / "ci" / "kitchen-sink-values.yaml", extra)))
    values_file = tmp_path / "values.json"
    values_file.write_text(injector_configmap(render([kitchen_sink, SECRETS], helm=helm))["data"]["values.json"])
    env = {"CONSUL_CACERT": str(golden_cases.GOLDEN / "consul-ca.pem")}
    whole = values_config.load_settings([str(kitchen_sink)], environ=env).endpoints
    mounted = values_config.load_settings([str(values_file)], chart_defaults=False, environ=env).endpoints
    assert Settings.from_section(mounted) == Settings.from_section(whole)
    assert mounted.auth_method == whole.auth_method


CA_ENV = {"CONSUL_CACERT": str(golden_cases.GOLDEN / "consul-ca.pem")}
# Keys the settings read that the ConfigMap does not copy: global.name carries the fullname they
# make (the template sets it), and all of connectInject is copied.
FULLNAME_KEYS = {"fullnameOverride", "nameOverride", "global.name"}


def configmap_keys() -> list[str]:
    """The template's list of keys it copies besides connectInject."""
    text = (CHART / "templates" / "connect-inject-configmap.yaml").read_text()
    listed = re.search(r"\$engineKeys := list(.*?)}}", text, re.S)
    assert listed, "connect-inject-configmap.yaml: no $engineKeys list"
    return re.findall(r'"([^"]+)"', listed.group(1))


def keys_read(values: dict) -> set[str]:
    """Every key the settings of the three components read from `values` (over the chart defaults)."""
    v = source.Values(helmvalues.coalesce(source.chart_defaults(), values))
    values_config.from_values(v, environ=CA_ENV)
    return v.read


# Values under which the settings read every key they can (each switch that makes them read more).
READ_EVERYTHING = [
    {},
    {"global": {"enableConsulNamespaces": True, "adminPartitions": {"enabled": True},
                "acls": {"manageSystemACLs": True}, "tls": {"enabled": True}}},
]


def test_the_configmap_copies_exactly_the_keys_the_components_read() -> None:
    read = set().union(*(keys_read(values) for values in READ_EVERYTHING))
    expected = {k for k in read if not k.startswith("connectInject.")} - FULLNAME_KEYS
    listed = configmap_keys()
    assert len(listed) == len(set(listed))
    assert sorted(set(listed) - expected) == [], "copied but read by no component"
    assert sorted(expected - set(listed)) == [], "read by a component but not copied"


def _user_file(values: dict) -> dict:
    return {**values, "connectInject": {**values.get("connectInject", {}), "enabled": True}}


def _consul_chart_defaults(version: str) -> dict:
    """A real `helm get values --all` of the Consul chart (tests/data), injection on."""
    data = json.loads(gzip.decompress((ROOT / "tests" / "data" / "consul-chart-defaults.json.gz").read_bytes()))
    return _user_file(data[version])


VALUES_FILES = {
    "defaults": lambda: _user_file({}),
    "acls": lambda: _user_file({"global": {"acls": {"manageSystemACLs": True}}}),
    "namespaces-mirroring": lambda: _user_file({
        "global": {"enableConsulNamespaces": True, "acls": {"manageSystemACLs": True}},
        "connectInject": {"consulNamespaces": {"mirroringK8S": True, "mirroringK8SPrefix": "k8s-"},
                          "k8sAllowNamespaces": ["apps", "web"], "k8sDenyNamespaces": ["legacy"]}}),
    "partitions-tls": lambda: _user_file({
        "global": {"enableConsulNamespaces": True, "adminPartitions": {"enabled": True, "name": "team-a"},
                   "tls": {"enabled": True}},
        "connectInject": {"consulNamespaces": {"consulDestinationNamespace": "apps"}}}),
    "controller-keys": lambda: _user_file({
        "global": {"datacenter": "dc-east", "consulRelease": "consul-servers", "logLevel": "warn", "logJSON": True},
        "controller": {"logLevel": "debug"}, "connectInject": {"overrideAuthMethodName": "by-hand"}}),
    "nulls": lambda: _user_file({
        "global": {"logLevel": None, "datacenter": None},
        "connectInject": {"transparentProxy": {"defaultEnabled": None}, "initContainer": {"resources": None},
                          "metrics": {"defaultPrometheusScrapePort": None}}}),
    "kitchen-sink": lambda: merge_values(CHART / "ci" / "kitchen-sink-values.yaml"),
    "controller-alone": lambda: {"controller": {"enabled": True, "logLevel": "warn"}, "global": {"datacenter": "dc2"}},
    "consul-chart-v0.37.0": lambda: _consul_chart_defaults("v0.37.0"),
    "consul-chart-v0.49.8": lambda: _consul_chart_defaults("v0.49.8"),
}


def _sections(settings: values_config.Settings) -> tuple:
    """What the components read; not the values document (the ConfigMap's is a part of it)."""
    return (settings.release_name, settings.fullname, dataclasses.replace(settings.injector, values={}),
            settings.endpoints, settings.controller)


@pytest.mark.parametrize("name", sorted(VALUES_FILES))
def test_settings_from_the_configmap_equal_settings_from_the_whole_values(name: str, helm: str | None,
                                                                         tmp_path: Path) -> None:
    """For the injector and both controllers: `--values values.json --no-chart-defaults` from the
    values ConfigMap (the injector's, and the config-entry controller's when it has its own) gives
    the settings that the whole values file (with secrets beside) gives."""
    whole_file = tmp_path / "whole.json"
    whole_file.write_text(json.dumps(VALUES_FILES[name]()))
    release = "inj" if name == "acls" else "consul"  # global.name carries the fullname of any release
    rendered = render([whole_file, SECRETS], release=release, helm=helm)
    whole = values_config.load_settings([whole_file], release_name=release, environ=CA_ENV)
    configmaps = {o["metadata"]["labels"]["component"]: o for o in rendered.objects if o["kind"] == "ConfigMap"
                  and o["metadata"].get("labels", {}).get("component") in ("connect-injector", "controller")}
    assert "connect-injector" in configmaps or name == "controller-alone"
    assert ("controller" in configmaps) == whole.controller.enabled
    for component, configmap in configmaps.items():
        path = tmp_path / f"{component}.json"
        path.write_text(configmap["data"]["values.json"])
        from_configmap = values_config.load_settings([path], release_name=release, environ=CA_ENV, chart_defaults=False)
        assert _sections(from_configmap) == _sections(whole), component
