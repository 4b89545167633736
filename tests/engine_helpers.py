"""Engine test helpers (imported as `engine_helpers`; conftest names clash across test folders): build pods, run them through review(), apply patches, validate pods.

Everything goes through the public path (`engine.load()` → `review()`), as the webhook and the CLI
do; the helpers only build inputs and read outputs.
"""

from __future__ import annotations

import base64
import copy
import functools
import json
from pathlib import Path
from typing import Any

import jsonpatch

from generator.values import config as config_mod
from generator.inject import engine
from generator.inject.review import ReviewResult, review

ROOT = Path(__file__).resolve().parent.parent
P = "consul.hashicorp.com/"


@functools.lru_cache(maxsize=64)
def _load(sets: tuple[str, ...], files: tuple[str, ...], env: tuple[tuple[str, str], ...]) -> config_mod.Config:
    return engine.load(list(files), list(sets), environ=dict(env))


def load_config(*sets: str, files: tuple[str, ...] = (), env: dict[str, str] | None = None) -> config_mod.Config:
    """A Config from `--set` expressions and values files (cached: Config is immutable)."""
    return _load(tuple(sets), tuple(str(f) for f in files), tuple(sorted((env or {}).items())))


def make_pod(annotations: dict[str, str] | None = None, *, name: str = "web", containers: list[dict] | None = None,
             **spec: Any) -> dict:
    """A pod like the docs' static-server: one container with a named port 8080."""
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "default", "annotations": {P + "connect-inject": "true", **(annotations or {})}},
        "spec": {
            "containers": containers
            or [{"name": "web", "image": "hashicorp/http-echo:latest", "ports": [{"name": "http", "containerPort": 8080}]}],
            **spec,
        },
    }
    return pod


def admission(pod: Any, namespace: str = "default", api_version: str = "admission.k8s.io/v1", uid: str = "uid-1") -> dict:
    return {
        "apiVersion": api_version,
        "kind": "AdmissionReview",
        "request": {
            "uid": uid,
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "namespace": namespace,
            "operation": "CREATE",
            "object": pod,
        },
    }


def run(pod: Any, config: config_mod.Config | None = None, namespace: str = "default",
        labels: dict[str, dict[str, str]] | None = None) -> ReviewResult:
    """review() one pod; `labels` maps namespace → labels."""
    return review(admission(copy.deepcopy(pod), namespace), config or load_config(), lambda ns: (labels or {}).get(ns, {}))


def patched(pod: dict, result: ReviewResult) -> dict:
    """Apply the response's base64 patch to the pod, as the API server does."""
    response = result.review["response"]
    assert response["allowed"] is True, response
    if "patch" not in response:
        return copy.deepcopy(pod)
    assert response["patchType"] == "JSONPatch"
    ops = json.loads(base64.b64decode(response["patch"]))
    return jsonpatch.apply_patch(pod, ops)


def inject(pod: dict, config: config_mod.Config | None = None, namespace: str = "default",
           labels: dict[str, dict[str, str]] | None = None) -> dict:
    """The injected pod (asserting injection happened)."""
    result = run(pod, config, namespace, labels)
    assert result.outcome == "injected", result.review["response"]
    return patched(pod, result)


def container(pod: dict, name: str, field: str = "containers") -> dict:
    matches = [c for c in pod["spec"].get(field) or [] if c["name"] == name]
    assert matches, f"no {field} entry named {name}"
    return matches[0]


def init_script(pod: dict) -> str:
    return container(pod, "consul-connect-inject-init", "initContainers")["command"][2]


def denial(result: ReviewResult) -> tuple[int, str]:
    response = result.review["response"]
    assert response["allowed"] is False, response
    return response["status"]["code"], response["status"]["message"]


@functools.lru_cache(maxsize=1)
def _kv():
    import kubernetes_validate

    return kubernetes_validate


def validate_k8s(obj: dict, version: str = "1.30") -> None:
    """Strict validation against the real Kubernetes schema (kubernetes-validate)."""
    _kv().validate(obj, version, strict=True)
