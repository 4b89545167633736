"""In-process `review()` cost and `connect-inject inject` wall time (run by `make bench`).

- typical: the Consul docs' static-server pod (examples/static-server.yaml) with two upstreams,
  transparent proxy (the default) and metrics + merging on: design.md's target is a median of
  at most 0.5 ms;
- env: the same pod with 100, 1,000 and 5,000 env vars in its container;
- spec: pods of ~16 KB, ~64 KB and ~120 KB (the largest whose original-pod copy fits the
  256 KiB Kubernetes allows for annotations) (more containers, each with ports, probes, env and
  mounts), to show cost grows linearly with size (the summary prints cost per KB);
- cli: `connect-inject inject -f examples/static-server.yaml`, a whole process per round.

Each benchmark also checks the answer (injected, with a patch), so a fast wrong answer cannot pass.
The same AdmissionReview is reviewed every round: review() does not modify its input (tests/test_fuzz.py
checks that), and rendered templates are cached by text, as they are for pods of one workload.
"""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from engine_helpers import P, admission, load_config
from generator.inject import render
from generator.inject.review import review

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "static-server.yaml"
METRICS = ("connectInject.metrics.defaultEnabled=true", "connectInject.metrics.defaultEnableMerging=true")


def static_server_pod() -> dict:
    """The pod the docs' static-server Deployment creates, with upstreams added."""
    deployment = next(d for d in yaml.safe_load_all(EXAMPLE.read_text()) if d and d.get("kind") == "Deployment")
    template = copy.deepcopy(deployment["spec"]["template"])
    template["metadata"]["annotations"][P + "connect-service-upstreams"] = "static-client:1234,db:5432:dc2"
    template["metadata"]["namespace"] = "default"
    return {"apiVersion": "v1", "kind": "Pod", "metadata": template["metadata"], "spec": template["spec"]}


def with_env(pod: dict, count: int) -> dict:
    pod = copy.deepcopy(pod)
    pod["spec"]["containers"][0]["env"] = [{"name": f"SETTING_{i}", "value": f"value-{i}"} for i in range(count)]
    return pod


def app_container(index: int) -> dict:
    """A ~2 KB container: named ports, three HTTP probes, 20 env vars, two mounts."""
    return {
        "name": f"app-{index}",
        "image": f"registry.example.com/team/app-{index}:1.2.3",
        "args": ["--listen=:8080", "--metrics=:9102", f"--instance={index}"],
        "ports": [{"name": f"http-{index}"[:15], "containerPort": 8080 + index}, {"containerPort": 9102, "protocol": "TCP"}],
        "env": [{"name": f"APP_{index}_SETTING_{i}", "value": f"some configuration value {i}"} for i in range(20)],
        "livenessProbe": {"httpGet": {"path": "/healthz", "port": 8080 + index}, "periodSeconds": 10},
        "readinessProbe": {"httpGet": {"path": "/ready", "port": 8080 + index}, "periodSeconds": 5},
        "startupProbe": {"httpGet": {"path": "/started", "port": 8080 + index}, "failureThreshold": 30},
        "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"cpu": "1", "memory": "512Mi"}},
        "volumeMounts": [{"name": "data", "mountPath": f"/data/{index}"}, {"name": "config", "mountPath": "/etc/app", "readOnly": True}],
    }


def sized_pod(target_bytes: int) -> dict:
    pod = copy.deepcopy(static_server_pod())
    pod["spec"]["volumes"] = [{"name": "data", "emptyDir": {}}, {"name": "config", "configMap": {"name": "app"}}]
    index = 0
    while spec_bytes(pod) < target_bytes:
        pod["spec"]["containers"].append(app_container(index))
        index += 1
    return pod


def spec_bytes(pod: dict) -> int:
    return len(json.dumps(pod, separators=(",", ":")))


def bench_review(benchmark, pod: dict, config) -> None:
    request = admission(pod, "default")
    result = benchmark(review, request, config)
    assert result.outcome == "injected" and result.review["response"]["patchType"] == "JSONPatch", result.review["response"]


@pytest.fixture(scope="module")
def config():
    return load_config(*METRICS)


def test_review_typical_pod(benchmark, config, record):
    benchmark.group = "review: typical"
    bench_review(benchmark, static_server_pod(), config)
    record(benchmark, "typical", "static-server, upstreams, tproxy, metrics")


def test_review_typical_pod_cold_template_cache(benchmark, config, record):
    """The first pod of a workload: rendered text is not yet in the YAML parse cache."""
    benchmark.group = "review: typical"
    request = admission(static_server_pod(), "default")
    clear = getattr(getattr(render, "_parse_cached", None), "cache_clear", None)
    if clear is None:
        pytest.skip("generator.inject.render has no _parse_cached cache to clear")

    def setup():
        clear()
        return (request, config), {}

    result = benchmark.pedantic(review, setup=setup, rounds=300, warmup_rounds=5)
    assert result.outcome == "injected", result.review["response"]
    record(benchmark, "typical", "same, cold template cache")


@pytest.mark.parametrize("count", [100, 1_000, 5_000])
def test_review_env_vars(benchmark, config, record, count):
    benchmark.group = "review: env vars"
    bench_review(benchmark, with_env(static_server_pod(), count), config)
    record(benchmark, "env", f"{count:,} env vars", count, "var")


@pytest.mark.parametrize("kilobytes", [16, 64, 120])
def test_review_spec_size(benchmark, config, record, kilobytes):
    benchmark.group = "review: spec size"
    pod = sized_pod(kilobytes * 1024)
    bench_review(benchmark, pod, config)
    record(benchmark, "spec", f"~{kilobytes} KB ({len(pod['spec']['containers'])} containers)", spec_bytes(pod) // 1024, "KB")


def test_cli_inject_static_server(benchmark, record):
    benchmark.group = "cli"
    cli = Path(sys.executable).parent / "connect-inject"
    command = [str(cli), "inject", "-f", str(EXAMPLE)]

    def run():
        return subprocess.run(command, capture_output=True, text=True, timeout=60)

    proc = benchmark.pedantic(run, rounds=5, iterations=1, warmup_rounds=1)
    assert proc.returncode == 0, proc.stderr
    assert "envoy-sidecar" in proc.stdout and "consul-connect-inject-init" in proc.stdout
    record(benchmark, "cli", "connect-inject inject static-server.yaml")
