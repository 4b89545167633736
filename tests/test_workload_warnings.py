"""The workload-warning review behind `/validate-workload`: warnings for injection annotations on a
workload's own metadata and unknown keys on its pod template; always allowed, even for garbage."""

from __future__ import annotations

import pytest

from engine_helpers import P
from generator.webhook.admission import review_workload


def _review(obj, api_version="admission.k8s.io/v1"):
    return review_workload({"apiVersion": api_version, "kind": "AdmissionReview", "request": {"uid": "w1", "object": obj}})


def _deployment(own=None, template=None, kind="Deployment"):
    spec_template = {"metadata": {"annotations": template or {}}, "spec": {"containers": [{"name": "c", "image": "i"}]}}
    spec = {"jobTemplate": {"spec": {"template": spec_template}}} if kind == "CronJob" else {"template": spec_template}
    return {"apiVersion": "apps/v1", "kind": kind, "metadata": {"name": "web", "annotations": own or {}}, "spec": spec}


@pytest.mark.parametrize("kind", ["Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job", "CronJob"])
def test_annotation_on_the_workload_is_a_warning(kind):
    out = _review(_deployment(own={P + "connect-inject": "true"}, kind=kind))
    response = out["response"]
    assert response["allowed"] is True and response["uid"] == "w1"
    (warning,) = response["warnings"]
    assert f'"{P}connect-inject" is on the {kind}\'s own metadata' in warning and "pod template" in warning


def test_no_warning_when_the_template_has_it_too():
    out = _review(_deployment(own={P + "connect-inject": "true"}, template={P + "connect-inject": "true"}))
    assert "warnings" not in out["response"]


def test_unknown_keys_on_the_template_get_did_you_mean():
    out = _review(_deployment(template={P + "connect-inject": "true", P + "transparent-proxi": "false"}), "admission.k8s.io/v1beta1")
    assert out["apiVersion"] == "admission.k8s.io/v1beta1"
    assert out["response"]["warnings"] == [f'unknown annotation "{P}transparent-proxi" on the pod template has no effect; did you mean "{P}transparent-proxy"?']


@pytest.mark.parametrize("data", [None, [], "x", {}, {"request": 5}, {"request": {"object": "garbage"}},
                                  {"request": {"uid": 3, "object": {"kind": "Deployment", "metadata": [], "spec": 7}}},
                                  {"request": {"object": {"kind": "Deployment", "metadata": {"annotations": "x"}, "spec": {"template": []}}}}])
def test_garbage_is_still_allowed(data):
    out = review_workload(data)
    assert out["kind"] == "AdmissionReview" and out["response"]["allowed"] is True


def test_a_250kb_template_of_unknown_keys_gets_a_bounded_answer():
    """Reproducer: a valid 250 KB Deployment cost 1.5 s on /validate-workload (a did-you-mean per
    key). Only the first keys are examined; the rest are counted in one warning."""
    from generator.inject.annotations import MAX_UNKNOWN_WARNINGS

    flood = {f"{P}connect-servic{i}": "x" * 10 for i in range(7000)}
    warnings = _review(_deployment(template=flood))["response"]["warnings"]
    assert len(warnings) == MAX_UNKNOWN_WARNINGS + 1
    assert warnings[-1] == f"{7000 - MAX_UNKNOWN_WARNINGS} more unknown {P} annotations on the pod template have no effect"


def test_one_envelope_for_every_admission_answer():
    """/mutate (through review()), /validate-workload and later the CRD webhooks answer through
    generator.base.admission.response: the request's apiVersion echoed when it is one we speak,
    its uid, then allowed, patch, status, warnings in the order the API server's examples use."""
    import base64
    import json

    from generator.base.admission import response

    request = {"apiVersion": "admission.k8s.io/v1beta1", "request": {"uid": "u1"}}
    out = response(request, True, status={"code": 200, "message": "ok"}, patch=[{"op": "add", "path": "/a", "value": 1}],
                   warnings=("w",))
    assert out["apiVersion"] == "admission.k8s.io/v1beta1" and out["kind"] == "AdmissionReview"
    assert list(out["response"]) == ["uid", "allowed", "patchType", "patch", "status", "warnings"]
    assert json.loads(base64.b64decode(out["response"]["patch"])) == [{"op": "add", "path": "/a", "value": 1}]
    assert response({"apiVersion": "admission.k8s.io/v2", "request": {"uid": 7}}, False) == {
        "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": {"uid": "", "allowed": False}}
