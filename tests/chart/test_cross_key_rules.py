"""The chart's `fail` guards and the engine's cross-key rules say the same thing for the same values
(issue 10: one source for each fact, proven both ways).

For each rule, a values file that breaks only that rule goes through `check-values`' loader and
through Helm (Helm 4 in process and the Helm 3 binary): both refuse it, and Helm's message is the
engine's, without the `path:` prefix the engine adds.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from generator.values import config as config_mod
from generator.base.errors import ConfigError
from helmrender import RenderError, render

CASES = {
    "client.enabled": {"client": {"enabled": False}},
    "client.grpc": {"client": {"grpc": False}},
    "mirroringK8S": {"connectInject": {"consulNamespaces": {"mirroringK8S": True}}},
    "adminPartitions": {"global": {"adminPartitions": {"enabled": True}}},
    "centralConfig.enabled": {"connectInject": {"centralConfig": {"enabled": False}}},
    "centralConfig.defaultProtocol": {"connectInject": {"centralConfig": {"defaultProtocol": "http"}}},
    "centralConfig.proxyDefaults": {"connectInject": {"centralConfig": {"proxyDefaults": '{"config": {}}'}}},
    "imageEnvoy": {"connectInject": {"imageEnvoy": "envoyproxy/envoy:v1.18.4"}},
    "lifecycleSidecarContainer": {"global": {"lifecycleSidecarContainer": {"resources": {"limits": {"cpu": "1"}}}}},
    "bootstrapACLs": {"global": {"bootstrapACLs": True}},
    "k8sDenyNamespaces": {"connectInject": {"k8sDenyNamespaces": ["*"]}},
    "reserved destination namespace": {"global": {"enableConsulNamespaces": True},
                                       "connectInject": {"consulNamespaces": {"consulDestinationNamespace": "system"}}},
    "reserved partition": {"global": {"enableConsulNamespaces": True, "adminPartitions": {"enabled": True, "name": "root"}}},
}


def _engine_problems(values: dict, tmp_path: Path) -> list[str]:
    path = tmp_path / "values.json"
    path.write_text(json.dumps(values))
    with pytest.raises(ConfigError) as exc:
        config_mod.load([path], check_only=[])
    return exc.value.problems


@pytest.mark.parametrize("case", sorted(CASES))
def test_chart_and_engine_refuse_with_the_same_message(case, tmp_path, helm):
    values = {**CASES[case], "connectInject": {**CASES[case].get("connectInject", {}), "enabled": True}}
    (problem,) = _engine_problems(values, tmp_path)
    path, _, message = problem.partition(": ")
    with pytest.raises(RenderError) as exc:
        render([values], helm=helm)
    assert message in str(exc.value) or problem in str(exc.value), f"{case}: Helm said {exc.value}"
