"""The injection decision (reference §2), every branch, in order, with its reason code."""

from __future__ import annotations

import pytest

from engine_helpers import P, denial, load_config, make_pod, run


def _pod(inject: str | None = None, **annotations: str) -> dict:
    pod = make_pod({k: v for k, v in annotations.items()})
    pod["metadata"]["annotations"].pop(P + "connect-inject")
    if inject is not None:
        pod["metadata"]["annotations"][P + "connect-inject"] = inject
    return pod


@pytest.mark.parametrize("namespace", ["kube-system", "kube-public"])
def test_system_namespaces_are_never_injected(namespace):
    result = run(_pod("true"), load_config("connectInject.default=true"), namespace=namespace)
    assert (result.outcome, result.reason) == ("skipped", namespace)
    assert result.review["response"] == {"uid": "uid-1", "allowed": True, "status": {"code": 200, "message": "Pod web does not require injection"}}


def test_deny_list_wins_over_allow_list():
    config = load_config("connectInject.k8sAllowNamespaces={*}", "connectInject.k8sDenyNamespaces={payments}")
    assert run(_pod("true"), config, namespace="payments").reason == "denied-namespace"
    assert run(_pod("true"), config, namespace="shop").reason == "annotation-true"


def test_allow_list_limits_namespaces():
    config = load_config("connectInject.k8sAllowNamespaces={shop,web}")
    assert run(_pod("true"), config, namespace="payments").reason == "not-allowed-namespace"
    assert run(_pod("true"), config, namespace="web").outcome == "injected"


def test_empty_allow_list_injects_nothing():
    config = load_config("connectInject.k8sAllowNamespaces={}")
    assert run(_pod("true"), config).reason == "not-allowed-namespace"


def test_already_injected_pod_is_left_alone():
    result = run(_pod("true", **{P + "connect-inject-status": "injected"}))
    assert (result.outcome, result.reason) == ("skipped", "already-injected")
    assert "patch" not in result.review["response"]


def test_label_only_status_is_injected_again():
    # Reference D11: only the annotation marks a pod as injected.
    pod = _pod("true")
    pod["metadata"]["labels"] = {P + "connect-inject-status": "injected"}
    assert run(pod).outcome == "injected"


def test_annotation_decides_over_the_default():
    on, off = load_config("connectInject.default=true"), load_config()
    assert run(_pod("false"), on).reason == "annotation-false"
    assert run(_pod("true"), off).reason == "annotation-true"


def test_default_applies_without_annotation():
    assert run(_pod(), load_config("connectInject.default=true")).reason == "default-on"
    assert run(_pod(), load_config()).reason == "default-off"


def test_bad_inject_annotation_is_a_400_only_when_it_is_consulted():
    code, message = denial(run(_pod("perhaps")))
    assert code == 400 and f'"{P}connect-inject"' in message and '"perhaps"' in message
    # In kube-system the pod is skipped before the annotation is read.
    assert run(_pod("perhaps"), namespace="kube-system").outcome == "skipped"


def test_bad_values_of_a_pod_that_is_not_injected_do_not_block_it():
    pod = _pod("false", **{P + "sidecar-proxy-cpu-limit": "lots"})
    assert run(pod).outcome == "skipped"


def test_skip_name_is_empty_for_generate_name_pods():
    pod = _pod()
    del pod["metadata"]["name"]
    pod["metadata"]["generateName"] = "web-7d9c-"
    result = run(pod)
    assert result.review["response"]["status"]["message"] == "Pod  does not require injection"
    assert result.name == "web-7d9c-"
