"""`connect-inject check-config-entries`: the webhooks' checks on a YAML stream, for GitOps CI.

Each config-entry resource of the stream is checked as its webhook would check its CREATE, with
the resources before it in the stream standing in for what the cluster already holds (so two
ServiceDefaults of one name in one commit are caught). One `<kind>/<name>: <message>` line per
problem; other kinds pass through unchecked.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from typing import Any

from generator.configentries import KINDS, Kind
from generator.entrycontroller import admission
from generator.entrycontroller.controller import settings_from
from generator.values.controllers import ControllerSettings


def _resources(docs: Iterable[Any]) -> Iterable[dict[str, Any]]:
    for doc in docs:
        if isinstance(doc, dict) and doc.get("kind") == "List":
            yield from (item for item in doc.get("items") or [] if isinstance(item, dict))
        elif isinstance(doc, dict):
            yield doc


def check(docs: Iterable[Any], config: ControllerSettings) -> tuple[list[str], int]:
    """(problem lines, how many config-entry resources were checked)."""
    meta = settings_from(config).consul_meta
    seen: dict[str, list[Mapping[str, Any]]] = {}
    problems: list[str] = []
    checked = 0
    for obj in _resources(docs):
        kind = KINDS.get(str(obj.get("kind")))
        if kind is None or not str(obj.get("apiVersion", "")).startswith("consul.hashicorp.com/"):
            continue
        checked += 1
        obj = dict(obj)
        obj.setdefault("metadata", {})
        obj["metadata"] = {"namespace": "default", **(obj["metadata"] or {})}
        review = {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
                  "request": {"uid": str(uuid.uuid4()), "operation": "CREATE", "object": obj}}

        def existing(k: Kind) -> list[Mapping[str, Any]]:
            return seen.get(k.kind, [])
        name = (obj.get("metadata") or {}).get("name") or ""
        try:
            answer = admission.review(review, kind, meta, existing)["response"]
        except admission.BadReview as e:
            problems.append(f"{kind.singular}/{name}: {e}")
            continue
        if not answer["allowed"]:
            problems.append(f"{kind.singular}/{name}: {answer['status']['message']}")
        seen.setdefault(kind.kind, []).append(obj)
    return problems, checked
