"""Refusals that protect the injected containers and the webhook itself, before any patch is built.

- The shared volume is the injector's: the author's init containers run before the injected ones
  (and native sidecars beside them), so a pod container that mounts `consul-connect-inject-data`,
  or a pod volume of that name, could plant a symlink or swap the `consul` binary the root init
  script runs. Such a pod is refused, naming the container.
- Work and output stay bounded by the input: every upstream adds two env vars to every container,
  so a small pod could ask for a huge patch. The size of the injected pod is estimated before
  anything is built, and a pod the API server could not store is refused with the figures.
"""

from __future__ import annotations

import json
import posixpath
from typing import Any, Mapping

from generator.inject import overrides
from generator.inject.patch import ORIGINAL_POD_KEY, STATUS_KEY
from generator.base.errors import PodError
from generator.inject.plan import Plan
from generator.base.podcontract import INIT_NAMES, INJECTED_NAMES, MOUNT_PATH, VOLUME_NAME

VOLUME = VOLUME_NAME
# The API server stores an object of at most 1.5 MiB (etcd's request limit) and metadata.annotations
# of at most 256 KiB (keys and values, counted in bytes).
MAX_POD_BYTES = 1536 * 1024
MAX_ANNOTATION_BYTES = 256 * 1024


def check_pod(spec: Mapping[str, Any]) -> None:
    """PodError for a declared injected init container, or a pod that declares the injected volume
    or mounts it (or anything at its path)."""
    names = {c.get("name") for field in ("initContainers", "containers") for c in spec.get(field) or []}
    if set(INIT_NAMES) <= names:  # injection always adds both
        present = ", ".join(n for n in INJECTED_NAMES if n in names)
        raise PodError(
            f"the pod looks already injected (it has the injected containers {present}) but has no "
            f"{STATUS_KEY} annotation, so it would be injected twice; restore the annotation, or create the "
            f"pod from its original spec", "looks-injected"
        )
    for field in ("initContainers", "containers"):
        for index, container in enumerate(spec.get(field) or []):
            overrides.check_declared(container.get("name"), f"spec.{field}[{index}]")
    for index, volume in enumerate(spec.get("volumes") or []):
        if volume.get("name") == VOLUME:
            raise PodError(f'spec.volumes[{index}]: a pod cannot declare a volume named "{VOLUME}"; the injector '
                           f"adds it and only the injected containers may use it", "shared-volume")
    for field in ("initContainers", "containers"):
        for index, container in enumerate(spec.get(field) or []):
            for m_index, mount in enumerate(container.get("volumeMounts") or []):
                path = mount.get("mountPath")
                if mount.get("name") == VOLUME or (isinstance(path, str) and _under(path, MOUNT_PATH)):
                    raise PodError(
                        f'spec.{field}[{index}].volumeMounts[{m_index}]: container "{container.get("name")}" cannot '
                        f'mount the injected volume "{VOLUME}" or anything at {MOUNT_PATH}: it holds the files the '
                        f"privileged init container runs and writes", "shared-volume"
                    )


def _under(path: str, root: str) -> bool:
    """Is `path` the directory `root` or inside it, once `//`, `.` and `..` are resolved?"""
    path = posixpath.normpath("/" + path.strip().lstrip("/"))
    return path == root or path.startswith(root + "/")


def check_annotations(annotations: Mapping[str, str], original: str) -> None:
    """PodError when the pod's annotations plus the `original-pod` copy of the pod (`original`)
    exceed what Kubernetes stores; checked before any annotation is parsed."""
    total = sum(len(k.encode()) + len(v.encode()) for k, v in annotations.items())
    total += len(ORIGINAL_POD_KEY) + len(original.encode())
    if total > MAX_ANNOTATION_BYTES:
        raise PodError(
            f"the injected pod's annotations would be {total} bytes, more than the {MAX_ANNOTATION_BYTES} "
            f"Kubernetes stores (injection writes the pod as received into the annotation {ORIGINAL_POD_KEY}); "
            f"make the pod spec smaller", "too-large"
        )


def check_size(pod: Mapping[str, Any], original: str, plan: Plan, rendered_bytes: int) -> None:
    """PodError when the injected pod would exceed what the API server stores, or the patch that
    makes it would be as large, from figures known before the patch is built: the pod and its
    `original-pod` copy, the rendered containers and the upstream env vars injection adds to every
    container (in the patch, each of those is an operation of its own)."""
    spec = pod.get("spec") or {}
    containers = len(spec.get("containers") or []) + len(spec.get("initContainers") or [])
    env_vars = sum(2 for u in plan.upstreams if u.env_prefix)
    per_container = sum(_env_bytes(u.env_prefix) for u in plan.upstreams if u.env_prefix)
    pod_bytes = 2 * len(original.encode()) + containers * per_container + rendered_bytes
    patch_bytes = len(original.encode()) + containers * (per_container + env_vars * _OP_OVERHEAD) + rendered_bytes
    if max(pod_bytes, patch_bytes) > MAX_POD_BYTES:
        what = "injected pod" if pod_bytes >= patch_bytes else "patch that injects it"
        raise PodError(
            f"the {what} would be about {max(pod_bytes, patch_bytes)} bytes, more than the {MAX_POD_BYTES} the API "
            f"server stores: {len(plan.upstreams)} upstreams add {per_container} bytes of env vars to each of "
            f"{containers} containers",
            "too-large",
        )


# A JSON patch operation around one env var: {"op":"add","path":"/spec/initContainers/999/env/-","value":...}
_OP_OVERHEAD = len('{"op":"add","path":"/spec/initContainers/999/env/-","value":},')


def _env_json(prefix: str) -> int:
    host = {"name": f"{prefix}_CONNECT_SERVICE_HOST", "value": "127.0.0.1"}
    port = {"name": f"{prefix}_CONNECT_SERVICE_PORT", "value": "65535"}
    return len(json.dumps(host)) + len(json.dumps(port)) + 2


_ENV_OVERHEAD = _env_json("")


def _env_bytes(prefix: str) -> int:
    """JSON size of the two env vars one upstream adds to a container (prefixes are ASCII)."""
    return _ENV_OVERHEAD + 2 * len(prefix)
