"""`review()`: one AdmissionReview in, one AdmissionReview out. The only path to an injection.

The webhook's /mutate, `connect-inject review`, `connect-inject inject`, `explain` and the tests all
call this function, so a pod is decided, rendered and patched the same way everywhere. It never
raises for a bad pod (that is a 400 denial) nor for our own faults (a 500 denial, logged); only an
input that is not a usable AdmissionReview raises ReviewError.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any, Callable, Mapping

from generator.inject import annotations as ann_mod
from generator.inject import guards, patch
from generator.values.config import Config
from generator.inject.decide import Decision, decide
from generator.base import admission
from generator.base.errors import InjectorFault, PodError, ReviewError, Unavailable
from generator.inject.plan import Plan, make_plan
from generator.base.podcontract import ADMISSION_API_VERSIONS

log = logging.getLogger(__name__)
API_VERSIONS = ADMISSION_API_VERSIONS
NamespaceLabels = Callable[[str], Mapping[str, str]]


@dataclass(frozen=True)
class ReviewResult:
    """The response to send back, plus what the log line and the metrics need."""

    review: dict
    outcome: str  # injected | skipped | denied | error
    reason: str  # a decide.REASONS code, bad-request, a PodError's reason, injector-fault or internal-error
    warnings: tuple[str, ...]
    namespace: str
    name: str
    patch: tuple[dict, ...] = ()  # the ops as objects; they share the template cache's: read-only
    decision: Decision | None = None  # for explain: the steps that decided
    plan: Plan | None = None  # for explain: what was injected and why


def parse_review(raw: bytes | str) -> dict:
    """Decode an AdmissionReview; ReviewError (one line) when it is not one."""
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ReviewError(f"request body is not JSON: {exc}") from None
    except RecursionError:
        raise ReviewError("request body is not JSON: nested too deeply") from None
    check_review(data)
    return data


def check_review(data: Any) -> None:
    if not isinstance(data, dict):
        raise ReviewError(f"expected an AdmissionReview object, got JSON {type(data).__name__}")
    if data.get("kind") != "AdmissionReview" or data.get("apiVersion") not in API_VERSIONS:
        raise ReviewError(
            f"expected kind AdmissionReview with apiVersion admission.k8s.io/v1 or v1beta1, "
            f"got kind {data.get('kind')!r} apiVersion {data.get('apiVersion')!r}"
        )
    request = data.get("request")
    if not isinstance(request, dict):
        raise ReviewError("AdmissionReview has no request")
    if not isinstance(request.get("uid"), str) or not request["uid"]:
        raise ReviewError("AdmissionReview request has no uid")
    if request.get("namespace") is not None and not isinstance(request["namespace"], str):
        raise ReviewError(f"AdmissionReview request.namespace must be a string, got {type(request['namespace']).__name__}")


def no_labels(_namespace: str) -> Mapping[str, str]:
    return {}


def review(data: dict, config: Config, namespace_labels: NamespaceLabels = no_labels) -> ReviewResult:
    """Answer one AdmissionReview (already parsed by `parse_review`)."""
    check_review(data)
    request = data["request"]
    pod = request.get("object")
    metadata = pod.get("metadata") if isinstance(pod, dict) else None
    metadata = metadata if isinstance(metadata, dict) else {}
    namespace = pod_namespace(data)
    name = _text(metadata.get("name")) or _text(metadata.get("generateName"))
    warnings: tuple[str, ...] = ()

    decision: Decision | None = None

    def answer(allowed: bool, code: int, message: str, outcome: str, reason: str,
               ops: list[dict] | None = None, plan: Plan | None = None) -> ReviewResult:
        out = admission.response(data, allowed, status={"code": code, "message": message}, patch=ops, warnings=warnings)
        return ReviewResult(out, outcome, reason, warnings, namespace, name, tuple(ops or ()), decision, plan)

    def deny(code: int, message: str, outcome: str, reason: str) -> ReviewResult:
        return answer(False, code, message, outcome, reason)

    try:
        problem = pod_problem(pod)
        if problem:
            return deny(400, problem, "denied", "bad-request")
        annotations = metadata.get("annotations") or {}
        removed = ann_mod.removed_error(annotations)
        if removed:
            return deny(400, removed, "denied", "removed-annotation")
        warnings = tuple(ann_mod.unknown_warnings(annotations))
        decision = decide(config, namespace, annotations)
        if not decision.inject:
            message = f"Pod {metadata.get('name') or ''} does not require injection"
            return answer(True, 200, message, "skipped", decision.reason)
        ops, plan = inject_ops(pod, namespace, annotations, config, namespace_labels)
        warnings = warnings + plan.warnings
        return answer(True, 200, "valid Pod request", "injected", decision.reason, ops, plan)
    except PodError as exc:
        return deny(400, str(exc), "denied", exc.reason)
    except Unavailable:
        raise  # not the pod's answer: the caller answers at the transport level
    except InjectorFault as exc:
        log.error("cannot inject pod %s/%s: %s", namespace, name, exc)
        return deny(500, str(exc), "error", "injector-fault")
    except Exception:  # our bug: log it, never leak a traceback to the caller
        log.exception("internal error reviewing pod %s/%s (uid %s)", namespace, name, request["uid"])
        return deny(500, "internal error in the injector; see its log", "error", "internal-error")


def pod_namespace(data: dict) -> str:
    """The namespace the pod is created in: the request's, else the pod's own, else "default"."""
    request = data["request"]
    pod = request.get("object")
    metadata = pod.get("metadata") if isinstance(pod, dict) else None
    own = metadata.get("namespace") if isinstance(metadata, dict) else None
    return _text(request.get("namespace")) or _text(own) or "default"


def _text(value: Any) -> str:
    """A string field, or "" when absent or of the wrong type (pod_problem reports the latter)."""
    return value if isinstance(value, str) else ""


def inject_ops(pod: dict, namespace: str, annotations: Mapping[str, str], config: Config,
               namespace_labels: NamespaceLabels) -> tuple[list[dict], Plan]:
    """Check the pod, parse the annotations, plan, render the templates, check the size, build the patch.

    The checks that bound work come first: nothing is parsed or rendered for a pod whose
    annotations the API server could not store once injection adds the pod as received."""
    guards.check_pod(pod["spec"])
    original = patch.original_pod(pod)
    guards.check_annotations(annotations, original)
    parsed = ann_mod.parse(annotations, pod)
    plan = make_plan(config, pod, namespace, parsed, namespace_labels(namespace))
    injected = config.templates.inject(config, plan, pod)
    new_annotations = patch.pod_annotations(original, plan, config.enable_namespaces)
    guards.check_size(pod, original, plan, injected.size)
    return patch.build(pod, plan, injected, new_annotations), plan


def pod_problem(pod: Any) -> str | None:
    """Shape checks a decoder would do: the fields injection reads must have the right types."""
    if not isinstance(pod, dict):
        return "request.object: expected a Pod object" if pod is not None else "request.object: there is no content to decode"
    kind = pod.get("kind")
    if kind not in (None, "Pod"):
        return f"request.object: expected kind Pod, got {kind!r}"
    metadata = pod.get("metadata")
    if metadata is not None and not isinstance(metadata, dict):
        return "request.object.metadata: expected an object"
    for field in ("name", "generateName", "namespace"):
        value = (metadata or {}).get(field)
        if value is not None and not isinstance(value, str):
            return f"request.object.metadata.{field}: expected a string"
    for field in ("annotations", "labels"):
        value = (metadata or {}).get(field)
        if value is not None and (not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items())):
            return f"request.object.metadata.{field}: expected a map of strings"
    spec = pod.get("spec")
    if not isinstance(spec, dict):
        return "request.object.spec: expected an object"
    for field in ("containers", "initContainers", "volumes"):
        value = spec.get(field)
        if value is not None and (not isinstance(value, list) or not all(isinstance(c, dict) for c in value)):
            return f"request.object.spec.{field}: expected a list of objects"
    if not spec.get("containers"):
        return "request.object.spec.containers: a pod needs at least one container"
    for field in ("securityContext",):
        if spec.get(field) is not None and not isinstance(spec[field], dict):
            return f"request.object.spec.{field}: expected an object"
    if spec.get("serviceAccountName") is not None and not isinstance(spec["serviceAccountName"], str):
        return "request.object.spec.serviceAccountName: expected a string"
    for field in ("containers", "initContainers"):
        for index, container in enumerate(spec.get(field) or []):
            problem = _container_problem(container, f"request.object.spec.{field}[{index}]")
            if problem:
                return problem
    return None


def _container_problem(container: dict, where: str) -> str | None:
    env = container.get("env")
    if env is not None and not isinstance(env, list):
        return f"{where}.env: expected a list"
    if not isinstance(container.get("name"), str) or not container["name"]:
        return f"{where}.name: a container needs a name"
    for field in ("ports", "volumeMounts"):
        value = container.get(field)
        if value is not None and (not isinstance(value, list) or not all(isinstance(v, dict) for v in value)):
            return f"{where}.{field}: expected a list of objects"
    for index, port in enumerate(container.get("ports") or []):
        number = port.get("containerPort")
        if not isinstance(number, int) or isinstance(number, bool) or not 1 <= number <= 65535:
            return f"{where}.ports[{index}].containerPort: expected a port number 1-65535, got {json.dumps(number)}"
        if port.get("name") is not None and not isinstance(port["name"], str):
            return f"{where}.ports[{index}].name: expected a string"
    for probe, _ in patch.PROBES:
        value = container.get(probe)
        if value is not None and not isinstance(value, dict):
            return f"{where}.{probe}: expected an object"
    context = container.get("securityContext")
    if context is not None and not isinstance(context, dict):
        return f"{where}.securityContext: expected an object"
    return None
