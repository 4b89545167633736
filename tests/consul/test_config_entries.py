"""Config entries: the client's calls (what the config-entry controller sends and reads back,
reference crd-controller §2, §2.4-2.6) against the fake, and the fake's own documented Consul
behaviour (§5: indexes, `cas`, namespaces, partitions, decoding and the server-side graph checks
the reference's tests depend on). Errors must read exactly as Go's client words them, Consul's
body verbatim: the controller puts that text in a resource's status."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from fakes.consul_agent import FakeConsul
from generator.consul import Consul, ConsulStatusError, ConsulUnreachable

from .test_fake_agent import call

DC_META = {"consul.hashicorp.com/source-datacenter": "dc1", "external-source": "kubernetes"}
NO_ROUTING = ('discovery chain "web" uses a protocol "tcp" that does not permit advanced routing or '
              "splitting behavior")


def defaults(name: str = "web", protocol: str = "http", **extra: Any) -> dict[str, Any]:
    return {"Kind": "service-defaults", "Name": name, "Protocol": protocol, "Meta": DC_META, **extra}


def router(name: str = "web", service: str = "") -> dict[str, Any]:
    return {"Kind": "service-router", "Name": name,
            "Routes": [{"Match": {"HTTP": {"PathPrefix": "/admin"}}, "Destination": {"Service": service or name}}]}


async def status_error(awaitable: Awaitable[Any]) -> ConsulStatusError:
    with pytest.raises(ConsulStatusError) as err:
        await awaitable
    return err.value


# -- the client --

async def test_write_read_list_delete(fake: FakeConsul, consul: Consul):
    client = consul.local()
    assert await client.config_entry("service-defaults", "web") is None
    assert await client.set_config_entry(defaults()) is True
    put = fake.calls("PUT", "/v1/config")[0]
    assert put.query == {} and put.body == defaults()          # plain upsert: no cas, no ns, no partition
    entry = await client.config_entry("service-defaults", "web")
    assert entry is not None
    assert entry["Meta"] == DC_META and entry["Protocol"] == "http"     # Meta round-trips
    assert entry["TransparentProxy"] == {} and entry["ModifyIndex"] == entry["CreateIndex"] > 0
    await client.set_config_entry(defaults("api"))
    assert [e["Name"] for e in await client.config_entries("service-defaults")] == ["api", "web"]
    assert await client.delete_config_entry("service-defaults", "web") is True
    assert await client.config_entry("service-defaults", "web") is None
    assert await client.delete_config_entry("service-defaults", "web") is True   # idempotent, as Consul
    assert [e["Name"] for e in await client.config_entries("service-defaults")] == ["api"]
    assert await client.config_entries("service-router") == []


async def test_an_update_keeps_create_index_and_moves_modify_index(fake: FakeConsul, consul: Consul):
    client = consul.local()
    await client.set_config_entry(defaults())
    first = await client.config_entry("service-defaults", "web")
    await client.set_config_entry(defaults(protocol="grpc"))
    second = await client.config_entry("service-defaults", "web")
    assert first is not None and second is not None
    assert second["CreateIndex"] == first["CreateIndex"] and second["ModifyIndex"] > first["ModifyIndex"]
    assert second["Protocol"] == "grpc"


async def test_cas_writes_and_deletes(fake: FakeConsul, consul: Consul):
    client = consul.local()
    assert await client.set_config_entry(defaults(), cas=0) is True        # 0: only if absent
    assert await client.set_config_entry(defaults(protocol="grpc"), cas=0) is False
    index = (await client.config_entry("service-defaults", "web") or {})["ModifyIndex"]
    assert await client.set_config_entry(defaults(protocol="grpc"), cas=index + 1) is False
    assert await client.set_config_entry(defaults(protocol="grpc"), cas=index) is True
    assert (await client.config_entry("service-defaults", "web") or {})["Protocol"] == "grpc"
    assert await client.set_config_entry(defaults(), cas=index) is False   # stale now
    assert [c.query for c in fake.calls("PUT", "/v1/config")][1:3] == [{"cas": "0"}, {"cas": str(index + 1)}]
    index = (await client.config_entry("service-defaults", "web") or {})["ModifyIndex"]
    assert await client.delete_config_entry("service-defaults", "web", cas=index - 1) is False
    assert await client.config_entry("service-defaults", "web") is not None
    assert await client.delete_config_entry("service-defaults", "web", cas=index) is True
    assert await client.delete_config_entry("service-defaults", "web", cas=index) is False  # gone
    assert fake.calls("DELETE")[-1].query == {"cas": str(index)}


async def test_namespaces_and_partition_travel_as_query_parameters(make_fake: Callable[..., Awaitable[FakeConsul]],
                                                                   make_consul: Callable[..., Consul]):
    fake = await make_fake(1, enterprise=True)
    consul = make_consul({"CONSUL_HTTP_ADDR": fake.address}, partition="team-a")
    client = consul.local("billing")
    err = await status_error(client.set_config_entry(defaults()))      # the namespace must exist first
    assert (err.status, err.body) == (500, 'rpc error making call: Namespace "billing" does not exist')
    assert await client.ensure_namespace("billing") is True
    assert await client.set_config_entry(defaults()) is True
    assert fake.calls("PUT", "/v1/config")[-1].query == {"ns": "billing", "partition": "team-a"}
    entry = await client.config_entry("service-defaults", "web")
    assert entry is not None and (entry["Namespace"], entry["Partition"]) == ("billing", "team-a")
    assert fake.calls("GET", "/v1/config/service-defaults/web")[-1].query == {"ns": "billing", "partition": "team-a"}
    # the same name in another namespace and partition is another entry
    assert await consul.local().config_entry("service-defaults", "web") is None
    other = make_consul({"CONSUL_HTTP_ADDR": fake.address})
    assert await other.local("billing").config_entry("service-defaults", "web") is None
    await consul.local().set_config_entry(defaults(protocol="grpc"))
    listed = await consul.local("*").config_entries("service-defaults")
    assert [(e["Namespace"], e["Protocol"]) for e in listed] == [("billing", "http"), ("default", "grpc")]
    assert await client.delete_config_entry("service-defaults", "web") is True
    assert fake.calls("DELETE")[-1].query == {"ns": "billing", "partition": "team-a"}
    assert await client.config_entry("service-defaults", "web") is None


async def test_oss_refuses_namespaces_with_consuls_words(fake: FakeConsul, consul: Consul):
    err = await status_error(consul.local("billing").set_config_entry(defaults()))
    assert str(err) == ('Unexpected response code: 400 (Bad request: Invalid query parameter: "ns" - '
                        "Namespaces are a Consul Enterprise feature)")


async def test_a_400_body_surfaces_verbatim(fake: FakeConsul, consul: Consul):
    client = consul.local()
    err = await status_error(client.set_config_entry({"Kind": "service-default", "Name": "web"}))
    assert str(err) == ("Unexpected response code: 400 (Bad request: Request decoding failed: "
                        "invalid config entry kind: service-default)")
    err = await status_error(client.set_config_entry({**defaults(), "Protocl": "http", "Namespace": "x"}))
    assert str(err) == ("Unexpected response code: 400 (Bad request: Request decoding failed: 2 errors occurred:\n"
                        '\t* invalid config key "Namespace", namespaces are a consul enterprise feature\n'
                        '\t* invalid config key "Protocl"\n\n)')
    assert fake.config_entry("service-defaults", "web") is None


async def test_a_500_body_surfaces_verbatim(fake: FakeConsul, consul: Consul):
    client = consul.local()
    err = await status_error(client.set_config_entry(router()))
    assert str(err) == f"Unexpected response code: 500 (rpc error making call: {NO_ROUTING})"
    assert err.status == 500 and not err.not_found


async def test_injected_faults_and_an_unreachable_agent(fake: FakeConsul, consul: Consul):
    client = consul.local()
    fake.fail("/v1/config", method="PUT", status=503, body="No cluster leader", times=1)
    err = await status_error(client.set_config_entry(defaults()))
    assert str(err) == "Unexpected response code: 503 (No cluster leader)"
    assert await client.set_config_entry(defaults()) is True
    await fake.down(0)
    with pytest.raises(ConsulUnreachable):
        await client.config_entry("service-defaults", "web")
    with pytest.raises(ConsulUnreachable):
        await client.delete_config_entry("service-defaults", "web")
    await fake.up(0)
    assert await client.config_entry("service-defaults", "web") is not None


async def test_kind_and_name_rules(fake: FakeConsul):
    assert await call(fake, "PUT", "/v1/config", body={"Name": "web"}) == \
        (400, "Bad request: Request decoding failed: Payload does not contain a kind/Kind key at the top level")
    assert await call(fake, "PUT", "/v1/config", body={"kind": "proxy-defaults", "name": "x",
                                                       "config": {"protocol": "http"}}) == (200, True)
    assert (await call(fake, "GET", "/v1/config/proxy-defaults/global"))[1]["Config"] == {"protocol": "http"}
    assert await call(fake, "PUT", "/v1/config", body={"Kind": "mesh", "Name": "mesh"}) == \
        (400, 'Bad request: Request decoding failed: 1 error occurred:\n\t* invalid config key "Name"\n\n')
    assert await call(fake, "PUT", "/v1/config", body={"Kind": "mesh", "TransparentProxy":
                                                       {"MeshDestinationsOnly": True}}) == (200, True)
    status, mesh = await call(fake, "GET", "/v1/config/mesh/mesh")
    assert status == 200 and mesh["TransparentProxy"] == {"MeshDestinationsOnly": True} and "Name" not in mesh
    assert (await call(fake, "GET", "/v1/config/mesh/other"))[0] == 404
    assert await call(fake, "PUT", "/v1/config", body={"Kind": "service-defaults"}) == \
        (500, "rpc error making call: Name is required")
    assert await call(fake, "GET", "/v1/config/nope/x") == (500, "rpc error making call: invalid config entry kind: nope")
    assert await call(fake, "DELETE", "/v1/config/nope/x") == (400, "Bad request: invalid config entry kind: nope")
    assert await call(fake, "PUT", "/v1/config", body=defaults(), params={"cas": "x"}) == \
        (500, 'strconv.ParseUint: parsing "x": invalid syntax')


async def test_snake_case_and_nested_unknown_keys(fake: FakeConsul):
    body = {"Kind": "service-defaults", "Name": "web", "protocol": "HTTP", "mesh_gateway": {"mode": "local"}}
    assert await call(fake, "PUT", "/v1/config", body=body) == (200, True)
    stored = (await call(fake, "GET", "/v1/config/service-defaults/web"))[1]
    assert (stored["Protocol"], stored["MeshGateway"]) == ("http", {"Mode": "local"})   # lower-cased, canonical keys
    ingress = {"Kind": "ingress-gateway", "Name": "ig", "Listeners": [
        {"Port": 80, "Protocol": "tcp", "Services": [{"Name": "db", "Namespace": "default"}]}]}
    assert await call(fake, "PUT", "/v1/config", body=ingress) == \
        (400, "Bad request: Request decoding failed: 1 error occurred:\n\t* invalid config key "
              '"Listeners[0].Services[0].Namespace", namespaces are a consul enterprise feature\n\n')


async def test_enterprise_accepts_namespace_keys(make_fake: Callable[..., Awaitable[FakeConsul]]):
    fake = await make_fake(1, enterprise=True)
    fake.add_namespace("billing")
    body = {"Kind": "service-intentions", "Name": "web", "Namespace": "billing",
            "Sources": [{"Name": "api", "Namespace": "default", "Action": "allow"}]}
    assert await call(fake, "PUT", "/v1/config", body=body) == (200, True)   # the body's namespace, no ns=
    status, stored = await call(fake, "GET", "/v1/config/service-intentions/web", params={"ns": "billing"})
    assert status == 200 and stored["Namespace"] == "billing" and stored["Partition"] == "default"
    assert (await call(fake, "GET", "/v1/config/service-intentions/web"))[0] == 404


async def test_intentions_gain_precedence_and_type_and_reject_duplicates(fake: FakeConsul):
    body = {"Kind": "service-intentions", "Name": "web",
            "Sources": [{"Name": "api", "Action": "allow"}, {"Name": "*", "Action": "deny"}]}
    assert await call(fake, "PUT", "/v1/config", body=body) == (200, True)
    sources = (await call(fake, "GET", "/v1/config/service-intentions/web"))[1]["Sources"]
    assert [(s["Precedence"], s["Type"]) for s in sources] == [(9, "consul"), (8, "consul")]
    body["Sources"].append({"Name": "api", "Action": "deny"})
    assert await call(fake, "PUT", "/v1/config", body=body) == \
        (500, 'rpc error making call: Sources[2] defines "api" more than once')
    assert await call(fake, "PUT", "/v1/config", body={**body, "Sources": [{"Name": "api", "Action": "maybe"}]}) == \
        (500, "rpc error making call: Sources[0].Action must be set to 'allow' or 'deny'")


async def test_splitter_weights_must_sum_to_100(fake: FakeConsul):
    fake.set_config_entry(defaults())
    body = {"Kind": "service-splitter", "Name": "web", "Splits": [{"Weight": 90}]}
    assert await call(fake, "PUT", "/v1/config", body=body) == \
        (500, "rpc error making call: the sum of all split weights must be 100, not 90.000000")


async def test_routing_needs_an_http_protocol_on_write_and_on_delete(fake: FakeConsul):
    assert await call(fake, "PUT", "/v1/config", body=router()) == (500, f"rpc error making call: {NO_ROUTING}")
    assert await call(fake, "PUT", "/v1/config", body=defaults()) == (200, True)
    assert await call(fake, "PUT", "/v1/config", body=router()) == (200, True)
    # the reference's updatesStatusWhenDeleteFails: the router still needs http
    assert await call(fake, "DELETE", "/v1/config/service-defaults/web") == \
        (500, f"rpc error making call: {NO_ROUTING}")
    assert await call(fake, "PUT", "/v1/config", body=defaults(protocol="tcp")) == \
        (500, f"rpc error making call: {NO_ROUTING}")
    assert fake.config_entry("service-defaults", "web") is not None
    assert await call(fake, "DELETE", "/v1/config/service-router/web") == (200, {})
    assert await call(fake, "DELETE", "/v1/config/service-defaults/web") == (200, {})


async def test_proxy_defaults_protocol_counts_and_chains_must_agree(fake: FakeConsul):
    pd = {"Kind": "proxy-defaults", "Name": "global", "Config": {"protocol": "http"}}
    assert await call(fake, "PUT", "/v1/config", body=pd) == (200, True)
    assert await call(fake, "PUT", "/v1/config", body=router()) == (200, True)   # http from proxy-defaults
    assert await call(fake, "PUT", "/v1/config", body=defaults("db", "tcp")) == (200, True)
    splitter = {"Kind": "service-splitter", "Name": "web", "Splits": [{"Weight": 90}, {"Weight": 10, "Service": "db"}]}
    assert await call(fake, "PUT", "/v1/config", body=splitter) == \
        (500, 'rpc error making call: discovery chain "web" uses inconsistent protocols; '
              'service "db" has "tcp" which is not "http"')
    assert await call(fake, "PUT", "/v1/config", body={**pd, "Config": {}}) == \
        (500, f"rpc error making call: {NO_ROUTING}")


async def test_l7_intentions_need_http(fake: FakeConsul):
    body = {"Kind": "service-intentions", "Name": "web",
            "Sources": [{"Name": "api", "Permissions": [{"Action": "allow", "HTTP": {"PathPrefix": "/"}}]}]}
    l7 = 'rpc error making call: service "web" has protocol "tcp", which is incompatible with L7 intentions permissions'
    assert await call(fake, "PUT", "/v1/config", body=body) == (500, l7)
    assert await call(fake, "PUT", "/v1/config", body=defaults()) == (200, True)
    assert await call(fake, "PUT", "/v1/config", body=body) == (200, True)
    assert await call(fake, "PUT", "/v1/config", body=defaults(protocol="tcp")) == (500, l7)
    assert await call(fake, "PUT", "/v1/config", body={**body, "Name": "*"}) == (200, True)  # wildcard: not checked


async def test_ingress_listener_protocol_must_match(fake: FakeConsul):
    ingress = {"Kind": "ingress-gateway", "Name": "ig", "Listeners": [
        {"Port": 80, "Protocol": "http", "Services": [{"Name": "web"}, {"Name": "*"}]}]}
    assert await call(fake, "PUT", "/v1/config", body=ingress) == \
        (500, 'rpc error making call: service "web" has protocol "tcp", which does not match defined listener '
              'protocol "http"')
    fake.set_config_entry(defaults())
    assert await call(fake, "PUT", "/v1/config", body=ingress) == (200, True)


async def test_without_the_rpc_prefix(make_fake: Callable[..., Awaitable[FakeConsul]]):
    fake = await make_fake(1, rpc_prefix=False)   # as a Consul server answers itself (the reference's tests)
    assert await call(fake, "PUT", "/v1/config", body=router()) == (500, NO_ROUTING)


async def test_seeding_skips_graph_checks_and_reads_are_journalled(fake: FakeConsul, consul: Consul):
    stored = fake.set_config_entry(router())      # a state Consul would refuse, built on purpose
    assert stored["Kind"] == "service-router" and stored["ModifyIndex"] > 0
    assert await consul.local().config_entry("service-router", "web") is not None
    call_ = fake.calls("GET", "/v1/config/service-router/web")[0]
    assert call_.status == 200 and call_.query == {}
    fake.delete_config_entry("service-router", "web")
    assert fake.config_entry("service-router", "web") is None
    assert fake.writes() == []                    # seeding is not an HTTP request
