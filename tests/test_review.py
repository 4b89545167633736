"""review(): the AdmissionReview contract (design.md) and the shape of the JSON patch."""

from __future__ import annotations

import base64
import json

import jsonpatch
import pytest

from engine_helpers import P, admission, denial, inject, load_config, make_pod, run
from generator.base.errors import ReviewError
from generator.inject.review import parse_review, review


@pytest.mark.parametrize("api_version", ["admission.k8s.io/v1", "admission.k8s.io/v1beta1"])
def test_response_echoes_version_and_uid(api_version):
    result = review(admission(make_pod(), api_version=api_version, uid="abc-123"), load_config())
    assert result.review["apiVersion"] == api_version and result.review["kind"] == "AdmissionReview"
    response = result.review["response"]
    assert response["uid"] == "abc-123" and response["allowed"] is True and response["patchType"] == "JSONPatch"
    assert isinstance(json.loads(base64.b64decode(response["patch"])), list)


@pytest.mark.parametrize("raw,why", [
    (b"not json", "not JSON"),
    (b"[]", "expected an AdmissionReview object"),
    (b'{"kind": "Pod", "apiVersion": "v1"}', "expected kind AdmissionReview"),
    (b'{"kind": "AdmissionReview", "apiVersion": "admission.k8s.io/v1"}', "has no request"),
    (b'{"kind": "AdmissionReview", "apiVersion": "admission.k8s.io/v1", "request": {}}', "has no uid"),
    (b"\xff\xfe", "not JSON"),
])
def test_unusable_reviews_raise_one_line(raw, why):
    with pytest.raises(ReviewError) as info:
        parse_review(raw)
    assert why in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize("obj,where", [
    (None, "request.object: there is no content to decode"),
    ("a string", "request.object: expected a Pod object"),
    ({"kind": "Deployment", "spec": {}}, "expected kind Pod"),
    ({"metadata": [], "spec": {"containers": [{"name": "a"}]}}, "request.object.metadata"),
    ({"metadata": {"annotations": {"a": 1}}, "spec": {"containers": [{"name": "a"}]}}, "metadata.annotations"),
    ({"metadata": {}}, "request.object.spec"),
    ({"metadata": {}, "spec": {"containers": "web"}}, "spec.containers"),
    ({"metadata": {}, "spec": {"containers": []}}, "at least one container"),
    ({"metadata": {}, "spec": {"containers": [{"name": "a", "env": {"A": "1"}}]}}, "spec.containers[0].env"),
    ({"metadata": {}, "spec": {"containers": [{"name": "a", "ports": [1]}]}}, "spec.containers[0].ports"),
    ({"metadata": {}, "spec": {"containers": [{"name": "a"}], "volumes": {}}}, "spec.volumes"),
])
def test_malformed_pods_are_a_400_naming_the_field(obj, where):
    code, message = denial(review(admission(obj), load_config()))
    assert code == 400 and where in message


def test_patch_is_built_from_targeted_operations():
    pod = make_pod({P + "connect-service-upstreams": "db:5432"}, volumes=[{"name": "v", "emptyDir": {}}])
    pod["metadata"]["labels"] = {"app": "web"}
    ops = list(run(pod).patch)
    paths = [(op["op"], op["path"]) for op in ops]
    assert ("add", "/spec/volumes/-") in paths
    assert ("add", "/spec/initContainers") in paths
    assert ("add", "/spec/containers/-") in paths
    assert ("add", "/spec/containers/0/env") in paths
    assert ("add", "/metadata/annotations/consul.hashicorp.com~1connect-inject-status") in paths
    assert ("add", "/metadata/labels/consul.hashicorp.com~1connect-inject-managed-by") in paths
    assert not any(op["path"] in ("/spec", "/metadata", "/spec/containers") for op in ops)
    # Valid RFC 6902 that applies cleanly to the request's pod.
    jsonpatch.JsonPatch(ops).apply(pod)


def test_patch_creates_maps_that_do_not_exist():
    pod = make_pod()
    del pod["metadata"]["annotations"]
    pod["metadata"]["annotations"] = None
    out = inject(pod, load_config("connectInject.default=true"))
    assert out["metadata"]["annotations"][P + "connect-inject-status"] == "injected"
    pod = make_pod()
    del pod["metadata"]
    result = run(pod, load_config("connectInject.default=true"))
    assert ("add", "/metadata") in [(op["op"], op["path"]) for op in result.patch]


def test_probe_ports_are_replaced_in_place():
    pod = make_pod(containers=[{"name": "web", "image": "w", "livenessProbe": {"httpGet": {"port": 8080}}}])
    assert {"op": "replace", "path": "/spec/containers/0/livenessProbe/httpGet/port", "value": 20300} in run(pod).patch


def test_injection_is_idempotent():
    once = inject(make_pod())
    again = run(once)
    assert (again.outcome, again.reason) == ("skipped", "already-injected")
    assert "patch" not in again.review["response"]


def test_internal_errors_are_a_500_without_traceback(monkeypatch):
    from generator.inject import review as review_mod

    def boom(*_args, **_kwargs):
        raise RuntimeError("secret internals")

    monkeypatch.setattr(review_mod, "inject_ops", boom)
    code, message = denial(run(make_pod()))
    assert code == 500 and "secret internals" not in message and "Traceback" not in message
    assert run(make_pod()).outcome == "error"


def test_review_does_not_modify_its_input():
    pod = make_pod({P + "connect-service-upstreams": "a:1"})
    request = admission(pod)
    before = json.dumps(request, sort_keys=True)
    review(request, load_config())
    assert json.dumps(request, sort_keys=True) == before


def test_namespace_falls_back_to_the_pod_metadata():
    request = admission(make_pod())
    request["request"].pop("namespace")
    request["request"]["object"]["metadata"]["namespace"] = "kube-system"
    assert review(request, load_config()).reason == "kube-system"
