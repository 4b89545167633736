"""Whether a pod is injected, in the reference's order, with a stable reason code.

The reason code is the one answer to "why": the CLI's `explain`, the webhook's log line, the skip
metric's label and the warnings all read it, so nothing else recomputes the decision. The steps
record each check as it was made, for `explain`.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from typing import Any, Mapping

from generator.inject.annotations import CONNECT_INJECT, INJECT_STATUS, BadValue, parse_bool
from generator.values.config import Config
from generator.base.errors import PodError

SYSTEM_NAMESPACES = ("kube-system", "kube-public")

# Reason codes, in decision order, with the sentence `explain` prints.
REASONS: dict[str, str] = {
    "kube-system": "pods in kube-system are never injected",
    "kube-public": "pods in kube-public are never injected",
    "denied-namespace": "the namespace is in connectInject.k8sDenyNamespaces",
    "not-allowed-namespace": "the namespace is not in connectInject.k8sAllowNamespaces",
    "already-injected": (f"the pod already carries the {INJECT_STATUS.full} annotation: it was injected "
                         "before, by this injector or another one (consul-k8s's own, side by side during a migration)"),
    "annotation-false": f"the pod's {CONNECT_INJECT.full} annotation is false",
    "annotation-true": f"the pod's {CONNECT_INJECT.full} annotation is true",
    "default-on": f"{CONNECT_INJECT.values_text} is true and the pod has no {CONNECT_INJECT.full} annotation",
    "default-off": f"{CONNECT_INJECT.values_text} is false and the pod has no {CONNECT_INJECT.full} annotation",
}


@dataclass(frozen=True)
class Step:
    """One check of the decision: what was looked at and what it said."""

    check: str
    verdict: str  # "continue", "inject" or "skip"
    detail: str


@dataclass(frozen=True)
class Decision:
    inject: bool
    reason: str
    steps: tuple[Step, ...] = ()

    @property
    def sentence(self) -> str:
        return REASONS[self.reason]


@functools.lru_cache(maxsize=64)
def _listing(names: frozenset[str]) -> str:
    """A namespace list as the steps show it; the Config's sets never change, so this is cached."""
    return json.dumps(sorted(names))


def decide(config: Config, namespace: str, annotations: Mapping[str, Any]) -> Decision:
    """The reference's `shouldInject` (§2), steps 2-7; a bad `connect-inject` value is a PodError.

    It reads the pod's annotations as received, through their TABLE rows: the decision comes
    before parsing, which (with the size checks before it) is only done for pods to inject."""
    steps: list[Step] = []

    def done(inject: bool, reason: str, check: str, detail: str) -> Decision:
        steps.append(Step(check, "inject" if inject else "skip", detail))
        return Decision(inject, reason, tuple(steps))

    if namespace in SYSTEM_NAMESPACES:
        return done(False, namespace, "system namespace", f"{namespace} is never injected")
    steps.append(Step("system namespace", "continue", f"{namespace} is not kube-system or kube-public"))
    deny = _listing(config.deny_namespaces)
    if namespace in config.deny_namespaces:
        return done(False, "denied-namespace", "deny list", f"{namespace} is in connectInject.k8sDenyNamespaces {deny}")
    steps.append(Step("deny list", "continue", f"{namespace} is not in connectInject.k8sDenyNamespaces {deny}"))
    allow = _listing(config.allow_namespaces)
    if "*" not in config.allow_namespaces and namespace not in config.allow_namespaces:
        return done(False, "not-allowed-namespace", "allow list", f"{namespace} is not in connectInject.k8sAllowNamespaces {allow}")
    steps.append(Step("allow list", "continue", f"connectInject.k8sAllowNamespaces {allow} allows {namespace}"))
    status = annotations.get(INJECT_STATUS.full)
    if status:
        return done(False, "already-injected", "already injected", f'{INJECT_STATUS.full} is "{status}"')
    steps.append(Step("already injected", "continue", f"no {INJECT_STATUS.full} annotation"))
    raw = annotations.get(CONNECT_INJECT.full)
    if raw is not None:
        try:
            value = parse_bool(str(raw))
        except BadValue as exc:
            raise PodError(CONNECT_INJECT.invalid(raw, exc)) from None
        return done(value, "annotation-true" if value else "annotation-false", "annotation", f'{CONNECT_INJECT.full} is "{raw}"')
    reason = "default-on" if config.default_inject else "default-off"
    return done(config.default_inject, reason, "default",
                f"no {CONNECT_INJECT.full} annotation; {CONNECT_INJECT.values_text} is {str(config.default_inject).lower()}")
