"""Structured logging for the webhook server: key=value text or one JSON object per line.

Callers pass fields with `extra={"fields": {...}}`; both formats print them, so one log
call serves operators reading a terminal and log pipelines parsing JSON.

Field values often come from the pod being admitted (its name, uid, annotations), which the API
server has not validated yet when it calls the webhook. Both formats therefore keep every record
on one line and print no control characters: JSON escapes them (`ensure_ascii`), and the text
format shows them as escapes (`\r`, `\x1b`, `\u2028`) in the message, in every field value and
in tracebacks, whose lines are also indented so that no forged line can start at column 0.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
from typing import Any, TextIO

LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warn": logging.WARNING,
          "warning": logging.WARNING, "error": logging.ERROR}

LOGGER_NAME = "connect-inject"


def _timestamp(record: logging.LogRecord) -> str:
    """RFC 3339 UTC with milliseconds, the format log pipelines parse without configuration."""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z"


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    fields = getattr(record, "fields", None)
    return fields if isinstance(fields, dict) else {}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, msg, then the record's fields."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {"ts": _timestamp(record), "level": record.levelname.lower(),
                               "logger": record.name, "msg": record.getMessage()}
        out.update(_fields(record))
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        # ensure_ascii: every non-ASCII character is a \uXXXX escape, U+2028/U+2029 (line breaks
        # for JavaScript and some viewers) and lone surrogates (unencodable) included.
        return json.dumps(out, default=str, separators=(",", ":"), ensure_ascii=True)


# Characters that can forge, hide or reorder log lines on a terminal or in a line-based pipeline:
# C0 controls (CR, LF, ESC, ...), DEL, C1 controls (NEL U+0085, CSI U+009B), lone surrogates,
# the Unicode line and paragraph separators, and the bidirectional marks, overrides and isolates.
_UNSAFE = "\x00-\x1f\x7f-\x9f\ud800-\udfff\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069"
_UNSAFE_RE = re.compile(f"[{_UNSAFE}]")
_NEEDS_QUOTES_RE = re.compile(f'[{_UNSAFE}\\s"=\\\\]')  # \s: any Unicode space
_IN_QUOTES_RE = re.compile(f'[{_UNSAFE}"\\\\]')
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t", '"': '\\"', "\\": "\\\\"}


def _escape_char(match: re.Match[str]) -> str:
    char = match.group()
    named = _NAMED.get(char)
    if named is not None:
        return named
    code = ord(char)
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def escape(text: str) -> str:
    """`text` with every unsafe character (see _UNSAFE) shown as an escape; nothing else changes."""
    return _UNSAFE_RE.sub(_escape_char, text)


def _text_value(value: Any) -> str:
    """A field value as printed in text logs: bare when safe, else double-quoted with `\\`, `"`
    and every unsafe character escaped (so the record stays on one line and an escape is never
    ambiguous with text)."""
    text = str(value)
    if text and not _NEEDS_QUOTES_RE.search(text):
        return text
    return '"' + _IN_QUOTES_RE.sub(_escape_char, text) + '"'


class TextFormatter(logging.Formatter):
    """`ts LEVEL msg key=value ...`, values quoted only when they need it."""

    def format(self, record: logging.LogRecord) -> str:
        parts = [_timestamp(record), record.levelname, escape(record.getMessage())]
        parts += [f"{escape(str(k))}={_text_value(v)}" for k, v in _fields(record).items()]
        line = " ".join(parts)
        if record.exc_info:  # the one multi-line record: indented, so never mistaken for a record
            line += "".join(f"\n    {escape(l)}" for l in self.formatException(record.exc_info).split("\n"))
        return line


def setup(level: str = "info", as_json: bool = False, stream: TextIO | None = None) -> logging.Logger:
    """Configure the root logger once for the process (replacing earlier handlers)."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if as_json else TextFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(LEVELS[level])
    # The kubernetes client and urllib3 log every retry at WARNING; our cache reports its
    # own errors once, with context, so keep theirs out unless debugging.
    for noisy in ("urllib3", "kubernetes"):
        logging.getLogger(noisy).setLevel(logging.DEBUG if level == "debug" else logging.ERROR)
    return logging.getLogger(LOGGER_NAME)


def log(logger: logging.Logger, level: int, msg: str, **fields: Any) -> None:
    """Log `msg` with structured fields (skipped cheaply when the level is off)."""
    if logger.isEnabledFor(level):
        logger.log(level, msg, extra={"fields": fields})
