"""`make run`: the webhook server answering the Consul docs' examples, as the API server calls it.

Starts `connect-inject serve` on 127.0.0.1 with a freshly generated self-signed certificate,
POSTs an AdmissionReview over HTTPS (verifying that certificate) for the pod each example
Deployment would create, plus a pod without the annotation and one with a malformed upstream,
prints each decision and a short summary of every injected pod, then stops the server with
SIGTERM, as Kubernetes does.

Then the rest of the path: the injected static-server pod, scheduled and running behind its
Service, is registered by the real `connect-inject endpoints-controller` in a stand-in Consul
client agent (tests/fakes/consul_agent.py, written from Consul's agent API), reading the pod and
its Endpoints from a stand-in Kubernetes API server (tests/fakes/kube_api.py); the demo prints
the service and proxy registrations and their checks as the agent holds them.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import signal
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import jsonpatch
import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from generator.tools.devcerts import CA, write_secret  # noqa: E402

P = "consul.hashicorp.com/"


def pod_from_deployment(path: Path) -> dict[str, Any]:
    """The pod a Deployment's ReplicaSet would create (generateName, template metadata and spec)."""
    for doc in yaml.safe_load_all(path.read_text()):
        if doc and doc.get("kind") == "Deployment":
            meta = dict(doc["spec"]["template"]["metadata"])
            meta.pop("name", None)
            meta["generateName"] = f"{doc['metadata']['name']}-7d9c6b5f4-"
            return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": doc["spec"]["template"]["spec"]}
    raise SystemExit(f"{path}: no Deployment")


def admission_review(pod: dict[str, Any]) -> bytes:
    return json.dumps({
        "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
        "request": {"uid": str(uuid.uuid4()), "kind": {"group": "", "version": "v1", "kind": "Pod"},
                    "resource": {"group": "", "version": "v1", "resource": "pods"},
                    "namespace": "default", "operation": "CREATE", "object": pod, "dryRun": False},
    }).encode()


def summary(pod: dict[str, Any]) -> list[str]:
    """What injection added, in a few lines."""
    spec = pod["spec"]
    lines = [f"init containers: {', '.join(c['name'] for c in spec.get('initContainers', []))}",
             "containers:      " + ", ".join(f"{c['name']} ({c['image']})" for c in spec["containers"])]
    init = next(c for c in spec["initContainers"] if c["name"] == "consul-connect-inject-init")
    script = " ".join(init.get("command", []))
    lines.append("transparent proxy: " + ("on (iptables redirect in the init container)"
                                          if "redirect-traffic" in script else "off"))
    app = spec["containers"][0]
    upstream_env = [e["name"] for e in app.get("env", []) if e["name"].endswith("_CONNECT_SERVICE_HOST")]
    if upstream_env:
        lines.append(f"upstream env vars on {app['name']}: {', '.join(upstream_env)}")
    status = pod["metadata"]["annotations"].get(P + "connect-inject-status")
    lines.append(f"annotation {P}connect-inject-status: {status}")
    return lines


def main() -> int:
    tmp = Path(tempfile.mkdtemp(prefix="connect-inject-demo-"))
    ca = CA("connect-inject demo CA")
    write_secret(tmp / "certs", ca.issue())
    env = {k: v for k, v in os.environ.items() if k not in ("KUBECONFIG", "KUBERNETES_SERVICE_HOST")}
    env["HOME"] = str(tmp)  # no kubeconfig: the namespace cache is off and says so
    cmd = [sys.executable, "-m", "generator", "serve", "--listen", "127.0.0.1:0", "--health-listen", "127.0.0.1:0",
           "--tls-cert-dir", str(tmp / "certs"), "--shutdown-delay", "1"]
    print("$ connect-inject serve --listen 127.0.0.1:0 --health-listen 127.0.0.1:0 --shutdown-delay 1 --tls-cert-dir", tmp / "certs")
    server = subprocess.Popen(cmd, cwd=ROOT, env=env, stderr=subprocess.PIPE, text=True)
    log: list[str] = []
    try:
        webhook, health = wait_listening(server, log)
        print(f"server listening: webhook {webhook}, health {health}/readyz\n")
        ctx = ssl.create_default_context(cadata=ca.cert_pem.decode())
        pods = [("docs: static-server", pod_from_deployment(ROOT / "examples" / "static-server.yaml")),
                ("docs: static-client", pod_from_deployment(ROOT / "examples" / "static-client.yaml"))]
        plain = json.loads(json.dumps(pods[0][1]))
        plain["metadata"]["annotations"] = {}
        bad = json.loads(json.dumps(pods[1][1]))
        bad["metadata"]["annotations"][P + "connect-service-upstreams"] = "static-server"
        pods += [("a pod without the annotation", plain), ("a malformed upstream annotation", bad)]
        injected: dict[str, Any] = {}
        for label, pod in pods:
            request = urllib.request.Request(webhook, data=admission_review(pod), method="POST",
                                             headers={"Content-Type": "application/json"})
            with urllib.request.urlopen(request, context=ctx, timeout=10) as r:
                response = json.load(r)["response"]
            name = pod["metadata"].get("generateName")
            if "patch" in response:
                ops = json.loads(base64.b64decode(response["patch"]))
                print(f"{label}: {name} -> INJECTED ({len(ops)} patch operations)")
                injected.setdefault("pod", jsonpatch.apply_patch(pod, ops))
                for line in summary(jsonpatch.apply_patch(pod, ops)):
                    print(f"    {line}")
            elif response["allowed"]:
                print(f"{label}: {name} -> allowed, not injected: {response['status']['message']}")
            else:
                print(f"{label}: {name} -> DENIED {response['status']['code']}: {response['status']['message']}")
            for warning in response.get("warnings", []):
                print(f"    warning: {warning}")
        with urllib.request.urlopen(f"{health}/metrics", timeout=10) as r:
            counts = [line for line in r.read().decode().splitlines()
                      if line.startswith("connect_inject_admission_requests_total")]
        print("\nmetrics (/metrics):\n    " + "\n    ".join(counts))
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            code = server.wait(30)
        except subprocess.TimeoutExpired:
            server.kill()
            code = server.wait()
        log += server.stderr.read().splitlines()
    print("\nserver log:\n    " + "\n    ".join(log))
    print(f"\nserver stopped by SIGTERM, exit code {code}")
    if code == 0 and injected:
        code = asyncio.run(register(injected["pod"], tmp, env))
    return code


async def register(pod: dict[str, Any], tmp: Path, env: dict[str, str]) -> int:
    """The endpoints controller registers the injected pod in a stand-in Consul agent."""
    from tests.fakes.consul_agent import FakeConsul
    from tests.fakes.kube_api import FakeKubeAPI

    pod = json.loads(json.dumps(pod))
    pod["metadata"].update(name=pod["metadata"].pop("generateName") + "x2k9q", namespace="default")
    pod["spec"]["nodeName"] = "node-1"
    pod["status"] = {"phase": "Running", "podIP": "10.244.1.7", "hostIP": "127.0.0.2"}
    service = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "static-server", "namespace": "default"},
               "spec": {"clusterIP": "10.96.0.42", "ports": [{"port": 80, "targetPort": 8080}]}}
    endpoints = {"apiVersion": "v1", "kind": "Endpoints", "metadata": {"name": "static-server", "namespace": "default"},
                 "subsets": [{"addresses": [{"ip": "10.244.1.7", "nodeName": "node-1", "targetRef": {
                     "kind": "Pod", "name": pod["metadata"]["name"], "namespace": "default"}}],
                              "ports": [{"port": 8080}]}]}
    agent_pod = {"apiVersion": "v1", "kind": "Pod",
                 "metadata": {"name": "consul-client-abcde", "namespace": "consul",
                              "labels": {"app": "consul", "component": "client", "release": "consul"}},
                 "spec": {"nodeName": "node-1", "containers": [{"name": "consul"}]},
                 "status": {"phase": "Running", "podIP": "127.0.0.2", "hostIP": "127.0.0.2"}}
    async with FakeKubeAPI() as api, FakeConsul(["127.0.0.2"], nodes=["node-1"]) as consul:
        for obj in ({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "default"}},
                    {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "consul"}},
                    agent_pod, pod, service, endpoints):
            api.create(obj)
        print(f"\nstand-in Kubernetes API server (a fake, not a cluster): {api.url}")
        print(f"stand-in Consul client agent on node-1 (a fake, not Consul): {consul.address}")
        print("$ CONSUL_HTTP_ADDR=" + consul.address + " connect-inject endpoints-controller --release-name consul "
              "--release-namespace consul --no-leader-elect --set connectInject.enabled=true")
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "generator", "endpoints-controller", "--release-name", "consul",
            "--release-namespace", "consul", "--no-leader-elect", "--health-listen", "127.0.0.1:0",
            "--set", "connectInject.enabled=true",
            env={**env, "KUBECONFIG": str(api.kubeconfig(tmp / "kubeconfig")), "CONSUL_HTTP_ADDR": consul.address},
            cwd=ROOT, stderr=asyncio.subprocess.PIPE)
        agent = consul.agent(0)
        name = pod["metadata"]["name"]
        try:
            await consul.wait_for(lambda: agent.check(f"default/{name}-static-server/kubernetes-health-check")
                                  is not None and agent.service(f"{name}-static-server-sidecar-proxy") is not None, 30)
        finally:
            proc.send_signal(signal.SIGTERM)
            code = await asyncio.wait_for(proc.wait(), 30)
        print("\nregistered in the stand-in agent (GET /v1/agent/services):")
        for sid, svc in sorted(agent.service_views().items()):
            line = f"    {sid}: service {svc['Service']} at {svc['Address']}:{svc['Port']}"
            if svc.get("Kind") == "connect-proxy":
                proxy = svc["Proxy"]
                line += (f", proxy of {proxy['DestinationServiceID']} (mode {proxy.get('Mode') or 'default'}, "
                         f"upstreams {[u['DestinationName'] for u in proxy.get('Upstreams') or []]})")
            print(line)
        print("checks (GET /v1/agent/checks):")
        for cid, chk in sorted(agent.check_views().items()):
            print(f"    {cid}: {chk['Name']} {chk['Status']} ({chk['Output'] or chk['Type']})")
        log = (await proc.stderr.read()).decode().splitlines() if proc.stderr else []
        print("\ncontroller log:\n    " + "\n    ".join(log))
        print(f"\ncontroller stopped by SIGTERM, exit code {code}")
        return code


def wait_listening(server: subprocess.Popen, log: list[str]) -> tuple[str, str]:
    """Read the server's log until it says where it listens (bounded)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        line = server.stderr.readline()
        if not line:
            raise SystemExit("the server exited before listening:\n" + "\n".join(log))
        log.append(line.rstrip())
        found = re.search(r" listening webhook=(\S+) health=(\S+)/readyz", line)
        if found:
            return found.group(1), found.group(2)
    raise SystemExit("the server did not start listening within 30 s")


if __name__ == "__main__":
    sys.exit(main())
