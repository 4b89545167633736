"""The endpoints controller at scale, against the fakes (run by `make bench`).

5,000 injected pods behind 500 Services on 10 nodes. The fake Kubernetes API server
(tests/fakes/kube_api.py) and the fake Consul client agents (tests/fakes/consul_agent.py, one per
node on 127.0.0.2-11) run in this process; the controller is the real subcommand in a
subprocess, as the chart runs it (with leader election). Printed:
- seconds from start to all 10,000 registrations (service + proxy) and 5,000 TTL checks;
- seconds for 500 pods (one per Service) turning unready to all reach `critical`;
- Consul requests per pod on the cold start, and on a no-change resync (writes and reads);
- the controller's peak RSS (VmHWM).
Aims (issue 11): cold ≤ 30 s, readiness ≤ 5 s, RSS ≤ 200 MiB, no Consul write on a no-change resync.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.procstat import peak_rss_mib  # noqa: E402
from tests.fakes.consul_agent import FakeConsul  # noqa: E402
from tests.fakes.kube_api import FakeKubeAPI  # noqa: E402

P = "consul.hashicorp.com/"
NODES = 10
SERVICES = 500
PODS_PER_SERVICE = 10
RESYNC = 20.0  # seconds: the no-change resync is measured after the cold start
TIMEOUT = 180.0


def node_ip(i: int) -> str:
    return f"127.0.0.{i + 2}"


def pod(svc: int, n: int) -> dict:
    node = (svc * PODS_PER_SERVICE + n) % NODES
    index = svc * PODS_PER_SERVICE + n
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": f"s{svc}-{n}", "namespace": "apps",
                         "labels": {P + "connect-inject-status": "injected",
                                    P + "connect-inject-managed-by": "consul-k8s-endpoints-controller"},
                         "annotations": {P + "connect-inject-status": "injected",
                                         P + "connect-service-upstreams": f"s{(svc + 1) % SERVICES}:{20000 + svc % 1000}"}},
            "spec": {"nodeName": f"node-{node + 1}", "containers": [{"name": "app", "ports": [{"containerPort": 8080}]}]},
            "status": {"phase": "Running", "podIP": f"10.{index // 65536}.{index // 256 % 256}.{index % 256}",
                       "hostIP": node_ip(node)}}


def endpoints(svc: int, pods: list[dict], unready: bool = False) -> dict:
    addresses = [{"ip": p["status"]["podIP"], "nodeName": p["spec"]["nodeName"],
                  "targetRef": {"kind": "Pod", "name": p["metadata"]["name"], "namespace": "apps"}} for p in pods]
    subset = {"ports": [{"port": 8080}]}
    if unready:
        subset["addresses"], subset["notReadyAddresses"] = addresses[1:], addresses[:1]
    else:
        subset["addresses"] = addresses
    return {"apiVersion": "v1", "kind": "Endpoints", "metadata": {"name": f"s{svc}", "namespace": "apps"},
            "subsets": [subset]}


def counts(consul: FakeConsul) -> tuple[int, int, int]:
    services = sum(len(a.services) for a in consul.agents)
    ttl = [c for a in consul.agents for c in a.checks.values() if c["CheckID"].endswith("/kubernetes-health-check")]
    return services, len(ttl), sum(1 for c in ttl if c["Status"] == "critical")


async def main() -> None:
    tmp = Path(tempfile.mkdtemp())
    async with FakeKubeAPI() as api, FakeConsul([node_ip(i) for i in range(NODES)],
                                                nodes=[f"node-{i + 1}" for i in range(NODES)]) as consul:
        for ns in ("apps", "consul"):
            api.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
        for i in range(NODES):
            api.create({"apiVersion": "v1", "kind": "Pod",
                        "metadata": {"name": f"consul-client-{i}", "namespace": "consul",
                                     "labels": {"app": "consul", "component": "client", "release": "consul"}},
                        "spec": {"nodeName": f"node-{i + 1}", "containers": [{"name": "consul"}]},
                        "status": {"phase": "Running", "podIP": node_ip(i), "hostIP": node_ip(i)}})
        pods = {svc: [pod(svc, n) for n in range(PODS_PER_SERVICE)] for svc in range(SERVICES)}
        for svc, members in pods.items():
            for p in members:
                api.create(p)
            api.create(endpoints(svc, members))
        env = {**os.environ, "KUBECONFIG": str(api.kubeconfig(tmp / "kubeconfig")), "CONSUL_HTTP_ADDR": consul.address,
               "PYTHONPATH": str(ROOT)}
        env.pop("KUBERNETES_SERVICE_HOST", None)
        started = time.perf_counter()
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "generator", "endpoints-controller", "--release-name", "consul",
            "--release-namespace", "consul", "--health-listen", "127.0.0.1:0", "--log-level", os.environ.get("BENCH_LOG_LEVEL", "warn"),
            "--resync-period", str(RESYNC), "--set", "connectInject.enabled=true",
            "--set", "connectInject.transparentProxy.defaultEnabled=false",
            env=env, cwd=ROOT, stdout=asyncio.subprocess.DEVNULL,
            stderr=open(os.environ["BENCH_LOG"], "wb") if os.environ.get("BENCH_LOG") else asyncio.subprocess.DEVNULL)
        pod_count = SERVICES * PODS_PER_SERVICE
        try:
            await consul.wait_for(lambda: counts(consul)[:2] == (2 * pod_count, pod_count), TIMEOUT)
            cold = time.perf_counter() - started
            cold_requests = len(consul.journal)
            # The last check updates of the cold start may still be on their way: wait for quiet.
            while True:
                seen = len(consul.journal)
                await asyncio.sleep(1.0)
                if len(consul.journal) == seen:
                    break
            # No-change resync: let one resync period pass, count what reached Consul.
            consul.journal.clear()
            await asyncio.sleep(RESYNC * 1.5)  # a measurement window, not a synchronisation
            resync_calls = list(consul.journal)
            resync_writes = sum(1 for c in resync_calls if c.method != "GET")
            # Readiness flip: the first pod of every Service turns unready.
            flipped = time.perf_counter()
            for svc, members in pods.items():
                api.replace(endpoints(svc, members, unready=True))
            await consul.wait_for(lambda: counts(consul)[2] == SERVICES, TIMEOUT)
            flip = time.perf_counter() - flipped
            rss = peak_rss_mib(proc.pid)
        finally:
            if proc.returncode is None:
                proc.send_signal(signal.SIGTERM)
            code = await asyncio.wait_for(proc.wait(), 60)
    print(f"endpoints controller, {pod_count} injected pods behind {SERVICES} Services on {NODES} nodes "
          "(fake API server and fake Consul agents in the benchmark's process, 2 cores shared):")
    print(f"  cold start to {2 * pod_count} registrations + {pod_count} TTL checks: {cold:.1f} s  (aim <= 30 s)")
    print(f"  {SERVICES} pods turning unready, all critical after: {flip:.2f} s  (aim <= 5 s)")
    print(f"  Consul requests per pod, cold: {cold_requests / pod_count:.2f}")
    print(f"  no-change resync: {resync_writes} writes, {len(resync_calls) - resync_writes} reads  (aim: 0 writes)")
    print(f"  controller peak RSS: {rss:.0f} MiB  (aim <= 200 MiB); exit code after SIGTERM: {code}")


if __name__ == "__main__":
    asyncio.run(main())
