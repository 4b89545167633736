"""Values: Helm's merge order and --set typing, the yamale schema, the chart's cross-key `fail`
rules, and template overrides. Problems are `path: message` lines, before any pod is touched."""

from __future__ import annotations

import pytest
import yaml

from engine_helpers import container, inject, load_config, make_pod
from generator.values import config as config_mod
from generator.inject import engine
from generator.values import helmvalues
from generator.base.errors import ConfigError


def _problems(*sets: str, files=(), env=None) -> list[str]:
    with pytest.raises(ConfigError) as info:
        engine.load(list(files), list(sets), environ=env or {})
    return info.value.problems


@pytest.mark.parametrize("expr", [
    "a.b=1,c=true", "x=null", "l={a,1,true}", "p[1].q=2", "a\\.b=c", "v=0123", "v=-5", "s=a\\,b", "k=", "n=TRUE",
    "m.n.o=1.5", "big=99999999999999999999", "list[0]=x,list[2]=z",
])
def test_set_parsing_matches_helm(expr):
    helm_python = pytest.importorskip("helm_python")
    assert helmvalues.parse_set(expr) == helm_python.parse_set_string(expr)


def test_set_without_value_is_an_error():
    assert "has no value" in _problems("connectInject.default")[0]


def test_merge_order_files_then_set_and_null_deletes(tmp_path):
    a, b = tmp_path / "a.yaml", tmp_path / "b.yaml"
    a.write_text("global:\n  imageEnvoy: envoy:a\n  image: consul:a\nconnectInject:\n  envoyExtraArgs: --a\n")
    b.write_text("global:\n  imageEnvoy: envoy:b\n")
    config = load_config("global.image=consul:set", files=(str(a), str(b)))
    assert (config.envoy_image, config.consul_image, config.envoy_extra_args) == ("envoy:b", "consul:set", ("--a",))
    # A null deletes the chart default: the init container gets no memory limit.
    c = tmp_path / "c.yaml"
    c.write_text("connectInject:\n  initContainer:\n    resources:\n      limits:\n        memory: null\n")
    assert load_config(files=(str(c),)).init_resources.limits == {"cpu": "50m"}


def test_consul_chart_values_file_is_accepted(tmp_path):
    values = tmp_path / "consul.yaml"
    values.write_text(yaml.safe_dump({
        "global": {"name": "consul", "datacenter": "dc1", "gossipEncryption": {"secretName": "g", "secretKey": "k"},
                   "tls": {"enabled": False, "verify": True}},
        "server": {"replicas": 3, "bootstrapExpect": 3},
        "client": {"enabled": True, "grpc": True, "extraConfig": "{}"},
        "ui": {"enabled": True},
        "connectInject": {"enabled": True, "default": True},
        "syncCatalog": {"enabled": False},
    }))
    config = load_config(files=(str(values),))
    assert config.fullname == "consul" and config.default_inject is True


@pytest.mark.parametrize("sets,expected", [
    (("connectInject.replicas=0",), "connectInject.replicas: 0 is less than 1"),
    (("connectInject.failurePolicy=Nope",), 'connectInject.failurePolicy: expected "Fail" or "Ignore", got "Nope" (a string)'),
    (("connectInject.unknownKey=1",), "connectInject.unknownKey: not a key of this chart nor of any Consul chart version"),
    (("global.imageK8s=typo",), 'global.imageK8s: not a key of this chart nor of any Consul chart version (v0.30.0 to v1.9.11); did you mean "global.imageK8S"?'),
    (("connectInject.metrics.defaultMergedMetricsPort=80",), "connectInject.metrics.defaultMergedMetricsPort: 80 is less than 1024"),
    (("connectInject.default=maybe",), 'connectInject.default: expected a boolean, got "maybe" (a string)'),
    (("connectInject.sidecarProxy.resources.limits.cpu=5xx",), "connectInject.sidecarProxy.resources.limits.cpu:"),
])
def test_schema_problems_name_the_path(sets, expected):
    assert any(p.startswith(expected) for p in _problems(*sets)), _problems(*sets)


@pytest.mark.parametrize("sets,expected", [
    (("connectInject.consulNamespaces.mirroringK8S=true",),
     "connectInject.consulNamespaces.mirroringK8S: global.enableConsulNamespaces must be true if mirroringK8S=true"),
    (("global.adminPartitions.enabled=true",),
     "global.adminPartitions.enabled: global.enableConsulNamespaces must be true if global.adminPartitions.enabled=true"),
    (("connectInject.consulNamespaces.consulDestinationNamespace=system",),
     "connectInject.consulNamespaces.consulDestinationNamespace: The name system set for key connectInject.consulNamespaces.consulDestinationNamespace is reserved by Consul for future use."),
    (("connectInject.imageEnvoy=envoy:1",), "connectInject.imageEnvoy: connectInject.imageEnvoy must be specified in global.imageEnvoy"),
    (("connectInject.centralConfig.enabled=false",),
     "connectInject.centralConfig.enabled: connectInject.centralConfig.enabled cannot be set to false; to disable, set enable_central_service_config to false in server.extraConfig and client.extraConfig"),
    (("connectInject.centralConfig.defaultProtocol=http",),
     "connectInject.centralConfig.defaultProtocol: connectInject.centralConfig.defaultProtocol is no longer supported; instead you must migrate to CRDs (see www.consul.io/docs/k8s/crds/upgrade-to-crds)"),
    (("global.lifecycleSidecarContainer.resources.limits.cpu=1",),
     "global.lifecycleSidecarContainer: global.lifecycleSidecarContainer has been renamed to global.consulSidecarContainer. Please set values using global.consulSidecarContainer."),
    (("client.enabled=false",), "client.enabled: clients must be enabled for connect injection"),
    (("global.enabled=false",), "client.enabled: clients must be enabled for connect injection"),
    (("client.grpc=false",), "client.grpc: client.grpc must be true for connect injection"),
    (("connectInject.sidecarProxy.resources.requests.cpu=50m", "connectInject.sidecarProxy.resources.limits.cpu=25m"),
     'connectInject.sidecarProxy.resources.requests.cpu: request must be <= limit: connectInject.sidecarProxy.resources.requests.cpu value of "50m" is greater than the connectInject.sidecarProxy.resources.limits.cpu value of "25m"'),
    (("connectInject.envoyExtraArgs=--a 'b",), "connectInject.envoyExtraArgs: cannot split"),
    (("global.tls.enabled=true",), "global.tls.enabled: TLS is on but CONSUL_CACERT does not name"),
])
def test_cross_key_rules(sets, expected):
    problems = _problems(*sets)
    assert any(p.startswith(expected) for p in problems), problems


def test_tls_with_an_unreadable_or_non_pem_ca_file(tmp_path):
    assert "cannot read" in _problems("global.tls.enabled=true", env={"CONSUL_CACERT": str(tmp_path / "none.pem")})[0]
    bad = tmp_path / "bad.pem"
    bad.write_text("not a certificate")
    assert "holds no PEM certificate" in _problems("global.tls.enabled=true", env={"CONSUL_CACERT": str(bad)})[0]


def test_every_problem_is_reported_at_once():
    assert len(_problems("connectInject.replicas=0", "connectInject.failurePolicy=x", "global.imageK8s=x")) == 3


def test_unreadable_and_malformed_values_files(tmp_path):
    assert "cannot read values file" in _problems(files=[str(tmp_path / "missing.yaml")])[0]
    bad = tmp_path / "bad.yaml"
    bad.write_text("connectInject: [unclosed\n")
    assert "not valid YAML" in _problems(files=[str(bad)])[0]
    scalar = tmp_path / "scalar.yaml"
    scalar.write_text("just a string\n")
    assert "must be a YAML map" in _problems(files=[str(scalar)])[0]


def test_fullname_rules_as_the_chart():
    assert config_mod.compute_fullname({}, "consul") == "consul-consul"
    assert config_mod.compute_fullname({"global": {"name": "mesh"}}, "r") == "mesh"
    assert config_mod.compute_fullname({"fullnameOverride": "override-"}, "r") == "override"
    assert config_mod.compute_fullname({"nameOverride": "inj"}, "rel") == "rel-inj"
    assert config_mod.compute_fullname({}, "x" * 80) == "x" * 63
    assert load_config("global.name=dc1").dns_env_var == "DC1_DNS_SERVICE_HOST"


def test_template_override_replaces_a_builtin():
    override = "name: envoy-sidecar\nimage: {{ config.envoy_image | tojson }}\ncommand: [envoy, --custom]\n"
    config = load_config(f"connectInject.templates.envoy-sidecar={override.replace(',', chr(92) + ',')}")
    assert container(inject(make_pod(), config), "envoy-sidecar") == {"name": "envoy-sidecar", "image": "envoyproxy/envoy-alpine:v1.18.4", "command": ["envoy", "--custom"]}


def test_broken_template_fails_at_load_with_name_and_line(tmp_path):
    values = tmp_path / "v.yaml"
    values.write_text(yaml.safe_dump({"connectInject": {"templates": {"envoy-sidecar": "name: envoy-sidecar\nimage: {{ config.envoy_image\n"}}}))
    (problem,) = _problems(files=[str(values)])
    assert problem.startswith("connectInject.templates.envoy-sidecar: line 2:")


def test_template_runtime_error_fails_at_load(tmp_path):
    values = tmp_path / "v.yaml"
    values.write_text(yaml.safe_dump({"connectInject": {"templates": {"copy-consul-bin": "name: copy-consul-bin\n\nimage: {{ plan.no_such_field }}\n"}}}))
    (problem,) = _problems(files=[str(values)])
    assert problem.startswith("connectInject.templates.copy-consul-bin: line 3: UndefinedError")


def test_template_that_renders_no_container_fails_at_load(tmp_path):
    values = tmp_path / "v.yaml"
    values.write_text(yaml.safe_dump({"connectInject": {"templates": {"consul-sidecar": "- just\n- a list\n"}}}))
    assert "must render a YAML map with a name" in _problems(files=[str(values)])[0]


def test_the_config_entry_controller_is_accepted():
    """controller.enabled (15 of 27 real users' Consul values files set it) installs the
    config-entry controller: no longer refused by check-values, review or serve."""
    config = engine.load([], ["controller.enabled=true", "connectInject.enabled=true"], environ={})
    assert config.values["controller"]["enabled"] is True


def test_defaults_come_only_from_the_charts_values_yaml(tmp_path):
    """Values merged without the chart's defaults (the chart's ConfigMap, `--no-chart-defaults`)
    that lack a key get chart/values.yaml's default for it, not a Python copy: an empty file gives
    the same settings as the chart's defaults. A `resources` block is the exception, as before
    this rule: absent (in the ConfigMap, the user deleted it with null) means no resources.
    tests/test_values_defaults.py checks the same key by key, and that no literal default is
    written in the values layer."""
    import dataclasses

    from generator.values import config as values_config

    empty = tmp_path / "empty.yaml"
    empty.write_text("{}\n")
    bare = values_config.load([str(empty)], ["connectInject.enabled=true"], chart_defaults=False, environ={})
    full = values_config.load([], ["connectInject.enabled=true"], environ={})
    differing = [f.name for f in dataclasses.fields(full) if f.name != "values"
                 and getattr(bare, f.name) != getattr(full, f.name)]
    assert differing == ["init_resources", "consul_sidecar_resources"]  # the blocks with chart defaults
    assert bare.init_resources == bare.consul_sidecar_resources == config_mod.Resources()
    nulled = values_config.load([], ["connectInject.enabled=true", "connectInject.initContainer.resources=null"], environ={})
    assert nulled.init_resources == config_mod.Resources()
