"""The fake Consul agent (tests/fakes/consul_agent.py) against Consul's documented behaviour.

These talk to the fake with plain aiohttp requests, not with our client, so the fake is checked
against Consul's API documentation and agent code (reference §9), not against what our client
happens to send.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from fakes.consul_agent import FakeConsul
from fakes.consul_decode import format_duration, parse_duration

ROOT = Path(__file__).resolve().parents[2]


async def call(fake: FakeConsul, method: str, path: str, *, agent: int | str = 0, body: Any = None,
               params: dict[str, str] | None = None, headers: dict[str, str] | None = None) -> tuple[int, Any]:
    """One request to one fake agent: (status, JSON answer or text)."""
    url = fake.agent(agent).address + path
    async with aiohttp.ClientSession() as session:
        async with session.request(method, url, json=body, params=params, headers=headers) as resp:
            text = await resp.text()
            try:
                return resp.status, json.loads(text) if text else None
            except ValueError:
                return resp.status, text


WEB = {"ID": "web-1", "Name": "web", "Address": "10.1.0.5", "Port": 8080}


async def test_registration_defaults(fake: FakeConsul):
    status, _ = await call(fake, "PUT", "/v1/agent/service/register", body={"Name": "db", "Address": "10.1.0.6"})
    assert status == 200
    status, services = await call(fake, "GET", "/v1/agent/services")
    assert status == 200
    db = services["db"]  # ID defaults to Name
    assert db["Service"] == "db" and db["Tags"] == [] and db["Meta"] == {}
    assert db["Weights"] == {"Passing": 1, "Warning": 1}
    assert "Kind" not in db and "Proxy" not in db
    # the agent adds lan/wan tagged addresses for an IP address
    assert db["TaggedAddresses"] == {"lan_ipv4": {"Address": "10.1.0.6", "Port": 0},
                                     "wan_ipv4": {"Address": "10.1.0.6", "Port": 0}}


async def test_a_service_check_gets_the_documented_id_name_and_status(fake: FakeConsul):
    one = {**WEB, "Check": {"TTL": "30s"}}
    assert (await call(fake, "PUT", "/v1/agent/service/register", body=one))[0] == 200
    _, checks = await call(fake, "GET", "/v1/agent/checks")
    assert list(checks) == ["service:web-1"]
    check = checks["service:web-1"]
    assert (check["Name"], check["Status"], check["Type"], check["ServiceID"], check["ServiceName"]) == \
        ("Service 'web' check", "critical", "ttl", "web-1", "web")
    two = {**WEB, "ID": "web-2", "Checks": [{"TCP": "10.1.0.5:8080", "Interval": "10s"},
                                            {"Name": "alias", "AliasService": "web-1", "Status": "passing"}]}
    assert (await call(fake, "PUT", "/v1/agent/service/register", body=two))[0] == 200
    _, checks = await call(fake, "GET", "/v1/agent/checks", params={"filter": 'ServiceID == "web-2"'})
    assert set(checks) == {"service:web-2:1", "service:web-2:2"}
    assert checks["service:web-2:1"]["Type"] == "tcp" and checks["service:web-2:1"]["Interval"] == "10s"
    # an alias check reports the aliased service's health: web-1's TTL check is critical
    assert checks["service:web-2:2"]["Status"] == "critical"


async def test_ttl_check_update_and_its_errors(fake: FakeConsul):
    await call(fake, "PUT", "/v1/agent/service/register", body=WEB)
    check = {"ID": "ns/web-1/kubernetes-health-check", "Name": "Kubernetes Health Check", "ServiceID": "web-1",
             "TTL": "100000h", "Status": "critical"}
    assert (await call(fake, "PUT", "/v1/agent/check/register", body=check))[0] == 200
    path = "/v1/agent/check/update/ns/web-1/kubernetes-health-check"  # the ID keeps its slashes
    assert (await call(fake, "PUT", path, body={"Status": "passing", "Output": "fine"}))[0] == 200
    stored = fake.agent(0).check("ns/web-1/kubernetes-health-check")
    assert stored is not None and (stored["Status"], stored["Output"]) == ("passing", "fine")
    assert await call(fake, "PUT", path, body={"Status": "bogus"}) == (400, "Bad request: Invalid check status: 'bogus'")
    assert await call(fake, "PUT", "/v1/agent/check/update/nope", body={"Status": "passing"}) == \
        (500, 'CheckID "nope" does not have associated TTL')
    unknown_service = {**check, "ID": "x", "ServiceID": "nope"}
    assert await call(fake, "PUT", "/v1/agent/check/register", body=unknown_service) == \
        (500, 'ServiceID "nope" does not exist')


async def test_a_ttl_check_expires(fake: FakeConsul):
    await call(fake, "PUT", "/v1/agent/service/register", body={**WEB, "Check": {"TTL": "50ms", "Status": "passing"}})
    assert fake.agent(0).check("service:web-1")["Status"] == "passing"
    await asyncio.sleep(0.1)
    expired = fake.agent(0).check("service:web-1")
    assert (expired["Status"], expired["Output"]) == ("critical", "TTL expired")


async def test_reregistration_keeps_check_state_unless_replacing(fake: FakeConsul):
    body = {**WEB, "Checks": [{"CheckID": "a", "TTL": "1h"}, {"CheckID": "b", "TTL": "1h"}]}
    await call(fake, "PUT", "/v1/agent/service/register", body=body)
    await call(fake, "PUT", "/v1/agent/check/update/a", body={"Status": "passing", "Output": "up"})
    separate = {"ID": "extra", "Name": "extra", "ServiceID": "web-1", "TTL": "1h"}
    await call(fake, "PUT", "/v1/agent/check/register", body=separate)
    await call(fake, "PUT", "/v1/agent/service/register", body={**WEB, "Checks": [{"CheckID": "a", "TTL": "1h"}]})
    checks = fake.agent(0).check_views()
    assert set(checks) == {"a", "b", "extra"}  # unmentioned checks stay
    assert (checks["a"]["Status"], checks["a"]["Output"]) == ("passing", "up")
    await call(fake, "PUT", "/v1/agent/service/register", body={**WEB, "Checks": [{"CheckID": "a", "TTL": "1h"}]},
               params={"replace-existing-checks": "true"})
    assert set(fake.agent(0).check_views()) == {"a"}


async def test_deregistration_removes_the_service_and_its_checks(fake: FakeConsul):
    await call(fake, "PUT", "/v1/agent/service/register", body={**WEB, "Check": {"TTL": "1h"}})
    await call(fake, "PUT", "/v1/agent/check/register", body={"Name": "k8s", "ServiceID": "web-1", "TTL": "1h"})
    assert (await call(fake, "PUT", "/v1/agent/service/deregister/web-1"))[0] == 200
    assert fake.agent(0).service_views() == {} and fake.agent(0).check_views() == {}
    status, body = await call(fake, "PUT", "/v1/agent/service/deregister/web-1")
    assert status == 404 and body.startswith('Unknown service ID "web-1"')


async def test_deregistering_an_unknown_service_can_be_a_no_op(make_fake):
    fake = await make_fake(1, deregister_unknown_ok=True)
    assert (await call(fake, "PUT", "/v1/agent/service/deregister/nope"))[0] == 200


@pytest.mark.parametrize("body, answer", [
    ({"ID": "x"}, "Bad request: Missing service name"),
    ({"Name": "x", "Address": "0.0.0.0"}, "Bad request: Invalid service address"),
    ({"Name": "x", "Port": "80"}, "Bad request: Request decode failed: json: cannot unmarshal string into "
                                  "Go struct field ServiceDefinition.Port of type int"),
    ({"Name": "x", "Meta": {"a.b": "1"}},
     "Bad request: Invalid Service Meta: Couldn't load metadata pair ('a.b', '1'): Key contains invalid characters"),
    ({"Name": "x", "Meta": {"consul-x": "1"}},
     "Bad request: Invalid Service Meta: Couldn't load metadata pair ('consul-x', '1'): "
     "Key prefix 'consul-' is reserved for internal use"),
    ({"Name": "x", "Check": {"TCP": "1.2.3.4:80"}},
     "Bad request: Invalid check: Interval must be > 0 for Script, HTTP, H2PING, or TCP checks"),
    ({"Name": "x", "Check": {"TTL": "1h", "Status": "up"}},
     "Bad request: Status for checks must 'passing', 'warning', 'critical'"),
    ({"Name": "x", "Check": {"TTL": "forever"}}, 'Bad request: Request decode failed: time: invalid duration "forever"'),
])
async def test_registration_validation(fake: FakeConsul, body: dict, answer: str):
    assert await call(fake, "PUT", "/v1/agent/service/register", body=body) == (400, answer)
    assert fake.agent(0).service_views() == {}


async def test_a_connect_proxy_needs_a_destination_and_a_port(fake: FakeConsul):
    status, body = await call(fake, "PUT", "/v1/agent/service/register",
                              body={"Kind": "connect-proxy", "Name": "web-sidecar-proxy", "Proxy": {}})
    assert status == 400
    assert body.startswith("Bad request: Validation failed: 2 errors occurred:")
    assert "Proxy.DestinationServiceName must be non-empty" in body and "Port or SocketPath must be set" in body


async def test_proxy_upstreams_need_distinct_bind_ports(fake: FakeConsul):
    upstreams = [{"DestinationName": "db", "LocalBindPort": 1234}, {"DestinationName": "cache", "LocalBindPort": 1234}]
    status, body = await call(fake, "PUT", "/v1/agent/service/register", body={
        "Kind": "connect-proxy", "Name": "web-sidecar-proxy", "Port": 20000,
        "Proxy": {"DestinationServiceName": "web", "Upstreams": upstreams}})
    assert status == 400 and "upstreams cannot contain duplicates of 127.0.0.1:1234" in body


async def test_field_names_are_case_insensitive_and_snake_case_is_accepted(fake: FakeConsul):
    body = {"name": "web", "id": "web-1", "port": 1, "check": {"ttl": "1h", "deregister_critical_service_after": "1m"}}
    assert (await call(fake, "PUT", "/v1/agent/service/register", body=body))[0] == 200
    assert fake.agent(0).service("web-1")["Port"] == 1
    assert fake.agent(0).check("service:web-1") is not None


async def test_filters(fake: FakeConsul):
    for i, ns in ((1, "default"), (2, "team")):
        await call(fake, "PUT", "/v1/agent/service/register",
                   body={"Name": "web", "ID": f"web-{i}", "Tags": ["v1"], "Meta": {"k8s-namespace": ns}})
    cases = {'Meta["k8s-namespace"] == "team"': {"web-2"}, 'Meta.missing == "x"': set(),
             'Meta.missing != "x"': {"web-1", "web-2"}, '"v1" in Tags and not (ID == `web-1`)': {"web-2"},
             'ID == "web-1" or ID == "web-2"': {"web-1", "web-2"}, 'Kind == ""': {"web-1", "web-2"},
             'ID matches "-2$"': {"web-2"}, "Meta is not empty": {"web-1", "web-2"}}
    for expr, expected in cases.items():
        status, found = await call(fake, "GET", "/v1/agent/services", params={"filter": expr})
        assert (status, set(found)) == (200, expected), expr
    status, body = await call(fake, "GET", "/v1/agent/services", params={"filter": 'Meta["k8s-namespace"] = "x"'})
    assert status == 400 and body.startswith("Bad request: Failed to create boolean expression evaluator")
    status, body = await call(fake, "GET", "/v1/agent/checks", params={"filter": "Nope == 1"})
    assert status == 400 and 'Selector "Nope" is not valid' in body


async def test_agents_are_separate_and_the_catalog_is_their_union(fake: FakeConsul):
    await call(fake, "PUT", "/v1/agent/service/register", agent="127.0.0.3", body={**WEB, "ID": "web-b"})
    await call(fake, "PUT", "/v1/agent/service/register", agent="127.0.0.2", body={**WEB, "ID": "web-a"})
    assert set((await call(fake, "GET", "/v1/agent/services", agent="127.0.0.2"))[1]) == {"web-a"}
    assert set((await call(fake, "GET", "/v1/agent/services", agent="127.0.0.3"))[1]) == {"web-b"}
    status, catalog = await call(fake, "GET", "/v1/catalog/service/web", agent="127.0.0.3")
    assert status == 200
    assert [(e["Node"], e["Address"], e["ServiceID"]) for e in catalog] == [
        ("node-1", "127.0.0.2", "web-a"), ("node-2", "127.0.0.3", "web-b")]
    assert catalog[0]["ServiceTags"] == [] and catalog[0]["ServicePort"] == 8080


async def test_agent_health_by_service_name(fake: FakeConsul):
    assert (await call(fake, "GET", "/v1/agent/health/service/name/web", params={"format": "json"}))[0] == 404
    await call(fake, "PUT", "/v1/agent/service/register", body={**WEB, "Check": {"TTL": "1h", "Status": "passing"}})
    status, body = await call(fake, "GET", "/v1/agent/health/service/name/web", params={"format": "json"})
    assert status == 200 and body[0]["AggregatedStatus"] == "passing" and body[0]["Service"]["ID"] == "web-1"
    await call(fake, "PUT", "/v1/agent/check/update/service:web-1", body={"Status": "critical", "Output": ""})
    assert (await call(fake, "GET", "/v1/agent/health/service/name/web"))[0] == 503


async def test_oss_refuses_namespaces_and_partitions(fake: FakeConsul):
    assert await call(fake, "GET", "/v1/agent/services", params={"ns": "team"}) == \
        (400, 'Bad request: Invalid query parameter: "ns" - Namespaces are a Consul Enterprise feature')
    assert (await call(fake, "GET", "/v1/agent/services", headers={"X-Consul-Namespace": "team"}))[0] == 400
    assert (await call(fake, "GET", "/v1/agent/services", params={"partition": "p"}))[0] == 400
    assert (await call(fake, "GET", "/v1/namespace/team"))[0] == 404  # no namespace endpoints in OSS
    status, services = await call(fake, "GET", "/v1/agent/services", params={"ns": ""})
    assert (status, services) == (200, {})  # an empty ns is no namespace


async def test_enterprise_namespaces(make_fake):
    fake = await make_fake(1, enterprise=True)
    await call(fake, "PUT", "/v1/agent/service/register", body={**WEB, "Namespace": "team"})
    await call(fake, "PUT", "/v1/agent/service/register", body=WEB, params={"ns": "other"})
    await call(fake, "PUT", "/v1/agent/service/register", body={**WEB, "ID": "web-d"})
    assert set((await call(fake, "GET", "/v1/agent/services"))[1]) == {"web-d"}
    team = (await call(fake, "GET", "/v1/agent/services", params={"ns": "team"}))[1]
    assert set(team) == {"web-1"} and team["web-1"]["Namespace"] == "team"
    assert len((await call(fake, "GET", "/v1/agent/services", params={"ns": "*"}))[1]) == 2  # same ID twice
    # the agent took them, but only `default` exists: the others never reach the catalog
    assert sorted(fake.unsynced()) == [("127.0.0.2", "other", "web-1"), ("127.0.0.2", "team", "web-1")]
    assert (await call(fake, "GET", "/v1/catalog/service/web", params={"ns": "team"}))[1] == []
    assert (await call(fake, "GET", "/v1/namespace/team")) == (404, None)
    status, created = await call(fake, "PUT", "/v1/namespace", body={"Name": "team", "Description": "d",
                                                                     "ACLs": {"PolicyDefaults": None}})
    assert status == 200 and created["Name"] == "team" and created["CreateIndex"] > 0
    assert ("127.0.0.2", "team", "web-1") not in fake.unsynced()
    assert (await call(fake, "PUT", "/v1/namespace", body={"Name": "team"})) == (500, 'Namespace "team" already exists')
    default = (await call(fake, "GET", "/v1/namespace/default"))[1]
    assert default["Description"] == "Builtin Default Namespace"


async def test_namespace_policy_defaults_must_exist_with_acls(make_fake):
    fake = await make_fake(1, enterprise=True, acl_enabled=True)
    headers = {"X-Consul-Token": "root"}
    body = {"Name": "team", "ACLs": {"PolicyDefaults": [{"ID": "", "Name": "cross-namespace-policy"}]}}
    status, _ = await call(fake, "PUT", "/v1/namespace", body=body, headers=headers)
    assert status == 500
    status, policy = await call(fake, "PUT", "/v1/acl/policy", body={"Name": "cross-namespace-policy"}, headers=headers)
    assert status == 200
    status, created = await call(fake, "PUT", "/v1/namespace", body=body, headers=headers)
    assert status == 200 and created["ACLs"]["PolicyDefaults"] == [{"ID": policy["ID"], "Name": "cross-namespace-policy"}]


async def test_config_entries(fake: FakeConsul):
    assert await call(fake, "GET", "/v1/config/proxy-defaults/global") == \
        (404, 'Config entry not found for "proxy-defaults" / "global"')
    entry = {"Kind": "proxy-defaults", "Name": "anything", "mesh_gateway": {"mode": "remote"},
             "Config": {"protocol": "http"}}
    assert await call(fake, "PUT", "/v1/config", body=entry) == (200, True)
    status, stored = await call(fake, "GET", "/v1/config/proxy-defaults/global")
    assert status == 200 and stored["Name"] == "global" and stored["MeshGateway"] == {"Mode": "remote"}
    assert stored["Expose"] == {} and stored["ModifyIndex"] >= stored["CreateIndex"] > 0
    assert (await call(fake, "DELETE", "/v1/config/proxy-defaults/global"))[0] == 200
    assert (await call(fake, "GET", "/v1/config/proxy-defaults/global"))[0] == 404


async def test_a_proxy_is_shown_with_central_config_merged(fake: FakeConsul):
    fake.set_config_entry({"Kind": "proxy-defaults", "Name": "global", "Config": {"protocol": "tcp", "x": 1},
                           "MeshGateway": {"Mode": "local"}})
    fake.set_config_entry({"Kind": "service-defaults", "Name": "web", "Protocol": "http"})
    body = {"Kind": "connect-proxy", "Name": "web-sidecar-proxy", "Port": 20000,
            "Proxy": {"DestinationServiceName": "web", "Config": {"x": 2},
                      "Upstreams": [{"DestinationName": "db", "LocalBindPort": 1234}]}}
    assert (await call(fake, "PUT", "/v1/agent/service/register", body=body))[0] == 200
    proxy = (await call(fake, "GET", "/v1/agent/services"))[1]["web-sidecar-proxy"]["Proxy"]
    assert proxy["Config"] == {"protocol": "http", "x": 2}      # registration > service-defaults > proxy-defaults
    assert proxy["MeshGateway"] == {"Mode": "local"}
    assert proxy["Upstreams"] == [{"DestinationType": "service", "DestinationName": "db", "LocalBindPort": 1234,
                                   "MeshGateway": {}}]


async def test_acl_tokens(make_fake):
    fake = await make_fake(1, acl_enabled=True, master_token="root")
    assert await call(fake, "GET", "/v1/agent/services") == (403, "Permission denied")
    assert await call(fake, "GET", "/v1/agent/services", headers={"X-Consul-Token": "nope"}) == (403, "ACL not found")
    assert (await call(fake, "GET", "/v1/agent/services", headers={"Authorization": "Bearer root"}))[0] == 200
    fake.auth_methods.add("k8s")
    fake.login_bindings["jwt"] = "web"
    status, token = await call(fake, "POST", "/v1/acl/login",
                               body={"AuthMethod": "k8s", "BearerToken": "jwt", "Meta": {"pod": "default/web-1"}})
    assert status == 200
    assert token["Description"] == 'token created via login: {"pod":"default/web-1"}'
    assert token["ServiceIdentities"] == [{"ServiceName": "web"}] and token["Local"] is True
    root = {"X-Consul-Token": "root"}
    listed = (await call(fake, "GET", "/v1/acl/tokens", headers=root, params={"authmethod": "k8s"}))[1]
    assert [t["AccessorID"] for t in listed] == [token["AccessorID"]]
    assert len((await call(fake, "GET", "/v1/acl/tokens", headers=root))[1]) == 3  # and the master and anonymous tokens
    path = f"/v1/acl/token/{token['AccessorID']}"
    assert await call(fake, "DELETE", path, headers=root) == (200, True)
    assert await call(fake, "GET", path, headers=root) == (403, "ACL not found")


async def test_acl_endpoints_without_acls(fake: FakeConsul):
    assert await call(fake, "GET", "/v1/acl/tokens") == (401, "ACL support disabled")


async def test_journal_and_faults(fake: FakeConsul):
    fault = fake.fail(r"/v1/agent/service/register$", agent="127.0.0.3", status=500, body="boom", times=1)
    assert await call(fake, "PUT", "/v1/agent/service/register", agent="127.0.0.3", body=WEB) == (500, "boom")
    assert (await call(fake, "PUT", "/v1/agent/service/register", agent="127.0.0.3", body=WEB))[0] == 200
    assert (await call(fake, "PUT", "/v1/agent/service/register", agent="127.0.0.2", body=WEB))[0] == 200
    assert fault.hits == 1
    first, second, third = fake.calls("PUT", "/v1/agent/service/register")
    assert (first.agent, first.status, first.fault, first.body) == ("127.0.0.3", 500, True, WEB)
    assert (second.status, second.fault, third.agent) == (200, False, "127.0.0.2")
    assert len(fake.writes(agent="127.0.0.3")) == 2


async def test_down_restart_and_state_loss(fake: FakeConsul):
    await call(fake, "PUT", "/v1/agent/service/register", agent=1, body=WEB)
    await fake.down(1)
    with pytest.raises(aiohttp.ClientConnectionError):
        await call(fake, "GET", "/v1/agent/services", agent=1)
    await fake.up(1)
    assert set((await call(fake, "GET", "/v1/agent/services", agent=1))[1]) == {"web-1"}  # down is not a restart
    await fake.restart(1)
    assert (await call(fake, "GET", "/v1/agent/services", agent=1))[1] == {}
    assert fake.agent(1).restarts == 1


async def test_control_api(fake: FakeConsul):
    assert await call(fake, "POST", "/_fake/seed", body={
        "services": [{"agent": "127.0.0.3", "registration": WEB}],
        "config_entries": [{"Kind": "proxy-defaults", "Name": "global"}]}) == (200, True)
    _, state = await call(fake, "GET", "/_fake/state")
    assert set(state["agents"]["127.0.0.3"]["services"]) == {"web-1"} and len(state["config_entries"]) == 1
    await call(fake, "POST", "/_fake/faults", body={"path": "/v1/agent/services", "status": 503})
    assert (await call(fake, "GET", "/v1/agent/services"))[0] == 503
    _, journal = await call(fake, "GET", "/_fake/journal")
    assert [(c["method"], c["path"], c["status"]) for c in journal] == [("GET", "/v1/agent/services", 503)]
    await call(fake, "DELETE", "/_fake/faults")
    await call(fake, "POST", "/_fake/reset")
    assert fake.services() == {} and list(fake.journal) == []


async def test_wait_for(fake: FakeConsul):
    async def later() -> None:
        await asyncio.sleep(0.05)
        await call(fake, "PUT", "/v1/agent/service/register", body=WEB)
    task = asyncio.create_task(later())
    await fake.wait_for(lambda: fake.agent(0).service("web-1") is not None, timeout=2)
    await task
    with pytest.raises(TimeoutError):
        await fake.wait_for(lambda: False, timeout=0.1)


async def test_runs_as_a_script():
    """`python -m tests.fakes.consul_agent` (the demo runs the fake in its own process)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.fakes.consul_agent", "--agents", "2", cwd=ROOT,
        stdout=asyncio.subprocess.PIPE, env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), 20)
        started = json.loads(line)
        assert len(started["agents"]) == 2 and started["agents"][1].endswith(f"127.0.0.3:{started['port']}")
        async with aiohttp.ClientSession() as session:
            async with session.get(started["agents"][1] + "/v1/agent/services") as resp:
                assert resp.status == 200 and await resp.json() == {}
    finally:
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 10) == 0


@pytest.mark.parametrize("text, ns, back", [
    ("10s", 10_000_000_000, "10s"), ("100000h", 360_000_000_000_000_000, "100000h0m0s"), ("90s", 90 * 10**9, "1m30s"),
    ("1.5s", 1_500_000_000, "1.5s"), ("250ms", 250_000_000, "250ms"), ("1h30m", 5400 * 10**9, "1h30m0s"),
    ("0", 0, "0s"),
])
def test_go_durations(text: str, ns: int, back: str):
    assert parse_duration(text) == ns
    assert format_duration(ns) == back
