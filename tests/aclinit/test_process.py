"""The real `connect-inject acl-init` process, as the chart's Job runs it: KUBECONFIG to the fake
Kubernetes API (tests/fakes/kube_api.py + kube_accounts.py), CONSUL_HTTP_ADDR to the fake Consul
with ACLs (tests/fakes/consul_agent.py + consul_acl.py), the management token read from the
Consul release's Secret. Both fakes run on loopback in this test's event loop."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

from tests.aclinit.test_acl_init import C, NS, OUR_SA, ROOT_TOKEN, install_consul_release
from tests.fakes import kube_accounts as accounts
from tests.fakes.consul_agent import FakeConsul
from tests.fakes.kube_api import RESOURCES, FakeKubeAPI

ROOT = Path(__file__).resolve().parents[2]


async def acl_init(env: dict[str, str], *args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "generator", "acl-init", "--consul-release", "consul", "--namespace", NS,
        "--auth-method-service-account", OUR_SA, "--set", "connectInject.enabled=true",
        "--set", "global.acls.manageSystemACLs=true", *args, env=env, cwd=ROOT,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_the_subcommand_creates_then_leaves_everything_unchanged(tmp_path: Path) -> None:
    """Fakes: kube_api + kube_accounts (KUBECONFIG), consul_agent + consul_acl (CONSUL_HTTP_ADDR)."""
    async with FakeKubeAPI(resources=RESOURCES + accounts.ACCOUNTS) as api, \
            FakeConsul(1, acl_enabled=True, master_token=ROOT_TOKEN) as consul:
        install_consul_release(api)
        env = {**os.environ, "KUBECONFIG": str(api.kubeconfig(tmp_path / "kubeconfig", namespace=NS)),
               "CONSUL_HTTP_ADDR": consul.address, "PYTHONPATH": str(ROOT)}
        for name in ("KUBERNETES_SERVICE_HOST", "CONSUL_HTTP_TOKEN", "CONSUL_HTTP_TOKEN_FILE"):
            env.pop(name, None)
        code, out, err = await acl_init(env)
        assert code == 0, err
        assert out.splitlines() == [
            f"created auth-method {C}-k8s-auth-method",
            out.splitlines()[1],
            "created policy connect-inject-token",
            f"created secret {NS}/{C}-connect-inject-acl-token: token for policy connect-inject-token",
        ]
        assert out.splitlines()[1].startswith(f"created binding-rule {C}-k8s-auth-method: ")
        consul.clear_journal()
        code, out, err = await acl_init(env)
        assert code == 0, err
        assert all(line.startswith("unchanged ") for line in out.splitlines()) and len(out.splitlines()) == 4
        assert consul.writes() == []

        code, out, err = await acl_init({**env, "CONSUL_HTTP_TOKEN": "wrong"})
        assert code == 1 and out == ""
        assert "the management token from CONSUL_HTTP_TOKEN is not known to Consul" in err
        assert "set CONSUL_HTTP_TOKEN to the Consul release's bootstrap token" in err
