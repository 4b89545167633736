"""Objects shaped like the reference's endpoints_controller_test.go fixtures (`createPod` & co)."""

from __future__ import annotations

import copy
import json
from typing import Any

from generator.endpoints.registration import build
from generator.endpoints.settings import Settings
from generator.endpoints.upstreams import ProxyDefaults

P = "consul.hashicorp.com/"
MANAGED_BY = "consul-k8s-endpoints-controller"
RESERVED = {"k8s-namespace": "default", "k8s-service-name": "service-created", "managed-by": MANAGED_BY}
# The reference's tproxy table uses these two container ports on every pod.
TEST_CONTAINER = {"name": "test", "ports": [{"name": "tcp", "containerPort": 8081}, {"name": "http", "containerPort": 8080}]}


def create_pod(name: str = "pod1", ip: str = "1.2.3.4", inject: bool = True, managed: bool = True, *,
               namespace: str = "default", annotations: dict[str, str] | None = None,
               containers: list[dict[str, Any]] | None = None, host_ip: str = "127.0.0.1") -> dict[str, Any]:
    """The reference's createPod(name, ip, inject, managed), with optional extras."""
    labels: dict[str, str] = {}
    ann: dict[str, str] = {}
    if inject:
        labels[P + "connect-inject-status"] = "injected"
        ann[P + "connect-inject-status"] = "injected"
    if managed:
        labels[P + "connect-inject-managed-by"] = MANAGED_BY
    ann.update(annotations or {})
    pod: dict[str, Any] = {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, "labels": labels, "annotations": ann},
        "spec": {"containers": copy.deepcopy(containers) if containers is not None else []},
        "status": {"podIP": ip, "hostIP": host_ip},
    }
    return pod


def endpoints(name: str = "service-created", namespace: str = "default", *, ready: list[tuple[str, str]] = (),
              not_ready: list[tuple[str, str]] = (), node: str = "test-node") -> dict[str, Any]:
    """Endpoints with one subset; addresses given as (ip, pod name)."""
    def address(ip: str, pod: str) -> dict[str, Any]:
        return {"ip": ip, "nodeName": node, "targetRef": {"kind": "Pod", "name": pod, "namespace": namespace}}

    subset: dict[str, Any] = {}
    if ready:
        subset["addresses"] = [address(ip, pod) for ip, pod in ready]
    if not_ready:
        subset["notReadyAddresses"] = [address(ip, pod) for ip, pod in not_ready]
    return {"apiVersion": "v1", "kind": "Endpoints", "metadata": {"name": name, "namespace": namespace}, "subsets": [subset]}


def service(cluster_ip: str = "10.0.0.1", ports: list[dict[str, Any]] | None = None, name: str = "test-service",
            namespace: str = "default") -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": namespace},
            "spec": {"clusterIP": cluster_ip, "ports": ports if ports is not None else [{"port": 80}]}}


def original_pod(containers: list[dict[str, Any]], name: str = "test-pod-1") -> str:
    """The `original-pod` annotation as the webhook writes it: the pod as received, as JSON."""
    return json.dumps({"metadata": {"name": name, "namespace": "default", "creationTimestamp": None},
                       "spec": {"containers": containers}, "status": {"hostIP": "127.0.0.1", "podIP": "1.2.3.4"}},
                      separators=(",", ":")) + "\n"


def register(pod: dict[str, Any], *, name: str = "service-created", namespace: str = "default", ready: bool = True,
             settings: Settings | None = None, namespace_labels: dict[str, str] | None = None,
             svc: dict[str, Any] | None = None, proxy_defaults: ProxyDefaults | None = None):
    """build() with the reference test's defaults: tproxy off unless the settings say otherwise."""
    return build(pod, endpoints_name=name, endpoints_namespace=namespace, ready=ready,
                 settings=settings if settings is not None else Settings(tproxy_default=False),
                 namespace_labels=namespace_labels, service=svc,
                 proxy_defaults=proxy_defaults if proxy_defaults is not None else ProxyDefaults.unknown())
