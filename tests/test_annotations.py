"""Every annotation of reference §1.1: good values take effect, bad values are a 400 that names the
annotation key and the value (never a crash, never a silent skip)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine_helpers import P, container, denial, init_script, inject, load_config, make_pod, run
from generator.inject import annotations

BAD_VALUES = [
    ("connect-inject", "yes-please", "must be a boolean"),
    ("connect-service-port", "nosuchport", "container port"),
    ("connect-service-port", "70000", "not in the range 1-65535"),
    ("connect-service-upstreams", "foo", "<service>:<port>"),
    ("connect-service-upstreams", "svc:99999", "port '99999'"),
    ("connect-service-upstreams", "prepared_query:x", "prepared_query:<name>:<port>"),
    ("connect-service-upstreams", "svc:1234:", "empty datacenter"),
    ("connect-service-upstreams", "sv/c:1234", "environment variable"),
    ("sidecar-proxy-cpu-limit", "invalid", "quantities must match"),
    ("sidecar-proxy-cpu-request", "1.2.3", "quantities must match"),
    ("sidecar-proxy-memory-limit", "12XB", "quantities must match"),
    ("sidecar-proxy-memory-request", "lots", "quantities must match"),
    ("envoy-extra-args", "--log-level 'debug", "No closing quotation"),
    ("enable-metrics", "maybe", "must be a boolean"),
    ("enable-metrics-merging", "2", "must be a boolean"),
    ("merged-metrics-port", "80", "not in the range 1024-65535"),
    ("merged-metrics-port", "abc", "must be a port number"),
    ("prometheus-scrape-port", "70000", "not in the range 1024-65535"),
    ("prometheus-scrape-port", "1023", "not in the range 1024-65535"),
    ("service-metrics-port", "0", "not in the range 1-65535"),
    ("transparent-proxy", "on", "must be a boolean"),
    ("transparent-proxy-overwrite-probes", "nope", "must be a boolean"),
    ("transparent-proxy-exclude-inbound-ports", "9090,$(reboot)", "not a port number"),
    ("transparent-proxy-exclude-outbound-ports", "0", "not a port number"),
    ("transparent-proxy-exclude-outbound-cidrs", "10.0.0.0/33", "not an IPv4 or IPv6"),
    ("transparent-proxy-exclude-outbound-cidrs", "; rm -rf /", "not an IPv4 or IPv6"),
    ("transparent-proxy-exclude-uids", "-1", "not a user ID"),
    ("transparent-proxy-exclude-uids", "²", "not a user ID"),
    ("transparent-proxy-exclude-inbound-ports", "٨٠", "not a port number"),
    ("consul-dns", "sure", "must be a boolean"),
]


@pytest.mark.parametrize("key,value,why", BAD_VALUES, ids=[f"{k}={v}" for k, v, _ in BAD_VALUES])
def test_bad_value_is_a_400_naming_key_and_value(key, value, why):
    merging = load_config("connectInject.metrics.defaultEnabled=true", "connectInject.metrics.defaultEnableMerging=true")
    code, message = denial(run(make_pod({P + key: value}), merging))
    assert code == 400
    assert f'"{P}{key}"' in message and value in message and why in message


def test_several_bad_values_are_all_reported():
    _, message = denial(run(make_pod({P + "enable-metrics": "x", P + "consul-dns": "y"})))
    assert P + "enable-metrics" in message and P + "consul-dns" in message


def test_service_meta_needs_a_key():
    code, message = denial(run(make_pod({P + "service-meta-": "v"})))
    assert code == 400 and "service-meta-" in message


@pytest.mark.parametrize("key,message", [
    ("connect-service-protocol", 'the "consul.hashicorp.com/connect-service-protocol" annotation is no longer supported. Instead, create a ServiceDefaults resource (see www.consul.io/docs/k8s/crds/upgrade-to-crds)'),
    ("connect-sync-period", 'the "consul.hashicorp.com/connect-sync-period" annotation is no longer supported because consul-sidecar is no longer injected to periodically register services'),
])
def test_removed_annotations_are_refused_before_anything_else(key, message):
    # Even on a pod that opts out, in kube-system (reference D1).
    pod = make_pod({P + key: "x", P + "connect-inject": "false"})
    assert denial(run(pod, namespace="kube-system")) == (400, message)


@pytest.mark.parametrize("raw", ["1", "t", "T", "TRUE", "true", "True"])
def test_go_parsebool_true_spellings(raw):
    assert run(make_pod({P + "connect-inject": raw})).outcome == "injected"


@pytest.mark.parametrize("raw", ["0", "f", "F", "FALSE", "false", "False"])
def test_go_parsebool_false_spellings(raw):
    assert run(make_pod({P + "connect-inject": raw})).reason == "annotation-false"


def test_upstreams_in_all_forms_give_env_vars_to_user_containers_only():
    pod = make_pod(
        {P + "connect-service-upstreams": "static-server:1234, db.payments:5432:dc2 ,prepared_query:geo:8000, cache:http"},
        initContainers=[{"name": "migrate", "image": "m"}],
    )
    out = inject(pod)
    expected = [
        {"name": "STATIC_SERVER_CONNECT_SERVICE_HOST", "value": "127.0.0.1"},
        {"name": "STATIC_SERVER_CONNECT_SERVICE_PORT", "value": "1234"},
        {"name": "DB.PAYMENTS_CONNECT_SERVICE_HOST", "value": "127.0.0.1"},
        {"name": "DB.PAYMENTS_CONNECT_SERVICE_PORT", "value": "5432"},
        {"name": "CACHE_CONNECT_SERVICE_HOST", "value": "127.0.0.1"},
        {"name": "CACHE_CONNECT_SERVICE_PORT", "value": "8080"},  # named port resolved
    ]
    assert container(out, "web")["env"] == expected
    assert container(out, "migrate", "initContainers")["env"] == expected
    for injected in ("envoy-sidecar",):
        assert all("CONNECT_SERVICE" not in e["name"] for e in container(out, injected).get("env", []))
    assert all("CONNECT_SERVICE" not in e["name"] for e in container(out, "consul-connect-inject-init", "initContainers")["env"])


def test_upstream_env_is_appended_after_existing_env():
    pod = make_pod({P + "connect-service-upstreams": "a:1"}, containers=[{"name": "web", "image": "w", "env": [{"name": "X", "value": "1"}]}])
    assert [e["name"] for e in container(inject(pod), "web")["env"]] == ["X", "A_CONNECT_SERVICE_HOST", "A_CONNECT_SERVICE_PORT"]


def test_empty_upstream_annotation_adds_nothing():
    assert "env" not in container(inject(make_pod({P + "connect-service-upstreams": ""})), "web")


@pytest.mark.parametrize("raw,port", [("8080", 8080), ("http", 8080), ("0x50", 80), ("010", 8), ("+80", 80)])
def test_service_port_accepts_names_and_go_integer_syntax(raw, port):
    config = load_config("connectInject.metrics.defaultEnabled=true", "connectInject.metrics.defaultEnableMerging=true")
    out = inject(make_pod({P + "connect-service-port": raw}), config)
    assert f"-service-metrics-port={port}" in container(out, "consul-sidecar")["command"]


def test_sidecar_resources_from_annotations_override_values_field_by_field():
    config = load_config("connectInject.sidecarProxy.resources.limits.cpu=200m", "connectInject.sidecarProxy.resources.requests.memory=64Mi")
    out = inject(make_pod({P + "sidecar-proxy-cpu-limit": "500m", P + "sidecar-proxy-memory-limit": "0"}), config)
    assert container(out, "envoy-sidecar")["resources"] == {"limits": {"cpu": "500m", "memory": "0"}, "requests": {"memory": "64Mi"}}


def test_sidecar_request_above_limit_is_refused():
    code, message = denial(run(make_pod({P + "sidecar-proxy-cpu-request": "200m", P + "sidecar-proxy-cpu-limit": "100m"})))
    assert code == 400 and '"200m"' in message and '"100m"' in message and "sidecar-proxy-cpu" in message


def test_zero_limit_means_unlimited_for_the_request_check():
    out = inject(make_pod({P + "sidecar-proxy-cpu-request": "200m", P + "sidecar-proxy-cpu-limit": "0"}))
    assert container(out, "envoy-sidecar")["resources"]["requests"]["cpu"] == "200m"


def test_envoy_extra_args_are_plain_argv_and_replace_the_values_default():
    config = load_config("connectInject.envoyExtraArgs=--log-level debug")
    assert container(inject(make_pod(), config), "envoy-sidecar")["command"][3:] == ["--log-level", "debug"]
    out = inject(make_pod({P + "envoy-extra-args": "--concurrency 2 --service-node 'my node'"}), config)
    assert container(out, "envoy-sidecar")["command"][3:] == ["--concurrency", "2", "--service-node", "my node"]
    assert container(inject(make_pod({P + "envoy-extra-args": ""}), config), "envoy-sidecar")["command"][3:] == []


def test_empty_metrics_annotations_mean_unset():
    config = load_config("connectInject.metrics.defaultEnabled=true")
    out = inject(make_pod({P + "enable-metrics": "", P + "prometheus-scrape-path": ""}), config)
    assert out["metadata"]["annotations"]["prometheus.io/path"] == "/metrics"


def test_unknown_annotation_warns_with_did_you_mean_and_changes_nothing():
    result = run(make_pod({P + "conect-service-upstreams": "a:1"}))
    assert result.outcome == "injected"
    assert result.warnings == (f'unknown annotation "{P}conect-service-upstreams" has no effect; did you mean "{P}connect-service-upstreams"?',)
    assert result.review["response"]["warnings"] == list(result.warnings)


def test_later_release_annotation_is_called_unsupported_not_a_typo():
    (warning,) = run(make_pod({P + "kubernetes-service": "web"})).warnings
    assert "not supported by this injector" in warning and "0.43" in warning


def test_known_annotations_and_service_meta_do_not_warn():
    pod = make_pod({P + "service-meta-team": "payments", P + "service-tags": "a,b", P + "connect-service": "web"})
    assert run(pod).warnings == ()


def test_every_table_row_has_a_parser_or_is_written_or_removed():
    for spec in annotations.TABLE:
        assert spec.parse is not None or spec.kind in ("written", "removed"), spec.key
        assert spec.doc and spec.default_column
        # One source for the README's Default: the values keys, or a text when no values key gives it.
        assert bool(spec.values_keys) != bool(spec.default), spec.key


def test_readme_annotation_table_is_generated_from_the_code():
    from engine_helpers import ROOT

    readme = (ROOT / "README.md").read_text()
    start, end = "<!-- annotations:start -->\n", "\n<!-- annotations:end -->"
    assert start in readme and end in readme, "README lacks the generated annotation table markers"
    table = readme.split(start, 1)[1].split(end, 1)[0]
    assert table == annotations.markdown_table(), "README annotation table drifted: run `make readme`"


def test_scrape_port_is_validated_even_with_metrics_off():
    # Reference D3: an invalid prometheus-scrape-port fails injection whatever the metrics setting.
    assert denial(run(make_pod({P + "prometheus-scrape-port": "99"})))[0] == 400


def test_consul_dns_with_tproxy_off_does_not_need_the_dns_ip():
    out = inject(make_pod({P + "consul-dns": "true", P + "transparent-proxy": "false"}))
    assert "-consul-dns-ip" not in init_script(out)


@given(st.text(alphabet=["a", "b", " ", "\t", "\n", "\r", "\\", '"', "'", "-", "=", "#", "é", "\xa0", "\x0b", "\x85", "\u2003"], max_size=24))
@settings(max_examples=3000, deadline=None)
def test_envoy_args_split_exactly_as_shlex(text):
    """The splitter is a regex (shlex reads a character at a time); it must agree with shlex.split."""
    import shlex

    from generator.inject.annotations import BadValue, parse_args

    try:
        expected: tuple | str = tuple(shlex.split(text))
    except ValueError as exc:
        expected = str(exc)
    try:
        got: tuple | str = parse_args(text)
    except BadValue as exc:
        got = str(exc).removeprefix("cannot split into arguments: ")
    assert got == expected


@pytest.mark.parametrize("raw", ["tr\nue\x1b[31m", "yes\u2028no", "t\x85\u202e"])
def test_bad_values_are_shown_escaped_in_every_message(raw):
    """The connect-inject annotation and the namespace labels once printed raw newlines and ESC."""
    for result in (run(make_pod({P + "connect-inject": raw})),
                   run(make_pod(), labels={"default": {P + "transparent-proxy": raw}})):
        code, message = denial(result)
        assert code == 400 and "has invalid value" in message
        assert not any(ch in message for ch in "\n\x1b\u2028\x85\u202e"), repr(message)
        assert "\\u" in message or "\\n" in message
