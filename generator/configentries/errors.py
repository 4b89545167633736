"""Kubernetes field errors and the one aggregated message the webhook answers with.

The reference returns `apierrors.NewInvalid(...)` (or `NewForbidden`) built from a
`field.ErrorList`; users and GitOps tooling read that exact text, so it is reproduced here:

    servicedefaults.consul.hashicorp.com "foo" is invalid: spec.protocol: Invalid value: "x": must be one of ...
    ... is invalid: [<e1>, <e2>]          (several errors; identical ones once)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from generator.configentries.gofmt import F32, f32_v, quote

GROUP = "consul.hashicorp.com"


@dataclass(frozen=True)
class GoValue:
    """A value whose Go rendering is given literally (the reference passes some Go values to
    `field.Invalid` that print with `%#v`, e.g. `json.RawMessage{0x31}`)."""

    text: str


def render_value(value: Any) -> str:
    """The bad value as `field.Error` prints it: strings `%q`, numbers and bools bare, nil `null`."""
    if value is None:
        return "null"
    if isinstance(value, GoValue):
        return value.text
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, F32):
        return f32_v(value)
    if isinstance(value, (int, float)):
        return str(value) if isinstance(value, int) or not value.is_integer() else str(int(value))
    if isinstance(value, str):
        return quote(value)
    raise TypeError(f"no Go rendering for {type(value).__name__}")


@dataclass(frozen=True)
class FieldError:
    """One `field.Error`: `<path>: <type>[: <value>]: <detail>`."""

    path: str
    type: str  # "Invalid value", "Required value", "Forbidden"
    detail: str
    value: Any = None

    def __str__(self) -> str:
        body = self.type if self.type != "Invalid value" else f"{self.type}: {render_value(self.value)}"
        return f"{self.path}: {body}" + (f": {self.detail}" if self.detail else "")


def invalid(path: str, value: Any, detail: str) -> FieldError:
    return FieldError(path, "Invalid value", detail, value)


def required(path: str, detail: str) -> FieldError:
    return FieldError(path, "Required value", detail)


def aggregate(errors: list[FieldError]) -> str:
    """`ErrorList.ToAggregate().Error()`: one error alone, several as `[a, b]`, repeats once."""
    seen: list[str] = []
    for err in errors:
        if str(err) not in seen:
            seen.append(str(err))
    return seen[0] if len(seen) == 1 else "[" + ", ".join(seen) + "]"


class ConfigEntryInvalid(ValueError):
    """A resource the webhook refuses (HTTP 400): `message` is the reference's text verbatim.

    `errors` keeps each field error for callers that print one line per problem (the offline
    checker); `reason` is the Kubernetes StatusReason (`Invalid` or `Forbidden`)."""

    def __init__(self, kubekind: str, name: str, errors: list[FieldError] | None = None,
                 forbidden: str | None = None):
        self.kubekind, self.name = kubekind, name
        self.errors = list(errors or [])
        self.reason = "Forbidden" if forbidden is not None else "Invalid"
        if forbidden is not None:
            message = f"{kubekind}.{GROUP} {quote(name)} is forbidden: {forbidden}"
        else:
            message = f"{kubekind}.{GROUP} {quote(name)} is invalid: {aggregate(self.errors)}"
        self.message = message
        super().__init__(message)

    @property
    def problems(self) -> list[str]:
        """One line per distinct problem (the forbidden reason, or each field error)."""
        if self.reason == "Forbidden":
            return [self.message.split(" is forbidden: ", 1)[1]]
        return list(dict.fromkeys(str(e) for e in self.errors))
