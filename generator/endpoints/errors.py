"""A pod's own problems: one pod cannot be registered, the others go on.

The reference collected such errors per pod and retried the whole Endpoints with back-off, or
panicked on malformed upstreams and probes (reference §6.1, §10 R1/R2). Here every one is a
`RegistrationError` whose message names the pod, and for an annotation the key and the value
(escaped and cut by `annotations.show`), so a log line, a Kubernetes Event on the pod and a metric
(labelled with `reason`) all say what to fix.
"""

from __future__ import annotations

from generator.inject.annotations import show


class RegistrationError(Exception):
    """One pod cannot be registered because of what it (or its Service, or its namespace) carries.

    `pod` is `namespace/name`; `problem` is the message without the pod (for an Event on the pod
    itself); `reason` is a kebab-case code for logs and metric labels.
    """

    reason = "registration-error"

    def __init__(self, pod: str, problem: str, reason: str | None = None):
        self.pod = pod
        self.problem = problem
        if reason:
            self.reason = reason
        super().__init__(f"pod {show(pod)}: {problem}")


class BadAnnotation(RegistrationError):
    """An annotation the controller reads has a value it cannot use (or is missing when needed)."""

    reason = "bad-annotation"

    def __init__(self, pod: str, annotation: str, value: str | None, problem: str, *,
                 about_key: bool = False, reason: str | None = None):
        self.annotation = annotation
        self.value = value
        if value is None:
            text = f"annotation {show(annotation)} is missing: {problem}"
        elif about_key:
            text = f"annotation {show(annotation)} (value {show(value)}) cannot be used: {problem}"
        else:
            text = f"annotation {show(annotation)} has invalid value {show(value)}: {problem}"
        super().__init__(pod, text, reason)


class BadNamespaceLabel(RegistrationError):
    """The pod's namespace carries a `consul.hashicorp.com/` label with a value that is not a bool."""

    reason = "bad-namespace-label"

    def __init__(self, pod: str, namespace: str, label: str, value: str, problem: str):
        self.label = label
        self.value = value
        super().__init__(pod, f"namespace {show(namespace)} label {show(label)} has invalid value {show(value)}: {problem}")


class BadPodSpec(RegistrationError):
    """Something in the pod's spec (not an annotation) cannot be registered as it is."""

    reason = "bad-pod-spec"


class MissingService(RegistrationError):
    """Transparent proxy needs the Kubernetes Service (its cluster IP and ports), and there is none.

    Normally a race (the Service was just deleted, its Endpoints not yet): retried, as the reference
    did (`services "<name>" not found`)."""

    reason = "missing-service"


class LookupRequired(RuntimeError):
    """A programming error: the caller did not provide what `needs()` said the builder needs."""
