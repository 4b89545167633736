"""What worked on consul-k8s v0.37 keeps working, and messages say what to do (issue 9).

Where v0.37 never read a value or silently dropped it, the pod is injected with a warning instead
of denied; where v0.37 crashed, our clear 400 stays. Each case is built from the shape of a real
manifest that showed it (Helm templates writing empty values, later consul-k8s docs' examples).
"""

from __future__ import annotations

import pytest

from engine_helpers import P, container, denial, inject, load_config, make_pod, patched, run

MERGING = ("connectInject.metrics.defaultEnabled=true", "connectInject.metrics.defaultEnableMerging=true")


def test_empty_service_port_as_a_helm_template_writes_it_is_unset():
    """`consul.hashicorp.com/connect-service-port: "{{ .Values.port }}"` with no port set."""
    pod = make_pod({P + "connect-service-port": ""})
    result = run(pod)
    assert result.outcome == "injected" and not result.warnings
    assert patched(pod, result)["metadata"]["annotations"][P + "connect-service-port"] == ""  # kept, as v0.37
    assert result.plan.service_port is None


def test_invalid_merged_metrics_port_with_merging_off_is_a_warning():
    result = run(make_pod({P + "merged-metrics-port": "80"}))
    assert result.outcome == "injected"
    (warning,) = result.warnings
    assert warning.startswith(f'annotation "{P}merged-metrics-port" has invalid value "80"') and "metrics merging is off" in warning
    code, _ = denial(run(make_pod({P + "merged-metrics-port": "80"}), load_config(*MERGING)))
    assert code == 400  # read when merging runs: refused as before


def test_missing_service_port_name_while_service_metrics_port_is_set_is_a_warning():
    pod = make_pod({P + "connect-service-port": "web-port", P + "service-metrics-port": "9102"})
    result = run(pod, load_config(*MERGING))
    assert result.outcome == "injected"
    assert any("connect-service-port" in w and "service-metrics-port is set" in w for w in result.warnings)
    consul_sidecar = container(patched(pod, result), "consul-sidecar")
    assert "-service-metrics-port=9102" in consul_sidecar["command"]
    code, message = denial(run(make_pod({P + "connect-service-port": "web-port"})))
    assert code == 400 and "connect-service-port" in message  # without it, the port is needed


def test_upstream_whose_port_names_no_container_port_is_dropped_with_a_warning():
    pod = make_pod({P + "connect-service-upstreams": "db:5432,cache:redis,api:http"})
    result = run(pod)
    assert result.outcome == "injected"
    assert result.warnings == (f'annotation "{P}connect-service-upstreams": entry for "cache" is ignored: '
                               'no container of this pod has a port named "redis"',)
    env = {e["name"]: e["value"] for e in patched(pod, result)["spec"]["containers"][0]["env"]}
    assert env == {"DB_CONNECT_SERVICE_HOST": "127.0.0.1", "DB_CONNECT_SERVICE_PORT": "5432",
                   "API_CONNECT_SERVICE_HOST": "127.0.0.1", "API_CONNECT_SERVICE_PORT": "8080"}
    response = result.review["response"]
    assert response["warnings"] == list(result.warnings)


def test_several_service_ports_say_they_came_later():
    code, message = denial(run(make_pod({P + "connect-service-port": "8080,9090"})))
    assert code == 400 and "several ports per pod" in message and "consul-k8s 0.41" in message and "one service port per pod" in message


def test_a_pod_that_lost_its_status_annotation_is_told_it_looks_injected():
    injected = inject(make_pod())
    del injected["metadata"]["annotations"][P + "connect-inject-status"]
    result = run(injected)
    code, message = denial(result)
    assert code == 400 and result.reason == "looks-injected"
    assert message.startswith("the pod looks already injected (it has the injected containers copy-consul-bin, "
                              "consul-connect-inject-init, envoy-sidecar)"), message


def test_transparent_proxy_is_off_by_default_on_host_network_pods():
    pod = make_pod(hostNetwork=True)
    result = run(pod)
    assert result.outcome == "injected" and result.plan.tproxy is False
    assert any("transparent proxy is off for this pod: it has hostNetwork: true" in w for w in result.warnings)
    init = container(patched(pod, result), "consul-connect-inject-init", "initContainers")
    assert "redirect-traffic" not in init["command"][2] and "securityContext" not in init


def test_explicit_transparent_proxy_on_a_host_network_pod_is_refused():
    result = run(make_pod({P + "transparent-proxy": "true"}, hostNetwork=True))
    code, message = denial(result)
    assert code == 400 and result.reason == "host-network" and "node's network namespace" in message


@pytest.mark.parametrize("key,hint", [
    ("connect-service-exposed-http-checks", None),
    ("service-port", None),
    ("conect-service-upstreams", "connect-service-upstreams"),
    ("metrics-merging", "enable-metrics-merging"),
])
def test_did_you_mean_only_when_close(key, hint):
    (warning,) = run(make_pod({P + key: "x"})).warnings
    if hint:
        assert warning.endswith(f'did you mean "{P}{hint}"?')
    else:
        assert "did you mean" not in warning


@pytest.mark.parametrize("key", ["use-proxy-health-check", "sidecar-proxy-lifecycle-graceful-port", "consul-envoy-proxy-concurrency", "kubernetes-service"])
def test_keys_of_later_consul_k8s_say_so(key):
    (warning,) = run(make_pod({P + key: "x"})).warnings
    assert "is not supported by this injector (it arrived in consul-k8s" in warning and "did you mean" not in warning


def test_consul_dns_asked_on_a_host_network_pod_says_it_has_no_effect():
    result = run(make_pod({P + "consul-dns": "true"}, hostNetwork=True))
    assert result.outcome == "injected"
    assert any(w.startswith(f"Consul DNS (annotation {P}consul-dns) has no effect") for w in result.warnings), result.warnings
