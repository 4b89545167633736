"""The config-entry webhooks' decisions (reference crd-controller §3.2), pure.

`review()` answers one AdmissionReview for one kind: the defaulting patches, the uniqueness checks
on CREATE (against the other resources of the kind, which the caller reads from its watch cache,
never a list per request), the ServiceIntentions destination immutability on UPDATE, and the
kind's validation, each denial with the reference's message and code. The HTTPS handlers of
`connect-inject controller` and the offline `connect-inject check-config-entries` both call it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from generator.base import admission
from generator.configentries import ConfigEntryInvalid, ConsulMeta, Kind, defaulted, defaulting_patch, validate

Existing = Callable[[Kind], Iterable[Mapping[str, Any]]]

# Kinds with one resource per cluster under a fixed name (§3.2); their webhook makes no patches.
SINGLETON_NAMES = {"ProxyDefaults": "global", "Mesh": "mesh"}
SINGLETON_WHAT = {"ProxyDefaults": "only one global entry is supported", "Mesh": "only one mesh entry is supported",
                  "PartitionExports": "only one partitionexports entry is supported per Kubernetes cluster"}


class BadReview(ValueError):
    """Not a usable AdmissionReview for this kind: an HTTP 400 (never a 500)."""


def _request(review: Any, kind: Kind) -> tuple[dict[str, Any], str, dict[str, Any]]:
    if not isinstance(review, dict) or not isinstance(review.get("request"), dict):
        raise BadReview("the body is not an AdmissionReview (no request)")
    request = review["request"]
    obj = request.get("object")
    if not isinstance(obj, dict):
        raise BadReview("request.object is missing or not an object")
    if obj.get("kind") not in (None, kind.kind):
        raise BadReview(f"request.object.kind is {obj.get('kind')!r}, this webhook takes {kind.kind}")
    if not isinstance(obj.get("metadata") or {}, dict) or not isinstance(obj.get("spec") or {}, dict):
        raise BadReview("request.object.metadata and .spec must be objects")
    operation = request.get("operation")
    return request, str(operation or ""), obj


def _name(obj: Mapping[str, Any]) -> str:
    return str((obj.get("metadata") or {}).get("name") or "")


def _destination(obj: Mapping[str, Any]) -> tuple[str, str]:
    destination = (obj.get("spec") or {}).get("destination") or {}
    if not isinstance(destination, dict):
        return "", ""
    return str(destination.get("name") or ""), str(destination.get("namespace") or "")


def problem(kind: Kind, operation: str, obj: dict[str, Any], old: Any, meta: ConsulMeta,
            existing: Existing) -> str | None:
    """Why the webhook denies `obj` (400), or None. `obj` is the request's object, undefaulted."""
    single_namespace = not (meta.namespaces_enabled and meta.mirroring)
    if kind.kind in SINGLETON_WHAT:
        if operation == "CREATE":
            fixed = SINGLETON_NAMES.get(kind.kind)
            if fixed and _name(obj) != fixed:
                return f'{kind.singular} resource name must be "{fixed}"'
            if any(True for _ in existing(kind)):
                return f"{kind.singular} resource already defined - {SINGLETON_WHAT[kind.kind]}"
        if kind.kind == "Mesh":
            return None  # the reference's Mesh webhook validates nothing else
    elif kind.kind == "ServiceIntentions":
        fixed_obj = defaulted(kind, obj, meta)
        name, namespace = _destination(fixed_obj)
        if operation == "CREATE":
            for item in existing(kind):
                other_name, other_ns = _destination(item)
                if single_namespace and other_name == name:
                    return f"an existing ServiceIntentions resource has `spec.destination.name: {name}`"
                if not single_namespace and (other_name, other_ns) == (name, namespace):
                    return (f"an existing ServiceIntentions resource has `spec.destination.name: {name}` "
                            f"and `spec.destination.namespace: {namespace}`")
        elif operation == "UPDATE" and isinstance(old, dict) and _destination(old) != _destination(obj):
            return "spec.destination.name and spec.destination.namespace are immutable fields for ServiceIntentions"
    elif operation == "CREATE" and single_namespace:
        if any(_name(item) == _name(obj) for item in existing(kind)):
            return (f'{kind.singular} resource with name "{_name(obj)}" is already defined – all {kind.singular} '
                    "resources must have unique names across namespaces")
    try:
        validate(kind, defaulted(kind, obj, meta), meta)
    except ConfigEntryInvalid as e:
        return str(e)
    return None


def review(body: Any, kind: Kind, meta: ConsulMeta, existing: Existing) -> dict[str, Any]:
    """The AdmissionReview answering `body` (raises BadReview for what is not one)."""
    request, operation, obj = _request(body, kind)
    found = problem(kind, operation, obj, request.get("oldObject"), meta, existing)
    if found is not None:
        return admission.response(body, False, status={"code": 400, "message": found})
    patches = None if kind.kind in SINGLETON_WHAT else defaulting_patch(kind, obj, meta) or None
    return admission.response(body, True, status={"code": 200, "reason": f"valid {kind.singular} request"},
                              patch=patches)
