"""Log formats of `serve`: key=value text for people, one JSON object per line for pipelines."""

from __future__ import annotations

import io
import json
import logging
import re

import pytest

from generator.base import logs

from .conftest import make_pod


@pytest.fixture
def restore_logging():
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def test_text_lines_quote_only_values_that_need_it(restore_logging) -> None:
    out = io.StringIO()
    logger = logs.setup("info", as_json=False, stream=out)
    logs.log(logger, logging.INFO, "admission", uid="u-1", pod="web-", error='bad "x" = y', empty="")
    logs.log(logger, logging.DEBUG, "hidden at info", uid="u-2")
    [line] = out.getvalue().splitlines()
    assert line.split(" ", 2)[1:] == ["INFO", 'admission uid=u-1 pod=web- error="bad \\"x\\" = y" empty=""']


def test_json_lines_carry_the_fields_and_the_level(restore_logging) -> None:
    out = io.StringIO()
    logger = logs.setup("warn", as_json=True, stream=out)
    logs.log(logger, logging.INFO, "hidden at warn")
    logs.log(logger, logging.WARNING, "namespace cache cannot reach the API server", operation="watch")
    [record] = [json.loads(line) for line in out.getvalue().splitlines()]
    assert record["level"] == "warning" and record["operation"] == "watch"
    assert record["msg"] == "namespace cache cannot reach the API server"
    assert record["ts"].endswith("Z")


# Raw characters that must never reach a log: C0 controls but the newline ending each record,
# DEL, C1 controls, the Unicode line/paragraph separators, bidi overrides.
RAW = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
HOSTILE = "web\r\n2026-11-26T00:00:00.000Z INFO admission uid=forged\x1b[2K\u2028\u202e\x85\x7f end"


async def test_a_hostile_pod_name_is_one_escaped_text_line(restore_logging, webhook) -> None:
    out = io.StringIO()
    logs.setup("info", as_json=False, stream=out)
    await webhook.review(make_pod(name=HOSTILE), uid="uid\r\x1b[31m")
    text = out.getvalue()
    assert not RAW.search(text), repr(text)
    [line] = [l for l in text.split("\n") if " admission " in l]
    assert len(text.splitlines()) == len(text.split("\n")) - 1  # no other line break of any kind
    assert ' pod="web\\r\\n2026-11-26T00:00:00.000Z INFO admission uid=forged\\x1b[2K\\u2028\\u202e\\x85\\x7f end" ' in line
    assert ' uid="uid\\r\\x1b[31m" ' in line


async def test_a_hostile_pod_name_is_one_escaped_json_line(restore_logging, webhook) -> None:
    out = io.StringIO()
    logs.setup("info", as_json=True, stream=out)
    await webhook.review(make_pod(name=HOSTILE))
    text = out.getvalue()
    assert not RAW.search(text) and text.isascii(), repr(text)
    [record] = [json.loads(l) for l in text.splitlines() if '"msg":"admission"' in l]
    assert record["pod"] == HOSTILE  # escaped, not lost


def test_messages_and_tracebacks_are_escaped_and_indented(restore_logging) -> None:
    out = io.StringIO()
    logger = logs.setup("info", as_json=False, stream=out)
    logging.getLogger("generator.inject.review").error("cannot inject pod %s", "a\rb\u2028c")  # third-party style %-args
    try:
        raise ValueError("bad name\n2026-11-26T00:00:00.000Z INFO forged\x1b[0m")
    except ValueError:
        logger.exception("internal error")
    text = out.getvalue()
    assert not RAW.search(text), repr(text)
    lines = text.splitlines()
    assert lines[0].endswith("ERROR cannot inject pod a\\rb\\u2028c")
    assert lines[1].endswith("ERROR internal error")
    assert all(l.startswith("    ") for l in lines[2:]) and len(lines) > 3  # the traceback, indented
    assert any("forged\\x1b[0m" in l for l in lines[2:])


def test_plain_unicode_stays_readable(restore_logging) -> None:
    out = io.StringIO()
    logger = logs.setup("info", as_json=False, stream=out)
    logs.log(logger, logging.INFO, "admission", pod="café-5d8f", path="a\\b")
    assert out.getvalue().rstrip("\n").split(" ", 3)[3] == 'pod=café-5d8f path="a\\\\b"'
