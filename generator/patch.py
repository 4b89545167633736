"""The JSON patch (RFC 6902) of an injection, built from targeted operations.

Each change is one `add`/`replace` at a precise JSON pointer, so cost grows linearly with the pod
(peers that diffed whole pods went quadratic on pods with 1,000 env vars) and the patch reads like
a description of the injection: volumes, init containers, sidecars, env vars, probe ports,
annotations, labels.
"""

from __future__ import annotations

import json
from typing import Any, Iterable, Mapping

from generator.annotations import PREFIX
from generator.errors import PodError
from generator.plan import INJECTED_NAMES, Plan
from generator.render import Injected

PROBES = (("livenessProbe", 20300), ("readinessProbe", 20400), ("startupProbe", 20500))
STATUS_KEY = PREFIX + "connect-inject-status"
MANAGED_BY_KEY = PREFIX + "connect-inject-managed-by"
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


def pod_annotations(pod: Mapping[str, Any], plan: Plan, enable_namespaces: bool) -> dict[str, str]:
    """The annotations injection writes, in a stable order."""
    out = {STATUS_KEY: "injected", PREFIX + "original-pod": json.dumps(pod, separators=(",", ":"), ensure_ascii=False)}
    if plan.default_service_port is not None:
        out[PREFIX + "connect-service-port"] = plan.default_service_port
    if plan.metrics:
        out["prometheus.io/scrape"] = "true"
        out["prometheus.io/port"] = str(plan.prometheus_scrape_port)
        out["prometheus.io/path"] = plan.prometheus_scrape_path
    if enable_namespaces:
        out[PREFIX + "consul-namespace"] = plan.consul_namespace
    return out


def build(pod: Mapping[str, Any], plan: Plan, injected: Injected, annotations: Mapping[str, str]) -> list[dict]:
    """All operations of one injection, applied in order to the pod as received.

    A container the pod already declares under an injected name (`envoy-sidecar`,
    `consul-connect-inject-init`, ...) is a per-pod override: its fields are merged over the
    rendered container, which takes its place; the declared entry is removed.
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
    merged = {field: [_merge_override(c, overrides) for c in items]
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


_MAP_FIELDS = ("resources", "securityContext")
_KEYED_LISTS = {"env": "name", "volumeMounts": "mountPath"}
# What a pod may override. Not command, args, probes or lifecycle hooks: those would run the pod
# author's code in the privileged init container, or as Envoy's UID, which transparent proxy never
# redirects (the reason an application container may not run as 5995 either).
OVERRIDABLE = ("image", "imagePullPolicy", *_MAP_FIELDS, *_KEYED_LISTS)


def _merge_override(rendered: dict, overrides: Mapping[str, tuple[str, int, dict]]) -> dict:
    """The rendered container with the pod's declared one laid over it, field by field (the Istio
    way): maps merge key by key, env and volumeMounts merge by name and path, an empty image is
    ignored. Fields outside OVERRIDABLE are refused with a 400 naming them."""
    if rendered.get("name") not in overrides:
        return rendered
    field, index, user = overrides[rendered["name"]]
    where = f"spec.{field}[{index}]"
    out = dict(rendered)
    for key, value in user.items():
        if key == "name":
            continue
        if key not in OVERRIDABLE:
            raise PodError(f'{where}.{key}: the injected container "{rendered["name"]}" cannot be overridden '
                           f"in {key}; a pod may override {', '.join(OVERRIDABLE)}")
        if key in ("image", "imagePullPolicy"):
            if not isinstance(value, str):
                raise PodError(f"{where}.{key}: expected a string, got {type(value).__name__}")
            if value:
                out[key] = value
        elif key in _MAP_FIELDS:
            out[key] = _merge_maps(out.get(key) or {}, value, f"{where}.{key}")
        else:
            out[key] = _merge_keyed(out.get(key) or [], value, _KEYED_LISTS[key], f"{where}.{key}")
    return out


def _merge_maps(base: dict, over: Any, where: str) -> dict:
    if not isinstance(over, dict):
        raise PodError(f"{where}: expected a map, got {type(over).__name__}")
    out = dict(base)
    for key, value in over.items():
        out[key] = _merge_maps(out[key], value, f"{where}.{key}") if isinstance(out.get(key), dict) and isinstance(value, dict) else value
    return out


def _merge_keyed(base: list, over: Any, key: str, where: str) -> list:
    if not isinstance(over, list) or not all(isinstance(item, dict) and isinstance(item.get(key), str) for item in over):
        raise PodError(f"{where}: expected a list of maps, each with a string {key!r}")
    replaced = {item[key]: item for item in over}
    out = [replaced.pop(item.get(key), item) for item in base]
    return out + [item for item in over if item[key] in replaced]


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
