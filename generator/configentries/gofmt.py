"""Go's text forms that users see in the reference's messages and Consul's JSON.

The webhook's messages embed Go renderings (`%q` strings, `%v` float32s, `encoding/json` dumps of
the CRD structs, `time.Duration.String()`), and Consul stores durations in Go's grammar. Python's
own forms differ in small ways (`1e+06` vs `1000000.0`, `\\b` vs `\\u0008`, `1m30s` vs `90`), so each
is reproduced here once.
"""

from __future__ import annotations

import json
import re
import struct
from decimal import Decimal
from typing import Any

from generator.base import gostr

_UNITS = {"ns": 1, "us": 1_000, "µs": 1_000, "μs": 1_000, "ms": 1_000_000, "s": 1_000_000_000,
          "m": 60_000_000_000, "h": 3_600_000_000_000}
_SEGMENT = re.compile(r"(\d*)(?:\.(\d*))?(ns|us|µs|μs|ms|s|m|h)")
_MAX = (1 << 63) - 1


class DurationError(ValueError):
    """A duration that Go's time.ParseDuration refuses; the message is Go's."""


def parse_duration(text: str) -> int:
    """Nanoseconds of a Go duration string (`"1m30s"`, `"1.5h"`, `"-2ms"`), by Go's own rules."""
    orig, s, neg = text, text, False
    if s and s[0] in "+-":
        neg, s = s[0] == "-", s[1:]
    if s == "0":
        return 0
    if not s:
        raise DurationError(f'time: invalid duration "{orig}"')
    total, pos = 0, 0
    while pos < len(s):
        m = _SEGMENT.match(s, pos)
        if not m or not (m.group(1) or m.group(2)):
            raise DurationError(_why(s[pos:], orig))
        whole, frac, scale = m.group(1) or "0", m.group(2) or "", _UNITS[m.group(3)]
        value = int(whole) * scale
        if frac and int(frac):
            value += int(float(int(frac)) * (float(scale) / float(10 ** len(frac))))
        total += value
        if total > _MAX:
            raise DurationError(f'time: invalid duration "{orig}"')
        pos = m.end()
    return -total if neg else total


def _why(rest: str, orig: str) -> str:
    """Go's message for the segment that does not parse."""
    number = re.match(r"\d+\.?\d*|\.\d+", rest)
    if not number:
        return f'time: invalid duration "{orig}"'
    unit = re.match(r"[^\d.]*", rest[number.end():])
    if unit is None or not unit.group(0):
        return f'time: missing unit in duration "{orig}"'
    return f'time: unknown unit "{unit.group(0)}" in duration "{orig}"'


def _frac(value: int, digits: int) -> str:
    whole, rem = divmod(value, 10 ** digits)
    fraction = f"{rem:0{digits}d}".rstrip("0")
    return f"{whole}.{fraction}" if fraction else str(whole)


def format_duration(ns: int) -> str:
    """Go's `time.Duration.String()`: `0s`, `100ns`, `1.5µs`, `500ms`, `1m30s`, `1h0m0s`."""
    if ns == 0:
        return "0s"
    u = abs(ns)
    if u < 1_000:
        out = f"{u}ns"
    elif u < 1_000_000:
        out = _frac(u, 3) + "µs"
    elif u < 1_000_000_000:
        out = _frac(u, 6) + "ms"
    else:
        secs, rem = divmod(u, 1_000_000_000)
        out = _frac(secs % 60 * 1_000_000_000 + rem, 9) + "s"
        minutes = secs // 60
        if minutes:
            out = f"{minutes % 60}m{out}"
            if minutes // 60:
                out = f"{minutes // 60}h{out}"
    return ("-" if ns < 0 else "") + out


def f32(x: float) -> float:
    """`x` rounded to float32, as Go holds a CRD's `float32` field."""
    return struct.unpack("f", struct.pack("f", float(x)))[0]


def _shortest_f32(x: float) -> Decimal:
    """The shortest decimal that reads back as the same float32 (Go's `-1` precision)."""
    for prec in range(1, 10):
        text = f"{x:.{prec}g}"
        if f32(float(text)) == x:
            return Decimal(text)
    return Decimal(repr(x))


def f32_json(x: float) -> str:
    """A float32 as Go's encoding/json writes it (`90`, `0.001`, `33.33`, `1e-07`)."""
    v = f32(x)
    if v != v or v in (float("inf"), float("-inf")):
        raise ValueError(f"unsupported float value {x!r}")
    if v == 0:
        return "0"
    d = _shortest_f32(v)
    if abs(v) < 1e-6 or abs(v) >= 1e21:
        mant, _, exp = f"{d:e}".partition("e")
        mant = mant.rstrip("0").rstrip(".") if "." in mant else mant
        return f"{mant}e{int(exp):+03d}".replace("e-0", "e-").replace("e+0", "e+")
    return format(d, "f")


def f32_v(x: float) -> str:
    """A float32 as Go's `%v` prints it (`101`, `0.001`, `1e+06`: exponent form below 1e-4 or from 1e6)."""
    v = f32(x)
    if v == 0:
        return "0"
    d = _shortest_f32(v)
    sign, digits, exp = d.as_tuple()
    text = "".join(map(str, digits)).rstrip("0") or "0"
    point = len(digits) + int(exp) - 1  # decimal exponent of the first digit
    if -4 <= point < 6:
        return format(d, "f")
    mant = text[0] + ("." + text[1:] if len(text) > 1 else "")
    return ("-" if sign else "") + f"{mant}e{point:+03d}"


def quote(s: str) -> str:
    """Go's `%q` / strconv.Quote of a string."""
    return gostr.quote(s)


class F32(float):
    """A number Go holds as float32 (so encoding/json writes its float32 shortest form)."""


def json_string(s: str) -> str:
    """A string as Go's encoding/json writes it (HTML-safe: `<` is `\\u003c`)."""
    text = json.dumps(s, ensure_ascii=False)
    text = text.replace("\\b", "\\u0008").replace("\\f", "\\u000c")
    for ch, esc in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"), ("\u2028", "\\u2028"),
                    ("\u2029", "\\u2029")):
        text = text.replace(ch, esc)
    return text


def marshal(value: Any) -> str:
    """Compact JSON as Go's encoding/json writes it; dicts keep the order given (struct order)."""
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, F32):
        return f32_json(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return json.dumps(int(value)) if value.is_integer() and abs(value) < 1e21 else json.dumps(value)
    if isinstance(value, str):
        return json_string(value)
    if isinstance(value, dict):
        return "{" + ",".join(f"{json_string(str(k))}:{marshal(v)}" for k, v in value.items()) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(marshal(v) for v in value) + "]"
    raise TypeError(f"cannot marshal {type(value).__name__}")
