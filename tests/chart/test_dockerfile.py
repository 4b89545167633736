"""The webhook image's Dockerfile, checked by parsing it (no image can be built on our machines)."""

from __future__ import annotations

import fnmatch
import json
import re
import shlex
from pathlib import Path

import pytest

from helmrender import ROOT, render

DOCKERFILE = ROOT / "Dockerfile"


def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    out: list[tuple[str, str]] = []
    logical = ""
    for line in text.splitlines():
        if not logical and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if line.lstrip().startswith("#"):
            continue
        if line.rstrip().endswith("\\"):
            logical += line.rstrip()[:-1] + " "
            continue
        logical += line
        word, _, args = logical.strip().partition(" ")
        out.append((word.upper(), args.strip()))
        logical = ""
    assert not logical, "Dockerfile ends inside a continued line"
    return out


def stages(text: str) -> list[list[tuple[str, str]]]:
    result: list[list[tuple[str, str]]] = []
    for ins in instructions(text):
        if ins[0] == "FROM":
            result.append([])
        if result:
            result[-1].append(ins)
    return result


@pytest.fixture(scope="module")
def final() -> list[tuple[str, str]]:
    return stages(DOCKERFILE.read_text())[-1]


def test_instructions_are_known() -> None:
    known = {"ARG", "FROM", "WORKDIR", "COPY", "RUN", "ENV", "USER", "EXPOSE", "ENTRYPOINT", "CMD", "LABEL"}
    assert {i for i, _ in instructions(DOCKERFILE.read_text())} <= known


def test_base_images_are_slim_python() -> None:
    text = DOCKERFILE.read_text()
    default = re.search(r"^ARG PYTHON_IMAGE=(\S+)$", text, re.M).group(1)
    assert re.fullmatch(r"python:3\.1[1-9]-slim(-\w+)?", default)
    assert all(args.split()[0] == "${PYTHON_IMAGE}" for i, args in instructions(text) if i == "FROM")


def test_final_stage_runs_as_the_non_root_user_the_chart_expects(final) -> None:
    users = [args for i, args in final if i == "USER"]
    assert users, "the final stage must set USER"
    uid, _, gid = users[-1].partition(":")
    assert uid.isdigit() and int(uid) > 0 and (not gid or int(gid) > 0)
    pod = render({"connectInject": {"enabled": True}}).webhook()["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsUser"] == int(uid)


def test_entrypoint_is_connect_inject_serve(final) -> None:
    entry = [args for i, args in final if i == "ENTRYPOINT"]
    assert [json.loads(e) for e in entry] == [["connect-inject", "serve"]]
    container = render({"connectInject": {"enabled": True}}).webhook()["spec"]["template"]["spec"]["containers"][0]
    assert container["command"] == ["connect-inject", "serve"]


def test_final_stage_installs_nothing_and_writes_nothing_at_run_time(final) -> None:
    assert [i for i, _ in final if i == "RUN"] == [], "no package manager or build step in the final stage"
    env = " ".join(args for i, args in final if i == "ENV")
    assert "PYTHONDONTWRITEBYTECODE=1" in env  # the root filesystem is read-only in the chart
    copies = [args for i, args in final if i == "COPY"]
    assert copies and all(c.startswith("--from=build ") for c in copies)


def test_build_stage_drops_pip_and_precompiles() -> None:
    build = " ".join(args for i, args in stages(DOCKERFILE.read_text())[0] if i == "RUN")
    assert "pip uninstall --yes pip" in build and "compileall" in build


def test_engine_data_files_are_in_the_image_where_the_engine_looks() -> None:
    text = DOCKERFILE.read_text()
    home = re.search(r"CONNECT_INJECT_HOME=(\S+)", text).group(1)
    for src, dest in [("chart/values.yaml", "chart/values.yaml"), ("values-schema.yaml", "values-schema.yaml"),
                      ("templates", "templates")]:
        assert re.search(rf"^COPY {re.escape(src)} {re.escape(home)}/{re.escape(dest)}$", text, re.M), src


def _ignored(path: str, patterns: list[str]) -> bool:
    ignored = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        pat = pattern.lstrip("!").rstrip("/")
        if fnmatch.fnmatch(path, pat) or path.startswith(pat + "/") or fnmatch.fnmatch(path, pat.replace("**/", "*/")):
            ignored = not negate
    return ignored


def test_every_copied_source_exists_and_is_in_the_build_context() -> None:
    patterns = [line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()
                if line.strip() and not line.startswith("#")]
    for i, args in instructions(DOCKERFILE.read_text()):
        if i != "COPY" or args.startswith("--from="):
            continue
        *sources, _dest = shlex.split(args)
        for src in sources:
            assert (ROOT / src).exists(), src
            assert not _ignored(src.rstrip("/"), patterns), f"{src} is excluded by .dockerignore"
            if (ROOT / src).is_dir():
                assert any(not _ignored(str(p.relative_to(ROOT)), patterns) for p in (ROOT / src).rglob("*") if p.is_file())


def test_ports_match_the_chart(final) -> None:
    """The image exposes exactly the ports its Deployments (webhook, both controllers) declare."""
    exposed = {int(p) for i, args in final if i == "EXPOSE" for p in args.split()}
    rendered = render({"connectInject": {"enabled": True}, "controller": {"enabled": True}})
    ports = {p["containerPort"] for d in rendered.objects if d["kind"] == "Deployment"
             for c in d["spec"]["template"]["spec"]["containers"] for p in c.get("ports") or []}
    assert exposed == ports


def test_make_image_tags_the_charts_default_image() -> None:
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^image:\n\tdocker build -t \$\(IMAGE\) \.$", makefile, re.M)
    image = render({"connectInject": {"enabled": True}}).webhook()["spec"]["template"]["spec"]["containers"][0]["image"]
    chart_version = re.search(r'^appVersion: "(.*)"$', (ROOT / "chart" / "Chart.yaml").read_text(), re.M).group(1)
    assert image == f"consul-connect-inject:{chart_version}"
