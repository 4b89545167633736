"""The values schema: `values-schema.yaml` (yamale) and the keys of every Consul chart version.

One `path: message` line per problem. A key this chart does not know but some Consul chart version
had is not a problem (it is ignored, and check-values says so); a key no version had is, with a
did-you-mean.
"""

from __future__ import annotations

import json
import re
from typing import Any, Mapping

import yamale

from generator.base import paths
import generator.values.chartkeys as chartkeys
from generator.values.source import chart_defaults, lookup

_SCHEMA: Any = None


def schema_problems(values: dict, ignored: list[str] | None = None) -> list[str]:
    """One `path: message` line per path; the alternatives of an `any()` are said in one line
    (`client.enabled: expected a boolean or "-", got "true" (a string)`).

    A key this chart does not know but some Consul chart version had is not a problem: it is
    appended to `ignored` (with the versions) and its subtree is checked for typos."""
    global _SCHEMA
    if _SCHEMA is None:
        _SCHEMA = yamale.make_schema(str(paths.VALUES_SCHEMA))
    try:
        yamale.validate(_SCHEMA, [(values, "values")], strict=True, _raise_error=True)
    except yamale.YamaleError as exc:
        by_path: dict[str, list[str]] = {}
        for result in exc.results:
            for line in result.errors:
                path, _, message = line.partition(": ")
                by_path.setdefault(path, []).append(message)
        problems = []
        for path, messages in by_path.items():
            if messages == ["Unexpected element"]:
                problems += _foreign_key(path, values, ignored)
            else:
                problems.append(_schema_line(path, messages, values))
        return problems
    return []


def _foreign_key(path: str, values: Mapping[str, Any], ignored: list[str] | None) -> list[str]:
    """A key outside this chart's schema: another Consul chart version's (ignored), or a typo."""
    kind = chartkeys.kind(path)
    if kind == "unknown":
        parent = path.rpartition(".")[0]
        hint = chartkeys.hint(path, _schema_siblings(parent))
        suggestion = f'; did you mean "{parent + "." if parent else ""}{hint}"?' if hint else ""
        return [f"{path}: not a key of this chart nor of any Consul chart version (v0.30.0 to v1.9.11){suggestion}"]
    if ignored is not None:
        ignored.append(f"{path}: not used by this chart, ignored (a key of the Consul chart {chartkeys.versions(path)})")
    problems = []
    for bad in chartkeys.unknown_under(path, lookup(values, path)):
        hint = chartkeys.hint(bad)
        suggestion = f'; did you mean "{bad.rpartition(".")[0]}.{hint}"?' if hint else ""
        problems.append(f"{bad}: not a key of any Consul chart version (v0.30.0 to v1.9.11){suggestion}")
    return problems


def _schema_siblings(parent: str) -> frozenset[str]:
    """Keys this chart's own defaults have at `parent` (new keys are not in the Consul chart's)."""
    defaults = chart_defaults()
    node = lookup(defaults, parent) if parent else defaults
    return frozenset(node) if isinstance(node, Mapping) else frozenset()


_EXPECTED = re.compile(r"^'.*' is not a (?P<kind>.+?)\.?$|^'.*' not in \((?P<enum>.*?),?\)$", re.S)
_KINDS = {"bool": "a boolean", "int": "an integer", "num": "a number", "null": "null", "str": "a string",
          "map": "a map", "list": "a list", "day": "a date", "timestamp": "a timestamp"}
_MISSING = object()


def _schema_line(path: str, messages: list[str], values: Mapping[str, Any]) -> str:
    """yamale's messages for one path as one line; a type mismatch names what was expected and got."""
    expected = []
    for message in messages:
        match = _EXPECTED.match(message)
        if not match:
            return f"{path}: {messages[0]}"
        if match["enum"] is not None:
            expected.append(" or ".join(json.dumps(item.strip().strip("'")) for item in match["enum"].split(",") if item.strip()))
        else:
            expected.append(_KINDS.get(match["kind"], match["kind"]))
    got = _value_at(values, path)
    shown = "" if got is _MISSING else f", got {json.dumps(got, default=str)} ({_KINDS.get(type(got).__name__, type(got).__name__)})"
    return f"{path}: expected {' or '.join(dict.fromkeys(expected))}{shown}"


def _value_at(values: Mapping[str, Any], path: str) -> Any:
    """The value yamale complained about; _MISSING when the path leads to none (or to null)."""
    value = lookup(values, path)
    return _MISSING if value is None else value
