"""Whether a pod is injected, in the reference's order, with a stable reason code.

The reason code is the one answer to "why": the CLI's `explain`, the webhook's log line, the skip
metric's label and the warnings all read it, so nothing else recomputes the decision.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from generator.annotations import PREFIX, BadValue, parse_bool
from generator.config import Config
from generator.errors import PodError

SYSTEM_NAMESPACES = ("kube-system", "kube-public")

# Reason codes, in decision order, with the sentence `explain` prints.
REASONS: dict[str, str] = {
    "kube-system": "pods in kube-system are never injected",
    "kube-public": "pods in kube-public are never injected",
    "denied-namespace": "the namespace is in connectInject.k8sDenyNamespaces",
    "not-allowed-namespace": "the namespace is not in connectInject.k8sAllowNamespaces",
    "already-injected": f"the pod already carries the {PREFIX}connect-inject-status annotation",
    "annotation-false": f"the pod's {PREFIX}connect-inject annotation is false",
    "annotation-true": f"the pod's {PREFIX}connect-inject annotation is true",
    "default-on": f"connectInject.default is true and the pod has no {PREFIX}connect-inject annotation",
    "default-off": f"connectInject.default is false and the pod has no {PREFIX}connect-inject annotation",
}


@dataclass(frozen=True)
class Decision:
    inject: bool
    reason: str

    @property
    def sentence(self) -> str:
        return REASONS[self.reason]


def decide(config: Config, namespace: str, annotations: Mapping[str, Any]) -> Decision:
    """The reference's `shouldInject` (§2), steps 2-7; a bad `connect-inject` value is a PodError."""
    if namespace in SYSTEM_NAMESPACES:
        return Decision(False, namespace)
    if namespace in config.deny_namespaces:
        return Decision(False, "denied-namespace")
    if "*" not in config.allow_namespaces and namespace not in config.allow_namespaces:
        return Decision(False, "not-allowed-namespace")
    if annotations.get(PREFIX + "connect-inject-status"):
        return Decision(False, "already-injected")
    raw = annotations.get(PREFIX + "connect-inject")
    if raw is not None:
        try:
            value = parse_bool(str(raw))
        except BadValue as exc:
            raise PodError(f'annotation "{PREFIX}connect-inject" has invalid value "{raw}": {exc}') from None
        return Decision(value, "annotation-true" if value else "annotation-false")
    return Decision(config.default_inject, "default-on" if config.default_inject else "default-off")
