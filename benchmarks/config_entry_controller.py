"""The config-entry controller at scale, against the fakes (run by `make bench`).

2,000 resources (1,000 ServiceDefaults, 500 ServiceIntentions, 500 ServiceResolvers) exist before
the controller starts. The fake Kubernetes API server (tests/fakes/kube_api.py) and the fake
Consul (tests/fakes/consul_agent.py with its /v1/config API) run in this process; the controller
is the real subcommand in a subprocess, with leader election, as the chart runs it. Printed:
seconds from start until every resource is `Synced=True`; Consul writes on the cold start and on
a no-change resync; Kubernetes writes on that resync; the controller's peak RSS.
Aims (issue 12): ≤ 20 s, ≤ 200 MiB, zero writes on a no-change resync.
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

from generator.configentries import ALL  # noqa: E402
from benchmarks.procstat import peak_rss_mib  # noqa: E402
from tests.fakes.consul_agent import FakeConsul  # noqa: E402
from tests.fakes.kube_api import RESOURCES, FakeKubeAPI, Resource  # noqa: E402

GV = "consul.hashicorp.com/v1alpha1"
CRDS = tuple(Resource("consul.hashicorp.com", "v1alpha1", k.plural, k.kind, status=True) for k in ALL)
COUNTS = {"ServiceDefaults": 1000, "ServiceIntentions": 500, "ServiceResolver": 500}
RESYNC = 15.0
TIMEOUT = 300.0


def resource(kind: str, i: int) -> dict:
    name = f"svc-{i}"
    spec: dict = {"ServiceDefaults": {"protocol": "http"},
                  "ServiceIntentions": {"destination": {"name": name},
                                        "sources": [{"name": f"svc-{i + 1}", "action": "allow"}]},
                  "ServiceResolver": {"connectTimeout": "5s"}}[kind]
    return {"apiVersion": GV, "kind": kind, "metadata": {"name": name, "namespace": "apps"}, "spec": spec}


def all_synced(api: FakeKubeAPI, total: int) -> bool:
    done = 0
    for kind in COUNTS:
        for obj in api.objects(GV, kind, "apps"):
            conditions = (obj.get("status") or {}).get("conditions") or []
            done += bool(conditions and conditions[0].get("status") == "True")
    return done == total


async def main() -> None:
    tmp = Path(tempfile.mkdtemp())
    kinds = {k.kind for k in ALL}
    counts = {kind: n for kind, n in COUNTS.items() if kind in kinds}
    total = sum(counts.values())
    async with FakeKubeAPI(resources=RESOURCES + CRDS) as api, FakeConsul(1) as consul:
        for ns in ("apps", "consul"):
            api.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
        for kind, n in counts.items():
            for i in range(n):
                api.create(resource(kind, i))
        env = {**os.environ, "KUBECONFIG": str(api.kubeconfig(tmp / "kubeconfig")), "CONSUL_HTTP_ADDR": consul.address,
               "PYTHONPATH": str(ROOT)}
        env.pop("KUBERNETES_SERVICE_HOST", None)
        started = time.perf_counter()
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "generator", "controller", "--release-namespace", "consul",
            "--health-listen", "127.0.0.1:0", "--log-level", "warn", "--resync-period", str(RESYNC),
            "--set", "global.datacenter=dc1", env=env, cwd=ROOT,
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
        try:
            async with asyncio.timeout(TIMEOUT):
                while not all_synced(api, total):
                    await asyncio.sleep(0.2)
            cold = time.perf_counter() - started
            cold_writes = sum(1 for c in consul.journal if c.method in ("PUT", "DELETE"))
            while True:  # the last status writes may still be on their way: wait for quiet
                seen = len(api.journal)
                await asyncio.sleep(1.0)
                if len(api.journal) == seen:
                    break
            consul.journal.clear()
            k8s_before = [r for r in api.journal]
            await asyncio.sleep(RESYNC * 1.5)  # a measurement window spanning one resync
            consul_writes = sum(1 for c in consul.journal if c.method in ("PUT", "DELETE"))
            k8s_writes = sum(1 for r in list(api.journal)[len(k8s_before):]
                             if r.method in ("PUT", "PATCH", "POST", "DELETE") and "leases" not in r.path)
            rss = peak_rss_mib(proc.pid)
        finally:
            if proc.returncode is None:
                proc.send_signal(signal.SIGTERM)
            code = await asyncio.wait_for(proc.wait(), 60)
    what = ", ".join(f"{n:,} {kind}" for kind, n in counts.items())
    print(f"config-entry controller, {total:,} resources ({what}); fake API server and fake Consul in the "
          "benchmark's process, 2 cores shared:")
    print(f"  cold start to all Synced: {cold:.1f} s  (aim <= 20 s); Consul writes: {cold_writes}")
    print(f"  no-change resync: {consul_writes} Consul writes, {k8s_writes} Kubernetes writes  (aim: 0)")
    print(f"  controller peak RSS: {rss:.0f} MiB  (aim <= 200 MiB); exit code after SIGTERM: {code}")


if __name__ == "__main__":
    asyncio.run(main())
