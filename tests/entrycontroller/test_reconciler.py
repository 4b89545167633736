"""Each branch of the config-entry reconcile (reference crd-controller §2), as the reference's
configentry_controller_test.go exercises them.

Consul: the fake of tests/fakes/consul_agent.py (its /v1/config API follows Consul's documented
config-entry endpoints), real HTTP on 127.0.0.2, through our real Consul client. Kubernetes: a
dict standing in for the watch caches and the API writes (the process tests use the fake API).
"""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator, Mapping
from typing import Any

import pytest

from generator.configentries import KINDS, Kind
from generator.consul.client import Consul
from generator.consul.config import ConsulConfig
from generator.entrycontroller.reconciler import FINALIZER, Reconciler, Settings, SyncFailed
from tests.fakes.consul_agent import FakeConsul

SD = KINDS["ServiceDefaults"]
DC_META = {"consul.hashicorp.com/source-datacenter": "dc1", "external-source": "kubernetes"}


class Cluster:
    """The resources, with the writes the reconcile makes applied as the API server would."""

    def __init__(self, *objs: dict[str, Any]) -> None:
        self.objs = {(o["metadata"]["namespace"], o["metadata"]["name"]): copy.deepcopy(o) for o in objs}
        self.events: list[tuple[str, str]] = []

    def get(self, kind: Kind, namespace: str, name: str) -> Mapping[str, Any] | None:
        return self.objs.get((namespace, name))

    async def set_finalizers(self, kind: Kind, obj: Mapping[str, Any], finalizers: list[str]) -> None:
        key = (obj["metadata"]["namespace"], obj["metadata"]["name"])
        if not finalizers and self.objs[key]["metadata"].get("deletionTimestamp"):
            del self.objs[key]
        else:
            self.objs[key]["metadata"]["finalizers"] = finalizers

    async def set_status(self, kind: Kind, obj: Mapping[str, Any], status: dict[str, Any]) -> None:
        key = (obj["metadata"]["namespace"], obj["metadata"]["name"])
        self.objs[key].setdefault("status", {}).update(status)

    def event(self, kind: Kind, obj: Mapping[str, Any], reason: str, message: str) -> None:
        self.events.append((reason, message))

    def condition(self, name: str = "web") -> dict[str, Any]:
        return self.objs[("default", name)]["status"]["conditions"][0]


def sd(name: str = "web", protocol: str = "http", **meta: Any) -> dict[str, Any]:
    return {"apiVersion": "consul.hashicorp.com/v1alpha1", "kind": "ServiceDefaults",
            "metadata": {"name": name, "namespace": "default", **meta}, "spec": {"protocol": protocol}}


@pytest.fixture
async def fake() -> AsyncIterator[FakeConsul]:
    async with FakeConsul(1) as consul:
        yield consul


@pytest.fixture
async def consul(fake: FakeConsul) -> AsyncIterator[Consul]:
    session = Consul(ConsulConfig.from_env({"CONSUL_HTTP_ADDR": fake.address}, timeout=3.0, connect_timeout=1.0))
    yield session
    await session.close()


def writes(fake: FakeConsul) -> list[str]:
    return [f"{c.method} {c.path}" for c in fake.journal if c.method in ("PUT", "DELETE")]


async def test_create_then_no_change_writes_nothing(fake: FakeConsul, consul: Consul):
    cluster = Cluster(sd())
    reconciler = Reconciler(cluster, consul, Settings("dc1"))
    await reconciler.reconcile(SD, "default", "web")
    assert cluster.objs[("default", "web")]["metadata"]["finalizers"] == [FINALIZER]
    assert cluster.condition()["status"] == "True" and cluster.objs[("default", "web")]["status"]["lastSyncedTime"]
    assert fake.config_entry("service-defaults", "web")["Meta"] == DC_META
    fake.journal.clear()
    await reconciler.reconcile(SD, "default", "web")
    assert writes(fake) == []


async def test_a_mismatch_in_migration_is_migration_failed_and_consul_is_untouched(fake: FakeConsul, consul: Consul):
    fake.set_config_entry({"Kind": "service-defaults", "Name": "web", "Protocol": "tcp"})
    cluster = Cluster(sd(annotations={"consul.hashicorp.com/migrate-entry": "true"}))
    with pytest.raises(SyncFailed):
        await Reconciler(cluster, consul, Settings("dc1")).reconcile(SD, "default", "web")
    condition = cluster.condition()
    assert (condition["status"], condition["reason"]) == ("False", "MigrationFailedError")
    assert condition["message"].startswith("migration failed: Kubernetes resource does not match existing Consul "
                                           "config entry: consul=")
    assert fake.config_entry("service-defaults", "web")["Protocol"] == "tcp"
    assert cluster.events and cluster.events[0][0] == "MigrationFailedError"


async def test_an_entry_of_another_datacenter_is_neither_overwritten_nor_deleted(fake: FakeConsul, consul: Consul):
    fake.set_config_entry({"Kind": "service-defaults", "Name": "web", "Protocol": "http",
                           "Meta": {"consul.hashicorp.com/source-datacenter": "dc2"}})
    cluster = Cluster(sd(protocol="grpc"))
    reconciler = Reconciler(cluster, consul, Settings("dc1"))
    with pytest.raises(SyncFailed):
        await reconciler.reconcile(SD, "default", "web")
    assert cluster.condition()["reason"] == "ExternallyManagedConfigError"
    assert cluster.condition()["message"] == 'config entry managed in different datacenter: "dc2"'
    cluster.objs[("default", "web")]["metadata"]["deletionTimestamp"] = "2026-11-30T00:00:00Z"
    await reconciler.reconcile(SD, "default", "web")
    assert ("default", "web") not in cluster.objs  # finalizer removed, the resource gone
    assert fake.config_entry("service-defaults", "web")["Protocol"] == "http"  # dc2's entry kept


async def test_a_failed_delete_keeps_the_finalizer_and_says_why(fake: FakeConsul, consul: Consul):
    cluster = Cluster(sd())
    reconciler = Reconciler(cluster, consul, Settings("dc1"))
    await reconciler.reconcile(SD, "default", "web")
    cluster.objs[("default", "web")]["metadata"]["deletionTimestamp"] = "2026-11-30T00:00:00Z"
    fake.fail("/v1/config/service-defaults/web", method="DELETE", status=500, times=1)
    with pytest.raises(SyncFailed):
        await reconciler.reconcile(SD, "default", "web")
    assert cluster.objs[("default", "web")]["metadata"]["finalizers"] == [FINALIZER]
    assert cluster.condition()["reason"] == "ConsulAgentError"
    assert cluster.condition()["message"].startswith("deleting config entry from consul: Unexpected response code: 500")
    await reconciler.reconcile(SD, "default", "web")  # the fault was one-shot: the retry succeeds
    assert ("default", "web") not in cluster.objs and fake.config_entry("service-defaults", "web") is None


async def test_consuls_rejection_is_the_status_message_verbatim(fake: FakeConsul, consul: Consul):
    router = {"apiVersion": "consul.hashicorp.com/v1alpha1", "kind": "ServiceRouter",
              "metadata": {"name": "web", "namespace": "default"},
              "spec": {"routes": [{"match": {"http": {"pathPrefix": "/admin"}}, "destination": {"service": "admin"}}]}}
    cluster = Cluster(router)
    with pytest.raises(SyncFailed):
        await Reconciler(cluster, consul, Settings("dc1")).reconcile(KINDS["ServiceRouter"], "default", "web")
    condition = cluster.condition()
    assert (condition["status"], condition["reason"]) == ("False", "ConsulAgentError")
    assert condition["message"].startswith("writing config entry to consul: Unexpected response code: 500 (")
    assert "does not permit advanced routing or splitting behavior" in condition["message"]


async def test_an_invalid_resource_never_reaches_consul(fake: FakeConsul, consul: Consul):
    cluster = Cluster(sd(protocol="nope"))
    await Reconciler(cluster, consul, Settings("dc1")).reconcile(SD, "default", "web")
    condition = cluster.condition()
    assert (condition["status"], condition["reason"]) == ("False", "InvalidResource")
    assert "protocol" in condition["message"]
    assert writes(fake) == []
