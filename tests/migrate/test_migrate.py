"""`connect-inject migrate`: the takeover of a Consul chart release, step by step.

Every test runs against the fake Kubernetes API server tests/fakes/kube_api.py (written from the
Kubernetes API conventions; served over real HTTP on loopback, read through the official client),
seeded by tests/migrate/consul_state.py with a cluster as consul-k8s v0.37.0's chart leaves it. The
user's `helm upgrade`s between two runs are played by consul_state.py as Helm performs them
(objects dropped from a manifest are deleted unless the live object says keep). The command runs
in process (in a worker thread, the fake on the test's event loop) except in the process test.
"""

from __future__ import annotations

import asyncio
import io
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from kubernetes import client

from generator.kube.client import api_client_for
from generator.migrate.cluster import CRD_NAMES, Cluster, MigrateError
from generator.migrate.command import run
from tests.fakes.kube_api import FakeKubeAPI
from tests.migrate import consul_state as cs

ROOT = Path(__file__).resolve().parents[2]
CRD = "apiextensions.k8s.io/v1"


@pytest.fixture
async def api() -> AsyncIterator[FakeKubeAPI]:
    async with FakeKubeAPI(resources=cs.MIGRATE_RESOURCES) as kube:
        yield kube


async def migrate(api: FakeKubeAPI, apply: bool = False, namespace: str = cs.NS,
                  release: str = cs.RELEASE) -> tuple[int, str]:
    """Run the command in process; (exit code, stdout), or (1, the message) as main() prints it."""
    cfg = client.Configuration()
    cfg.host = api.url
    out = io.StringIO()
    api_client = api_client_for(cfg)
    try:
        code = await asyncio.to_thread(run, Cluster(api_client), release, namespace, apply=apply, out=out)
    except MigrateError as exc:
        return 1, str(exc)
    finally:
        api_client.close()
    return code, out.getvalue()


def writes(api: FakeKubeAPI) -> list[str]:
    return [f"{r.method} {r.path}" for r in api.journal if r.method not in ("GET", "HEAD")]


def crd_meta(api: FakeKubeAPI, name: str) -> dict:
    obj = api.get(CRD, "CustomResourceDefinition", None, name)
    assert obj is not None
    return obj["metadata"]


def step_line(text: str, number: int) -> str:
    return next(line for line in text.splitlines() if line.startswith(f"Step {number}/"))


async def test_dry_run_prints_every_step_and_changes_nothing(api: FakeKubeAPI) -> None:
    """Fake: kube_api.py seeded with the Consul release (injector, controller, ten CRDs, ACLs)."""
    cs.seed_consul(api)
    code, out = await migrate(api)
    assert code == 0, out
    assert writes(api) == []
    assert 'Consul release "consul" in namespace "consul" (its objects are named consul-consul-*)' in out
    assert "injector:      active" in out and "controller:    active" in out
    assert "10 of 10 consul.hashicorp.com CRDs, 10 owned by the Consul release, 0 by ours; 3 custom resource(s)" in out
    assert "injected pods: 2 (2 managed by an endpoints controller)" in out
    assert out.count("Step ") == 8 and "Option A" in out
    assert "[next, migrate --apply does it]" in step_line(out, 1)
    assert "kubectl annotate crd ingressgateways.consul.hashicorp.com" in out
    assert "[to do, migrate --apply does it]" in step_line(out, 2)
    assert "helm install <ours> <our chart> -n consul -f <your values.yaml> --set global.consulRelease=consul " \
           "--set global.consulReleaseSideBySide=true --set controller.enabled=false" in out
    assert "--take-ownership" in out  # step 6 names Helm's own way
    assert "helm upgrade consul hashicorp/consul -n consul --reuse-values --set 'connectInject.k8sAllowNamespaces={}'" \
        in out  # how to choose option B instead
    assert out.rstrip().endswith("Dry run: nothing was changed. Next: step 1 (run again with --apply to do it).")


async def test_option_a_applied_step_by_step_then_a_second_apply_is_all_done(api: FakeKubeAPI) -> None:
    """Fake: kube_api.py with the Consul release; between runs the user's helm commands as Helm
    performs them (consul_state.py): our install, the Consul upgrade that turns injector and
    controller off, our upgrade (acl-init re-run), our controller on."""
    cs.seed_consul(api)
    uids = {n: crd_meta(api, n)["uid"] for n in CRD_NAMES}

    # Steps 1 and 2 are ours: keep on the CRDs and on the auth-method ServiceAccount and RBAC.
    code, out = await migrate(api, apply=True)
    assert code == 0, out
    assert "done now, checked: 10 object(s) read back with helm.sh/resource-policy" in step_line(out, 1)
    assert "done now, checked: 4 object(s) read back with helm.sh/resource-policy" in step_line(out, 2)
    assert "[next: yours to run]" in step_line(out, 3) and "Stopped at step 3" in out
    assert all(crd_meta(api, n)["annotations"]["helm.sh/resource-policy"] == "keep" for n in CRD_NAMES)
    sa = api.get("v1", "ServiceAccount", cs.NS, f"{cs.C}-connect-injector-authmethod-svc-account")
    assert sa is not None and sa["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    assert all(p.startswith("PATCH ") for p in writes(api)) and len(writes(api)) == 14

    # Step 3: the user installs ours; step 4: the Consul release turns its injector and controller off.
    cs.install_ours(api)
    code, out = await migrate(api, apply=True)
    assert "[already done]" in step_line(out, 3)
    assert "[next: yours to run]" in step_line(out, 4)
    cs.consul_injector_and_controller_off(api)
    # keep worked: CRDs (same objects), their resources and the auth-method ServiceAccount are still there.
    assert {n: crd_meta(api, n)["uid"] for n in CRD_NAMES} == uids
    assert len(api.objects(cs.GV, "ServiceDefaults")) == 2
    assert api.get("v1", "ServiceAccount", cs.NS, f"{cs.C}-connect-injector-authmethod-svc-account") is not None
    code, out = await migrate(api, apply=True)
    assert "[already done]" in step_line(out, 4)
    assert "[next: yours to run]" in step_line(out, 5)
    assert "our acl-init last ran before the Consul release's latest revision" in out

    # Step 5: our upgrade re-runs acl-init; step 6 (ours) moves the CRDs; step 7 is the user's.
    cs.upgrade_ours(api)
    before = len(writes(api))
    code, out = await migrate(api, apply=True)
    assert code == 0, out
    assert "[already done]" in step_line(out, 5)
    assert "done now, checked: 10 object(s) read back with app.kubernetes.io/managed-by, " \
           "meta.helm.sh/release-name, meta.helm.sh/release-namespace" in step_line(out, 6)
    assert "[next: yours to run]" in step_line(out, 7)
    assert len(writes(api)) - before == 10
    for n in CRD_NAMES:
        meta = crd_meta(api, n)
        assert meta["annotations"]["meta.helm.sh/release-name"] == cs.OURS
        assert meta["annotations"]["meta.helm.sh/release-namespace"] == cs.NS
        assert meta["labels"]["app.kubernetes.io/managed-by"] == "Helm"
        assert meta["uid"] == uids[n]
    cs.our_controller_on(api)  # Helm's ownership check now passes

    code, out = await migrate(api, apply=True)
    assert code == 0 and out.rstrip().endswith("Every step is done: the migration is complete.")
    # A second run: every step already done (the optional clean-up is the user's), nothing written.
    before = len(writes(api))
    code, out = await migrate(api, apply=True)
    assert code == 0
    assert [("already done" in step_line(out, i)) for i in range(1, 8)] == [True] * 7
    assert "[optional, not done]" in step_line(out, 8)
    assert f"kubectl delete serviceaccount -n consul {cs.C}-connect-injector-authmethod-svc-account" in out
    assert len(writes(api)) == before
    assert len(api.objects(cs.GV, "ServiceDefaults")) == 2  # nothing deleted, ever


async def test_without_acls_or_controller_those_steps_are_not_needed(api: FakeKubeAPI) -> None:
    """Fake: kube_api.py with a Consul release that has only its injector (no ACLs, no CRDs)."""
    cs.seed_consul(api, acls=False, controller=False)
    code, out = await migrate(api, apply=True)
    assert code == 0
    for number in (1, 2):
        assert "[not needed]" in step_line(out, number)
    assert "[next: yours to run]" in step_line(out, 3)
    assert writes(api) == []


async def test_gateways_choose_option_b_and_apply_walks_it(api: FakeKubeAPI) -> None:
    """Fake: kube_api.py with the Consul release plus a mesh gateway Deployment (gateways need the
    Consul injector on: option B); the user's helm commands played between runs."""
    cs.seed_consul(api, gateways=True)
    code, out = await migrate(api)
    assert "Option B" in out and "consul-consul-mesh-gateway" in out and out.count("Step ") == 6
    assert "--set 'connectInject.k8sAllowNamespaces={}'" in out
    code, out = await migrate(api, apply=True)
    assert "done now" in step_line(out, 1) and "[next: yours to run]" in step_line(out, 2)
    cs.idle_consul_injector(api)
    cs.install_ours(api)
    code, out = await migrate(api, apply=True)
    assert "injector:      idle" in out
    assert [("already done" in step_line(out, i)) for i in (1, 2, 3)] == [True] * 3
    assert "[next: yours to run]" in step_line(out, 4)
    cs.consul_controller_off(api)
    code, out = await migrate(api, apply=True)
    assert "done now" in step_line(out, 5) and "[next: yours to run]" in step_line(out, 6)
    cs.our_controller_on(api)
    code, out = await migrate(api, apply=True)
    assert code == 0 and "Every step is done" in out
    # The Consul injector stays (idled): migrate removed nothing.
    assert api.get("admissionregistration.k8s.io/v1", "MutatingWebhookConfiguration", None,
                   f"{cs.C}-connect-injector-cfg") is not None


async def test_crds_owned_by_an_unknown_release_stop_before_any_change(api: FakeKubeAPI) -> None:
    """Fake: kube_api.py with the Consul release, one CRD re-owned by a release "platform"."""
    cs.seed_consul(api)
    api.patch(CRD, "CustomResourceDefinition", None, "servicedefaults.consul.hashicorp.com",
              {"metadata": {"annotations": {"meta.helm.sh/release-name": "platform",
                                            "meta.helm.sh/release-namespace": "infra"}}})
    code, message = await migrate(api, apply=True)
    assert code == 1
    assert message.startswith('CustomResourceDefinition servicedefaults.consul.hashicorp.com is owned by Helm release '
                              '"platform" in namespace "infra", neither the Consul release "consul" in "consul"')
    assert "run migrate with --consul-release platform --namespace infra" in message
    assert "kubectl annotate crd servicedefaults.consul.hashicorp.com meta.helm.sh/release-name=consul" in message
    assert writes(api) == []


async def test_a_consul_release_elsewhere_is_named_with_its_namespace(api: FakeKubeAPI) -> None:
    """Fake: kube_api.py with the Consul release in "consul", migrate pointed at "default"."""
    cs.seed_consul(api)
    code, message = await migrate(api, apply=True, namespace="default")
    assert code == 1
    assert message.startswith('the Consul release "consul" is not in namespace "default": its objects say namespace '
                              '"consul"') and "--namespace consul" in message
    code, message = await migrate(api, release="hashicorp")
    assert code == 1 and 'no object of a Helm release "hashicorp" in namespace "consul"' in message
    assert writes(api) == []


async def test_a_concurrent_change_is_a_conflict_not_an_overwrite(api: FakeKubeAPI) -> None:
    """Fake: kube_api.py with the Consul release; the first CRD PATCH answered 409 as the API
    server answers a stale resourceVersion."""
    cs.seed_consul(api)
    api.fail(409, times=1, method="PATCH", path="customresourcedefinitions")
    code, message = await migrate(api, apply=True)
    assert code == 1
    assert "CustomResourceDefinition ingressgateways.consul.hashicorp.com failed: HTTP 409" in message
    assert "run migrate again" in message
    code, out = await migrate(api, apply=True)  # the retry the message asks for completes the step
    assert code == 0 and "done now" in step_line(out, 1)


async def test_the_real_subcommand_reads_kubeconfig(api: FakeKubeAPI, tmp_path: Path) -> None:
    """Fake: kube_api.py with the Consul release, reached by `python -m generator migrate` through
    KUBECONFIG (context namespace "consul", so --namespace may be left out)."""
    cs.seed_consul(api)
    env = {**os.environ, "KUBECONFIG": str(api.kubeconfig(tmp_path / "kubeconfig", namespace=cs.NS)),
           "PYTHONPATH": str(ROOT)}
    env.pop("KUBERNETES_SERVICE_HOST", None)

    async def cli(*args: str) -> tuple[int, str, str]:
        proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "generator", "migrate", *args, env=env,
                                                    cwd=ROOT, stdout=asyncio.subprocess.PIPE,
                                                    stderr=asyncio.subprocess.PIPE)
        out, err = await asyncio.wait_for(proc.communicate(), 60)
        assert proc.returncode is not None
        return proc.returncode, out.decode(), err.decode()

    code, out, err = await cli("--consul-release", "consul")
    assert (code, err) == (0, ""), err
    assert "Dry run: nothing was changed" in out and writes(api) == []
    code, out, err = await cli("--consul-release", "consul", "--apply")
    assert code == 0, err
    assert crd_meta(api, "meshes.consul.hashicorp.com")["annotations"]["helm.sh/resource-policy"] == "keep"
    code, out, err = await cli("--consul-release", "consul", "--namespace", "default")
    assert code == 1 and err.startswith('connect-inject migrate: the Consul release "consul" is not in namespace')
    env.pop("KUBECONFIG")
    env["HOME"] = str(tmp_path)  # no ~/.kube/config either
    code, out, err = await cli("--consul-release", "consul")
    assert code == 2 and "no cluster: set KUBECONFIG" in err
