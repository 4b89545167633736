"""`connect-inject inject`: workloads in, injected workloads out, through review().

Each pod template is wrapped in the AdmissionReview the API server would send for a pod created
from it, answered by the same `review()` the webhook runs, and the patch is applied back onto the
template. Kinds that hold no pod pass through unchanged.
"""

from __future__ import annotations

import copy
import uuid
from dataclasses import dataclass, field
import base64
import json
from typing import Any, Callable, Mapping

import jsonpatch

from generator.annotations import PREFIX, TABLE
from generator.config import Config
from generator.review import NamespaceLabels, review

# Where each workload kind keeps its pod template.
TEMPLATE_PATHS: dict[str, tuple[str, ...]] = {
    "Deployment": ("spec", "template"),
    "StatefulSet": ("spec", "template"),
    "DaemonSet": ("spec", "template"),
    "ReplicaSet": ("spec", "template"),
    "ReplicationController": ("spec", "template"),
    "Job": ("spec", "template"),
    "CronJob": ("spec", "jobTemplate", "spec", "template"),
}
# Annotations that only do something on the pod: on a workload's own metadata they are ignored.
POD_ONLY = tuple(spec.full for spec in TABLE if spec.kind not in ("written", "removed"))


@dataclass
class Outcome:
    """What happened to one stream: the objects to print, warnings and rejections."""

    objects: list[Any] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def describe(obj: Mapping[str, Any]) -> str:
    metadata = obj.get("metadata") or {}
    return f"{obj.get('kind', '?')}/{metadata.get('name') or metadata.get('generateName') or ''}"


def misplaced_warnings(obj: Mapping[str, Any]) -> list[str]:
    """The Consul docs' "common mistake": an injection annotation on the workload, not its pods."""
    path = TEMPLATE_PATHS.get(obj.get("kind", ""))
    if not path:
        return []
    own = (obj.get("metadata") or {}).get("annotations") or {}
    template = _dig(obj, path) or {}
    on_template = (template.get("metadata") or {}).get("annotations") or {}
    where = ".".join(path) + ".metadata.annotations"
    return [
        f'annotation "{key}" is on the {obj.get("kind")}\'s own metadata, where the injector never sees it; '
        f"it belongs on the pod template ({where})"
        for key in own
        if (key in POD_ONLY or key.startswith(PREFIX + "service-meta-")) and key not in on_template
    ]


Reviewer = Callable[[dict], dict]  # AdmissionReview request → response AdmissionReview


def inject_stream(docs: list[Any], config: Config, namespace: str | None, labels: NamespaceLabels,
                  reviewer: Reviewer | None = None) -> Outcome:
    """Inject every pod and pod template in `docs`.

    `reviewer` answers each AdmissionReview; by default it is the in-process `review()`. Tests pass
    one that POSTs to the HTTPS webhook, so both paths assemble workloads the same way.
    """
    outcome = Outcome()
    answer = reviewer or (lambda request: review(request, config, labels).review)
    for doc in docs:
        outcome.objects.append(_inject_object(doc, answer, namespace, outcome))
    return outcome


def _inject_object(obj: Any, answer: Reviewer, namespace: str | None, outcome: Outcome) -> Any:
    if not isinstance(obj, dict):
        return obj
    kind = obj.get("kind")
    if kind == "List":
        out = copy.deepcopy(obj)
        out["items"] = [_inject_object(item, answer, namespace, outcome) for item in obj.get("items") or []]
        return out
    if kind == "Pod":
        pod_ns = namespace or (obj.get("metadata") or {}).get("namespace") or "default"
        return _apply(obj, answer, pod_ns, outcome, describe(obj)) or obj
    path = TEMPLATE_PATHS.get(kind or "")
    if path is None or not isinstance(_dig(obj, path), dict):
        return obj
    outcome.warnings.extend(f"{describe(obj)}: warning: {w}" for w in misplaced_warnings(obj))
    template = _dig(obj, path)
    pod_ns = namespace or (obj.get("metadata") or {}).get("namespace") or "default"
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": copy.deepcopy(template.get("metadata") or {}), "spec": template.get("spec")}
    injected = _apply(pod, answer, pod_ns, outcome, describe(obj))
    if injected is None:
        return obj
    out = copy.deepcopy(obj)
    target = _dig(out, path)
    target["metadata"], target["spec"] = injected["metadata"], injected["spec"]
    return out


def _apply(pod: dict, answer: Reviewer, namespace: str, outcome: Outcome, name: str) -> dict | None:
    """The injected pod, or None when it is skipped or rejected (recorded in `outcome`)."""
    response = answer(admission_request(pod, namespace))["response"]
    outcome.warnings.extend(f"{name}: warning: {w}" for w in response.get("warnings") or [])
    if not response["allowed"]:
        outcome.errors.append(f"{name}: {response['status']['message']}")
        return None
    if "patch" not in response:
        return None
    return jsonpatch.apply_patch(pod, json.loads(base64.b64decode(response["patch"])))


def admission_request(pod: Mapping[str, Any], namespace: str) -> dict:
    """The AdmissionReview the API server sends when `pod` is created in `namespace`."""
    request = {
        "uid": str(uuid.uuid4()),
        "kind": {"group": "", "version": "v1", "kind": "Pod"},
        "resource": {"group": "", "version": "v1", "resource": "pods"},
        "namespace": namespace,
        "operation": "CREATE",
        "object": pod,
    }
    return {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": request}


def _dig(obj: Any, path: tuple[str, ...]) -> Any:
    for part in path:
        if not isinstance(obj, dict):
            return None
        obj = obj.get(part)
    return obj


