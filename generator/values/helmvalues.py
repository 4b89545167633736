"""Helm's values semantics: `--set` parsing and the merge order of `-f` files.

The webhook and the CLI must see the same values a `helm install -f a.yaml -f b.yaml --set k=v`
would render, so merging follows Helm exactly: user files are merged in order (later wins, maps
merge recursively), `--set` is applied on top, and the result is coalesced onto the chart's
defaults, where a `null` deletes the default key.
"""

from __future__ import annotations

import copy
from typing import Any


class SetError(ValueError):
    """A `--set` expression that Helm would also refuse."""


def merge(base: dict, override: dict) -> dict:
    """Merge `override` into a copy of `base` the way Helm merges several `-f` files."""
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def coalesce(defaults: dict, user: dict) -> dict:
    """Lay user values over the chart defaults; a user `null` removes the default key."""
    out = copy.deepcopy(defaults)
    for key, value in user.items():
        if value is None:
            out.pop(key, None)
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = coalesce(out[key], value)
        else:
            out[key] = _drop_nulls(copy.deepcopy(value)) if isinstance(value, dict) else copy.deepcopy(value)
    return out


def _drop_nulls(d: dict) -> dict:
    return {k: (_drop_nulls(v) if isinstance(v, dict) else v) for k, v in d.items() if v is not None}


def typed(raw: str) -> Any:
    """Type a `--set` scalar as Helm's strvals does (bool, null, int64 without leading zero)."""
    low = raw.lower()
    if low == "true":
        return True
    if low == "false":
        return False
    if low == "null":
        return None
    if raw == "0":
        return 0
    if raw and raw[0] != "0":
        body = raw[1:] if raw[0] in "+-" else raw
        if body.isdigit() and body.isascii():
            value = int(raw)
            if -(2**63) <= value < 2**63:
                return value
    return raw


def _split_unescaped(text: str, sep: str, *, braces: bool = False) -> list[str]:
    """Split on `sep` not preceded by a backslash (and, optionally, not inside `{...}`)."""
    parts, cur, depth, i = [], [], 0, 0
    while i < len(text):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text):
            cur.append(text[i : i + 2])
            i += 2
            continue
        if braces and ch == "{":
            depth += 1
        elif braces and ch == "}" and depth:
            depth -= 1
        if ch == sep and depth == 0:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
        i += 1
    parts.append("".join(cur))
    return parts


def _unescape(text: str) -> str:
    out, i = [], 0
    while i < len(text):
        if text[i] == "\\" and i + 1 < len(text):
            out.append(text[i + 1])
            i += 2
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


def _key_path(key: str, expr: str) -> list[str | int]:
    """`a.b[0].c` → ["a", "b", 0, "c"]; `\\.` keeps a dot inside a key."""
    path: list[str | int] = []
    for segment in _split_unescaped(key, "."):
        name, _, rest = segment.partition("[")
        if not name and not path:
            raise SetError(f"--set {expr!r}: key {key!r} has an empty name")
        if name:
            path.append(_unescape(name))
        while rest:
            index, close, rest = rest.partition("]")
            if not close or not index.isdigit():
                raise SetError(f"--set {expr!r}: bad list index in key {key!r}")
            path.append(int(index))
            rest = rest[1:] if rest.startswith("[") else rest
            if rest:
                raise SetError(f"--set {expr!r}: unexpected {rest!r} after a list index in key {key!r}")
        if not name and path and not isinstance(path[-1], int):
            raise SetError(f"--set {expr!r}: key {key!r} has an empty name")
    return path


def _parse_value(raw: str) -> Any:
    if raw.startswith("{") and raw.endswith("}"):
        inner = raw[1:-1]
        return [] if inner == "" else [typed(_unescape(v)) for v in _split_unescaped(inner, ",")]
    return typed(_unescape(raw))


def _assign(tree: dict, path: list[str | int], value: Any) -> None:
    node: Any = tree
    for here, nxt in zip(path, path[1:]):
        empty: Any = [] if isinstance(nxt, int) else {}
        if isinstance(here, int):
            while len(node) <= here:
                node.append(None)
            if not isinstance(node[here], type(empty)):
                node[here] = empty
            node = node[here]
        else:
            if not isinstance(node.get(here), type(empty)):
                node[here] = empty
            node = node[here]
    last = path[-1]
    if isinstance(last, int):
        while len(node) <= last:
            node.append(None)
    node[last] = value


def parse_set(expr: str, into: dict | None = None) -> dict:
    """Parse one `--set` argument (`a.b=1,c[0]=x,d={p,q}`) into a nested dict."""
    tree = {} if into is None else into
    for pair in _split_unescaped(expr, ",", braces=True):
        if pair == "":
            continue
        key, eq, raw = pair.partition("=")
        if not eq:
            raise SetError(f"--set {expr!r}: key {key!r} has no value (expected key=value)")
        _assign(tree, _key_path(key, expr), _parse_value(raw))
    return tree
