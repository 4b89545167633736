"""Reading Kubernetes objects given as plain dicts, without trusting their shape.

Pods from the API server are well-formed, but the `original-pod` annotation is any JSON a user
wrote, and tests hand in partial objects: a field of the wrong type reads as absent, never as an
exception.
"""

from __future__ import annotations

from typing import Any, Mapping

from generator.inject.annotations import PodPorts


def mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, dict) else {}


def dicts(value: Any) -> list[dict[str, Any]]:
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


def string(value: Any) -> str:
    return value if isinstance(value, str) else ""


def is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def string_map(value: Any) -> dict[str, str]:
    """Labels or annotations: string keys to string values; anything else is left out."""
    return {k: v for k, v in value.items() if isinstance(k, str) and isinstance(v, str)} if isinstance(value, dict) else {}


def pod_ports(pod: Mapping[str, Any]) -> PodPorts:
    """The webhook's named-port table (first container port of that name wins, across containers),
    built from the well-formed parts of `pod` only."""
    containers = [
        {"ports": [{"name": port["name"], "containerPort": port["containerPort"]}
                   for port in dicts(container.get("ports"))
                   if isinstance(port.get("name"), str) and is_int(port.get("containerPort"))]}
        for container in dicts(mapping(pod.get("spec")).get("containers"))
    ]
    return PodPorts({"spec": {"containers": containers}})
