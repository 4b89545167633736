"""values-schema.yaml (yamale) and the Consul chart keys → chart/values.schema.json (JSON Schema draft-07, which Helm enforces).

The yamale schema is the single source; this module translates it mechanically, so yamale
(`connect-inject check-values`) and Helm (`helm install/upgrade/template/lint`) accept and refuse
the same values files. Rules of the translation:

- a yamale map of keys is an object with `additionalProperties: false` (yamale runs strict);
- a key is required unless it says `required=False`; an optional key also accepts null unless it
  says `none=False` (yamale's rule);
- `include('x')` is a `$ref` to `#/definitions/x`; `any(a, b)` is `anyOf`; `enum(...)` is `enum`;
- `regex(...)` is a `pattern` anchored at the start, as Python's `re.match` is;
- every key of every Consul chart version (generator/data/consul-chart-keys.tsv) that the yamale
  schema lacks is added, accepting anything (check-values ignores such keys with a warning).

A validator this module does not know is an error, never a silent pass.

Usage: `python -m generator.tools.schema_json [--check]` (`make schema` writes the file; `--check`
exits 1 when the file on disk differs from what the schema gives).
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
from pathlib import Path
from typing import Any

import yamale
from yamale import validators as v

from generator.values import chartkeys

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = ROOT / "values-schema.yaml"
OUTPUT = ROOT / "chart" / "values.schema.json"

_TYPES = {v.String: "string", v.Integer: "integer", v.Number: "number", v.Boolean: "boolean", v.Null: "null"}


class UnsupportedValidator(ValueError):
    """The yamale schema uses a validator or option that has no translation here."""


def _constraints(validator: v.Validator, out: dict[str, Any]) -> None:
    kw = dict(validator.kwargs)
    kw.pop("name", None)
    numeric = isinstance(validator, (v.Integer, v.Number))
    sized = {v.String: ("minLength", "maxLength"), v.List: ("minItems", "maxItems"),
             v.Map: ("minProperties", "maxProperties")}
    for key, value in kw.items():
        if key in ("min", "max") and numeric:
            out["minimum" if key == "min" else "maximum"] = value
        elif key in ("min", "max") and type(validator) in sized:
            out[sized[type(validator)][0 if key == "min" else 1]] = value
        elif key == "key" and isinstance(validator, v.Map):
            out["propertyNames"] = _validator(value)
        else:
            raise UnsupportedValidator(f"{validator!r}: option {key}={value!r} has no JSON Schema translation")


def _pattern(regex: Any) -> str:
    pattern = regex.pattern
    if regex.flags & 2:  # re.IGNORECASE
        raise UnsupportedValidator(f"regex {pattern!r}: flags are not translated")
    return pattern if pattern.startswith("^") else f"^(?:{pattern})"


def _validator(validator: v.Validator) -> dict[str, Any]:
    """The JSON Schema of one yamale validator, ignoring required/none (the caller handles those)."""
    out: dict[str, Any]
    if type(validator) in _TYPES:
        out = {"type": _TYPES[type(validator)]}
    elif isinstance(validator, v.Enum):
        out = {"enum": list(validator.enums)}
    elif isinstance(validator, v.Include):
        out = {"$ref": f"#/definitions/{validator.include_name}"}
    elif isinstance(validator, v.Regex) and type(validator) is v.Regex:
        patterns = [_pattern(r) for r in validator.regexes]
        alternatives = [{"type": "string", "pattern": p} for p in patterns]
        out = alternatives[0] if len(alternatives) == 1 else {"anyOf": alternatives}
        if validator.regex_name:
            out["description"] = validator.regex_name
        return out
    elif isinstance(validator, v.Any) and validator.validators and all(
            type(inner) in (v.Boolean, v.Enum) for inner in validator.validators):
        # any(bool(), enum('-')): one enum, so Helm says "must be one of the following: true, false, "-"".
        out = {"enum": [value for inner in validator.validators
                        for value in ([True, False] if type(inner) is v.Boolean else inner.enums)]}
    elif isinstance(validator, v.Any):
        out = {"anyOf": [_validator(inner) for inner in validator.validators]} if validator.validators else {}
    elif isinstance(validator, v.List):
        out = {"type": "array"}
        if validator.validators:
            items = [_validator(inner) for inner in validator.validators]
            out["items"] = items[0] if len(items) == 1 else {"anyOf": items}
    elif isinstance(validator, v.Map):
        out = {"type": "object"}
        if validator.validators:
            values = [_validator(inner) for inner in validator.validators]
            out["additionalProperties"] = values[0] if len(values) == 1 else {"anyOf": values}
    else:
        raise UnsupportedValidator(f"{validator!r}: no JSON Schema translation for yamale '{validator.tag}'")
    _constraints(validator, out)
    return out


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    if not schema:  # any(): already accepts null
        return schema
    if isinstance(schema.get("type"), str) and "anyOf" not in schema:
        return {**schema, "type": [schema["type"], "null"]}  # type-specific keywords ignore null
    if "enum" in schema and set(schema) == {"enum"}:
        return {"enum": [*schema["enum"], None]}
    return {"anyOf": [schema, {"type": "null"}]}


def _node(node: Any) -> tuple[dict[str, Any], bool]:
    """(schema, required) of one schema node: a map of keys or a validator."""
    if isinstance(node, dict):
        properties: dict[str, Any] = {}
        required: list[str] = []
        for key, child in node.items():
            properties[key], is_required = _node(child)
            if is_required:
                required.append(key)
        out: dict[str, Any] = {"type": "object", "additionalProperties": False, "properties": properties}
        if required:
            out["required"] = required
        return out, True
    if isinstance(node, list):
        raise UnsupportedValidator("yamale static lists are not translated")
    schema = _validator(node)
    if node.is_optional and node.can_be_none:
        schema = _nullable(schema)
    return schema, node.is_required


def _consul_keys(root: dict[str, Any], definitions: dict[str, Any]) -> None:
    """Accept every key some Consul chart version had (generator/data/consul-chart-keys.tsv), as
    check-values does: a section this schema lacks becomes a strict object of the keys it had
    (so Helm still refuses a typo), a leaf accepts anything. Where a key would be added under a
    `$ref`, that definition is copied in place first, so other users of it are not widened."""
    for path in sorted(chartkeys.rows()):
        node = root
        parts = path.split(".")
        for depth, part in enumerate(parts):
            _inline_ref(node, definitions)
            properties = node.get("properties")
            if properties is None or node.get("additionalProperties") is not False:
                break  # free-form here (any, a map of anything, a scalar): nothing to add
            if part not in properties:
                leaf = depth == len(parts) - 1
                properties[part] = {} if leaf else {"type": ["object", "null"], "additionalProperties": False, "properties": {}}
            node = properties[part]


def _inline_ref(node: dict[str, Any], definitions: dict[str, Any]) -> None:
    """Replace a `$ref` (or a nullable `anyOf` of one) by a copy of the definition, in place."""
    nullable = False
    alternatives = node.get("anyOf")
    if alternatives and len(alternatives) == 2 and {"type": "null"} in alternatives:
        ref = next(a for a in alternatives if a != {"type": "null"})
        if set(ref) == {"$ref"}:
            node.pop("anyOf")
            node["$ref"], nullable = ref["$ref"], True
    if "$ref" not in node:
        return
    node.update(copy.deepcopy(definitions[node.pop("$ref").rsplit("/", 1)[1]]))
    if nullable and node.get("type") == "object":
        node["type"] = ["object", "null"]


def build(schema_path: Path = SCHEMA) -> dict[str, Any]:
    schema = yamale.make_schema(str(schema_path))
    root, _ = _node(schema._schema)
    definitions = {}
    for name, included in sorted(schema.includes.items()):
        definitions[name], _ = _node(included._schema)
    _consul_keys(root, definitions)
    return {
        "$schema": "http://json-schema.org/draft-07/schema#",
        "$comment": "Generated from values-schema.yaml by `make schema` (generator/tools/schema_json.py). Do not edit.",
        "title": "Values of the Consul Connect injector chart",
        **root,
        "definitions": definitions,
    }


def render(schema_path: Path = SCHEMA) -> str:
    return json.dumps(build(schema_path), indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m generator.tools.schema_json", description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if chart/values.schema.json is out of date")
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        current = OUTPUT.read_text(encoding="utf-8") if OUTPUT.exists() else ""
        if current != text:
            print(f"{OUTPUT.relative_to(ROOT)} is out of date with values-schema.yaml: run `make schema`", file=sys.stderr)
            return 1
        return 0
    OUTPUT.write_text(text, encoding="utf-8")
    print(f"wrote {OUTPUT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
