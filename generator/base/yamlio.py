"""YAML in and out as Kubernetes reads it: multi-document streams, no alias bombs, and output that
every YAML reader reads back to the same JSON.

Reading: kubectl and Helm turn YAML into JSON with sigs.k8s.io/yaml (go-yaml v2 rules), not PyYAML's
YAML 1.1: an unquoted date or `23:59` is a string, `1e3` is a number, `0o17` is 15 and `y`/`n` are
booleans. `KubeLoader` resolves plain scalars the same way, so `inject` sees what the API server
would.

Writing: a string that any common reader (YAML 1.1 as PyYAML, go-yaml v2 as kubectl, YAML 1.2 core)
would take for something else (`"y"`, `"1e3"`, `"0o17"`, `"2021-11-15"`) is written quoted.

Every YAML file a user hands us (values files, manifests) is read here. YAML aliases let a few
hundred bytes stand for gigabytes once expanded (the "billion laughs"): PyYAML builds them as shared
objects, but everything after it (merging, JSON, deep copies) expands them. So the node graph is
measured before any object is built, and a document whose aliases expand it by more than
MAX_ALIAS_EXPANSION nodes is refused.
"""

from __future__ import annotations

import re
import sys
from typing import Any, Iterable, TextIO

import yaml
from yaml.constructor import SafeConstructor
from yaml.resolver import BaseResolver

_STR = "tag:yaml.org,2002:str"
_Parser: Any
try:  # libyaml's parser (C); PyYAML does not export it at the top level
    from yaml.cyaml import CParser as _Parser  # type: ignore[attr-defined]
except ImportError:  # pragma: no cover - PyYAML built without libyaml
    _Parser = None


def _resolver(name: str, rules: list[tuple[str, str, Any]]) -> type[BaseResolver]:
    """A resolver class with exactly `rules` (tag, regex, first characters; "" is the empty
    scalar) for plain scalars."""
    cls: Any = type(name, (BaseResolver,), {"yaml_implicit_resolvers": {}})
    for tag, pattern, first in rules:
        cls.add_implicit_resolver(f"tag:yaml.org,2002:{tag}", re.compile(pattern, re.X), list(first))
    return cls


_DIGITS = "-+0123456789."
# go-yaml v2, as sigs.k8s.io/yaml (kubectl, Helm, the API server) uses it: booleans, nulls and the
# merge key by regex; numbers as its resolve() finds them: underscores removed, then Go's
# ParseInt(s, 0, 64) (0x/0o/0b prefixes in either case, a leading 0 for octal), else its float
# pattern. Timestamps and base 60 are strings.
_KubeBase = _resolver("_KubeBase", [
    ("bool", r"^(?:y|Y|yes|Yes|YES|n|N|no|No|NO|true|True|TRUE|false|False|FALSE|on|On|ON|off|Off|OFF)$", "yYnNtTfFoO"),
    ("null", r"^(?:~|null|Null|NULL|)$", ["~", "n", "N", ""]),
    ("merge", r"^<<$", "<"),
])
_GO_INT = re.compile(r"([-+]?)(0[xX][0-9a-fA-F]+|0[oO][0-7]+|0[bB][01]+|0[0-7]*|[1-9][0-9]*)")
_GO_FLOAT = re.compile(r"[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?")
_GO_SPECIAL_FLOATS = {f"{sign}.{word}": float(f"{sign or '+'}inf") for sign in ("", "+", "-") for word in ("inf", "Inf", "INF")}
_GO_SPECIAL_FLOATS.update({f".{word}": float("nan") for word in ("nan", "NaN", "NAN")})


def go_int(plain: str) -> int | None:
    """Go's strconv.ParseInt(plain, 0, 64), or None where it fails."""
    match = _GO_INT.fullmatch(plain)
    if not match:
        return None
    sign, body = match.groups()
    prefix = body[:2].lower()
    if prefix in ("0x", "0o", "0b"):
        value = int(body[2:], {"0x": 16, "0o": 8, "0b": 2}[prefix])
    else:
        value = int(body, 8) if len(body) > 1 and body[0] == "0" else int(body)
    value = -value if sign == "-" else value
    return value if -(2**63) <= value < 2**63 else None


def go_number(text: str) -> int | float | None:
    """The number go-yaml v2 reads a plain scalar as, or None (then it is a string)."""
    if text in _GO_SPECIAL_FLOATS:
        return _GO_SPECIAL_FLOATS[text]
    if not text or text[0] not in "-+0123456789.":
        return None
    plain = text.replace("_", "")
    value = go_int(plain)
    if value is not None:
        return value
    return float(plain) if _GO_FLOAT.fullmatch(plain) else None


class KubeResolver(_KubeBase):  # type: ignore[misc,valid-type]
    def resolve(self, kind: Any, value: Any, implicit: Any) -> str:
        if kind is yaml.ScalarNode and implicit[0] and isinstance(value, str):
            number = go_number(value)
            if number is not None:
                return "tag:yaml.org,2002:int" if isinstance(number, int) else "tag:yaml.org,2002:float"
        return super().resolve(kind, value, implicit)


# YAML 1.2 core schema (what 1.2 readers such as go-yaml v3 and ruamel.yaml use).
Core12Resolver = _resolver("Core12Resolver", [
    ("bool", r"^(?:true|True|TRUE|false|False|FALSE)$", "tTfF"),
    ("null", r"^(?:~|null|Null|NULL|)$", ["~", "n", "N", ""]),
    ("int", r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$", _DIGITS),
    ("float", r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$", _DIGITS),
])


class KubeConstructor(SafeConstructor):
    """Values for KubeResolver's tags, parsed as Go's strconv would (base prefixes, leading-0 octal)."""

    def construct_kube_bool(self, node: yaml.ScalarNode) -> bool:
        return str(self.construct_scalar(node)).lower() in ("y", "yes", "true", "on")

    def construct_kube_number(self, node: yaml.ScalarNode) -> int | float:
        """The value KubeResolver found (an explicit !!int/!!float tag on other text: as YAML 1.1)."""
        text = str(self.construct_scalar(node))
        number = go_number(text)
        if number is None:
            return SafeConstructor.construct_yaml_int(self, node) if node.tag.endswith("int") else SafeConstructor.construct_yaml_float(self, node)
        return number


KubeConstructor.add_constructor("tag:yaml.org,2002:bool", KubeConstructor.construct_kube_bool)  # type: ignore[type-var]
KubeConstructor.add_constructor("tag:yaml.org,2002:int", KubeConstructor.construct_kube_number)  # type: ignore[type-var]
KubeConstructor.add_constructor("tag:yaml.org,2002:float", KubeConstructor.construct_kube_number)  # type: ignore[type-var]


if _Parser is not None:
    class KubeLoader(_Parser, KubeConstructor, KubeResolver):
        """libyaml's parser with Kubernetes' scalar rules."""

        def __init__(self, stream: str) -> None:
            _Parser.__init__(self, stream)
            KubeConstructor.__init__(self)
            KubeResolver.__init__(self)
else:  # pragma: no cover - PyYAML without libyaml
    class KubeLoader(yaml.reader.Reader, yaml.scanner.Scanner, yaml.parser.Parser, yaml.composer.Composer,  # type: ignore[no-redef]
                     KubeConstructor, KubeResolver):
        def __init__(self, stream: str) -> None:
            yaml.reader.Reader.__init__(self, stream)
            yaml.scanner.Scanner.__init__(self)
            yaml.parser.Parser.__init__(self)
            yaml.composer.Composer.__init__(self)
            KubeConstructor.__init__(self)
            KubeResolver.__init__(self)


_Loader = KubeLoader
MAX_ALIAS_EXPANSION = 100_000  # nodes added by aliases; real files with anchors add a few hundred


class AliasBomb(yaml.YAMLError):
    """A document whose aliases expand beyond MAX_ALIAS_EXPANSION nodes."""


def load_all(text: str) -> list[Any]:
    """The documents of a YAML stream, safely loaded; AliasBomb (a YAMLError) for an alias bomb."""
    loader = _Loader(text)
    try:
        docs = []
        while loader.check_node():
            node = loader.get_node()
            if node is None:
                break
            _check_expansion(node)
            docs.append(loader.construct_document(node))
        return docs
    finally:
        loader.dispose()


def load(text: str) -> Any:
    """A single-document YAML text (None when empty); AliasBomb for an alias bomb."""
    docs = load_all(text)
    if len(docs) > 1:
        raise yaml.YAMLError(f"expected a single document, found {len(docs)}")
    return docs[0] if docs else None


def _check_expansion(root: yaml.Node) -> None:
    """Count the nodes the document has once every alias is expanded, without expanding it:
    each node's expanded size is computed once (aliases are shared node objects). A subtree's
    expanded size minus the distinct nodes seen so far never exceeds the whole document's, so
    the check can stop early."""
    sizes: dict[int, int] = {}
    seen: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, done = stack.pop()
        if done:
            children = _children(node)
            if any(id(child) not in sizes for child in children):  # an ancestor: the value contains itself
                raise AliasBomb(f"a YAML alias refers to a value that contains it (line {node.start_mark.line + 1}): "
                                f"such a value has no JSON form")
            sizes[id(node)] = 1 + sum(sizes[id(child)] for child in children)
            if sizes[id(node)] - len(seen) > MAX_ALIAS_EXPANSION:
                raise AliasBomb(
                    f"YAML aliases expand this document by more than {MAX_ALIAS_EXPANSION} nodes "
                    f"(line {node.start_mark.line + 1}): write the repeated parts out, or use fewer aliases"
                )
            continue
        if id(node) in seen:
            continue
        seen.add(id(node))
        stack.append((node, True))
        stack.extend((child, False) for child in _children(node) if id(child) not in seen)


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    return []


class _Dumper(getattr(yaml, "CSafeDumper", yaml.SafeDumper)):  # type: ignore[misc]
    pass


_READERS = (yaml.resolver.Resolver(), KubeResolver(), Core12Resolver())


# Number-like text with a base prefix or an underscore, which some reader may try as a number
# (ruamel.yaml reads `0o_` as an octal, and fails): quoted too; every reader reads that back as
# the same string.
_NUMBERISH = re.compile(r"[-+]?(?:0[xXoObB][0-9a-fA-F_]*|[0-9.][0-9a-fA-FxXoObB.eE+-]*_[0-9a-fA-FxXoObB_.eE+-]*)")


def ambiguous(value: str) -> bool:
    """Would some reader (YAML 1.1, go-yaml v2, YAML 1.2 core) take this plain scalar for a non-string?"""
    return bool(_NUMBERISH.fullmatch(value)) or any(r.resolve(yaml.ScalarNode, value, (True, False)) != _STR for r in _READERS)


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    if "\n" in value and not any(line != line.rstrip() for line in value.split("\n")):
        style: str | None = "|"
    else:  # PyYAML quotes what YAML 1.1 would misread itself; the other readers' cases are added
        style = "'" if ambiguous(value) else None
    return dumper.represent_scalar(_STR, value, style=style)


_Dumper.add_representer(str, _str)


def read_stream(path: str, stdin: TextIO | None = None) -> list[Any]:
    """All documents of a YAML stream (`-` is standard input); empty documents are dropped."""
    text = (stdin or sys.stdin).read() if path == "-" else open(path, encoding="utf-8").read()
    return [doc for doc in load_all(text) if doc is not None]


def dump_stream(docs: Iterable[Any]) -> str:
    """Documents as one stream, each starting with `---`."""
    return "".join("---\n" + yaml.dump(doc, Dumper=_Dumper, sort_keys=False, default_flow_style=False, allow_unicode=True, width=100_000) for doc in docs)
