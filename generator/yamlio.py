"""YAML in and out: multi-document streams, readable block scalars for scripts, and no alias bombs.

Every YAML file a user hands us (values files, manifests) is read here. YAML aliases let a few
hundred bytes stand for gigabytes once expanded (the "billion laughs"): PyYAML builds them as shared
objects, but everything after it (merging, JSON, deep copies) expands them. So the node graph is
measured before any object is built, and a document whose aliases expand it by more than
MAX_ALIAS_EXPANSION nodes is refused.
"""

from __future__ import annotations

import sys
from typing import Any, Iterable, TextIO

import yaml

_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
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
            # A child still being expanded (a recursive alias) counts once.
            sizes[id(node)] = 1 + sum(sizes.get(id(child), 1) for child in _children(node))
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


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    style = "|" if "\n" in value and not any(line != line.rstrip() for line in value.split("\n")) else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def read_stream(path: str, stdin: TextIO | None = None) -> list[Any]:
    """All documents of a YAML stream (`-` is standard input); empty documents are dropped."""
    text = (stdin or sys.stdin).read() if path == "-" else open(path, encoding="utf-8").read()
    return [doc for doc in load_all(text) if doc is not None]


def dump_stream(docs: Iterable[Any]) -> str:
    """Documents as one stream, each starting with `---`."""
    return "".join("---\n" + yaml.dump(doc, Dumper=_Dumper, sort_keys=False, default_flow_style=False, allow_unicode=True, width=100_000) for doc in docs)
