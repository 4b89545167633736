"""Values files of every Consul chart version install this chart, and check-values agrees with Helm.

tests/data/consul-chart-defaults.json.gz holds the default values.yaml of each tagged Consul chart
version from v0.30.0 to v1.9.11 (155 tags: hashicorp/consul-helm v0.30.0-v0.32.1, hashicorp/consul-k8s
charts/consul v0.33.0-v1.9.11), parsed as Helm parses them. Each is given to this chart as a user's
`-f values.yaml`, which is how `helm get values --all` output of an existing install arrives.

Up to v0.49.8 (the architecture with client agents this injector serves) every file passes. From
v1.0.0 (consul-dataplane) the defaults turn client agents off while injection is on; this chart
refuses that with the reference v0.37 chart's own guard, and check-values says the same.
"""

from __future__ import annotations

import gzip
import json
import os
from functools import lru_cache
from pathlib import Path

import pytest

from generator.inject import engine
from generator.base.errors import ConfigError
from helmrender import RenderError, render

DATA = Path(__file__).resolve().parents[1] / "data" / "consul-chart-defaults.json.gz"
# The v0.37 chart's guards that the Consul chart's own v1.x defaults break (dataplane, no clients).
V1_RULES = {
    "client.enabled: clients must be enabled for connect injection",
    "connectInject.consulNamespaces.mirroringK8S: global.enableConsulNamespaces must be true if mirroringK8S=true",
}


@lru_cache(maxsize=1)
def defaults() -> dict[str, dict]:
    return json.loads(gzip.decompress(DATA.read_bytes()))


def _semver(version: str) -> tuple[int, ...]:
    return tuple(int(p) for p in version.lstrip("v").split("."))


VERSIONS = sorted(defaults(), key=_semver)


def check_values(values: dict, tmp_path: Path) -> tuple[list[str], list[str]]:
    """(problems, warnings) of `connect-inject check-values` for this values file."""
    path = tmp_path / "values.json"
    path.write_text(json.dumps(values))
    warnings: list[str] = []
    try:
        engine.load([path], check_only=warnings)
    except ConfigError as exc:
        return exc.problems, warnings
    return [], warnings


def helm_problem(values: dict, helm: str | None) -> str | None:
    try:
        render([values], helm=helm)
    except RenderError as exc:
        return str(exc)
    return None


def test_the_data_covers_every_version():
    assert len(VERSIONS) == 155 and VERSIONS[0] == "v0.30.0" and VERSIONS[-1] == "v1.9.11"
    assert defaults()["v0.37.0"]["global"]["imageEnvoy"] == "envoyproxy/envoy-alpine:v1.18.4"


@pytest.mark.parametrize("version", VERSIONS)
def test_check_values_accepts_every_key_of_every_version(version, tmp_path):
    problems, warnings = check_values(defaults()[version], tmp_path)
    if _semver(version) < (1, 0, 0):
        assert problems == []
    else:
        assert set(problems) <= V1_RULES and "client.enabled: clients must be enabled for connect injection" in problems
    # The sections this chart does not use are named, with the versions that had them.
    assert any(w.startswith("server: not used by this chart, ignored (a key of the Consul chart v0.30.0") for w in warnings)


# Helm renders each version on its in-process engine; the binary runs one version per minor line.
MINOR_LINES = sorted({v.rsplit(".", 1)[0]: v for v in VERSIONS}.values(), key=_semver)


@pytest.mark.parametrize("version", VERSIONS)
def test_helm_template_agrees_with_check_values_in_process(version, tmp_path):
    _agrees(version, tmp_path, None)


@pytest.mark.parametrize("version", MINOR_LINES)
def test_helm_template_agrees_with_check_values_binary(version, tmp_path):
    binary = os.environ.get("HELM")
    if not binary:
        pytest.skip("HELM is not set: `make test` fetches Helm 3 and sets it (scripts/fetch_helm.py)")
    _agrees(version, tmp_path, binary)


def _agrees(version: str, tmp_path: Path, helm: str | None) -> None:
    values = defaults()[version]
    problems, _ = check_values(values, tmp_path)
    refused = helm_problem(values, helm)
    if not problems:
        assert refused is None, f"{version}: check-values passes, Helm refuses: {refused}"
        # With injection on, the injector is rendered too (v0.30-v0.49 default it off).
        assert helm_problem({**values, "connectInject": {**values.get("connectInject", {}), "enabled": True}}, helm) is None
    else:
        assert refused is not None and "clients must be enabled for connect injection" in refused, refused


def test_a_typo_is_refused_by_both(tmp_path, helm):
    values = {**defaults()["v0.37.0"], "SyncCatalog": {"enabled": True}}
    problems, _ = check_values(values, tmp_path)
    assert problems == ['SyncCatalog: not a key of this chart nor of any Consul chart version (v0.30.0 to v1.9.11); '
                        'did you mean "syncCatalog"?']
    refused = helm_problem(values, helm)
    assert refused is not None and "SyncCatalog" in refused


def test_a_typo_inside_an_ignored_section_is_refused_by_both(tmp_path, helm):
    values = {"server": {"replcas": 3}}
    problems, _ = check_values(values, tmp_path)
    assert problems == ['server.replcas: not a key of any Consul chart version (v0.30.0 to v1.9.11); did you mean "server.replicas"?']
    assert "replcas" in (helm_problem(values, helm) or "")


def test_keys_of_other_versions_under_our_sections_are_ignored_with_their_versions(tmp_path, helm):
    values = {"apiGateway": {"enabled": False}, "grafana": {"enabled": False},
              "connectInject": {"healthChecks": {"enabled": True}, "cleanupController": {"reconcilePeriod": "5m"},
                                "cni": {"enabled": False}, "disruptionBudget": {"enabled": True},
                                "sidecarProxy": {"concurrency": 2}},
              "global": {"acls": {"partitionToken": {"secretName": None}}, "extraLabels": {"team": "a"}}}
    problems, warnings = check_values(values, tmp_path)
    assert problems == []
    assert "apiGateway: not used by this chart, ignored (a key of the Consul chart v0.40.0–v1.4.10)" in warnings
    assert "grafana: not used by this chart, ignored (a key of the Consul chart v0.31.0–v0.31.1)" in warnings
    assert "connectInject.healthChecks: not used by this chart, ignored (a key of the Consul chart v0.30.0–v0.31.1)" in warnings
    assert helm_problem(values, helm) is None
