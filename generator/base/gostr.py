"""Go's `strconv.Quote` (`%q`), for messages and filters that must read exactly as the Go code's.

consul-k8s quotes values with `%q` in its validation messages and in Consul filter expressions;
the endpoints controller and the config-entry kinds both reproduce those texts.
"""

from __future__ import annotations

_ESCAPES = {"\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\v": "\\v",
            '"': '\\"', "\\": "\\\\"}


def quote(text: str) -> str:
    """Printable characters as they are, the rest escaped as Go escapes them (a lone surrogate,
    which Go's UTF-8 strings cannot hold, as the replacement character)."""
    out = ['"']
    for char in text:
        code = ord(char)
        if char in _ESCAPES:
            out.append(_ESCAPES[char])
        elif char.isprintable() and not 0xD800 <= code <= 0xDFFF:
            out.append(char)
        elif code < 0x20 or code == 0x7F:
            out.append(f"\\x{code:02x}")
        elif 0xD800 <= code <= 0xDFFF:
            out.append("\\ufffd")
        elif code < 0x10000:
            out.append(f"\\u{code:04x}")
        else:
            out.append(f"\\U{code:08x}")
    out.append('"')
    return "".join(out)
