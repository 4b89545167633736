"""Envoy-exposed HTTP probe paths, recovered from the `original-pod` annotation (reference §2.5).

Under transparent proxy with probe overwriting, the webhook points each HTTP probe of the app's
containers at an Envoy listener (20300+i liveness, 20400+i readiness, 20500+i startup) and keeps
the pod as it was in `consul.hashicorp.com/original-pod`. The proxy registration must then tell
Envoy where each listener goes: `{ListenerPort: <mutated probe port>, Path: <probe path>,
LocalPathPort: <original probe port>}`, the original's named ports resolved against the original
pod.

Where the reference panicked (the injected pod has an HTTP probe its original does not) or sent
what Consul refuses, this is the pod's error: an `original-pod` that is missing, not JSON or not a
pod, a probe port that does not resolve, a listener port that is not a number. The injected
containers' own probes are not exposed (the webhook does not rewrite them either).
"""

from __future__ import annotations

import json
from typing import Any, Mapping, cast

from generator.base.podcontract import INJECTED_NAMES
from generator.endpoints.errors import BadAnnotation, BadPodSpec
from generator.endpoints.fields import dicts, is_int, mapping, pod_ports
from generator.inject.annotations import PREFIX, BadValue, PodPorts, parse_port, show

ORIGINAL_POD = PREFIX + "original-pod"
PROBES = ("livenessProbe", "readinessProbe", "startupProbe")  # the reference's order per container
_DIGITS = frozenset("0123456789")


def exposed_paths(pod_key: str, pod: Mapping[str, Any], original_raw: Any) -> list[dict[str, Any]]:
    """`Proxy.Expose.Paths` (api.ExposePath bodies), mutated containers in spec order. The original
    is only read when there is an HTTP probe to expose (v0.37 failed a pod without one too)."""
    probed = [c for c in dicts(mapping(pod.get("spec")).get("containers"))
              if c.get("name") not in INJECTED_NAMES and any(_http_get(c, probe) is not None for probe in PROBES)]
    if not probed:
        return []
    original = _original_pod(pod_key, original_raw)
    original_containers = original["spec"]["containers"]
    original_ports = pod_ports(original)
    paths: list[dict[str, Any]] = []
    for container in probed:
        name = container.get("name")
        for before in (c for c in original_containers if c.get("name") == name):
            for probe in PROBES:
                http_get = _http_get(container, probe)
                if http_get is None:
                    continue
                original_http_get = _http_get(before, probe)
                if original_http_get is None:
                    raise BadAnnotation(pod_key, ORIGINAL_POD, original_raw,
                                        f"container {show(name)} has an HTTP {probe} but none in the original pod, so the "
                                        f"port Envoy should forward it to is unknown (was the annotation edited?)")
                local = _original_port(pod_key, original_raw, name, probe, original_http_get.get("port"), original_ports)
                listener = _listener_port(pod_key, name, probe, http_get.get("port"))
                path: dict[str, Any] = {"ListenerPort": listener}
                if isinstance(http_get.get("path"), str) and http_get["path"]:
                    path["Path"] = http_get["path"]
                path["LocalPathPort"] = local
                path["ParsedFromCheck"] = False  # api.ExposePath sends it (no omitempty)
                paths.append(path)
    return paths


def _original_pod(pod_key: str, raw: Any) -> dict[str, Any]:
    if raw is None:
        raise BadAnnotation(pod_key, ORIGINAL_POD, None,
                            "it holds the pod as it was before injection, which transparent proxy needs to expose the "
                            "pod's HTTP probes through Envoy (turn transparent-proxy-overwrite-probes off, or re-create the pod)")
    try:
        original = json.loads(raw) if isinstance(raw, str) else None
    except (ValueError, RecursionError) as exc:
        raise BadAnnotation(pod_key, ORIGINAL_POD, raw, f"not JSON: {exc}") from None
    spec = original.get("spec") if isinstance(original, dict) else None
    containers = spec.get("containers") if isinstance(spec, dict) else None
    if not isinstance(containers, list) or not all(isinstance(c, dict) for c in containers):
        raise BadAnnotation(pod_key, ORIGINAL_POD, raw, "not a pod as JSON (no list of containers at spec.containers)")
    return cast(dict[str, Any], original)  # spec.containers was found: a dict


def _original_port(pod_key: str, raw: Any, container: Any, probe: str, port: Any, ports: PodPorts) -> int:
    """Go's `portValueFromIntOrString` against the original pod: a number, or a port name, or a
    number as a string (Go's ParseInt rules); 1-65535."""
    problem = None
    if is_int(port):
        if 1 <= port <= 65535:
            return port
        problem = f"port {port} is not in the range 1-65535"
    elif isinstance(port, str):
        try:
            return parse_port(port, ports)
        except BadValue as exc:
            problem = f"port {show(port)} {exc}"
    else:
        problem = f"port {show(port)} is not a port number or name"
    raise BadAnnotation(pod_key, ORIGINAL_POD, raw, f"container {show(container)} {probe} httpGet: {problem}")


def _listener_port(pod_key: str, container: Any, probe: str, port: Any) -> int:
    """Go's `IntOrString.IntValue()` of the injected probe's port (a string goes through Atoi)."""
    value = port if is_int(port) else _atoi(port) if isinstance(port, str) else None
    if value is None or not 1 <= value <= 65535:
        raise BadPodSpec(pod_key, f"container {show(container)} {probe} httpGet port {show(port)} is not a port number, so "
                                  f"Envoy cannot listen on it (was transparent proxy or probe overwriting turned on after "
                                  f"the pod was injected? re-create the pod)")
    return value


def _atoi(text: str) -> int | None:
    """Go's strconv.Atoi: optional sign, ASCII decimal digits only."""
    body = text[1:] if text[:1] in ("+", "-") else text
    if not body or not set(body) <= _DIGITS:
        return None
    try:
        return int(text)
    except ValueError:  # more digits than Python converts: no port anyway
        return None


def _http_get(container: Mapping[str, Any], probe: str) -> Mapping[str, Any] | None:
    http_get = mapping(container.get(probe)).get("httpGet")
    return http_get if isinstance(http_get, dict) else None
