"""The log level the chart passes to each process is the one the settings derive.

generator/values/shared.log_level() is the rule (`<component>.logLevel`, else global.logLevel) and
each settings section carries its result; the three Deployments pass it as `--log-level`, with `trace`
(which the injected consul-sidecar takes) as `debug` (our processes log at debug, info, warn,
error). For each combination, every Deployment that runs `connect-inject` says what the section of
its component says.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from generator import values
from helmrender import render

# The section of the settings each `connect-inject` subcommand reads.
SECTION = {"serve": "injector", "endpoints-controller": "endpoints", "controller": "controller"}
CASES = {
    "defaults": {},
    "global": {"global": {"logLevel": "warn"}},
    "component": {"global": {"logLevel": "error"}, "connectInject": {"logLevel": "debug"}, "controller": {"logLevel": "warn"}},
    "trace": {"connectInject": {"logLevel": "trace"}, "controller": {"logLevel": "trace"}},
    "empty-component": {"global": {"logLevel": "trace"}, "connectInject": {"logLevel": ""}, "controller": {"logLevel": ""}},
}


def _process_level(level: str) -> str:
    return "debug" if level == "trace" else level


@pytest.mark.parametrize("case", sorted(CASES))
def test_each_deployment_passes_its_sections_log_level(case: str, helm: str | None, tmp_path: Path) -> None:
    user = {**CASES[case], "connectInject": {**CASES[case].get("connectInject", {}), "enabled": True},
            "controller": {**CASES[case].get("controller", {}), "enabled": True}}
    rendered = render([user], helm=helm)
    path = tmp_path / "values.json"
    path.write_text(json.dumps(user))
    settings = values.load([path], environ={})
    seen = {}
    for deployment in (o for o in rendered.objects if o["kind"] == "Deployment"):
        for container in deployment["spec"]["template"]["spec"]["containers"]:
            command = container.get("command") or []
            if command[:1] != ["connect-inject"] or command[1] not in SECTION:
                continue
            args = container.get("args") or []
            seen[command[1]] = args[args.index("--log-level") + 1]
    expected = {sub: _process_level(getattr(settings, section).log_level) for sub, section in SECTION.items()}
    assert seen == expected
