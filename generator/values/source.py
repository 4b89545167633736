"""Where values come from: values files, `--set`, the chart's defaults, and one way to read a key.

Merging follows Helm (helmvalues): the chart's `values.yaml`, then each `-f` file in order, then
`--set`; a `null` deletes a key. The chart's `values.yaml` is the only place a default is written:
`Values.get()` reads a key from the merged values and, when the key is absent there (never given,
deleted with `null`, or left out of a file Helm already merged, as the chart's ConfigMap is), from
`chart/values.yaml`. So the settings read the same default whether the chart's defaults were laid
under the user's values (the CLI) or not (`--no-chart-defaults`), and no Python literal repeats
one (tests/test_values_defaults.py checks both).
"""

from __future__ import annotations

import copy
import functools
from pathlib import Path
from typing import Any, Mapping, Sequence

import yaml

from generator.base import paths, yamlio
from generator.base.errors import ConfigError
import generator.values.helmvalues as helmvalues


def read_values_file(path: str | Path) -> dict:
    """One `-f` file; an empty file is an empty map, anything but a map is an error."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read values file: {exc.strerror or exc}"]) from exc
    try:
        data = yamlio.load(text)
    except yaml.YAMLError as exc:
        raise ConfigError([f"{path}: not valid YAML: {' '.join(str(exc).split())}"]) from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError([f"{path}: a values file must be a YAML map, got {type(data).__name__}"])
    return data


@functools.lru_cache(maxsize=1)
def _chart_defaults() -> dict:
    return read_values_file(paths.CHART_VALUES)


def chart_defaults() -> dict:
    """`chart/values.yaml`, parsed (a copy: callers may change it)."""
    return copy.deepcopy(_chart_defaults())


def merged_values(values_files: Sequence[str | Path] = (), sets: Sequence[str] = (), chart_defaults: bool = True) -> dict:
    """Chart defaults, then each values file in order, then `--set`, merged as Helm does.

    `chart_defaults=False` is for values Helm has already merged (the chart's ConfigMap): laying
    the defaults under them again would bring back keys the user deleted with `null`. (The
    settings still read a key missing from them as its chart default: see `Values`.)"""
    user: dict = {}
    for path in values_files:
        user = helmvalues.merge(user, read_values_file(path))
    for expr in sets:
        try:
            user = helmvalues.merge(user, helmvalues.parse_set(expr))
        except helmvalues.SetError as exc:
            raise ConfigError([str(exc)]) from exc
    return helmvalues.coalesce(_chart_defaults() if chart_defaults else {}, user)


def lookup(values: Mapping[str, Any], dotted: str) -> Any:
    """The value at a dotted key, or None when it (or a map above it) is absent or null."""
    node: Any = values
    for part in dotted.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return None
        node = node[part]
    return node


class Values:
    """The merged values, read by dotted key (`connectInject.metrics.defaultEnabled`).

    `get(key)`: the value, or, when the values hold none (absent or null), the chart's default for
    that key (None if the chart has none). `given(key)`: only what the values hold, for the keys
    whose absence has its own meaning (a `resources` block deleted with null means "no resources",
    not "the chart's resources").

    Every key read is recorded in `read` (the ConfigMap test and the defaults test use it to know
    which keys the settings depend on)."""

    def __init__(self, merged: Mapping[str, Any], defaults: Mapping[str, Any] | None = None) -> None:
        self.merged = merged
        self._defaults = _chart_defaults() if defaults is None else defaults
        self.read: set[str] = set()

    def get(self, key: str) -> Any:
        self.read.add(key)
        value = lookup(self.merged, key)
        return lookup(self._defaults, key) if value is None else value

    def given(self, key: str) -> Any:
        self.read.add(key)
        return lookup(self.merged, key)


def setting(values: Mapping[str, Any], dotted: str) -> Any:
    """`Values(values).get(dotted)`: the value at a dotted key, else the chart's default for it."""
    return Values(values).get(dotted)
