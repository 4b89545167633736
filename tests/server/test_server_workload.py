"""`POST /validate-workload` over real HTTPS: warnings that `kubectl apply` shows for an injection
annotation on a workload's own metadata or an unknown key on its pod template; always allowed, even
for garbage, so it can never block a deploy."""

from __future__ import annotations

import json

import pytest

from .conftest import Webhook, metric_value

P = "consul.hashicorp.com/"


def _deployment_review(own: dict, template: dict, version: str = "admission.k8s.io/v1") -> dict:
    obj = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "annotations": own},
           "spec": {"template": {"metadata": {"annotations": template}, "spec": {"containers": [{"name": "c", "image": "i"}]}}}}
    return {"apiVersion": version, "kind": "AdmissionReview",
            "request": {"uid": "wl-1", "kind": {"group": "apps", "version": "v1", "kind": "Deployment"}, "operation": "CREATE", "object": obj}}


async def _post(webhook: Webhook, body: bytes | dict, content_type: str = "application/json") -> tuple[int, dict]:
    data = json.dumps(body).encode() if isinstance(body, dict) else body
    url = webhook.url.replace("/mutate", "/validate-workload")
    async with webhook.session.post(url, data=data, headers={"Content-Type": content_type}) as r:
        return r.status, json.loads(await r.text())


async def test_misplaced_and_misspelled_annotations_are_warned(webhook: Webhook) -> None:
    status, body = await _post(webhook, _deployment_review({P + "connect-inject": "true"}, {P + "envoy-extra-arg": "-l debug"}, "admission.k8s.io/v1beta1"))
    assert status == 200 and body["apiVersion"] == "admission.k8s.io/v1beta1"
    response = body["response"]
    assert response["allowed"] is True and response["uid"] == "wl-1"
    assert len(response["warnings"]) == 2
    assert "own metadata" in response["warnings"][0] and 'did you mean "consul.hashicorp.com/envoy-extra-args"' in response["warnings"][1]
    metrics = await webhook.metrics()
    assert metric_value(metrics, "connect_inject_workload_reviews_total", result="warnings") == 1


async def test_a_correct_workload_gets_no_warning(webhook: Webhook) -> None:
    status, body = await _post(webhook, _deployment_review({}, {P + "connect-inject": "true"}))
    assert status == 200 and body["response"] == {"uid": "wl-1", "allowed": True}


@pytest.mark.parametrize("raw", [b"", b"{not json", b"[]", b'{"request": 5}', b"\xff" * 10, b"[" * 100_000])
async def test_garbage_is_allowed(webhook: Webhook, raw: bytes) -> None:
    status, body = await _post(webhook, raw, content_type="text/plain")
    assert status == 200 and body["response"]["allowed"] is True
