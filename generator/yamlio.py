"""YAML in and out for the CLI: multi-document streams, readable block scalars for scripts."""

from __future__ import annotations

import sys
from typing import Any, Iterable, TextIO

import yaml

_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _Dumper(getattr(yaml, "CSafeDumper", yaml.SafeDumper)):  # type: ignore[misc]
    pass


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    style = "|" if "\n" in value and not any(line != line.rstrip() for line in value.split("\n")) else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def read_stream(path: str, stdin: TextIO | None = None) -> list[Any]:
    """All documents of a YAML stream (`-` is standard input); empty documents are dropped."""
    text = (stdin or sys.stdin).read() if path == "-" else open(path, encoding="utf-8").read()
    return [doc for doc in yaml.load_all(text, Loader=_Loader) if doc is not None]


def dump_stream(docs: Iterable[Any]) -> str:
    """Documents as one stream, each starting with `---`."""
    return "".join("---\n" + yaml.dump(doc, Dumper=_Dumper, sort_keys=False, default_flow_style=False, allow_unicode=True, width=100_000) for doc in docs)
