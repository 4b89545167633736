"""Pods inside YAML streams: `connect-inject inject` and `explain` go through review() per pod.

Each pod template is wrapped in the AdmissionReview the API server would send for a pod created
from it, answered by the same `review()` the webhook runs; `inject` applies the patch back onto the
template. Kinds that hold no pod pass through unchanged.
"""

from __future__ import annotations

import base64
import copy
import json
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Iterator, Mapping

import jsonpatch

from generator.inject import serviceaccount
from generator.inject.annotations import PREFIX, TABLE
from generator.base.podcontract import ADMISSION_API_VERSIONS

if TYPE_CHECKING:
    from generator.inject.review import NamespaceLabels
    from generator.values.config import Config

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
Reviewer = Callable[[dict], dict]  # AdmissionReview request → response AdmissionReview


@dataclass
class PodSite:
    """A pod, or a workload's pod template, found in a stream."""

    name: str  # <kind>/<name> of the object that holds it
    obj: dict  # that object
    path: tuple[str, ...] | None  # where its template is; None when obj is the Pod itself
    namespace: str

    def pod(self) -> dict:
        """The Pod the API server would review for this site: a copy, with what its
        ServiceAccount admission plugin adds before any webhook runs."""
        if self.path is None:
            pod = copy.deepcopy(self.obj)
        else:
            template = _dig(self.obj, self.path)
            pod = {"apiVersion": "v1", "kind": "Pod", "metadata": copy.deepcopy(template.get("metadata") or {}),
                   "spec": copy.deepcopy(template.get("spec"))}
        serviceaccount.add(pod)
        return pod

    def store(self, pod: dict) -> None:
        """Write an injected pod back where it came from, without the plugin's additions."""
        serviceaccount.remove(pod)
        if self.path is None:
            self.obj.clear()
            self.obj.update(pod)
        else:
            template = _dig(self.obj, self.path)
            template["metadata"], template["spec"] = pod["metadata"], pod["spec"]


@dataclass
class Outcome:
    """What happened to one stream: the objects to print, warnings and rejections."""

    objects: list[Any] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def _map(value: Any) -> dict:
    """A field that should be a map, or {} when it is absent or of another type."""
    return value if isinstance(value, dict) else {}


def _kind(obj: Mapping[str, Any]) -> str:
    kind = obj.get("kind")
    return kind if isinstance(kind, str) else ""


def describe(obj: Mapping[str, Any]) -> str:
    metadata = _map(obj.get("metadata"))
    name = metadata.get("name") or metadata.get("generateName") or ""
    return f"{_kind(obj) or '?'}/{name if isinstance(name, str) else ''}"


def pod_sites(obj: Any, namespace: str | None) -> Iterator[PodSite]:
    """Every pod and pod template in `obj` (Lists are walked)."""
    if not isinstance(obj, dict):
        return
    kind = _kind(obj)
    if kind == "List":
        items = obj.get("items")
        for item in items if isinstance(items, list) else []:
            yield from pod_sites(item, namespace)
        return
    own_ns = _map(obj.get("metadata")).get("namespace")
    # Like kubectl: an object's own namespace wins; --namespace is for objects that name none.
    pod_ns = (own_ns if isinstance(own_ns, str) and own_ns else None) or namespace or "default"
    if kind == "Pod":
        yield PodSite(describe(obj), obj, None, pod_ns)
    elif kind in TEMPLATE_PATHS and isinstance(_dig(obj, TEMPLATE_PATHS[kind]), dict):
        yield PodSite(describe(obj), obj, TEMPLATE_PATHS[kind], pod_ns)


def misplaced_warnings(obj: Mapping[str, Any]) -> list[str]:
    """The Consul docs' "common mistake": an injection annotation on the workload, not its pods."""
    path = TEMPLATE_PATHS.get(_kind(obj))
    if not path:
        return []
    own = _map(_map(obj.get("metadata")).get("annotations"))
    on_template = _map(_map(_map(_dig(obj, path)).get("metadata")).get("annotations"))
    where = ".".join(path) + ".metadata.annotations"
    return [
        f'annotation "{key}" is on the {obj.get("kind")}\'s own metadata, where the injector never sees it; '
        f"it belongs on the pod template ({where})"
        for key in own
        if isinstance(key, str) and (key in POD_ONLY or key.startswith(PREFIX + "service-meta-")) and key not in on_template
    ]


def local_reviewer(config: Config, labels: NamespaceLabels) -> Reviewer:
    from generator.inject.review import review

    return lambda request: review(request, config, labels).review


def inject_stream(docs: list[Any], config: Config, namespace: str | None, labels: NamespaceLabels,
                  reviewer: Reviewer | None = None) -> Outcome:
    """Inject every pod and pod template in `docs`.

    `reviewer` answers each AdmissionReview; by default it is the in-process `review()`. Tests pass
    one that POSTs to the HTTPS webhook, so both paths assemble workloads the same way.
    """
    outcome = Outcome()
    answer = reviewer or local_reviewer(config, labels)
    for doc in docs:
        out = copy.deepcopy(doc)
        for site in pod_sites(out, namespace):
            outcome.warnings.extend(f"{site.name}: warning: {w}" for w in misplaced_warnings(site.obj))
            pod = site.pod()
            response = answer(admission_request(pod, site.namespace))["response"]
            outcome.warnings.extend(f"{site.name}: warning: {w}" for w in response.get("warnings") or [])
            if not response["allowed"]:
                outcome.errors.append(f"{site.name}: {response['status']['message']}")
            elif "patch" in response:
                site.store(jsonpatch.apply_patch(pod, json.loads(base64.b64decode(response["patch"]))))
        outcome.objects.append(out)
    return outcome


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
    return {"apiVersion": ADMISSION_API_VERSIONS[0], "kind": "AdmissionReview", "request": request}


def _dig(obj: Any, path: tuple[str, ...]) -> Any:
    for part in path:
        if not isinstance(obj, dict):
            return None
        obj = obj.get(part)
    return obj


def workload_warnings(obj: Any) -> list[str]:
    """Warnings for a workload sent to `/validate-workload`: injection annotations on its own
    metadata (misplaced) and unknown keys on its pod template. Any value is accepted: what is not
    a workload with a pod template gets none. The webhook wraps them in its admission envelope
    (generator/webhook/admission.py), always allowed."""
    from generator.inject.annotations import unknown_warnings

    obj = _map(obj)
    if _kind(obj) not in TEMPLATE_PATHS:
        return []
    template = _map(_dig(obj, TEMPLATE_PATHS[_kind(obj)]))
    annotations = _map(_map(template.get("metadata")).get("annotations"))
    return misplaced_warnings(obj) + unknown_warnings(annotations, where="the pod template")
