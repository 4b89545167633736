"""The API server's ServiceAccount admission plugin, for the offline CLI.

In a cluster the plugin runs before any webhook: unless `automountServiceAccountToken` is false, it
adds a projected `kube-api-access-<random>` volume and mounts it at the token path in every
container and init container that does not mount something there already. With ACLs, the injector
copies that mount into `consul-connect-inject-init` (connect-init logs in with the token), so
`inject` and `explain` must see the pod as the webhook would: `add()` does what the plugin does,
and `remove()` takes it out of what `inject` prints (the plugin adds it again, to every container
including the injected ones, when the pods are created).

We cannot see the ServiceAccount object offline, so only the pod's own
`automountServiceAccountToken: false` turns it off.
"""

from __future__ import annotations

import copy
import json
from typing import Any

from generator.inject.patch import ORIGINAL_POD_KEY
from generator.base.podcontract import SA_TOKEN_PATH

VOLUME = "kube-api-access-offline"  # the plugin picks a random suffix; this one marks our stand-in
_CONTAINER_FIELDS = ("initContainers", "containers")


def add(pod: dict) -> bool:
    """Add the token volume and mounts to `pod` in place; False when the plugin would not."""
    spec = pod.get("spec")
    if not isinstance(spec, dict) or spec.get("automountServiceAccountToken") is False:
        return False
    containers = [c for field in _CONTAINER_FIELDS for c in _list(spec.get(field)) if isinstance(c, dict)]
    missing = [c for c in containers if not any(isinstance(m, dict) and m.get("mountPath") == SA_TOKEN_PATH
                                                for m in _list(c.get("volumeMounts")))]
    # null is an empty list to the API server; any other non-list is left for review() to refuse.
    if not missing or not isinstance(spec.get("volumes") or [], list) or any(not isinstance(c.get("volumeMounts") or [], list) for c in missing):
        return False
    spec["volumes"] = [*(spec.get("volumes") or []), _volume()]
    for container in missing:
        container["volumeMounts"] = [*(container.get("volumeMounts") or []),
                                     {"name": VOLUME, "readOnly": True, "mountPath": SA_TOKEN_PATH}]
    return True


def remove(pod: dict) -> None:
    """Take the stand-in volume and every mount of it out of `pod` (in place), including the
    `original-pod` annotation injection wrote."""
    _strip(pod)
    annotations = (pod.get("metadata") or {}).get("annotations") or {}
    if ORIGINAL_POD_KEY in annotations:
        original = json.loads(annotations[ORIGINAL_POD_KEY])
        _strip(original)
        annotations[ORIGINAL_POD_KEY] = json.dumps(original, separators=(",", ":"), ensure_ascii=False)


def _strip(pod: dict) -> None:
    spec = pod.get("spec") or {}
    volumes = [v for v in _list(spec.get("volumes")) if not (isinstance(v, dict) and v.get("name") == VOLUME)]
    if volumes:
        spec["volumes"] = volumes
    else:
        spec.pop("volumes", None)
    for field in _CONTAINER_FIELDS:
        for container in _list(spec.get(field)):
            mounts = [m for m in _list(container.get("volumeMounts")) if not (isinstance(m, dict) and m.get("name") == VOLUME)]
            if mounts:
                container["volumeMounts"] = mounts
            else:
                container.pop("volumeMounts", None)


def _volume() -> dict:
    """The projected volume the plugin adds (Kubernetes 1.22+ bound service account tokens)."""
    return copy.deepcopy({
        "name": VOLUME,
        "projected": {
            "defaultMode": 420,
            "sources": [
                {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
                {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
                {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}},
            ],
        },
    })


def _list(value: Any) -> list:
    return value if isinstance(value, list) else []
