"""Defaults come only from chart/values.yaml (issue 10: one source for each fact).

Three checks. No Python literal in the values layer stands in for a default (no `.get(key,
default)`, no `or <literal>` fallback). Every key the settings read is a key of chart/values.yaml,
or one of the few the chart has no default for. And, key by key, values that lack a key (deleted
with `--set key=null` on top of the chart's defaults, or left out of a file read with
`--no-chart-defaults`, as the chart's ConfigMap is) give the same settings as the chart's default
would: `--no-chart-defaults` with an incomplete file reads a missing key as its chart default.
The one exception is documented: a `resources` block deleted with null means "no resources".
"""

from __future__ import annotations

import ast
import dataclasses
import json
import re
from pathlib import Path
from typing import Any

import pytest

from generator.values import config, helmvalues, injector, source
from generator.values.source import Values

ROOT = Path(__file__).resolve().parent.parent
VALUES_PACKAGE = ROOT / "generator" / "values"
SETTINGS_MODULES = ["config.py", "controllers.py", "injector.py", "rules.py", "shared.py", "source.py"]
CA = str(ROOT / "tests" / "golden" / "consul-ca.pem")

# Keys the settings read that chart/values.yaml has no default for, and what their absence means.
NO_CHART_DEFAULT = {
    "fullnameOverride": "not set: the fullname is global.name or <release>-consul",
    "nameOverride": "not set: the name in the fullname is consul",
    "connectInject.centralConfig": "removed key: refused with a message when set",
    "connectInject.imageEnvoy": "removed key: refused with a message when set",
    "global.lifecycleSidecarContainer": "removed key: refused with a message when set",
    "global.bootstrapACLs": "removed key: refused with a message when set",
}


def _literal(node: ast.AST) -> bool:
    """A literal that could be a copied default: not None, not an empty string or collection."""
    if isinstance(node, ast.Constant):
        return node.value not in (None, "", ())
    if isinstance(node, (ast.List, ast.Tuple, ast.Set)):
        return bool(node.elts)
    if isinstance(node, ast.Dict):
        return bool(node.keys)
    return False


_KEY = re.compile(r"^[A-Za-z][A-Za-z0-9]*(\.[A-Za-z][A-Za-z0-9]*)+$")  # a dotted values key


def _is_key(node: ast.AST) -> bool:
    return isinstance(node, ast.Constant) and isinstance(node.value, str) and bool(_KEY.match(node.value))


def _default(node: ast.AST) -> bool:
    return (isinstance(node, ast.Constant) and node.value is not None) or isinstance(node, (ast.List, ast.Tuple, ast.Set, ast.Dict))


def literal_fallbacks(text: str) -> list[str]:
    """Where a module's source gives a values key a default of its own, by line: `x.get(k, d)`,
    a call with a default after a dotted key (`g("a.b", True)`), `... or <literal>`."""
    found = []
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.Call):
            if isinstance(node.func, ast.Attribute) and node.func.attr == "get" and (len(node.args) > 1 or node.keywords):
                found.append(f"line {node.lineno}: .get() with a default")
            elif any(_is_key(a) and any(_default(b) for b in node.args[i + 1:]) for i, a in enumerate(node.args)):
                found.append(f"line {node.lineno}: a default after a values key ({ast.unparse(node)})")
        if isinstance(node, ast.BoolOp) and isinstance(node.op, ast.Or) and any(_literal(v) for v in node.values):
            found.append(f"line {node.lineno}: `or` a literal ({ast.unparse(node)})")
    return found


@pytest.mark.parametrize("module", SETTINGS_MODULES)
def test_no_python_literal_stands_in_for_a_chart_default(module: str) -> None:
    assert literal_fallbacks((VALUES_PACKAGE / module).read_text(encoding="utf-8")) == []


def test_the_scan_finds_the_fallbacks_it_forbids() -> None:
    assert literal_fallbacks('g("a.b", False)\nv.get("a.b", "-")\nx = v.get("k") or "info"\ny = v.get("k") or []') == [
        "line 1: a default after a values key (g('a.b', False))", "line 2: .get() with a default",
        "line 3: `or` a literal (v.get('k') or 'info')"]
    assert literal_fallbacks('x = v.get("k") or ""\ny = v.get("k") or CONSUL_DEFAULT\nz = env.get("X")') == []


# Values under which every key the settings can read is read: the defaults, and every switch on
# that makes them read more (partitions → the partition name, ACLs with namespaces → the policy).
BASES: dict[str, dict[str, Any]] = {
    "defaults": {},
    "switches-on": {"global": {"enableConsulNamespaces": True, "adminPartitions": {"enabled": True},
                               "acls": {"manageSystemACLs": True}, "tls": {"enabled": True}},
                    "connectInject": {"consulNamespaces": {"mirroringK8S": True}}},
}
ENV = {"CONSUL_CACERT": CA}


def keys_read(base: dict[str, Any]) -> set[str]:
    """Every key one load of `base` (over the chart's defaults) reads."""
    v = Values(helmvalues.coalesce(source.chart_defaults(), base))
    config.from_values(v, environ=ENV)
    return v.read


def _file(tmp_path: Path, name: str, values: dict) -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(values))
    return path


def _comparable(settings: config.Settings) -> tuple:
    """The sections, without the values document itself (which does differ: it lacks the key)."""
    return dataclasses.replace(settings.injector, values={}), settings.endpoints, settings.controller


def _delete(values: dict, dotted: str) -> dict:
    out = json.loads(json.dumps(values))
    *parents, last = dotted.split(".")
    node = out
    for part in parents:
        node = node[part]
    del node[last]
    return out


def test_every_key_the_settings_read_has_a_chart_default_or_says_why_not() -> None:
    read = set().union(*(keys_read(base) for base in BASES.values()))
    defaults = source.chart_defaults()
    assert sorted(k for k in read if not _has_key(defaults, k) and k not in NO_CHART_DEFAULT) == []
    assert set(NO_CHART_DEFAULT) <= read  # the list holds no key that nothing reads
    assert [k for k in NO_CHART_DEFAULT if _has_key(defaults, k)] == []  # nor one the chart has


def _has_key(values: dict, dotted: str) -> bool:
    *parents, last = dotted.split(".")
    node: Any = values
    for part in parents:
        node = node.get(part) if isinstance(node, dict) else None
    return isinstance(node, dict) and last in node


def _deletion_cases() -> list[tuple[str, str]]:
    """(base, key) for every key read under each base that the chart has and the base leaves alone."""
    defaults = source.chart_defaults()
    return [(name, key) for name, base in BASES.items() for key in sorted(keys_read(base))
            if _has_key(defaults, key) and not _has_key(base, key)]


DELETION_CASES = _deletion_cases()


def test_the_deletion_cases_cover_the_keys_of_every_section() -> None:
    keys = {k for _, k in DELETION_CASES}
    assert {"connectInject.transparentProxy.defaultEnabled", "connectInject.metrics.defaultPrometheusScrapePort",
            "global.logLevel", "global.datacenter", "global.adminPartitions.name", "global.consulRelease",
            "connectInject.k8sAllowNamespaces", "client.grpc", "controller.enabled"} <= keys


@pytest.mark.parametrize("base,key", DELETION_CASES, ids=[f"{b}:{k}" for b, k in DELETION_CASES])
def test_a_missing_key_reads_as_its_chart_default(base: str, key: str, tmp_path: Path) -> None:
    """Deleted with null over the chart's defaults, or absent from a file read with
    --no-chart-defaults: the settings are those of the chart's default for the key."""
    expected = config.load_settings([_file(tmp_path, "base.json", BASES[base])], environ=ENV)
    null = config.load_settings([_file(tmp_path, "base.json", BASES[base])], [f"{key}=null"], environ=ENV)
    full = helmvalues.coalesce(source.chart_defaults(), BASES[base])
    absent = config.load_settings([_file(tmp_path, "merged.json", _delete(full, key))], chart_defaults=False, environ=ENV)
    if key in injector.RESOURCE_KEYS.values():
        # A resources block deleted with null: no resources (a null field of it omits that field).
        name = {v: k for k, v in injector.RESOURCE_KEYS.items()}[key]
        for loaded in (null, absent):
            assert getattr(loaded.injector, f"{name}_resources") == injector.Resources()
            assert _comparable(loaded)[1:] == _comparable(expected)[1:]
        return
    assert _comparable(null) == _comparable(expected)
    assert _comparable(absent) == _comparable(expected)


def test_an_empty_file_with_no_chart_defaults_reads_as_the_chart_defaults(tmp_path: Path) -> None:
    """`--no-chart-defaults` with a file that lacks everything: every setting is the chart's default
    (resources blocks aside: absent means none)."""
    empty = config.load_settings([_file(tmp_path, "empty.json", {})], chart_defaults=False, environ={})
    defaults = config.load_settings([], environ={})
    no_resources = {f"{name}_resources": injector.Resources() for name in injector.RESOURCE_KEYS}
    assert dataclasses.replace(empty.injector, values={}) == dataclasses.replace(defaults.injector, values={}, **no_resources)
    assert (empty.endpoints, empty.controller) == (defaults.endpoints, defaults.controller)
