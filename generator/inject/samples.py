"""Sample pods that every template is rendered against when the Config loads.

They exercise both sides of every branch the built-in templates have (transparent proxy on and off,
metrics merging, upstreams, exclusions, Consul DNS), so a template that fails for some pod fails at
start-up instead.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Iterator

from generator.inject import annotations as ann_mod
from generator.inject.plan import Plan, make_plan
from generator.base.podcontract import SA_TOKEN_PATH
from generator.values.config import Config

P = ann_mod.PREFIX
SAMPLE_POD: dict[str, Any] = {
    "apiVersion": "v1",
    "kind": "Pod",
    "metadata": {"name": "static-server", "namespace": "default"},
    "spec": {
        "serviceAccountName": "static-server",
        "containers": [
            {
                "name": "static-server",
                "image": "hashicorp/http-echo:latest",
                "ports": [{"name": "http", "containerPort": 8080}],
                "livenessProbe": {"httpGet": {"path": "/", "port": 8080}},
                "volumeMounts": [{"name": "kube-api-access", "mountPath": SA_TOKEN_PATH, "readOnly": True}],
            }
        ],
    },
}
SAMPLE_ANNOTATIONS: tuple[dict[str, str], ...] = (
    {P + "transparent-proxy": "false", P + "enable-metrics": "false"},
    {
        P + "transparent-proxy": "true",
        P + "enable-metrics": "true",
        P + "enable-metrics-merging": "true",
        P + "connect-service-upstreams": "db:5432,api:9090:dc2",
        P + "transparent-proxy-exclude-inbound-ports": "9090",
        P + "transparent-proxy-exclude-outbound-ports": "5432",
        P + "transparent-proxy-exclude-outbound-cidrs": "10.0.0.0/8",
        P + "transparent-proxy-exclude-uids": "1000",
        P + "envoy-extra-args": "--log-level debug",
        P + "consul-dns": "false",
    },
)


def sample_contexts(config: Config) -> Iterator[tuple[Plan, dict]]:
    """(plan, pod) pairs for the sample pods under this Config."""
    for raw in SAMPLE_ANNOTATIONS:
        pod = dict(SAMPLE_POD, metadata={**SAMPLE_POD["metadata"], "annotations": raw})
        plan = make_plan(config, pod, "default", ann_mod.parse(raw, pod), {})
        if plan.tproxy:
            plan = dataclasses.replace(plan, consul_dns=True, dns_ip="10.0.0.10")
        yield plan, pod
