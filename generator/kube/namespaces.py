"""Namespace labels for offline use: `--namespaces FILE` stands in for the cluster's Namespaces.

Only two labels matter (`consul.hashicorp.com/transparent-proxy` and `.../consul-dns`), read the
same way the webhook reads them from its watched cache.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from generator.base.errors import ConfigError
from generator.base.yamlio import read_stream


def load_labels(path: str | None) -> dict[str, dict[str, str]]:
    """Namespace name → labels, from a YAML stream of Namespace objects (or a List of them)."""
    if not path:
        return {}
    try:
        docs = read_stream(path)
    except (OSError, ValueError) as exc:
        raise ConfigError([f"--namespaces {path}: {exc}"]) from exc
    out: dict[str, dict[str, str]] = {}
    stack = list(docs)
    while stack:
        doc = stack.pop(0)
        if isinstance(doc, dict) and doc.get("kind") == "List":
            stack[:0] = doc.get("items") or []
            continue
        if not isinstance(doc, dict) or doc.get("kind") != "Namespace":
            raise ConfigError([f"--namespaces {path}: expected Namespace objects, got {doc.get('kind') if isinstance(doc, dict) else type(doc).__name__}"])
        metadata = doc.get("metadata") or {}
        if not metadata.get("name"):
            raise ConfigError([f"--namespaces {path}: a Namespace has no metadata.name"])
        out[metadata["name"]] = {str(k): str(v) for k, v in (metadata.get("labels") or {}).items()}
    return out


def lookup(labels: Mapping[str, Mapping[str, str]]) -> Callable[[str], Mapping[str, str]]:
    """A `namespace → labels` function for review(); unknown namespaces have no labels."""
    return lambda namespace: labels.get(namespace, {})
