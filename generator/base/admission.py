"""The AdmissionReview response envelope, built in one place.

Every answer to an admission webhook call has the same shape: the request's apiVersion echoed,
its uid, `allowed`, and optionally a `status`, a JSON patch and `warnings`. The engine's
`review()` (behind `/mutate` and the CLI's `review`/`inject`), `/validate-workload` and, later,
the config-entry controller's CRD webhooks all answer through `response()`, so they cannot drift.
It lives in `base/` because the engine (which must not import the server) builds one too; the
HTTP side (bodies, status codes, in-flight bookkeeping) is in `generator/webhook/admission.py`.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping, Sequence
from typing import Any

from generator.base.podcontract import ADMISSION_API_VERSIONS


def response(review: Any, allowed: bool, *, status: Mapping[str, Any] | None = None,
             patch: Sequence[Mapping[str, Any]] | None = None, warnings: Sequence[str] = ()) -> dict[str, Any]:
    """The AdmissionReview answering `review` (the request as received, any JSON value).

    The apiVersion is the request's when it is one we speak (admission.k8s.io/v1 or v1beta1),
    else v1; the uid is the request's, or "" when it has none (only garbage lacks one, and a
    webhook registered with failurePolicy Ignore still answers it). `patch` is a list of JSON
    patch operations, sent base64-encoded as the API expects; `warnings` are shown by kubectl.
    """
    request = review.get("request") if isinstance(review, dict) else None
    uid = request.get("uid") if isinstance(request, dict) else None
    api_version = review.get("apiVersion") if isinstance(review, dict) else None
    answer: dict[str, Any] = {"uid": uid if isinstance(uid, str) else "", "allowed": allowed}
    if patch is not None:
        answer["patchType"] = "JSONPatch"
        answer["patch"] = base64.b64encode(json.dumps(patch, separators=(",", ":")).encode()).decode()
    if status is not None:
        answer["status"] = dict(status)
    if warnings:
        answer["warnings"] = list(warnings)
    return {"apiVersion": api_version if api_version in ADMISSION_API_VERSIONS else ADMISSION_API_VERSIONS[0],
            "kind": "AdmissionReview", "response": answer}
