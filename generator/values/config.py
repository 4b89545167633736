"""Values → the settings of each component, validated before any pod is touched.

The chart's `values.yaml` defaults, the user's values files and `--set` are merged as Helm merges
them (source), checked against `values-schema.yaml` (schema) and against the chart's cross-key
`fail` rules (rules), and turned into one frozen section per component:

- `Config`, the injector's (injector.py; the pod engine reads it),
- `EndpointsSettings`, the endpoints controller's, and `ControllerSettings`, the config-entry
  controller's (controllers.py).

The webhook and the controllers (which get the chart's merged values as one JSON file, read with
`--no-chart-defaults`) and the CLI go through the same `load_settings()`, so they accept and refuse
the same values with the same key named. Nothing here compiles templates: `generator.inject.engine`
does, on top of `load()`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import generator.values.controllers as controllers
import generator.values.injector as injector
import generator.values.shared as shared
from generator.base.errors import ConfigError
from generator.values.controllers import ControllerSettings, EndpointsSettings
from generator.values.injector import Config, Resources
from generator.values.rules import RESERVED_CONSUL_NAMES, cross_key_problems, tristate
from generator.values.schema import schema_problems
from generator.values.shared import CROSS_NAMESPACE_POLICY, compute_fullname
from generator.values.source import Values, chart_defaults, merged_values, read_values_file, setting

# Also importable from here, as before the values layer had modules of its own.
__all__ = [
    "CROSS_NAMESPACE_POLICY", "Config", "ControllerSettings", "EndpointsSettings", "RESERVED_CONSUL_NAMES",
    "Resources", "Settings", "chart_defaults", "compute_fullname", "cross_key_problems", "from_values", "load",
    "load_settings", "merged_values", "read_values_file", "schema_problems", "setting", "tristate",
]


@dataclass(frozen=True)
class Settings:
    """One component's settings each, from the same merged values."""

    values: Mapping[str, Any]  # the merged values (what templates see as `values`)
    release_name: str
    fullname: str
    injector: Config
    endpoints: EndpointsSettings
    controller: ControllerSettings


def load(values_files: Sequence[str | Path] = (), sets: Sequence[str] = (), **options: Any) -> Config:
    """The injector's settings: `load_settings(...).injector` (same arguments)."""
    return load_settings(values_files, sets, **options).injector


def load_settings(
    values_files: Sequence[str | Path] = (),
    sets: Sequence[str] = (),
    *,
    release_name: str = "consul",
    environ: Mapping[str, str] | None = None,
    chart_defaults: bool = True,
    check_only: list[str] | None = None,
) -> Settings:
    """Merge and validate: raise ConfigError listing every problem, or return the settings.

    `chart_defaults=False` (`--no-chart-defaults`) is for values Helm has already merged: the
    chart's defaults are not laid under them, and a key they lack reads as its chart default
    (source.Values).

    `check_only` (a list, for check-values) judges the values as the chart does: its cross-key
    rules apply only when it installs the injector (connectInject.enabled), and problems of the
    environment rather than the values (TLS on but no CONSUL_CACERT file) are appended to the
    list as warnings instead of failing."""
    merged = merged_values(values_files, sets, chart_defaults)
    return from_values(Values(merged), release_name=release_name, environ=environ, check_only=check_only)


def from_values(
    v: Values,
    *,
    release_name: str = "consul",
    environ: Mapping[str, str] | None = None,
    check_only: list[str] | None = None,
) -> Settings:
    """`load_settings()` for values already merged: validate, then build every section. Every key
    read is recorded in `v.read` (the ConfigMap's list of keys is checked against it)."""
    env = os.environ if environ is None else environ
    problems = schema_problems(dict(v.merged), check_only)
    chart_installs_injector = tristate(v.get("connectInject.enabled"), v.get("global.enabled"))
    rules = cross_key_problems(v) if check_only is None or chart_installs_injector else []
    problems += [p for p in rules if p.split(":", 1)[0] not in {q.split(":", 1)[0] for q in problems}]
    if problems:  # every problem in one run: a typo must not hide a cross-key rule
        raise ConfigError(problems)
    env_problems: list[str] = []
    ca_cert = injector.read_ca_cert(v, env, env_problems)
    settings = build(v, release_name, env, ca_cert, problems)
    if check_only is None:
        problems += env_problems
    else:
        check_only.extend(f"{p} (the webhook needs it at run time; the values are fine)" for p in env_problems)
    if problems:
        raise ConfigError(problems)
    return settings


def build(v: Values, release_name: str, env: Mapping[str, str], ca_cert: str | None, problems: list[str]) -> Settings:
    """Every section from validated values; problems of single keys are appended to `problems`."""
    consul_release = shared.consul_release(v, release_name)
    fullname = compute_fullname(v, consul_release)
    names = shared.consul_names(v)
    inject = injector.build(v, release_name, fullname, names, env, ca_cert, problems)
    return Settings(
        values=v.merged,
        release_name=release_name,
        fullname=fullname,
        injector=inject,
        endpoints=controllers.build_endpoints(v, consul_release, inject, names),
        controller=controllers.build_controller(v, inject, names),
    )
