"""Ignore rules and identities (reference §1.4): ported from endpoints_controller_test.go
(TestShouldIgnore, TestHasBeenInjected, the agent-pod node mapping of TestRequestsForRunningAgentPods,
TestServiceInstancesForK8SServiceNameAndNamespace's filter), plus our rules for odd Endpoints."""

from __future__ import annotations

import pytest

from generator.endpoints.registration import (EndpointAddress, PodKind, addresses, check_id, consul_service_name, go_quote,
                                              health, on_node, pod_key, pod_kind, proxy_id, service_id, services_filter)
from generator.endpoints.settings import Settings

from .helpers import P, create_pod, endpoints


@pytest.mark.parametrize("namespace, deny, allow, ignored", [
    # TestShouldIgnore
    ("kube-system", set(), {"*"}, True),  # system namespace
    ("local-path-storage", set(), {"*"}, True),  # other system namespace
    ("foo", set(), {"*"}, False),  # any namespace allowed
    ("foo", {"foo"}, {"*"}, True),  # in deny list
    ("foo", set(), {"bar"}, True),  # not in allow list
    # and more
    ("kube-public", set(), {"*"}, True),
    ("kube-system", set(), {"kube-system"}, True),  # system namespaces even when allowed by name
    ("foo", {"foo"}, {"foo"}, True),  # deny before allow
    ("foo", set(), {"foo", "bar"}, False),
    ("foo", set(), set(), True),  # an empty allow list reconciles nothing (reference R10)
    ("default", {"other"}, {"*"}, False),
])
def test_should_ignore(namespace, deny, allow, ignored):
    settings = Settings(allow_namespaces=frozenset(allow), deny_namespaces=frozenset(deny))
    assert settings.ignores_namespace(namespace) is ignored


def test_settings_default_allows_everything_but_system_namespaces():
    assert not Settings().ignores_namespace("default")
    assert Settings().ignores_namespace("kube-system")


@pytest.mark.parametrize("inject, managed, kind", [
    (True, True, PodKind.MANAGED),  # Pod with injected annotation
    (False, True, PodKind.NOT_INJECTED),  # Pod without injected annotation
    (True, False, PodKind.LEGACY),  # injected by consul-k8s < 0.26: health-synced only
    (False, False, PodKind.NOT_INJECTED),
])
def test_has_been_injected(inject, managed, kind):
    assert pod_kind(create_pod("pod1", "1.2.3.4", inject, managed)) is kind


def test_injection_is_read_from_the_annotation_not_the_label():
    pod = create_pod(inject=True)
    del pod["metadata"]["annotations"][P + "connect-inject-status"]  # the label alone does not count
    assert pod_kind(pod) is PodKind.NOT_INJECTED
    pod = create_pod(inject=True, annotations={P + "connect-inject-status": "Injected"})
    assert pod_kind(pod) is PodKind.NOT_INJECTED
    pod = create_pod(managed=False)
    pod["metadata"]["labels"][P + "connect-inject-managed-by"] = "someone-else"
    assert pod_kind(pod) is PodKind.LEGACY


@pytest.mark.parametrize("pod", [{}, {"metadata": None}, {"metadata": {"annotations": None, "labels": "x"}}, {"metadata": []}])
def test_pod_kind_of_odd_objects(pod):
    assert pod_kind(pod) is PodKind.NOT_INJECTED


def test_ids():
    pod = create_pod("pod1")
    assert pod_key(pod) == "default/pod1"
    assert pod_key({"metadata": {"name": "p"}}, "team") == "team/p"
    assert consul_service_name(pod, "service-created") == "service-created"
    assert service_id("pod1", "service-created") == "pod1-service-created"
    assert proxy_id("pod1", "service-created") == "pod1-service-created-sidecar-proxy"
    assert check_id("default", "pod1-service-created") == "default/pod1-service-created/kubernetes-health-check"
    renamed = create_pod("pod1", annotations={P + "connect-service": "different-consul-svc-name"})
    assert consul_service_name(renamed, "service-created") == "different-consul-svc-name"
    # Present but empty: the Service name.
    assert consul_service_name(create_pod(annotations={P + "connect-service": ""}), "service-created") == "service-created"


def test_addresses_ready_and_not_ready():
    ep = endpoints(ready=[("1.2.3.4", "pod1"), ("2.2.3.4", "pod2")], not_ready=[("3.2.3.4", "pod3")])
    assert [(a.ip, a.target_name, a.ready, a.is_pod) for a in addresses(ep)] == [
        ("1.2.3.4", "pod1", True, True), ("2.2.3.4", "pod2", True, True), ("3.2.3.4", "pod3", False, True)]


def test_addresses_without_a_pod_target_are_not_pods():
    ep = {"metadata": {"name": "svc", "namespace": "ns"}, "subsets": [{"addresses": [
        {"ip": "10.0.0.9"},  # no targetRef (an external endpoint)
        {"ip": "10.0.0.8", "targetRef": {"kind": "Node", "name": "n1"}},
        {"ip": "10.0.0.7", "targetRef": {"kind": "Pod", "name": "p", "namespace": "ns"}},
    ]}]}
    assert [a.is_pod for a in addresses(ep)] == [False, False, True]


def test_a_pod_listed_twice_is_one_address_ready_only_if_ready_everywhere():
    ep = endpoints(ready=[("1.2.3.4", "pod1")], not_ready=[("1.2.3.4", "pod1")])
    ep["subsets"].append({"addresses": [{"ip": "1.2.3.4", "targetRef": {"kind": "Pod", "name": "pod1", "namespace": "default"}}]})
    assert addresses(ep) == [EndpointAddress("1.2.3.4", False, "test-node", "Pod", "pod1", "default")]


def test_a_target_ref_without_namespace_means_the_endpoints_namespace():
    ep = {"metadata": {"name": "svc", "namespace": "team"},
          "subsets": [{"addresses": [{"ip": "1.1.1.1", "targetRef": {"kind": "Pod", "name": "p"}}]}]}
    assert addresses(ep)[0].target_namespace == "team"


@pytest.mark.parametrize("ep", [{}, {"subsets": None}, {"subsets": [None, 3, {"addresses": "x"}]}, {"subsets": {"a": 1}}])
def test_odd_endpoints_have_no_addresses(ep):
    assert addresses(ep) == []


def test_on_node():
    """TestRequestsForRunningAgentPods: Endpoints with any address (ready or not) on the agent's node."""
    ep = {"metadata": {"name": "endpoint-1"},
          "subsets": [{"addresses": [{"nodeName": "node-foo"}], "notReadyAddresses": [{"nodeName": "node-bar"}]}]}
    assert on_node(ep, "node-foo")
    assert on_node(ep, "node-bar")
    assert not on_node(ep, "node-baz")
    assert not on_node({"subsets": [{"addresses": [{"ip": "1.1.1.1"}]}]}, "")


def test_services_filter_is_the_reference_expression():
    assert services_filter("k8s-svc", "k8s-ns") == (
        'Meta["k8s-service-name"] == "k8s-svc" and Meta["k8s-namespace"] == "k8s-ns" and '
        'Meta["managed-by"] == "consul-k8s-endpoints-controller"')


@pytest.mark.parametrize("text, quoted", [
    ("plain", '"plain"'), ('a"b\\c', '"a\\"b\\\\c"'), ("tab\tnl\n", '"tab\\tnl\\n"'), ("\x00\x7f", '"\\x00\\x7f"'),
    ("é☃", '"é☃"'), ("\u200b", '"\\u200b"'), ("\U000e0001", '"\\U000e0001"'), ("\ud800", '"\\ufffd"'),
])
def test_go_quote(text, quoted):
    assert go_quote(text) == quoted


def test_health_of_a_legacy_pod():
    """TestReconcileUpdateEndpoint, legacy cases: the TTL check is computed the same way."""
    pod = create_pod("pod1", "1.2.3.4", True, False)
    passing = health(pod, "service-updated", True)
    assert (passing.check_id, passing.service_id, passing.status, passing.output, passing.name) == (
        "default/pod1-service-updated/kubernetes-health-check", "pod1-service-updated", "passing",
        "Kubernetes health checks passing", "Kubernetes Health Check")
    critical = health(pod, "service-updated", False)
    assert (critical.status, critical.output) == ("critical", 'Pod "default/pod1" is not ready')
    assert critical.register_body() == {
        "ID": "default/pod1-service-updated/kubernetes-health-check", "Name": "Kubernetes Health Check",
        "ServiceID": "pod1-service-updated", "TTL": "100000h", "Status": "critical",
        "SuccessBeforePassing": 1, "FailuresBeforeCritical": 1}
    assert critical.update_body() == {"Status": "critical", "Output": 'Pod "default/pod1" is not ready'}
    assert critical.update_path == "/v1/agent/check/update/default/pod1-service-updated/kubernetes-health-check"
    assert critical.filter == "CheckID == `default/pod1-service-updated/kubernetes-health-check`"
