"""mypy over the whole `generator` package, as configured in pyproject.toml (issue 10): every
function typed, no type error. Run by `make test` like any other test, so a red type check is a
red build."""

from __future__ import annotations

from pathlib import Path

from mypy import api

ROOT = Path(__file__).resolve().parent.parent


def test_the_package_type_checks():
    out, err, code = api.run(["--config-file", str(ROOT / "pyproject.toml"), "--no-incremental",
                              "--cache-dir", "/dev/null", str(ROOT / "generator")])
    assert code == 0, out + err
