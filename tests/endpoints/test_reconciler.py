"""The reconcile of one Endpoints object against Consul client agents (reference §2-§4).

Consul: the fake client agents of tests/fakes/consul_agent.py (written from Consul's agent API
documentation), real HTTP on 127.0.0.2 and 127.0.0.3, through our real Consul client. Kubernetes:
the objects a reconcile reads, from a dict (the watch caches are tested in tests/kube).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from generator.consul.client import Consul
from generator.consul.config import ConsulConfig
from generator.endpoints.reconciler import NotLeader, ReconcileFailed, Reconciler
from generator.endpoints.settings import Settings
from tests.endpoints.helpers import P, create_pod
from tests.fakes.consul_agent import FakeConsul

NODES = {"127.0.0.2": "node-1", "127.0.0.3": "node-2"}


def pod(name: str, ip: str, agent: str, **kwargs: Any) -> dict[str, Any]:
    made = create_pod(name, ip, host_ip=agent, **kwargs)
    made["spec"]["nodeName"] = NODES[agent]
    made["spec"]["containers"] = [{"name": "app", "ports": [{"name": "http", "containerPort": 8080}]}]
    return made


def endpoints(name: str, pods: list[dict[str, Any]], not_ready: tuple[str, ...] = ()) -> dict[str, Any]:
    def address(p: dict[str, Any]) -> dict[str, Any]:
        return {"ip": p["status"]["podIP"], "nodeName": p["spec"]["nodeName"],
                "targetRef": {"kind": "Pod", "name": p["metadata"]["name"], "namespace": "default"}}
    ready = [address(p) for p in pods if p["metadata"]["name"] not in not_ready]
    unready = [address(p) for p in pods if p["metadata"]["name"] in not_ready]
    subset = {k: v for k, v in (("addresses", ready), ("notReadyAddresses", unready)) if v}
    return {"metadata": {"name": name, "namespace": "default"}, "subsets": [subset] if subset else []}


class World:
    """What the watch caches would hold."""

    def __init__(self) -> None:
        self.eps: dict[str, dict[str, Any]] = {}
        self.pods: dict[str, dict[str, Any]] = {}
        self.agent_pods = dict(NODES)  # ip -> node

    def endpoints(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self.eps.get(f"{namespace}/{name}")

    def pod(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self.pods.get(f"{namespace}/{name}")

    def namespace_labels(self, namespace: str) -> dict[str, str] | None:
        return {}

    def service(self, namespace: str, name: str) -> dict[str, Any] | None:
        return None

    def agents(self) -> list[tuple[str, str]]:
        return [(node, ip) for ip, node in self.agent_pods.items()]

    def put(self, eps: dict[str, Any], *pods: dict[str, Any]) -> None:
        self.eps[f"default/{eps['metadata']['name']}"] = eps
        for p in pods:
            self.pods[f"default/{p['metadata']['name']}"] = p


@pytest.fixture
async def fake() -> AsyncIterator[FakeConsul]:
    async with FakeConsul(2) as consul:
        yield consul


@pytest.fixture
async def consul(fake: FakeConsul) -> AsyncIterator[Consul]:
    session = Consul(ConsulConfig.from_env({"CONSUL_HTTP_ADDR": fake.address}, timeout=3.0, connect_timeout=1.0))
    yield session
    await session.close()


def make(world: World, consul: Consul, **kwargs: Any) -> tuple[Reconciler, list[tuple[str, str, str]]]:
    problems: list[tuple[str, str, str]] = []
    reconciler = Reconciler(world, consul, Settings(tproxy_default=False), on_pod_problem=lambda p, reason, message:
                            problems.append((p["metadata"]["name"], reason, message)), **kwargs)
    return reconciler, problems


def writes(fake: FakeConsul) -> list[str]:
    return [f"{c.method} {c.path}" for c in fake.journal if c.method != "GET"]


async def test_cold_start_registers_service_proxy_and_check_on_each_pods_agent(fake: FakeConsul, consul: Consul):
    world = World()
    a, b = pod("web-a", "10.0.0.1", "127.0.0.2"), pod("web-b", "10.0.0.2", "127.0.0.3")
    world.put(endpoints("web", [a, b], not_ready=("web-b",)), a, b)
    reconciler, problems = make(world, consul)
    await reconciler.reconcile("default/web")
    assert problems == []
    one, two = fake.agent("127.0.0.2"), fake.agent("127.0.0.3")
    assert one.service("web-a-web")["Address"] == "10.0.0.1"
    assert one.service("web-a-web-sidecar-proxy")["Proxy"]["DestinationServiceID"] == "web-a-web"
    assert two.service("web-b-web") is not None and one.service("web-b-web") is None
    passing = one.check("default/web-a-web/kubernetes-health-check")
    assert (passing["Status"], passing["Output"]) == ("passing", "Kubernetes health checks passing")
    critical = two.check("default/web-b-web/kubernetes-health-check")
    assert (critical["Status"], critical["Output"]) == ("critical", 'Pod "default/web-b" is not ready')


async def test_a_no_change_reconcile_sends_consul_nothing(fake: FakeConsul, consul: Consul):
    world = World()
    a = pod("web-a", "10.0.0.1", "127.0.0.2")
    world.put(endpoints("web", [a]), a)
    reconciler, _ = make(world, consul)
    await reconciler.reconcile("default/web")
    before = len(fake.journal)
    await reconciler.reconcile("default/web")
    assert len(fake.journal) == before


async def test_readiness_flip_is_one_check_update(fake: FakeConsul, consul: Consul):
    world = World()
    a = pod("web-a", "10.0.0.1", "127.0.0.2")
    world.put(endpoints("web", [a]), a)
    reconciler, _ = make(world, consul)
    await reconciler.reconcile("default/web")
    fake.journal.clear()
    world.put(endpoints("web", [a], not_ready=("web-a",)))
    await reconciler.reconcile("default/web")
    assert writes(fake) == ["PUT /v1/agent/check/update/default/web-a-web/kubernetes-health-check"]
    assert fake.agent(0).check("default/web-a-web/kubernetes-health-check")["Status"] == "critical"


async def test_a_pod_that_left_the_endpoints_is_deregistered_and_deleted_endpoints_deregister_all(
        fake: FakeConsul, consul: Consul):
    world = World()
    a, b = pod("web-a", "10.0.0.1", "127.0.0.2"), pod("web-b", "10.0.0.2", "127.0.0.3")
    world.put(endpoints("web", [a, b]), a, b)
    reconciler, _ = make(world, consul)
    await reconciler.reconcile("default/web")
    world.put(endpoints("web", [a]))
    await reconciler.reconcile("default/web")
    assert fake.agent("127.0.0.3").service("web-b-web") is None
    assert fake.agent("127.0.0.3").service("web-b-web-sidecar-proxy") is None
    assert fake.agent("127.0.0.3").check("default/web-b-web/kubernetes-health-check") is None
    assert fake.agent("127.0.0.2").service("web-a-web") is not None
    del world.eps["default/web"]
    await reconciler.reconcile("default/web")
    assert fake.agent("127.0.0.2").services == {}


async def test_instances_registered_before_a_restart_of_the_controller_are_found_and_cleaned(
        fake: FakeConsul, consul: Consul):
    world = World()
    a, old = pod("web-a", "10.0.0.1", "127.0.0.2"), pod("web-old", "10.0.0.9", "127.0.0.3")
    world.put(endpoints("web", [a, old]), a, old)
    first, _ = make(world, consul)
    await first.reconcile("default/web")
    world.put(endpoints("web", [a]))
    second, _ = make(world, consul)  # a new process: it knows nothing of what the agents hold
    await second.reconcile("default/web")
    assert fake.agent("127.0.0.3").service("web-old-web") is None
    assert fake.agent("127.0.0.2").service("web-a-web") is not None


async def test_a_bad_annotation_is_that_pods_problem_and_the_others_are_registered(fake: FakeConsul, consul: Consul):
    world = World()
    good = pod("good", "10.0.0.1", "127.0.0.2")
    bad = pod("bad", "10.0.0.2", "127.0.0.2", annotations={P + "connect-service-upstreams": "db:99999"})
    world.put(endpoints("web", [good, bad]), good, bad)
    reconciler, problems = make(world, consul)
    await reconciler.reconcile("default/web")
    assert fake.agent(0).service("good-web") is not None and fake.agent(0).service("bad-web") is None
    [(name, reason, message)] = problems
    assert name == "bad" and "connect-service-upstreams" in message and "99999" in message


async def test_an_unreachable_agent_does_not_stop_cleanup_through_the_others(fake: FakeConsul, consul: Consul):
    world = World()
    a, b = pod("web-a", "10.0.0.1", "127.0.0.2"), pod("web-b", "10.0.0.2", "127.0.0.3")
    world.put(endpoints("web", [a, b]), a, b)
    reconciler, _ = make(world, consul)
    await reconciler.reconcile("default/web")
    await fake.down("127.0.0.2")
    del world.eps["default/web"]
    with pytest.raises(ReconcileFailed, match="127.0.0.2"):
        await reconciler.reconcile("default/web")
    assert fake.agent("127.0.0.3").services == {}  # cleaned although the first agent is down


async def test_an_agent_that_restarted_gets_its_registrations_back(fake: FakeConsul, consul: Consul):
    world = World()
    a = pod("web-a", "10.0.0.1", "127.0.0.2")
    world.put(endpoints("web", [a]), a)
    reconciler, _ = make(world, consul)
    await reconciler.reconcile("default/web")
    await fake.restart("127.0.0.2")  # loses its state
    reconciler.book.forget_node("node-1")  # what the agent pod's event does in the controller
    await reconciler.reconcile("default/web")
    assert fake.agent(0).service("web-a-web") is not None
    assert fake.agent(0).check("default/web-a-web/kubernetes-health-check")["Status"] == "passing"


async def test_a_legacy_pod_gets_only_the_health_check(fake: FakeConsul, consul: Consul):
    world = World()
    legacy = pod("old", "10.0.0.1", "127.0.0.2", managed=False)
    fake.agent(0).register({"ID": "old-web", "Name": "web", "Address": "10.0.0.1", "Port": 80})  # its own sidecar did
    world.put(endpoints("web", [legacy]), legacy)
    reconciler, _ = make(world, consul)
    await reconciler.reconcile("default/web")
    assert fake.agent(0).service("old-web-sidecar-proxy") is None
    assert fake.agent(0).check("default/old-web/kubernetes-health-check")["Status"] == "passing"
    del world.eps["default/web"]
    await reconciler.reconcile("default/web")
    assert fake.agent(0).service("old-web") is not None  # never deregistered: not ours


async def test_ignored_namespaces_are_not_touched(fake: FakeConsul, consul: Consul):
    world = World()
    reconciler = Reconciler(world, consul, Settings(deny_namespaces=frozenset({"default"})))
    await reconciler.reconcile("default/web")
    await reconciler.reconcile("kube-system/kube-dns")
    assert list(fake.journal) == []


async def test_a_replica_that_lost_the_lease_writes_nothing(fake: FakeConsul, consul: Consul):
    world = World()
    a = pod("web-a", "10.0.0.1", "127.0.0.2")
    world.put(endpoints("web", [a]), a)
    reconciler, _ = make(world, consul, may_write=lambda: False)
    with pytest.raises(NotLeader):
        await reconciler.reconcile("default/web")
    assert writes(fake) == []


async def test_login_tokens_of_a_deregistered_pod_are_deleted():
    """ACLs on in the fake (tokens are checked, rules are not)."""
    async with FakeConsul(2, acl_enabled=True) as acl_fake:
        session = Consul(ConsulConfig.from_env({"CONSUL_HTTP_ADDR": acl_fake.address, "CONSUL_HTTP_TOKEN": "root"},
                                               timeout=3.0, connect_timeout=1.0))
        try:
            world = World()
            a = pod("web-a", "10.0.0.1", "127.0.0.2")
            world.put(endpoints("web", [a]), a)
            reconciler, _ = make(world, session, auth_method="consul-k8s-auth-method")
            await reconciler.reconcile("default/web")
            mine = acl_fake.add_token(auth_method="consul-k8s-auth-method", service_identities=["web"],
                                      description='token created via login: {"pod":"default/web-a"}')
            other = acl_fake.add_token(auth_method="consul-k8s-auth-method", service_identities=["web"],
                                       description='token created via login: {"pod":"default/web-b"}')
            del world.eps["default/web"]
            await reconciler.reconcile("default/web")
            assert mine["AccessorID"] not in acl_fake.tokens and other["AccessorID"] in acl_fake.tokens
        finally:
            await session.close()


async def test_consul_namespaces_are_created_with_the_cross_namespace_policy_and_used():
    """Consul Enterprise in the fake: namespaces, `ns=` on every request, mirroring with a prefix."""
    async with FakeConsul(2, enterprise=True) as ent:
        ent.add_policy("cross-namespace-policy")
        session = Consul(ConsulConfig.from_env({"CONSUL_HTTP_ADDR": ent.address}, timeout=3.0, connect_timeout=1.0))
        try:
            world = World()
            a = pod("web-a", "10.0.0.1", "127.0.0.2")
            world.put(endpoints("web", [a]), a)
            settings = Settings(tproxy_default=False, enable_consul_namespaces=True, enable_mirroring=True,
                                mirroring_prefix="k8s-", cross_namespace_policy="cross-namespace-policy")
            reconciler = Reconciler(world, session, settings)
            await reconciler.reconcile("default/web")
            created = ent.namespaces["k8s-default"]
            assert [p["Name"] for p in created["ACLs"]["PolicyDefaults"]] == ["cross-namespace-policy"]
            assert ent.agent(0).service("web-a-web", ns="k8s-default")["Namespace"] == "k8s-default"
            assert ent.agent(0).check("default/web-a-web/kubernetes-health-check", ns="k8s-default") is not None
            assert ent.unsynced() == []  # the namespace existed before the registration reached the agent
            del world.eps["default/web"]
            await reconciler.reconcile("default/web")
            assert ent.agent(0).service("web-a-web", ns="k8s-default") is None
        finally:
            await session.close()
