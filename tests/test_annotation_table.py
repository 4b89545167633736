"""The annotation table and the typed `Annotations` it fills cannot drift apart.

Every TABLE row names exactly one field of `Annotations` and every field (but `errors` and `raw`)
has exactly one row, so a new annotation cannot be half-added; every values key a row names is a
key of chart/values.yaml, and is the key the engine's default really comes from.
"""

from __future__ import annotations

import dataclasses
import typing

import pytest
import yaml

from engine_helpers import P, load_config, make_pod, run
from generator.base import paths
from generator.inject import annotations as ann_mod
from generator.inject.annotations import TABLE, Annotations, Upstream, parse
from generator.inject.samples import SAMPLE_ANNOTATIONS, SAMPLE_POD

FIELDS = {f.name: f for f in dataclasses.fields(Annotations)}
HINTS = typing.get_type_hints(Annotations)


def test_every_row_fills_exactly_one_field_and_every_field_has_exactly_one_row():
    row_fields = [spec.field for spec in TABLE]
    assert len(row_fields) == len(set(row_fields)), "two rows fill the same field"
    assert len({spec.key for spec in TABLE}) == len(TABLE), "two rows have the same key"
    annotation_fields = [name for name in FIELDS if name not in ann_mod.NOT_ANNOTATIONS]
    assert sorted(row_fields) == sorted(annotation_fields), (
        f"rows without a field: {sorted(set(row_fields) - set(annotation_fields))}; "
        f"fields without a row: {sorted(set(annotation_fields) - set(row_fields))}")
    assert row_fields == annotation_fields, "fields are declared in table order"
    assert set(ann_mod.NOT_ANNOTATIONS) <= set(FIELDS)


@pytest.mark.parametrize("spec", TABLE, ids=lambda s: s.key)
def test_each_field_is_optional_and_unset_by_default(spec):
    field = FIELDS[spec.field]
    assert field.default is None, f"{spec.field}: None must mean the pod did not set {spec.full}"
    assert type(None) in typing.get_args(HINTS[spec.field]), f"{spec.field} must be `... | None`"
    assert spec.field == spec.key.replace("-", "_").strip("_"), "a field is named after its annotation"


def _chart_values() -> dict:
    return yaml.safe_load(paths.CHART_VALUES.read_text(encoding="utf-8"))


@pytest.mark.parametrize("spec", [s for s in TABLE if s.values_keys], ids=lambda s: s.key)
def test_values_keys_of_the_rows_are_keys_of_the_chart_values(spec):
    values = _chart_values()
    for key in spec.values_keys:
        node = values
        for part in key.split("."):
            assert isinstance(node, dict) and part in node, f"{spec.full}: {key} is not a key of {paths.CHART_VALUES}"
            node = node[part]


# Per row with values keys: values that change its default, and how the injection shows it. Every
# such row must be here, so a row cannot name a key the engine does not read.
OTHER = {
    "connect-inject": (("connectInject.default=true",), lambda r: r.reason == "default-on"),
    "sidecar-proxy-cpu-limit": (("connectInject.sidecarProxy.resources.limits.cpu=300m",),
                                lambda r: r.plan.envoy_resources.limits.get("cpu") == "300m"),
    "sidecar-proxy-cpu-request": (("connectInject.sidecarProxy.resources.requests.cpu=30m",),
                                  lambda r: r.plan.envoy_resources.requests.get("cpu") == "30m"),
    "sidecar-proxy-memory-limit": (("connectInject.sidecarProxy.resources.limits.memory=300Mi",),
                                   lambda r: r.plan.envoy_resources.limits.get("memory") == "300Mi"),
    "sidecar-proxy-memory-request": (("connectInject.sidecarProxy.resources.requests.memory=30Mi",),
                                     lambda r: r.plan.envoy_resources.requests.get("memory") == "30Mi"),
    "envoy-extra-args": (("connectInject.envoyExtraArgs=--concurrency 3",), lambda r: r.plan.envoy_args == ("--concurrency", "3")),
    "enable-metrics": (("connectInject.metrics.defaultEnabled=true",), lambda r: r.plan.metrics is True),
    "enable-metrics-merging": (("connectInject.metrics.defaultEnabled=true", "connectInject.metrics.defaultEnableMerging=true"),
                               lambda r: r.plan.merging is True),
    "merged-metrics-port": (("connectInject.metrics.defaultMergedMetricsPort=20111",), lambda r: r.plan.merged_metrics_port == 20111),
    "prometheus-scrape-port": (("connectInject.metrics.defaultPrometheusScrapePort=20222",), lambda r: r.plan.prometheus_scrape_port == 20222),
    "prometheus-scrape-path": (("connectInject.metrics.defaultPrometheusScrapePath=/m",), lambda r: r.plan.prometheus_scrape_path == "/m"),
    "transparent-proxy": (("connectInject.transparentProxy.defaultEnabled=false",), lambda r: r.plan.tproxy is False),
    "transparent-proxy-overwrite-probes": (("connectInject.transparentProxy.defaultOverwriteProbes=false",),
                                           lambda r: r.plan.overwrite_probes is False),
    "native-sidecar": (("connectInject.sidecarProxy.nativeSidecar=true",), lambda r: r.plan.native_sidecar is True),
    "consul-dns": (("dns.enabled=true", "dns.enableRedirection=true"), lambda r: r.plan.consul_dns is True),
}
DNS_ENV = {load_config().dns_env_var: "10.0.0.10"}  # the Consul DNS Service IP, for consul-dns


def test_every_row_with_values_keys_has_a_case():
    assert sorted(OTHER) == sorted(spec.key for spec in TABLE if spec.values_keys)


@pytest.mark.parametrize("key", sorted(OTHER))
def test_the_default_comes_from_the_values_keys_the_row_names(key):
    spec = ann_mod.BY_KEY[key]
    sets, shows = OTHER[key]
    assert {expr.split("=", 1)[0] for expr in sets} >= set(spec.values_keys), "the case sets the row's values keys"
    pod = make_pod()
    if spec is ann_mod.CONNECT_INJECT:
        pod["metadata"]["annotations"].pop(spec.full)
    before = run(pod, load_config(env=DNS_ENV))
    after = run(pod, load_config(*sets, env=DNS_ENV))
    assert after.outcome == "injected", after.review["response"]
    assert shows(after) and not (before.outcome == "injected" and shows(before)), "the values keys change this default"


def test_parse_fills_typed_attributes_and_leaves_the_rest_none():
    pod = make_pod()
    raw = {P + "connect-inject": "true", P + "connect-service-port": "http", P + "connect-service-upstreams": "db:5432:dc2",
           P + "envoy-extra-args": "--a 'b c'", P + "enable-metrics": "", P + "transparent-proxy-exclude-uids": "1,2",
           P + "service-meta-team": "payments", P + "service-meta-tier": "web", P + "connect-inject-status": "injected",
           P + "prometheus-scrape-port": "99", "other.io/x": "y"}
    parsed = parse(raw, pod)
    assert parsed == Annotations(
        connect_inject=True, connect_service_port=8080, connect_service_upstreams=(Upstream("db", 5432, "dc2"),),
        envoy_extra_args=("--a", "b c"), transparent_proxy_exclude_uids=("1", "2"),
        service_meta={"team": "payments", "tier": "web"}, connect_inject_status="injected",
        errors={"prometheus-scrape-port": f'annotation "{P}prometheus-scrape-port" has invalid value "99": '
                                          "port 99 is not in the range 1024-65535"},
        raw=raw,
    )
    assert vars(parsed).keys() == FIELDS.keys(), "parse() sets every field, as __init__ would"
    assert parsed.enable_metrics is None and parsed.given(ann_mod.ENABLE_METRICS)  # empty means unset
    assert not parsed.given(ann_mod.TRANSPARENT_PROXY)
    with pytest.raises(dataclasses.FrozenInstanceError):
        parsed.connect_inject = False  # type: ignore[misc]


def test_parse_of_nothing_is_the_default_instance():
    assert parse({}, make_pod()) == Annotations()
    assert all(getattr(parse({}, make_pod()), spec.field) is None for spec in TABLE)


def test_a_bare_service_meta_prefix_is_an_error_and_no_meta():
    parsed = parse({P + "service-meta-": "v"}, make_pod())
    assert parsed.service_meta is None
    assert parsed.errors == {"service-meta-": f'annotation "{P}service-meta-" has no meta key after "service-meta-"'}


def test_sample_annotations_are_all_known_keys():
    """The pods every template is self-tested against set real annotations (a typo would test less)."""
    for raw in SAMPLE_ANNOTATIONS:
        assert ann_mod.unknown_warnings(raw) == []
        assert parse(raw, SAMPLE_POD).errors == {}
