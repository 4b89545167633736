"""Consul's `?filter=` expressions (go-bexpr), the subset a fake agent needs (reference §9.4).

Written from Consul's filtering documentation: selectors (`Service`, `Proxy.DestinationServiceName`,
`Meta.env`, `Meta["k8s-service-name"]`), match operators `==`, `!=`, `is empty`, `is not empty`,
`in`, `not in`, `contains`, `not contains`, `matches`, `not matches`, the connectors `and`, `or`,
`not` with parentheses (precedence not > and > or), and values as double-quoted strings with Go
escapes, backtick raw strings, numbers or bare words.

Selectors are checked against the endpoint's schema, as Consul does when it builds the
evaluator, so a misspelt field is a 400 (`Failed to create boolean expression evaluator: ...`)
rather than a silent "no match". A map key that is absent compares as not equal. The
expression compiles to a Python closure once (and `compile_filter` caches by text), so the
same deregistration filter evaluated over thousands of services stays cheap.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from typing import Any

Predicate = Callable[[dict[str, Any]], bool]

# Schema types: "str", "int", "bool", ("map", elem), ("list", elem), or a dict (a struct).
Schema = Any

_ADDRESS = {"Address": "str", "Port": "int"}
_UPSTREAM = {"DestinationType": "str", "DestinationPartition": "str", "DestinationNamespace": "str",
             "DestinationName": "str", "Datacenter": "str", "LocalBindAddress": "str", "LocalBindPort": "int",
             "LocalBindSocketPath": "str", "MeshGateway": {"Mode": "str"}, "CentrallyConfigured": "bool"}
_PROXY = {"DestinationServiceName": "str", "DestinationServiceID": "str", "LocalServiceAddress": "str",
          "LocalServicePort": "int", "LocalServiceSocketPath": "str", "Mode": "str",
          "TransparentProxy": {"OutboundListenerPort": "int", "DialedDirectly": "bool"},
          "Upstreams": ("list", _UPSTREAM), "MeshGateway": {"Mode": "str"},
          "Expose": {"Checks": "bool", "Paths": ("list", {"ListenerPort": "int", "Path": "str", "LocalPathPort": "int",
                                                           "Protocol": "str", "ParsedFromCheck": "bool"})}}

AGENT_SERVICE: Schema = {
    "Kind": "str", "ID": "str", "Service": "str", "Tags": ("list", "str"), "Meta": ("map", "str"), "Port": "int",
    "Address": "str", "SocketPath": "str", "TaggedAddresses": ("map", _ADDRESS),
    "Weights": {"Passing": "int", "Warning": "int"}, "EnableTagOverride": "bool", "Proxy": _PROXY,
    "Connect": {"Native": "bool"},
}
AGENT_CHECK: Schema = {
    "Node": "str", "CheckID": "str", "Name": "str", "Status": "str", "Notes": "str", "Output": "str",
    "ServiceID": "str", "ServiceName": "str", "ServiceTags": ("list", "str"), "Type": "str", "Interval": "str",
    "Timeout": "str", "ExposedPort": "int",
    "Definition": {"HTTP": "str", "TLSServerName": "str", "TLSSkipVerify": "bool", "Method": "str", "Body": "str",
                   "TCP": "str", "GRPC": "str", "GRPCUseTLS": "bool", "AliasNode": "str", "AliasService": "str"},
}
CATALOG_SERVICE: Schema = {
    "ID": "str", "Node": "str", "Address": "str", "Datacenter": "str", "TaggedAddresses": ("map", "str"),
    "NodeMeta": ("map", "str"), "ServiceKind": "str", "ServiceID": "str", "ServiceName": "str",
    "ServiceTags": ("list", "str"), "ServiceAddress": "str", "ServiceTaggedAddresses": ("map", _ADDRESS),
    "ServiceWeights": {"Passing": "int", "Warning": "int"}, "ServiceMeta": ("map", "str"), "ServicePort": "int",
    "ServiceEnableTagOverride": "bool", "ServiceProxy": _PROXY, "ServiceConnect": {"Native": "bool"},
}

_KEYWORDS = {"and", "or", "not", "in", "contains", "matches", "is", "empty"}
_TOKEN = re.compile(r"""
    (?P<ws>\s+)
  | (?P<op>==|!=)
  | (?P<punct>[()\[\].])
  | (?P<dq>"(?:[^"\\]|\\.)*")
  | (?P<raw>`[^`]*`)
  | (?P<num>-?\d+(?:\.\d+)?(?![A-Za-z_]))
  | (?P<word>[A-Za-z_][A-Za-z0-9_\-]*)
""", re.VERBOSE | re.DOTALL)


class FilterError(ValueError):
    """The expression cannot be parsed or names a selector the endpoint does not have."""


_GO_ESCAPES = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v", "\\": "\\",
               '"': '"', "'": "'"}


def _unquote(text: str) -> str:
    """A Go interpreted string literal (without the quotes) to its value."""
    out: list[str] = []
    i = 0
    while i < len(text):
        c = text[i]
        if c != "\\":
            out.append(c)
            i += 1
            continue
        nxt = text[i + 1] if i + 1 < len(text) else ""
        if nxt in _GO_ESCAPES:
            out.append(_GO_ESCAPES[nxt])
            i += 2
        elif nxt in ("x", "u", "U"):
            width = {"x": 2, "u": 4, "U": 8}[nxt]
            digits = text[i + 2:i + 2 + width]
            if len(digits) != width or not all(d in "0123456789abcdefABCDEF" for d in digits):
                raise FilterError(f"invalid escape in string literal: \\{nxt}{digits}")
            out.append(chr(int(digits, 16)))
            i += 2 + width
        elif nxt.isdigit():
            digits = text[i + 1:i + 4]
            if len(digits) != 3 or not all(d in "01234567" for d in digits):
                raise FilterError(f"invalid octal escape in string literal: \\{digits}")
            out.append(chr(int(digits, 8)))
            i += 4
        else:
            raise FilterError(f"invalid escape in string literal: \\{nxt}")
    return "".join(out)


def _tokens(expr: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    pos = 0
    while pos < len(expr):
        m = _TOKEN.match(expr, pos)
        if not m:
            raise FilterError(f"1:{pos + 1} ({pos}): no match found, unexpected {expr[pos]!r}")
        pos = m.end()
        kind = m.lastgroup or ""
        if kind == "ws":
            continue
        text = m.group()
        if kind == "dq":
            out.append(("str", _unquote(text[1:-1])))
        elif kind == "raw":
            out.append(("str", text[1:-1]))
        elif kind == "word" and text in _KEYWORDS:
            out.append(("kw", text))
        else:
            out.append((kind, text))
    out.append(("eof", ""))
    return out


class _Parser:
    def __init__(self, expr: str, schema: Schema):
        self.expr = expr
        self.toks = _tokens(expr)
        self.i = 0
        self.schema = schema

    def peek(self, offset: int = 0) -> tuple[str, str]:
        return self.toks[min(self.i + offset, len(self.toks) - 1)]

    def take(self) -> tuple[str, str]:
        tok = self.toks[self.i]
        self.i += 1
        return tok

    def expect(self, kind: str, text: str | None = None) -> str:
        k, t = self.take()
        if k != kind or (text is not None and t != text):
            raise FilterError(f"expected {text or kind}, found {t or 'end of input'!r}")
        return t

    def parse(self) -> Predicate:
        if self.peek()[0] == "eof":
            raise FilterError("empty expression")
        pred = self.or_expr()
        if self.peek()[0] != "eof":
            raise FilterError(f"unexpected {self.peek()[1]!r}")
        return pred

    def or_expr(self) -> Predicate:
        parts = [self.and_expr()]
        while self.peek() == ("kw", "or"):
            self.take()
            parts.append(self.and_expr())
        return parts[0] if len(parts) == 1 else (lambda obj: any(p(obj) for p in parts))

    def and_expr(self) -> Predicate:
        parts = [self.not_expr()]
        while self.peek() == ("kw", "and"):
            self.take()
            parts.append(self.not_expr())
        if len(parts) == 1:
            return parts[0]

        def pred(obj: dict[str, Any]) -> bool:
            return all(p(obj) for p in parts)
        # `a == x and b == y`: the store may use the equalities as an index (a pure speed-up).
        pred.equalities = [e for p in parts for e in getattr(p, "equalities", ())]  # type: ignore[attr-defined]
        return pred

    def not_expr(self) -> Predicate:
        if self.peek() == ("kw", "not"):
            self.take()
            inner = self.not_expr()
            return lambda obj: not inner(obj)  # (no equalities: a new function)
        if self.peek() == ("punct", "("):
            self.take()
            inner = self.or_expr()
            self.expect("punct", ")")
            return inner
        return self.match()

    def selector(self) -> tuple[list[str], Schema]:
        first = self.expect("word")
        path = [first]
        while self.peek() in (("punct", "."), ("punct", "[")):
            if self.take()[1] == ".":
                path.append(self.expect("word"))
            else:
                path.append(self.expect("str"))
                self.expect("punct", "]")
        return path, self._resolve(path)

    def _resolve(self, path: list[str]) -> Schema:
        node = self.schema
        for i, part in enumerate(path):
            if isinstance(node, dict) and part in node:
                node = node[part]
            elif isinstance(node, tuple) and node[0] == "map":
                node = node[1]
            else:
                raise FilterError(f'Selector "{".".join(path[:i + 1])}" is not valid')
        return node

    def value(self) -> str:
        kind, text = self.take()
        if kind in ("str", "num", "word"):
            return text
        raise FilterError(f"expected a value, found {text or 'end of input'!r}")

    def match(self) -> Predicate:
        # `value [not] in selector` starts with a value: a quoted string, a number, or a bare
        # word directly followed by `in` / `not in`.
        first = self.peek()
        if first[0] in ("str", "num") or (first[0] == "word" and (
                self.peek(1) == ("kw", "in") or (self.peek(1) == ("kw", "not") and self.peek(2) == ("kw", "in")))):
            value = self.value()
            negate = False
            if self.peek() == ("kw", "not"):
                self.take()
                negate = True
            self.expect("kw", "in")
            path, node = self.selector()
            return _negate(_contains(path, node, value), negate)
        path, node = self.selector()
        kind, text = self.take()
        if kind == "op":
            pred = _equals(path, node, self.value())
            return _negate(pred, text == "!=")
        if (kind, text) == ("kw", "is"):
            negate = False
            if self.peek() == ("kw", "not"):
                self.take()
                negate = True
            self.expect("kw", "empty")
            return _negate(_empty(path, node), negate)
        negate = False
        if (kind, text) == ("kw", "not"):
            negate = True
            kind, text = self.take()
        if (kind, text) == ("kw", "contains"):
            return _negate(_contains(path, node, self.value()), negate)
        if (kind, text) == ("kw", "matches"):
            pattern = self.value()
            try:
                rx = re.compile(pattern)
            except re.error as err:
                raise FilterError(f"invalid regular expression {pattern!r}: {err}") from None
            if node != "str":
                raise FilterError(f'Selector "{".".join(path)}" is not valid for matches')
            get = _getter(path)
            return _negate(lambda obj: (v := get(obj)) is not _MISSING and rx.search(str(v)) is not None, negate)
        raise FilterError(f"expected a match operator after {'.'.join(path)}, found {text or 'end of input'!r}")


_MISSING = object()


def _getter(path: list[str]) -> Callable[[dict[str, Any]], Any]:
    def get(obj: dict[str, Any]) -> Any:
        cur: Any = obj
        for part in path:
            if not isinstance(cur, dict) or part not in cur:
                return _MISSING
            cur = cur[part]
        return cur
    return get


def _coerce(node: Schema, value: str, path: list[str]) -> Any:
    if node == "int":
        try:
            return int(value, 10)
        except ValueError:
            raise FilterError(f'Failed to coerce value "{value}" for selector "{".".join(path)}": '
                              f'strconv.ParseInt: parsing "{value}": invalid syntax') from None
    if node == "bool":
        if value in ("true", "false"):
            return value == "true"
        raise FilterError(f'Failed to coerce value "{value}" for selector "{".".join(path)}": '
                          f'strconv.ParseBool: parsing "{value}": invalid syntax')
    return value


def _zero(node: Schema) -> Any:
    return {"str": "", "int": 0, "bool": False}.get(node) if isinstance(node, str) else None


def _equals(path: list[str], node: Schema, value: str) -> Predicate:
    if not isinstance(node, str):
        raise FilterError(f'Selector "{".".join(path)}" is not valid for ==/!= (not a single value)')
    want = _coerce(node, value, path)
    get = _getter(path)
    # An absent struct field reads as its zero value (Consul omits empty fields from the JSON
    # we evaluate on); an absent map key is no match.
    in_map = _in_map(path)
    zero = _zero(node)

    def pred(obj: dict[str, Any]) -> bool:
        v = get(obj)
        if v is _MISSING:
            if in_map:
                return False
            v = zero
        return bool(v == want)
    pred.equalities = [(tuple(path), want)]  # type: ignore[attr-defined]
    return pred


def _in_map(path: list[str]) -> bool:
    return len(path) > 1 and path[0] in ("Meta", "ServiceMeta", "NodeMeta", "TaggedAddresses", "ServiceTaggedAddresses")


def _negate(pred: Predicate, negate: bool) -> Predicate:
    return (lambda obj: not pred(obj)) if negate else pred


def equalities(pred: Predicate) -> list[tuple[tuple[str, ...], Any]]:
    """(selector path, value) pairs every object matching `pred` satisfies with `==` (the terms of a
    top-level conjunction); a store may look candidates up by them before evaluating `pred`."""
    return list(getattr(pred, "equalities", ()))


def _contains(path: list[str], node: Schema, value: str) -> Predicate:
    get = _getter(path)
    if node == "str":
        return lambda obj: (v := get(obj)) is not _MISSING and value in str(v)
    if isinstance(node, tuple):
        kind, elem = node
        if kind == "map":  # a key of the map
            return lambda obj: isinstance(v := get(obj), dict) and value in v
        if elem in ("str", "int", "bool"):
            want = _coerce(elem, value, path)
            return lambda obj: isinstance(v := get(obj), list) and want in v
    raise FilterError(f'Selector "{".".join(path)}" is not valid for in/contains')


def _empty(path: list[str], node: Schema) -> Predicate:
    if not (node == "str" or isinstance(node, tuple)):
        raise FilterError(f'Selector "{".".join(path)}" is not valid for is empty')
    get = _getter(path)
    return lambda obj: (v := get(obj)) is _MISSING or v is None or len(v) == 0


@functools.lru_cache(maxsize=256)
def _compiled(expr: str, schema_id: int) -> Predicate:
    return _Parser(expr, _SCHEMAS[schema_id]).parse()


_SCHEMAS: dict[int, Schema] = {id(s): s for s in (AGENT_SERVICE, AGENT_CHECK, CATALOG_SERVICE)}


def compile_filter(expr: str, schema: Schema) -> Predicate:
    """The predicate of `expr` over objects shaped by `schema`; FilterError when invalid."""
    if id(schema) in _SCHEMAS:
        return _compiled(expr, id(schema))
    return _Parser(expr, schema).parse()
