"""The takeover guard (chart/templates/takeover-guard.yaml) against a live API server.

Fake: tests/fakes/kube_api.py (written from the Kubernetes API conventions; it serves discovery,
which Helm's `lookup` needs to resolve a kind), seeded by tests/migrate/consul_state.py with a
Consul chart release "consul" as consul-k8s v0.37.0 leaves it. Helm renders our release "mesh"
against it: the Helm binary with `template --dry-run=server` (lookup answers from the cluster) and
Helm 4's engine in process with the server's address. Offline renders never see the Consul release
(chart/tests/takeover_guard_test.yaml).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from helmrender import CHART, helm_env
from tests.fakes.kube_api import FakeKubeAPI, Resource
from tests.migrate import consul_state as cs

BESIDE = {"connectInject": {"enabled": True}, "global": {"consulRelease": cs.RELEASE}}


@pytest.fixture
async def api() -> AsyncIterator[FakeKubeAPI]:
    async with FakeKubeAPI(resources=cs.MIGRATE_RESOURCES) as kube:
        yield kube


async def render(api: FakeKubeAPI, helm: str | None, tmp_path: Path, values: dict[str, Any],
                 release: str = cs.OURS) -> tuple[bool, str]:
    """(rendered?, Helm's error text) of our chart rendered against the fake as an install would."""
    if helm is None:
        from helm_python import Chart, Config

        def in_process() -> tuple[bool, str]:
            try:
                with Chart.load(CHART) as chart, Config(kube_apiserver=api.url, namespace=cs.NS) as cfg:
                    cfg.render(chart, values, name=release, namespace=cs.NS, is_upgrade=False, revision=1)
            except Exception as exc:  # the SDK raises its own error type with Helm's message
                return False, str(exc)
            return True, ""

        return await asyncio.to_thread(in_process)
    values_file = tmp_path / "values.json"
    values_file.write_text(json.dumps(values))
    env = {**helm_env(), "KUBECONFIG": str(api.kubeconfig(tmp_path / "kubeconfig", namespace=cs.NS))}
    proc = await asyncio.create_subprocess_exec(
        helm, "template", release, str(CHART), "-n", cs.NS, "-f", str(values_file), "--dry-run=server",
        env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    _, err = await asyncio.wait_for(proc.communicate(), 120)
    return proc.returncode == 0, err.decode()


async def test_an_active_consul_injector_stops_the_install(api: FakeKubeAPI, helm: str | None, tmp_path: Path) -> None:
    cs.seed_consul(api, controller=False)
    ok, err = await render(api, helm, tmp_path, BESIDE)
    assert not ok
    assert ('the Consul release "consul" still runs its connect injector: MutatingWebhookConfiguration '
            'consul-consul-connect-injector-cfg exists, owned by Helm release "consul" (namespace "consul")') in err
    assert "helm upgrade consul ... --set connectInject.enabled=false" in err
    assert "global.consulReleaseSideBySide=true" in err


async def test_its_deployment_alone_counts_too(api: FakeKubeAPI, helm: str | None, tmp_path: Path) -> None:
    """Helm deletes the webhook configuration last on the Consul release's upgrade (§2.5): the
    Deployment may outlive it, or the reverse; either one is an active injector."""
    cs.seed_consul(api, controller=False)
    api.delete("admissionregistration.k8s.io/v1", "MutatingWebhookConfiguration", None, f"{cs.C}-connect-injector-cfg")
    ok, err = await render(api, helm, tmp_path, BESIDE)
    assert not ok and f"Deployment {cs.C}-connect-injector-webhook-deployment in namespace consul exists" in err


async def test_the_side_by_side_switch_lets_it_install(api: FakeKubeAPI, helm: str | None, tmp_path: Path) -> None:
    cs.seed_consul(api)
    values = {**BESIDE, "global": {**BESIDE["global"], "consulReleaseSideBySide": True}}
    assert await render(api, helm, tmp_path, values) == (True, "")


async def test_the_controller_is_checked_only_when_ours_is_on(api: FakeKubeAPI, helm: str | None, tmp_path: Path) -> None:
    """Option A installs our injector while the Consul controller still runs: only a second
    controller is refused."""
    cs.seed_consul(api)
    cs.consul_injector_and_controller_off(api)  # drop the injector...
    api.create(cs.deployment(f"{cs.C}-controller", "controller", ["consul-k8s-control-plane", "controller"]))
    assert await render(api, helm, tmp_path, BESIDE) == (True, "")  # ...its controller alone: fine for our injector
    ok, err = await render(api, helm, tmp_path, {**BESIDE, "controller": {"enabled": True}})
    assert not ok and f'still runs its controller: Deployment {cs.C}-controller in namespace consul exists' in err
    assert "--set controller.enabled=false" in err


async def test_after_the_consul_release_turned_them_off_it_installs(api: FakeKubeAPI, helm: str | None,
                                                                    tmp_path: Path) -> None:
    cs.seed_consul(api)
    cs.consul_injector_and_controller_off(api)
    assert await render(api, helm, tmp_path, {**BESIDE, "controller": {"enabled": True}}) == (True, "")


async def test_our_own_objects_of_the_same_name_are_not_the_other_release(api: FakeKubeAPI, helm: str | None,
                                                                         tmp_path: Path) -> None:
    """With a shared global.name both releases' objects have the same names: an upgrade of ours
    finds its own webhook configuration (owned by "mesh") and passes; the Consul one still fails."""
    api.create(cs.webhook_config("shared-connect-injector-cfg", "shared-connect-injector-svc",
                                 meta=cs.helm_meta("shared-connect-injector-cfg", cs.OURS, None)))
    values = {**BESIDE, "global": {**BESIDE["global"], "name": "shared"}}
    assert await render(api, helm, tmp_path, values) == (True, "")
    api.delete("admissionregistration.k8s.io/v1", "MutatingWebhookConfiguration", None, "shared-connect-injector-cfg")
    api.create(cs.webhook_config("shared-connect-injector-cfg", "shared-connect-injector-svc",
                                 meta=cs.helm_meta("shared-connect-injector-cfg", cs.RELEASE, None)))
    ok, err = await render(api, helm, tmp_path, values)
    assert not ok and 'shared-connect-injector-cfg exists, owned by Helm release "consul"' in err


async def test_without_consul_release_nothing_is_looked_up(api: FakeKubeAPI, helm: str | None, tmp_path: Path) -> None:
    """global.consulRelease unset (or our own name): the chart is the Consul chart's injector part."""
    cs.seed_consul(api)
    assert await render(api, helm, tmp_path, {"connectInject": {"enabled": True}}) == (True, "")
    assert not [r for r in api.journal if "mutatingwebhookconfigurations/" in r.path]


# The Consul release must be where the values say (issue 13 item 2): a cluster (kube-system answers)
# with the Consul chart's client DaemonSet <C>, labelled with its release.
AGENTS_RESOURCES = cs.MIGRATE_RESOURCES + (Resource("apps", "v1", "daemonsets", "DaemonSet", status=True),)


@pytest.fixture
async def cluster() -> AsyncIterator[FakeKubeAPI]:
    async with FakeKubeAPI(resources=AGENTS_RESOURCES) as kube:
        kube.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "kube-system"}})
        yield kube


def agents(api: FakeKubeAPI, name: str, release: str) -> None:
    api.create({"apiVersion": "apps/v1", "kind": "DaemonSet",
                "metadata": {"name": name, "namespace": cs.NS, "labels": {"app": "consul", "component": "client",
                                                                             "release": release}},
                "spec": {"selector": {"matchLabels": {"app": "consul"}}, "template": {"metadata": {"labels": {
                    "app": "consul"}}, "spec": {"containers": [{"name": "consul", "image": "consul"}]}}}})


async def test_the_named_consul_release_is_found_by_its_agents(cluster: FakeKubeAPI, helm: str | None,
                                                                tmp_path: Path) -> None:
    agents(cluster, cs.C, cs.RELEASE)
    ok, err = await render(cluster, helm, tmp_path, BESIDE)
    assert ok, err


async def test_a_missing_consul_release_is_named_with_the_fix(cluster: FakeKubeAPI, helm: str | None,
                                                              tmp_path: Path) -> None:
    """global.consulRelease left unset: our release's own name finds no agents."""
    agents(cluster, cs.C, cs.RELEASE)
    ok, err = await render(cluster, helm, tmp_path, {"connectInject": {"enabled": True}})
    assert not ok
    assert ('global.consulRelease: no Consul client agents of release "mesh" in namespace "consul" '
            '(no DaemonSet "mesh-consul"') in err
    assert "set global.consulRelease to the release name of the Consul chart" in err


async def test_a_global_name_shared_with_another_release_is_inconsistent(cluster: FakeKubeAPI, helm: str | None,
                                                                         tmp_path: Path) -> None:
    """global.name: consul makes <C> "consul" whatever the release; the agents' label says whose they are."""
    agents(cluster, "consul", cs.RELEASE)
    values = {"connectInject": {"enabled": True}, "global": {"name": "consul", "consulRelease": "other"}}
    ok, err = await render(cluster, helm, tmp_path, values)
    assert not ok
    assert ('global.consulRelease is "other" but the Consul client agents here (DaemonSet "consul") belong to '
            'release "consul" (label release=consul)') in err and "Fix: set global.consulRelease=consul" in err
