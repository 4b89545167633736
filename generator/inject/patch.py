"""The JSON patch (RFC 6902) of an injection, built from targeted operations.

Each change is one `add`/`replace` at a precise JSON pointer, so cost grows linearly with the pod
(peers that diffed whole pods went quadratic on pods with 1,000 env vars) and the patch reads like
a description of the injection: volumes, init containers, sidecars, env vars, probe ports,
annotations, labels.
"""

from __future__ import annotations

import json
from typing import Any, Iterable, Mapping

from generator.inject import overrides as overrides_mod
from generator.inject.annotations import CONNECT_SERVICE_PORT, CONSUL_NAMESPACE, INJECT_STATUS, ORIGINAL_POD, PREFIX
from generator.base.errors import PodError
from generator.inject.plan import Plan
from generator.base.podcontract import INJECTED_NAMES
from generator.inject.render import Injected

PROBES = (("livenessProbe", 20300), ("readinessProbe", 20400), ("startupProbe", 20500))
STATUS_KEY = INJECT_STATUS.full
MANAGED_BY_KEY = PREFIX + "connect-inject-managed-by"
ORIGINAL_POD_KEY = ORIGINAL_POD.full
MANAGED_BY = "consul-k8s-endpoints-controller"


def pointer(*parts: Any) -> str:
    """A JSON pointer with RFC 6901 escaping (`/` → `~1`, `~` → `~0`)."""
    return "".join("/" + str(p).replace("~", "~0").replace("/", "~1") for p in parts)


def _append(ops: list[dict], path: tuple, current: Any, items: Iterable[Any]) -> None:
    """Append to the list at `path`, creating it when absent or null."""
    items = list(items)
    if not items:
        return
    if current is None:
        ops.append({"op": "add", "path": pointer(*path), "value": items})
    else:
        ops.extend({"op": "add", "path": pointer(*path, "-"), "value": item} for item in items)


def _set_keys(ops: list[dict], path: tuple, current: Mapping | None, values: Mapping[str, str]) -> None:
    """Set map keys at `path`, creating the map when absent (add replaces an existing key)."""
    if not values:
        return
    if current is None:
        ops.append({"op": "add", "path": pointer(*path), "value": dict(values)})
    else:
        ops.extend({"op": "add", "path": pointer(*path, key), "value": value} for key, value in values.items())


def upstream_env(plan: Plan) -> list[dict]:
    """`<NAME>_CONNECT_SERVICE_HOST/PORT` for every upstream (prepared queries get none)."""
    env = []
    for upstream in plan.upstreams:
        if upstream.env_prefix:
            env.append({"name": f"{upstream.env_prefix}_CONNECT_SERVICE_HOST", "value": "127.0.0.1"})
            env.append({"name": f"{upstream.env_prefix}_CONNECT_SERVICE_PORT", "value": str(upstream.port)})
    return env


def original_pod(pod: Mapping[str, Any]) -> str:
    """The pod as received, as the `original-pod` annotation holds it."""
    return json.dumps(pod, separators=(",", ":"), ensure_ascii=False)


def pod_annotations(original: str, plan: Plan, enable_namespaces: bool) -> dict[str, str]:
    """The annotations injection writes, in a stable order (`original` from original_pod())."""
    out = {STATUS_KEY: "injected", ORIGINAL_POD_KEY: original}
    if plan.default_service_port is not None:
        out[CONNECT_SERVICE_PORT.full] = plan.default_service_port
    if plan.metrics:
        out["prometheus.io/scrape"] = "true"
        out["prometheus.io/port"] = str(plan.prometheus_scrape_port)
        out["prometheus.io/path"] = plan.prometheus_scrape_path
    if enable_namespaces:
        out[CONSUL_NAMESPACE.full] = plan.consul_namespace
    return out


def build(pod: Mapping[str, Any], plan: Plan, injected: Injected, annotations: Mapping[str, str]) -> list[dict]:
    """All operations of one injection, applied in order to the pod as received.

    A container the pod already declares under an injected sidecar's name (`envoy-sidecar`,
    `consul-sidecar`) is a per-pod override: its allowed fields are merged over the rendered
    container, which takes its place; the declared entry is removed (see overrides).
    """
    spec = pod.get("spec") or {}
    metadata = pod.get("metadata")
    ops: list[dict] = []
    env = upstream_env(plan)
    overrides = _overrides(spec)
    _append(ops, ("spec", "volumes"), spec.get("volumes"), injected.volumes)
    for field in ("initContainers", "containers"):
        for index, container in enumerate(spec.get(field) or []):
            if container.get("name") not in overrides:
                _append(ops, ("spec", field, index, "env"), container.get("env"), env)
    if plan.tproxy and plan.overwrite_probes:
        ops.extend(_probe_ops(spec.get("containers") or []))
    merged = {field: [_merge_override(c, overrides, plan) for c in items]
              for field, items in (("initContainers", injected.init_containers), ("containers", injected.containers))}
    _append(ops, ("spec", "initContainers"), spec.get("initContainers"), merged["initContainers"])
    _append(ops, ("spec", "containers"), spec.get("containers"), merged["containers"])
    for field in ("containers", "initContainers"):  # remove declared overrides, highest index first
        for index in reversed(range(len(spec.get(field) or []))):
            if spec[field][index].get("name") in overrides:
                ops.append({"op": "remove", "path": pointer("spec", field, index)})
    labels = {STATUS_KEY: "injected", MANAGED_BY_KEY: MANAGED_BY}
    if metadata is None:
        ops.append({"op": "add", "path": "/metadata", "value": {"annotations": dict(annotations), "labels": labels}})
    else:
        _set_keys(ops, ("metadata", "annotations"), metadata.get("annotations"), annotations)
        _set_keys(ops, ("metadata", "labels"), metadata.get("labels"), labels)
    return ops


def _overrides(spec: Mapping[str, Any]) -> dict[str, tuple[str, int, dict]]:
    """Containers the pod declares under an injected name: name → (list, index, container)."""
    found: dict[str, tuple[str, int, dict]] = {}
    for field in ("initContainers", "containers"):
        for index, container in enumerate(spec.get(field) or []):
            if container.get("name") in INJECTED_NAMES:
                if container["name"] in found:
                    raise PodError(f'spec: container "{container["name"]}" is declared twice')
                found[container["name"]] = (field, index, container)
    return found


def _merge_override(rendered: dict, overrides: Mapping[str, tuple[str, int, dict]], plan: Plan) -> dict:
    """The rendered container, or the pod's declaration of it laid over it (see overrides)."""
    if rendered.get("name") not in overrides:
        return rendered
    field, index, user = overrides[rendered["name"]]
    return overrides_mod.merge(rendered, user, f"spec.{field}[{index}]", image_allowed=plan.image_overrides, namespace=plan.namespace)


def _probe_ops(containers: list[dict]) -> Iterable[dict]:
    """HTTP probes point at Envoy's exposed listeners 20300+i / 20400+i / 20500+i (tproxy only)."""
    for index, container in enumerate(containers):
        if container.get("name") in INJECTED_NAMES:
            continue
        for probe, base in PROBES:
            http_get = (container.get(probe) or {}).get("httpGet")
            if isinstance(http_get, dict):
                op = "replace" if "port" in http_get else "add"
                yield {"op": op, "path": pointer("spec", "containers", index, probe, "httpGet", "port"), "value": base + index}
