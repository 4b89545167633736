"""A CRD spec kept once, as a tree of fields, and everything mechanical that follows from it.

Each kind's module declares its spec with the constructors below (`string`, `integer`, `obj`,
`array`, ...), in the reference Go struct's field order. From that one tree come:

* `schema(field)`: the CRD's openAPIV3Schema, as controller-gen wrote it (sorted properties,
  `required`, `format`, descriptions);
* `to_consul(field, value)`: the Consul config entry JSON the Go API client would send (Go field
  names; `omitempty` where the Consul struct has it; value structs always present; durations as
  Go strings or integer nanoseconds as the Consul type holds them);
* `canonical(field, value)`: a Consul entry reduced for the "Consul already has this" comparison
  (unknown keys dropped as Go's typed decode drops them, empty ≡ absent, durations as numbers);
* `crd_json(field, value)`: the Go `encoding/json` dump of the CRD struct that some validation
  messages embed (camelCase, struct order, the CRD's own `omitempty`).

A tree is plain data: what cannot be data (validation rules, defaulting) is code in the kind's
module.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from generator.configentries.gofmt import F32, DurationError, format_duration, parse_duration

OMIT: Any = object()  # "leave the key out"
_ZERO: dict[str, Any] = {"string": "", "integer": 0, "boolean": False, "number": 0}


class SpecValueError(ValueError):
    """A spec value the tree cannot convert (a bad duration): names the field path and value."""


@dataclass(frozen=True)
class Field:
    """One field of a CRD spec (or an array/map element when `name` is None).

    type: string | integer | boolean | number | duration | object | array | map | json
    consul: the Consul JSON key; "" derives it (`connectTimeout` → `ConnectTimeout`); None: never sent.
    required: the Go CRD tag has no `omitempty` (listed in the schema's `required`, always in dumps).
    struct: an object held by value in the CRD Go type (always in dumps and in the Consul entry).
    always: the Consul key is sent even when empty (no `omitempty` on the Consul field).
    nullable: a pointer scalar in Consul (`null` when unset, 0 is a value).
    nanos: a duration that Consul holds as integer nanoseconds (else a Go duration string).
    values: Consul receives the value only if it is one of these (else "").
    crd: False for a key only the Consul struct has (sent as its zero value when `always`).
    """

    name: str | None
    type: str
    doc: str = ""
    consul: str | None = ""
    fields: tuple["Field", ...] = ()
    item: "Field | None" = None
    format: str | None = None
    required: bool = False
    struct: bool = False
    always: bool = False
    nullable: bool = False
    nanos: bool = False
    values: tuple[str, ...] = ()
    crd: bool = True  # False: a Consul-only key (ExposePath.ParsedFromCheck), not in the CRD

    @property
    def key(self) -> str:
        """The Consul JSON key of this field."""
        if self.consul:
            return self.consul
        assert self.name
        return self.name[:1].upper() + self.name[1:]

    def child(self, name: str) -> "Field":
        for f in self.fields:
            if f.name == name:
                return f
        raise KeyError(name)


def _make(type_: str, name: str | None, doc: str, **kw: Any) -> Field:
    return Field(name=name, type=type_, doc=doc, **kw)


def string(name: str | None, doc: str = "", **kw: Any) -> Field:
    return _make("string", name, doc, **kw)


def integer(name: str | None, doc: str = "", fmt: str | None = None, **kw: Any) -> Field:
    return _make("integer", name, doc, format=fmt, **kw)


def boolean(name: str | None, doc: str = "", **kw: Any) -> Field:
    return _make("boolean", name, doc, **kw)


def number(name: str | None, doc: str = "", **kw: Any) -> Field:
    return _make("number", name, doc, **kw)


def duration(name: str | None, doc: str = "", **kw: Any) -> Field:
    return _make("duration", name, doc, **kw)


def anyjson(name: str | None, doc: str = "", **kw: Any) -> Field:
    """Free-form JSON object (`x-kubernetes-preserve-unknown-fields`)."""
    return _make("json", name, doc, **kw)


def obj(name: str | None, doc: str = "", fields: tuple[Field, ...] = (), **kw: Any) -> Field:
    return _make("object", name, doc, fields=tuple(fields), **kw)


def array(name: str | None, doc: str, item: Field, **kw: Any) -> Field:
    return _make("array", name, doc, item=item, **kw)


def mapping(name: str | None, doc: str, item: Field, **kw: Any) -> Field:
    return _make("map", name, doc, item=item, **kw)


def redoc(f: Field, doc: str, **kw: Any) -> Field:
    """The same field with another description (a shared block used under another field's doc)."""
    return replace(f, doc=doc, **kw)


# --- openAPIV3Schema ---------------------------------------------------------------------------

_SCHEMA_TYPES = {"string": "string", "integer": "integer", "boolean": "boolean", "number": "number",
                 "duration": "string", "object": "object", "array": "array", "map": "object"}


def schema(f: Field) -> dict[str, Any]:
    """The field's openAPIV3Schema node, as controller-gen v0.6 writes it."""
    out: dict[str, Any] = {}
    if f.doc:
        out["description"] = f.doc
    if f.type == "json":
        out.update({"type": "object", "x-kubernetes-preserve-unknown-fields": True})
        return out
    if f.format:
        out["format"] = f.format
    if f.type == "object":
        if f.fields:
            out["properties"] = {c.name: schema(c) for c in sorted(f.fields, key=lambda c: c.name or "") if c.crd}
        req = sorted(c.name for c in f.fields if c.required and c.name and c.crd)
        if req:
            out["required"] = req
    elif f.type == "array":
        assert f.item
        out["items"] = schema(f.item)
    elif f.type == "map":
        assert f.item
        out["additionalProperties"] = schema(f.item)
    out["type"] = _SCHEMA_TYPES[f.type]
    return out


# --- spec → Consul JSON ------------------------------------------------------------------------

def _nanos(f: Field, raw: Any, path: str) -> int:
    if raw is None:
        return 0
    if isinstance(raw, bool) or not isinstance(raw, (str, int)):
        raise SpecValueError(f"{path}: {raw!r} is not a duration (a string such as \"15s\" or \"1m30s\")")
    if isinstance(raw, int):
        return raw
    try:
        return parse_duration(raw)
    except DurationError as err:
        raise SpecValueError(f"{path}: {err}") from None


def to_consul(f: Field, raw: Any, path: str = "spec") -> Any:
    """The Consul JSON value of field `f` given the CRD value `raw` (None when absent), or OMIT."""
    t = f.type
    if t == "object":
        if raw is None and not (f.struct or f.always):
            return OMIT
        return to_consul_fields(f.fields, raw or {}, path)
    if t == "array":
        items = raw or []
        if not items:
            return None if f.always else OMIT
        assert f.item
        return [to_consul(f.item, item if item is not None else ({} if f.item.type == "object" else None),
                          f"{path}[{i}]") for i, item in enumerate(items)]
    if t == "map":
        entries = raw or {}
        if not entries:
            return None if f.always else OMIT
        assert f.item
        return {k: to_consul(f.item, v if v is not None else ({} if f.item.type == "object" else None),
                             f"{path}[{k}]") for k, v in entries.items()}
    if t == "json":
        return OMIT if not raw else raw
    if t == "duration":
        ns = _nanos(f, raw, path)
        if ns == 0 and not f.always:
            return OMIT
        return ns if f.nanos else format_duration(ns)
    if f.nullable:
        return raw if raw is not None or f.always else OMIT
    zero: Any = _ZERO[t]
    value = zero if raw is None else raw
    if f.values and value not in f.values:
        value = zero
    if value == zero and not f.always:
        return OMIT
    return value


def to_consul_fields(fields: tuple[Field, ...], raw: dict, path: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for f in fields:
        if f.consul is None:
            continue
        value = to_consul(f, raw.get(f.name) if f.crd else None, f"{path}.{f.name}")
        if value is not OMIT:
            out[f.key] = value
    return out


# --- canonical form for "does Consul already have this?" ---------------------------------------

def _get_ci(d: dict, key: str) -> Any:
    """Go's json decode matches keys case-insensitively."""
    if key in d:
        return d[key]
    low = key.lower()
    for k, v in d.items():
        if isinstance(k, str) and k.lower() == low:
            return v
    return None


def canonical(f: Field, value: Any) -> Any:
    """The comparable form of a Consul JSON value of `f`; None means empty (Go's EquateEmpty)."""
    t = f.type
    if value is None:
        return None
    if t == "object":
        out = canonical_fields(f.fields, value if isinstance(value, dict) else {})
        return out or None
    if t == "array":
        assert f.item
        items = [canonical(f.item, v) for v in value or []]
        return items or None
    if t == "map":
        assert f.item
        entries = {k: canonical(f.item, v) for k, v in (value or {}).items()}
        return entries or None
    if t == "json":
        return value or None
    if t == "duration":
        try:
            ns = parse_duration(value) if isinstance(value, str) else int(value)
        except (DurationError, ValueError, TypeError):
            return value
        return ns or None
    if f.nullable:
        return value
    return value or None


def canonical_fields(fields: tuple[Field, ...], entry: dict) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for f in fields:
        if f.consul is None:
            continue
        value = canonical(f, _get_ci(entry, f.key))
        if value is not None:
            out[f.key] = value
    return out


# --- Go encoding/json of the CRD struct (for messages) -----------------------------------------

def crd_json(f: Field, raw: Any) -> Any:
    """The value Go's json.Marshal writes for CRD field `f` holding `raw`, or OMIT."""
    t = f.type
    if t == "object":
        if raw is None and not f.struct:
            return OMIT
        out = {}
        for c in f.fields:
            if not c.crd:
                continue
            v = crd_json(c, (raw or {}).get(c.name))
            if v is not OMIT:
                out[c.name] = v
        return out
    if t in ("array", "map"):
        if not raw:
            return None if f.required else OMIT
        assert f.item
        if t == "array":
            return [crd_json(f.item, v) for v in raw]
        return {k: crd_json(f.item, raw[k]) for k in sorted(raw)}
    if t == "json":
        return raw if raw else OMIT
    if t == "duration":  # metav1.Duration is a struct: always written
        try:
            return format_duration(_nanos(f, raw, f.name or ""))
        except SpecValueError:
            return raw
    if raw is None:
        return _ZERO[t] if f.required else OMIT
    if f.nullable:
        return raw
    if raw == _ZERO[t] and not f.required:
        return OMIT
    return F32(raw) if t == "number" else raw


def dump(f: Field, raw: Any) -> str:
    """The Go JSON text of a CRD value, as the messages that quote a sub-object show it."""
    from generator.configentries.gofmt import marshal
    value = crd_json(f, raw)
    return "null" if value is OMIT else marshal(value)
