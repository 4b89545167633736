"""The Consul HTTP client against the fake agents: paths, bodies and query parameters exactly as
the reference's Go client sends them (reference §2.6, §3, §4, §5), the token, TLS, timeouts and
the typed errors. The fake is tests/fakes/consul_agent.py (our own aiohttp stand-in: no library
fakes Consul's agent API)."""

from __future__ import annotations

import asyncio
import json
import os
import ssl
import time
from pathlib import Path

import pytest

from fakes.consul_agent import FakeConsul
from generator.consul import (CRITICAL, PASSING, CheckRegistration, Consul, ConsulResponseError, ConsulStatusError,
                              ConsulTLSError, ConsulUnreachable, ExposePath, ProxyConfig, ServiceAddress, ServiceCheck,
                              ServiceRegistration, Upstream)
from generator.tools.devcerts import CA

META = {"k8s-namespace": "default", "k8s-service-name": "web", "managed-by": "consul-k8s-endpoints-controller",
        "pod-name": "pod1"}
DEREGISTER_FILTER = ('Meta["k8s-service-name"] == "web" and Meta["k8s-namespace"] == "default" '
                     'and Meta["managed-by"] == "consul-k8s-endpoints-controller"')
CHECK_ID = "default/pod1-web/kubernetes-health-check"


def service(meta: dict[str, str] | None = None, namespace: str = "") -> ServiceRegistration:
    return ServiceRegistration(id="pod1-web", name="web", address="1.2.3.4", meta=meta or META, namespace=namespace)


def proxy(meta: dict[str, str] | None = None, namespace: str = "") -> ServiceRegistration:
    return ServiceRegistration(
        kind="connect-proxy", id="pod1-web-sidecar-proxy", name="web-sidecar-proxy", port=20000, address="1.2.3.4",
        meta=meta or META, namespace=namespace,
        checks=[ServiceCheck(name="Proxy Public Listener", tcp="1.2.3.4:20000", interval="10s",
                             deregister_critical_service_after="10m"),
                ServiceCheck(name="Destination Alias", alias_service="pod1-web")],
        proxy=ProxyConfig(destination_service_name="web", destination_service_id="pod1-web"))


def health_check(status: str = CRITICAL) -> CheckRegistration:
    return CheckRegistration(id=CHECK_ID, name="Kubernetes Health Check", service_id="pod1-web", ttl="100000h",
                             status=status, success_before_passing=1, failures_before_critical=1)


# -- request bodies, byte for byte the Go client's JSON --

async def test_service_and_proxy_registrations_send_the_reference_bodies(fake: FakeConsul, consul: Consul):
    agent = consul.agent("127.0.0.3")
    await agent.register_service(service())
    await agent.register_service(proxy())
    first, second = fake.calls("PUT", "/v1/agent/service/register")
    assert first.agent == second.agent == "127.0.0.3"
    assert first.query == {}  # no ns, no partition, no replace-existing-checks
    assert first.body == {"ID": "pod1-web", "Name": "web", "Address": "1.2.3.4", "Meta": META,
                          "Check": None, "Checks": None}
    assert second.body == {
        "Kind": "connect-proxy", "ID": "pod1-web-sidecar-proxy", "Name": "web-sidecar-proxy", "Port": 20000,
        "Address": "1.2.3.4", "Meta": META, "Check": None,
        "Checks": [{"Name": "Proxy Public Listener", "TCP": "1.2.3.4:20000", "Interval": "10s",
                    "DeregisterCriticalServiceAfter": "10m"},
                   {"Name": "Destination Alias", "AliasService": "pod1-web"}],
        "Proxy": {"DestinationServiceName": "web", "DestinationServiceID": "pod1-web", "MeshGateway": {}, "Expose": {}}}
    assert first.headers["Content-Type"] == "application/json"
    # and the agent stored them (the one at 127.0.0.3 only)
    assert set(fake.agent("127.0.0.3").service_views()) == {"pod1-web", "pod1-web-sidecar-proxy"}
    assert fake.agent("127.0.0.2").service_views() == {}


async def test_fully_featured_proxy_registration_body(make_fake, make_consul):
    fake = await make_fake(1, enterprise=True)
    fake.add_namespace("team")
    consul = make_consul({"CONSUL_HTTP_ADDR": fake.address})
    meta = {**META, "k8s-namespace": "team", "version": "2"}
    registration = ServiceRegistration(
        kind="connect-proxy", id="pod1-web-sidecar-proxy", name="web-sidecar-proxy", tags=["v1"], port=20000,
        address="1.2.3.4", tagged_addresses={"virtual": ServiceAddress("10.0.0.1", 80)}, meta=meta,
        checks=proxy().checks, namespace="team",
        proxy=ProxyConfig(destination_service_name="web", destination_service_id="pod1-web",
                          local_service_address="127.0.0.1", local_service_port=8080, mode="transparent",
                          config={"envoy_prometheus_bind_addr": "0.0.0.0:20200"},
                          upstreams=[Upstream("db", destination_type="service", destination_namespace="db-ns",
                                              local_bind_port=1234)],
                          expose_paths=[ExposePath(listener_port=20300, path="/health", local_path_port=8080)]))
    await consul.agent(fake.agents[0].ip, namespace="team").register_service(registration)
    (call,) = fake.calls("PUT", "/v1/agent/service/register")
    assert call.query == {"ns": "team"}
    assert call.body == {
        "Kind": "connect-proxy", "ID": "pod1-web-sidecar-proxy", "Name": "web-sidecar-proxy", "Tags": ["v1"],
        "Port": 20000, "Address": "1.2.3.4", "TaggedAddresses": {"virtual": {"Address": "10.0.0.1", "Port": 80}},
        "Meta": meta, "Check": None, "Checks": second_body_checks(),
        "Proxy": {"DestinationServiceName": "web", "DestinationServiceID": "pod1-web",
                  "LocalServiceAddress": "127.0.0.1", "LocalServicePort": 8080, "Mode": "transparent",
                  "Config": {"envoy_prometheus_bind_addr": "0.0.0.0:20200"},
                  "Upstreams": [{"DestinationType": "service", "DestinationNamespace": "db-ns",
                                 "DestinationName": "db", "LocalBindPort": 1234, "MeshGateway": {}}],
                  "MeshGateway": {},
                  "Expose": {"Paths": [{"ListenerPort": 20300, "Path": "/health", "LocalPathPort": 8080}]}},
        "Namespace": "team"}
    stored = fake.agent(0).service("pod1-web-sidecar-proxy", ns="team")
    assert stored is not None and stored["Proxy"]["Mode"] == "transparent"
    assert stored["TaggedAddresses"]["virtual"] == {"Address": "10.0.0.1", "Port": 80}


def second_body_checks() -> list[dict]:
    return [{"Name": "Proxy Public Listener", "TCP": "1.2.3.4:20000", "Interval": "10s",
             "DeregisterCriticalServiceAfter": "10m"},
            {"Name": "Destination Alias", "AliasService": "pod1-web"}]


async def test_replace_existing_checks_is_a_query_parameter(fake: FakeConsul, consul: Consul):
    await consul.local().register_service(service(), replace_existing_checks=True)
    (call,) = fake.calls("PUT", "/v1/agent/service/register")
    assert call.query == {"replace-existing-checks": "true"}


# -- health check sync (reference §3) --

async def test_health_check_register_then_update_with_the_id_in_the_path(fake: FakeConsul, consul: Consul):
    agent = consul.local()
    await agent.register_service(service())
    assert await agent.checks(f"CheckID == `{CHECK_ID}`") == {}
    await agent.register_check(health_check(PASSING))
    await agent.update_ttl(CHECK_ID, PASSING, "Kubernetes health checks passing")
    register, update = fake.calls("PUT", "/v1/agent/check/.*")
    assert register.body == {"ID": CHECK_ID, "Name": "Kubernetes Health Check", "ServiceID": "pod1-web",
                             "TTL": "100000h", "Status": "passing", "SuccessBeforePassing": 1,
                             "FailuresBeforeCritical": 1}
    assert update.path == "/v1/agent/check/update/default/pod1-web/kubernetes-health-check"
    assert update.body == {"Status": "passing", "Output": "Kubernetes health checks passing"}
    found = await agent.checks(f"CheckID == `{CHECK_ID}`")
    assert list(found) == [CHECK_ID]
    assert {k: found[CHECK_ID][k] for k in ("Name", "Status", "Output", "ServiceID", "ServiceName", "Type")} == {
        "Name": "Kubernetes Health Check", "Status": "passing", "Output": "Kubernetes health checks passing",
        "ServiceID": "pod1-web", "ServiceName": "web", "Type": "ttl"}
    (listing,) = fake.calls("GET", "/v1/agent/checks")[:1]
    assert listing.query == {"filter": f"CheckID == `{CHECK_ID}`"}


async def test_a_check_on_an_unregistered_service_is_a_500_naming_it(consul: Consul):
    with pytest.raises(ConsulStatusError) as err:
        await consul.local().register_check(health_check())
    assert err.value.status == 500
    assert err.value.body.endswith('"pod1-web" does not exist')
    assert str(err.value) == 'Unexpected response code: 500 (ServiceID "pod1-web" does not exist)'


# -- deregistration (reference §4) --

async def test_list_with_the_deregistration_filter_then_deregister(fake: FakeConsul, consul: Consul):
    for ip in ("127.0.0.2", "127.0.0.3"):
        await consul.agent(ip).register_service(service())
        await consul.agent(ip).register_service(proxy())
    await consul.agent("127.0.0.2").register_service(
        ServiceRegistration(id="other", name="other", address="1.2.3.5", meta={**META, "k8s-service-name": "other"}))
    fake.clear_journal()
    agent = consul.agent("127.0.0.2")
    found = await agent.services(DEREGISTER_FILTER)
    assert set(found) == {"pod1-web", "pod1-web-sidecar-proxy"}
    assert found["pod1-web"]["Address"] == "1.2.3.4" and found["pod1-web"]["Meta"] == META
    (listing,) = fake.calls("GET", "/v1/agent/services")
    assert listing.query == {"filter": DEREGISTER_FILTER}
    for service_id in found:
        await agent.deregister_service(service_id)
    assert [c.path for c in fake.calls("PUT")] == ["/v1/agent/service/deregister/pod1-web",
                                                   "/v1/agent/service/deregister/pod1-web-sidecar-proxy"]
    assert await agent.services(DEREGISTER_FILTER) == {}
    assert set(await consul.agent("127.0.0.3").services(DEREGISTER_FILTER)) == {"pod1-web", "pod1-web-sidecar-proxy"}
    with pytest.raises(ConsulStatusError) as err:
        await agent.deregister_service("pod1-web")
    assert err.value.status == 404


async def test_ids_are_escaped_in_the_path_but_keep_their_slashes(fake: FakeConsul, consul: Consul):
    fake.deregister_unknown_ok = True
    await consul.local().deregister_service("odd id?#%/x")
    (call,) = fake.calls("PUT")
    assert call.path == "/v1/agent/service/deregister/odd id?#%/x" and call.query == {}


async def test_a_bad_filter_is_a_400(consul: Consul):
    with pytest.raises(ConsulStatusError) as err:
        await consul.local().services('Bogus == "x"')
    assert err.value.status == 400
    assert "Failed to create boolean expression evaluator" in err.value.body


async def test_acl_token_cleanup_lists_by_auth_method_and_deletes(make_fake, make_consul):
    fake = await make_fake(1, acl_enabled=True, master_token="root")
    fake.auth_methods.add("consul-k8s-auth-method")
    fake.login_bindings.update({"jwt-1": "web", "jwt-2": "web"})
    mine = fake.login("consul-k8s-auth-method", "jwt-1", {"pod": "default/pod1"})
    other = fake.login("consul-k8s-auth-method", "jwt-2", {"pod": "default/pod2"})
    unrelated = fake.add_token(description="someone else's", service_identities=["web"])
    consul = make_consul({"CONSUL_HTTP_ADDR": fake.address, "CONSUL_HTTP_TOKEN": "root"})
    agent = consul.local()
    tokens = await agent.acl_tokens(auth_method="consul-k8s-auth-method")
    assert {t["AccessorID"] for t in tokens} == {mine["AccessorID"], other["AccessorID"]}
    entry = next(t for t in tokens if t["AccessorID"] == mine["AccessorID"])
    assert entry["Description"] == 'token created via login: {"pod":"default/pod1"}'
    assert entry["ServiceIdentities"] == [{"ServiceName": "web"}] and entry["AuthMethod"] == "consul-k8s-auth-method"
    assert fake.calls("GET", "/v1/acl/tokens")[0].query == {"authmethod": "consul-k8s-auth-method"}
    everything = await agent.acl_tokens()
    assert unrelated["AccessorID"] in {t["AccessorID"] for t in everything}
    await agent.delete_acl_token(mine["AccessorID"])
    (delete,) = fake.calls("DELETE")
    assert delete.path == f"/v1/acl/token/{mine['AccessorID']}" and delete.token == "root"
    assert mine["AccessorID"] not in fake.tokens and other["AccessorID"] in fake.tokens
    with pytest.raises(ConsulStatusError) as err:
        await agent.delete_acl_token(mine["AccessorID"])
    assert (err.value.status, err.value.body) == (403, "ACL not found")


# -- central config and namespaces (reference §5, §6) --

async def test_config_entry_read_is_none_when_absent(fake: FakeConsul, consul: Consul):
    assert await consul.local().config_entry("proxy-defaults", "global") is None
    fake.set_config_entry({"Kind": "proxy-defaults", "Name": "global", "MeshGateway": {"Mode": "local"}})
    entry = await consul.local().config_entry("proxy-defaults", "global")
    assert entry is not None and entry["MeshGateway"] == {"Mode": "local"} and entry["Kind"] == "proxy-defaults"
    assert [c.path for c in fake.calls("GET")] == ["/v1/config/proxy-defaults/global"] * 2


async def test_ensure_namespace_creates_it_once_with_the_reference_body(make_fake, make_consul):
    fake = await make_fake(1, enterprise=True, acl_enabled=True)
    fake.add_policy("cross-namespace-policy")
    consul = make_consul({"CONSUL_HTTP_ADDR": fake.address, "CONSUL_HTTP_TOKEN": "root"})
    agent = consul.local(namespace="ignored-for-namespace-calls")
    assert await agent.read_namespace("team") is None
    assert await agent.ensure_namespace("team", "cross-namespace-policy") is True
    assert await agent.ensure_namespace("team", "cross-namespace-policy") is False
    assert await agent.ensure_namespace("default") is False and await agent.ensure_namespace("*") is False
    (create,) = fake.calls("PUT", "/v1/namespace")
    assert create.body == {"Name": "team", "Description": "Auto-generated by consul-k8s",
                           "ACLs": {"PolicyDefaults": [{"ID": "", "Name": "cross-namespace-policy"}],
                                    "RoleDefaults": None},
                           "Meta": {"external-source": "kubernetes"}}
    assert all("ns" not in c.query for c in fake.journal)  # namespace calls never carry ns=
    stored = await agent.read_namespace("team")
    assert stored is not None
    assert stored["ACLs"]["PolicyDefaults"][0]["Name"] == "cross-namespace-policy"
    assert stored["ACLs"]["PolicyDefaults"][0]["ID"] == fake._policy_by_name("cross-namespace-policy")["ID"]


async def test_ensure_namespace_without_a_policy_sends_null_lists(make_fake, make_consul):
    fake = await make_fake(1, enterprise=True)
    consul = make_consul({"CONSUL_HTTP_ADDR": fake.address})
    assert await consul.local().ensure_namespace("team") is True
    (create,) = fake.calls("PUT", "/v1/namespace")
    assert create.body["ACLs"] == {"PolicyDefaults": None, "RoleDefaults": None}


async def test_ensure_namespace_settles_a_creation_race(make_fake, make_consul):
    fake = await make_fake(1, enterprise=True)
    fake.add_namespace("team")
    fake.fail(r"^/v1/namespace/team$", method="GET", status=404, times=1)  # another replica creates it meanwhile
    consul = make_consul({"CONSUL_HTTP_ADDR": fake.address})
    assert await consul.local().ensure_namespace("team") is False
    assert [(c.method, c.status) for c in fake.journal] == [("GET", 404), ("PUT", 500), ("GET", 200)]


async def test_namespace_query_parameter_on_every_namespaced_call(make_fake, make_consul):
    fake = await make_fake(1, enterprise=True, acl_enabled=True)
    fake.add_namespace("team")
    consul = make_consul({"CONSUL_HTTP_ADDR": fake.address, "CONSUL_HTTP_TOKEN": "root"})
    agent = consul.local(namespace="team")
    await agent.register_service(service(namespace="team"))
    await agent.register_check(health_check())
    await agent.update_ttl(CHECK_ID, PASSING, "ok")
    await agent.services(DEREGISTER_FILTER)
    await agent.checks()
    await agent.acl_tokens()
    await agent.deregister_service("pod1-web")
    assert all(c.query.get("ns") == "team" for c in fake.journal), [(c.path, c.query) for c in fake.journal]
    assert len(fake.journal) == 7
    assert fake.agent(0).service_views("team") == {} and fake.agent(0).service_views("default") == {}


async def test_partition_query_parameter_on_every_call(make_fake, make_consul):
    fake = await make_fake(1, enterprise=True)
    consul = make_consul({"CONSUL_HTTP_ADDR": fake.address}, partition="part-1")
    agent = consul.local(namespace="default")
    await agent.register_service(service())
    await agent.services()
    await agent.config_entry("proxy-defaults", "global")
    await agent.read_namespace("team")
    assert [c.query.get("partition") for c in fake.journal] == ["part-1"] * 4
    assert fake.agent(0).service("pod1-web")["Partition"] == "part-1"


async def test_namespaces_against_oss_consul_are_a_400(fake: FakeConsul, consul: Consul):
    with pytest.raises(ConsulStatusError) as err:
        await consul.local(namespace="team").services()
    assert err.value.status == 400
    assert err.value.body == 'Bad request: Invalid query parameter: "ns" - Namespaces are a Consul Enterprise feature'


# -- token, user agent --

async def test_token_and_user_agent_headers(make_fake, make_consul):
    fake = await make_fake(1, acl_enabled=True, master_token="s3cret")
    consul = make_consul({"CONSUL_HTTP_ADDR": fake.address, "CONSUL_HTTP_TOKEN": "s3cret"})
    await consul.local().services()
    (call,) = fake.journal
    assert call.token == "s3cret"
    assert call.headers["User-Agent"].startswith("consul-connect-inject/")


async def test_without_a_token_acl_consul_refuses(make_fake, make_consul):
    fake = await make_fake(1, acl_enabled=True)
    for env, body in (({}, "Permission denied"), ({"CONSUL_HTTP_TOKEN": "wrong"}, "ACL not found")):
        consul = make_consul({"CONSUL_HTTP_ADDR": fake.address, **env})
        with pytest.raises(ConsulStatusError) as err:
            await consul.local().register_service(service())
        assert (err.value.status, err.value.body) == (403, body)


async def test_token_file_wins_and_is_reread_when_rotated(make_fake, make_consul, tmp_path: Path):
    fake = await make_fake(1)
    token_file = tmp_path / "token"
    token_file.write_text("first\n")
    consul = make_consul({"CONSUL_HTTP_ADDR": fake.address, "CONSUL_HTTP_TOKEN": "from-env",
                          "CONSUL_HTTP_TOKEN_FILE": str(token_file)})
    await consul.local().services()
    replacement = tmp_path / "token.new"
    replacement.write_text("second")
    os.replace(replacement, token_file)  # a Secret update: a new file under the same name
    await consul.local().services()
    token_file.write_text("")            # an empty file falls back to the variable
    await consul.local().services()
    assert [c.token for c in fake.journal] == ["first", "second", "from-env"]


# -- failures: typed, and quick --

async def test_a_down_agent_is_unreachable_at_once(fake: FakeConsul, consul: Consul):
    await fake.down("127.0.0.3")
    started = time.monotonic()
    with pytest.raises(ConsulUnreachable) as err:
        await consul.agent("127.0.0.3").services()
    assert time.monotonic() - started < 1.0
    assert "127.0.0.3" in str(err.value) and "refused" in err.value.reason.lower()
    assert await consul.agent("127.0.0.2").services() == {}  # the other agent still answers
    await fake.up("127.0.0.3")
    assert await consul.agent("127.0.0.3").services() == {}


async def test_a_hanging_agent_times_out_within_the_request_timeout(fake: FakeConsul, make_consul):
    fake.fail("/v1/agent/services", delay=30)
    consul = make_consul({"CONSUL_HTTP_ADDR": fake.address}, timeout=0.3)
    started = time.monotonic()
    with pytest.raises(ConsulUnreachable) as err:
        await consul.local().services()
    assert time.monotonic() - started < 1.5
    assert "no answer within 0.3s" in str(err.value)


async def test_a_reset_connection_is_unreachable(fake: FakeConsul, consul: Consul):
    fake.fail("/v1/agent/service/register", reset=True)
    with pytest.raises(ConsulUnreachable):
        await consul.local().register_service(service())


async def test_a_closed_keepalive_connection_is_retried_for_reads(fake: FakeConsul, consul: Consul):
    agent = consul.agent("127.0.0.3")
    await agent.services()                       # opens a pooled connection
    await fake.restart("127.0.0.3")              # the agent closes it (and loses its state)
    assert await agent.services() == {}          # the GET goes through on a new connection


@pytest.mark.parametrize("status", [500, 503])
async def test_server_errors_carry_status_and_body(fake: FakeConsul, consul: Consul, status: int):
    fake.fail("/v1/agent/service/register", status=status, body="rpc error: No cluster leader\n")
    with pytest.raises(ConsulStatusError) as err:
        await consul.local().register_service(service())
    # verbatim, as Go's client prints it: conditions show Consul's own text (crd-controller §2.4)
    assert (err.value.status, err.value.body) == (status, "rpc error: No cluster leader\n")
    assert str(err.value) == f"Unexpected response code: {status} (rpc error: No cluster leader\n)"
    assert err.value.method == "PUT" and err.value.url.endswith("/v1/agent/service/register")


async def test_a_long_error_body_is_cut(fake: FakeConsul, consul: Consul):
    fake.fail("/v1/agent/services", status=500, body="x" * 100_000)
    with pytest.raises(ConsulStatusError) as err:
        await consul.local().services()
    assert len(err.value.body) < 2000


async def test_a_200_that_is_not_json_is_a_response_error(fake: FakeConsul, consul: Consul):
    fake.fail("/v1/agent/services", status=200, body="<html>proxy</html>")
    with pytest.raises(ConsulResponseError):
        await consul.local().services()


async def test_concurrent_requests_share_one_bounded_pool(fake: FakeConsul, make_consul):
    consul = make_consul({"CONSUL_HTTP_ADDR": fake.address}, max_connections_per_agent=2)
    fake.fail("/v1/agent/services", delay=0.2)
    started = time.monotonic()
    await asyncio.gather(*(consul.agent("127.0.0.2").services() for _ in range(4)))
    # four 0.2 s requests through two connections take two rounds
    assert time.monotonic() - started >= 0.38
    assert consul.session.connector is not None and consul.session.connector.limit_per_host == 2


# -- TLS (CONSUL_CACERT; certificates from generator/tools/devcerts.py) --

def _server_tls(ca: CA, directory: Path, hosts: tuple[str, ...] = ("127.0.0.2", "127.0.0.3")) -> ssl.SSLContext:
    """The agents' serving context: one certificate for every agent IP, issued by `ca`."""
    pair = ca.issue("consul-client", hosts=hosts)
    (directory / "tls.crt").write_bytes(pair.cert_pem)
    (directory / "tls.key").write_bytes(pair.key_pem)
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(directory / "tls.crt", directory / "tls.key")
    return ctx


async def test_https_agents_verified_with_consul_cacert(make_fake, make_consul, tmp_path: Path):
    ca = CA()
    fake = await make_fake(2, ssl_context=_server_tls(ca, tmp_path))
    ca_file = tmp_path / "ca.pem"
    ca_file.write_bytes(ca.cert_pem)
    consul = make_consul({"CONSUL_HTTP_ADDR": f"https://127.0.0.2:{fake.port}", "CONSUL_CACERT": str(ca_file)})
    await consul.agent("127.0.0.3").register_service(service())
    assert set(await consul.agent("127.0.0.3").services()) == {"pod1-web"}
    assert fake.agent("127.0.0.3").service("pod1-web") is not None


async def test_https_with_another_ca_is_a_tls_error(make_fake, make_consul, tmp_path: Path):
    fake = await make_fake(1, ssl_context=_server_tls(CA(), tmp_path))
    other = tmp_path / "other-ca.pem"
    other.write_bytes(CA("another CA").cert_pem)
    consul = make_consul({"CONSUL_HTTP_ADDR": f"https://127.0.0.2:{fake.port}", "CONSUL_CACERT": str(other)})
    with pytest.raises(ConsulTLSError) as err:
        await consul.local().services()
    assert "certificate verify failed" in str(err.value).lower()
    assert fake.journal == type(fake.journal)()  # the agent never saw a request


async def test_https_certificate_checked_against_the_agent_ip(make_fake, make_consul, tmp_path: Path):
    """A certificate for 127.0.0.2 only does not verify for the agent at 127.0.0.3 (no server name
    is set, as in the reference chart, so each agent's IP must be in its certificate)."""
    ca = CA()
    ctx = _server_tls(ca, tmp_path, hosts=("127.0.0.2",))
    fake = await make_fake(2, ssl_context=ctx)
    (tmp_path / "ca.pem").write_bytes(ca.cert_pem)
    consul = make_consul({"CONSUL_HTTP_ADDR": f"https://127.0.0.2:{fake.port}",
                          "CONSUL_CACERT": str(tmp_path / "ca.pem")})
    assert await consul.agent("127.0.0.2").services() == {}
    with pytest.raises(ConsulTLSError):
        await consul.agent("127.0.0.3").services()
