"""Exceptions that carry a user-facing message.

Each one maps to exactly one outcome: a values problem stops the program before any pod is
touched, a bad pod is denied with 400, a malformed AdmissionReview is refused (HTTP 400 /
CLI exit 2). Nothing else may escape `review()`.
"""

from __future__ import annotations


class ConfigError(Exception):
    """The merged values are invalid; `problems` holds one `path: message` line each."""

    def __init__(self, problems: list[str]):
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))


class PodError(Exception):
    """The pod cannot be injected because of what its author wrote (answered with 400).

    `reason` is the kebab-case code logs, metrics and `explain` show: `bad-annotation` unless the
    refusal is about something else the pod carries."""

    code = 400

    def __init__(self, message: str, reason: str = "bad-annotation"):
        super().__init__(message)
        self.reason = reason


class InjectorFault(Exception):
    """The injector itself cannot inject this pod (deployment problem; answered with 500)."""

    code = 500


class Unavailable(Exception):
    """Something the answer depends on could not be had (the namespace's labels): review() lets it
    through, and the webhook answers HTTP 500 so that the webhook's failurePolicy decides."""


class ReviewError(ValueError):
    """The input is not a usable AdmissionReview; the message is one line."""
