"""Log formats of `serve`: key=value text for people, one JSON object per line for pipelines."""

from __future__ import annotations

import io
import json
import logging

import pytest

from generator import logs


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
