"""Resources as users write them (after the Consul docs' examples) are accepted by the generated
CRD schema and by the webhook's validation.

kubernetes-validate only knows built-in kinds, so a CR is checked with `jsonschema` against the
CRD's openAPIV3Schema, made strict (`additionalProperties: false` on every object with declared
properties, as `kubectl --validate=strict` reports unknown fields; `x-kubernetes-*` keys are
extensions jsonschema ignores).
"""

from __future__ import annotations

from typing import Any

import jsonschema
import pytest
import yaml

from generator import configentries as ce

SAMPLES = yaml.safe_load_all("""
apiVersion: consul.hashicorp.com/v1alpha1
kind: ServiceDefaults
metadata: {name: web}
spec:
  protocol: http
---
apiVersion: consul.hashicorp.com/v1alpha1
kind: ServiceDefaults
metadata: {name: counting}
spec:
  protocol: grpc
  meshGateway: {mode: local}
  expose:
    checks: true
    paths:
      - {path: /metrics, localPathPort: 9102, listenerPort: 20200, protocol: http}
  upstreamConfig:
    defaults:
      connectTimeoutMs: 5000
      limits: {maxConnections: 512, maxPendingRequests: 512, maxConcurrentRequests: 512}
    overrides:
      - name: dashboard
        passiveHealthCheck: {interval: 10s, maxFailures: 5}
---
apiVersion: consul.hashicorp.com/v1alpha1
kind: ProxyDefaults
metadata: {name: global}
spec:
  config:
    local_connect_timeout_ms: 1000
    handshake_timeout_ms: 10000
    envoy_prometheus_bind_addr: "0.0.0.0:9102"
  meshGateway: {mode: local}
---
apiVersion: consul.hashicorp.com/v1alpha1
kind: Mesh
metadata: {name: mesh}
spec:
  transparentProxy: {meshDestinationsOnly: true}
---
apiVersion: consul.hashicorp.com/v1alpha1
kind: PartitionExports
metadata: {name: default}
spec:
  services:
    - name: api
      namespace: default
      consumers: [{partition: web}, {partition: finance}]
---
apiVersion: consul.hashicorp.com/v1alpha1
kind: TerminatingGateway
metadata: {name: terminating-gateway}
spec:
  services:
    - name: legacy-db
      caFile: /etc/ssl/cert.pem
    - name: billing
      certFile: /etc/billing/client.crt
      keyFile: /etc/billing/client.key
      sni: billing.example.com
---
apiVersion: consul.hashicorp.com/v1alpha1
kind: ServiceSplitter
metadata: {name: web}
spec:
  splits:
    - {weight: 90, serviceSubset: v1}
    - weight: 10
      serviceSubset: v2
      requestHeaders: {set: {x-canary: "true"}}
""")
SAMPLES = [s for s in SAMPLES if s]


def strict(node: Any) -> Any:
    """The openAPIV3Schema with unknown fields refused wherever properties are declared."""
    if isinstance(node, dict):
        out = {k: strict(v) for k, v in node.items()}
        if "properties" in node and not node.get("x-kubernetes-preserve-unknown-fields"):
            out["additionalProperties"] = False
        return out
    if isinstance(node, list):
        return [strict(v) for v in node]
    return node


def schema_errors(resource: dict) -> list[str]:
    kind = ce.kind_of(resource)
    schema = strict(ce.crd(kind)["spec"]["versions"][0]["schema"]["openAPIV3Schema"])
    validator = jsonschema.Draft7Validator(schema, format_checker=jsonschema.FormatChecker())
    return [f"{'.'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(resource)]


def test_every_kind_with_a_module_has_samples():
    assert {s["kind"] for s in SAMPLES} >= {"ServiceDefaults", "ProxyDefaults", "Mesh", "PartitionExports",
                                            "TerminatingGateway", "ServiceSplitter"} & set(ce.KINDS)


@pytest.mark.parametrize("sample", [s for s in SAMPLES if s["kind"] in ce.KINDS],
                         ids=lambda s: f"{s['kind']}/{s['metadata']['name']}")
def test_sample_matches_the_crd_schema_and_passes_the_webhook(sample):
    assert schema_errors(sample) == []
    kind = ce.kind_of(sample)
    meta = ce.ConsulMeta(partitions_enabled=True, partition="default")
    ce.validate(kind, ce.defaulted(kind, sample, meta), meta)
    ce.to_consul(kind, sample, "dc1")


def test_the_strict_schema_names_a_misspelt_field_and_a_wrong_type():
    bad = {"apiVersion": ce.API_VERSION, "kind": "ServiceDefaults", "metadata": {"name": "web"},
           "spec": {"protocoll": "http", "expose": {"checks": "yes"}}}
    errors = schema_errors(bad)
    assert any(e.startswith("spec: ") and "'protocoll' was unexpected" in e for e in errors), errors
    assert any(e.startswith("spec.expose.checks: ") and "'yes' is not of type 'boolean'" in e for e in errors), errors


def test_config_is_free_form():
    sample = {"apiVersion": ce.API_VERSION, "kind": "ProxyDefaults", "metadata": {"name": "global"},
              "spec": {"config": {"anything": {"nested": [1, 2]}}}}
    assert schema_errors(sample) == []
