"""Shell-like argument splitting, exactly as shlex.split (POSIX mode, no comments), but fast.

Envoy's extra arguments come from values (`connectInject.envoyExtraArgs`) and from pods
(`consul.hashicorp.com/envoy-extra-args`); both are split here, and the pieces are argv elements
of Envoy, never shell. Bounded: at most `max_args` tokens and `max_chars` characters.
"""

from __future__ import annotations

import re


MAX_ARGS = 1000  # Envoy's own arguments are a handful; each is one argv element
MAX_CHARS = 16 * 1024


class SplitError(ValueError):
    """Why the text cannot be split (the caller names the key and the value)."""


# One shell word at a time, as shlex.split (POSIX mode, no comments) reads it: runs of plain
# characters, a backslash and the character it escapes, '...' and "..." (where a backslash escapes
# only " and \\). A regex instead of shlex, whose pure-Python reader takes about 3 µs a character.
_WORD = re.compile(r"""(?:[^ \t\r\n'"\\]+|\\[\s\S]|'[^']*'|"(?:[^"\\]|\\[\s\S])*")+""")
_PART = re.compile(r"""[^'"\\]+|\\([\s\S])|'([^']*)'|""" + r'"((?:[^"\\]|\\[\s\S])*)"')
_DQ_ESCAPE = re.compile(r'\\(["\\])')
_SHELL_SPACE = " \t\r\n"




def split(raw: str, *, max_args: int = MAX_ARGS, max_chars: int = MAX_CHARS) -> tuple[str, ...]:
    """The words of `raw`; SplitError when it is too long, has too many words or does not end."""
    if len(raw) > max_chars:
        raise SplitError(f"longer than {max_chars} characters")
    tokens: list[str] = []
    position, end = 0, len(raw)
    while True:
        while position < end and raw[position] in _SHELL_SPACE:
            position += 1
        if position == end:
            return tuple(tokens)
        match = _WORD.match(raw, position)
        if match is None or (match.end() < end and raw[match.end()] not in _SHELL_SPACE):
            raise SplitError(f"cannot split into arguments: {_split_problem(raw[position:])}")
        if len(tokens) == max_args:
            raise SplitError(f"more than {max_args} arguments")
        tokens.append(_unquote(match.group()))
        position = match.end()


def _split_problem(rest: str) -> str:
    """shlex's words for why `rest` (from a word that does not end) cannot be split."""
    quote, i = "", 0
    while i < len(rest):
        char = rest[i]
        if char == "\\" and quote != "'":
            if i + 1 == len(rest):
                return "No escaped character"
            i += 2
            continue
        if not quote and char in "'\"":
            quote = char
        elif quote and char == quote:
            quote = ""
        i += 1
    return "No closing quotation" if quote else "No escaped character"


def _unquote(word: str) -> str:
    out = []
    for part in _PART.finditer(word):
        escaped, single, double = part.groups()
        if escaped is not None:
            out.append(escaped)
        elif single is not None:
            out.append(single)
        elif double is not None:
            out.append(_DQ_ESCAPE.sub(r"\1", double))
        else:
            out.append(part.group())
    return "".join(out)
