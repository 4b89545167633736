"""Every values key of every Consul chart version (v0.30.0 to v1.9.11), as data.

Platform teams install this chart with values files written for the Consul chart, of any version.
A key this chart does not use is ignored, and `check-values` lists it as a warning naming the
Consul chart versions that had it; a key that no version ever had is an error with a did-you-mean
(`SyncCatalog` → `syncCatalog`). The keys are data, `data/consul-chart-keys.tsv` (every dotted key,
its first and last version, the type of its default and its v0.37.0 default), gathered from each
tagged version's values.yaml. The values schema check (schema.schema_problems) and the chart's
values.schema.json (schema_json) both read it.

A row is a leaf: whatever is under it is free-form (`server.extraConfig`, `*.resources`). A proper
prefix of a row is a section. Items of `ingressGateways.gateways` and `terminatingGateways.gateways`
take `name` plus the keys under `.defaults`.
"""

from __future__ import annotations

import csv
import difflib
import functools
from dataclasses import dataclass
from typing import Any, Iterator, Mapping

from generator.base import paths

GATEWAY_LISTS = {"ingressGateways.gateways": "ingressGateways.defaults",
                 "terminatingGateways.gateways": "terminatingGateways.defaults"}


@dataclass(frozen=True)
class Key:
    path: str
    first: str
    last: str
    type: str


NEWEST = "v1.9.11"  # the newest version the data covers; "current" in the data means "still in it"


def _semver(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in (NEWEST if version == "current" else version).lstrip("v").split("."))


@functools.lru_cache(maxsize=1)
def rows() -> dict[str, Key]:
    with open(paths.CHART_KEYS, encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle, delimiter="\t")
        return {r["key"]: Key(r["key"], r["first_version"], r["last_version"], r["type_of_default"]) for r in reader}


@functools.lru_cache(maxsize=1)
def _children() -> dict[str, frozenset[str]]:
    """Section path ("" for the top) → names of its children."""
    children: dict[str, set[str]] = {}
    for path in rows():
        parts = path.split(".")
        for depth in range(len(parts)):
            children.setdefault(".".join(parts[:depth]), set()).add(parts[depth])
    return {section: frozenset(names) for section, names in children.items()}


def kind(path: str) -> str:
    """"leaf" (a row, or under one), "section", or "unknown"."""
    if path in rows():
        return "leaf"
    if path in _children():
        return "section"
    parts = path.split(".")
    if any(".".join(parts[:depth]) in rows() for depth in range(1, len(parts))):
        return "leaf"
    return "unknown"


def versions(path: str) -> str:
    """The Consul chart versions that had `path` (a row, a section, or under a row)."""
    under = [key for p, key in rows().items() if p == path or p.startswith(path + ".") or path.startswith(p + ".")]
    first = min((k.first for k in under), key=_semver)
    last = max((k.last for k in under), key=_semver)
    if last == "current":
        return f"{first} and later"
    return first if first == last else f"{first}–{last}"


def hint(path: str, extra_siblings: frozenset[str] = frozenset()) -> str | None:
    """The sibling key `path` is probably a typo of: same letters in another case, or close."""
    parent, _, name = path.rpartition(".")
    siblings = sorted(_children().get(parent, frozenset()) | extra_siblings)
    for sibling in siblings:
        if sibling.lower() == name.lower():
            return sibling
    close = difflib.get_close_matches(name, siblings, n=1, cutoff=0.8)
    return close[0] if close else None


def unknown_under(section: str, value: Any) -> Iterator[str]:
    """Paths in the user's `value` at `section` that no Consul chart version had (the typo walk)."""
    if isinstance(value, list) and section in GATEWAY_LISTS:
        defaults = GATEWAY_LISTS[section]
        for index, item in enumerate(value):
            for key, sub in (item.items() if isinstance(item, Mapping) else ()):
                if key == "name":
                    continue
                if kind(f"{defaults}.{key}") == "unknown":
                    yield f"{section}[{index}].{key}"
                elif kind(f"{defaults}.{key}") == "section":
                    for bad in unknown_under(f"{defaults}.{key}", sub):
                        yield f"{section}[{index}]" + bad[len(defaults):]
        return
    if kind(section) != "section" or not isinstance(value, Mapping):
        return
    for key, sub in value.items():
        path = f"{section}.{key}" if section else str(key)
        found = kind(path)
        if found == "unknown":
            yield path
        elif found == "section" or path in GATEWAY_LISTS:
            yield from unknown_under(path, sub)
