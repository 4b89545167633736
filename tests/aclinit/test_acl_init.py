"""`acl-init` against the fakes, in process: what a user sees (stdout lines, stderr messages,
exit status) and what Consul and Kubernetes hold afterwards.

Consul: tests/fakes/consul_agent.py with ACLs on and its ACL objects (tests/fakes/consul_acl.py,
written from Consul's ACL HTTP API documentation: auth methods, binding rules, policies, tokens).
Kubernetes: tests/fakes/kube_api.py serving ServiceAccounts and Secrets
(tests/fakes/kube_accounts.py), the test playing the token controller. Both on loopback; our
side talks to them with its real clients (aiohttp, the official Kubernetes client).
"""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client as kclient
from kubernetes import config as kconfig

from generator.aclinit import kube as k8s
from generator.aclinit.run import Report, Runner
from generator.aclinit.settings import Settings, from_values
from generator.consul import ConsulConfig
from generator.kube.client import api_client_for
from generator.values.config import merged_values
from tests.fakes import kube_accounts as accounts
from tests.fakes.consul_agent import FakeConsul
from tests.fakes.kube_api import RESOURCES, FakeKubeAPI

NS = "consul"
RELEASE = "consul"          # the Consul release: fullname consul-consul
C = "consul-consul"
OUR_SA = "ours-consul-connect-inject-auth-method"
OUR_TOKEN = f"{OUR_SA}-token"
ROOT_TOKEN = "root-management-token"


@dataclass
class Env:
    api: FakeKubeAPI
    consul: FakeConsul
    kubeconfig: Path

    def settings(self, *sets: str) -> Settings:
        values = merged_values((), ("connectInject.enabled=true", "controller.enabled=true",
                                    "global.acls.manageSystemACLs=true", *sets))
        return from_values(values, consul_release=RELEASE, namespace=NS, auth_method_service_account=OUR_SA)

    async def run(self, *sets: str, env: dict[str, str] | None = None, timeout: float = 10.0) -> tuple[int, Report]:
        cfg = kclient.Configuration()
        kconfig.load_kube_config(str(self.kubeconfig), client_configuration=cfg)
        api_client = api_client_for(cfg)
        report = Report()
        consul_env = {"CONSUL_HTTP_ADDR": self.consul.address, **(env or {})}
        source = "CONSUL_HTTP_TOKEN" if "CONSUL_HTTP_TOKEN" in consul_env else ""
        runner = Runner(self.settings(*sets), ConsulConfig.from_env(consul_env), k8s.Kube(api_client, NS), report,
                        timeout=timeout, env_token_source=source)
        try:
            return await runner.run(), report
        finally:
            api_client.close()

    def consul_writes(self) -> list[str]:
        return [f"{c.method} {c.path}" for c in self.consul.writes()]

    def kube_writes(self) -> list[str]:
        return [f"{r.method} {r.path}" for r in self.api.journal if r.method not in ("GET",)]


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def install_consul_release(api: FakeKubeAPI) -> None:
    """What the Consul release and our chart leave before the Job: the bootstrap token Secret,
    our auth-method ServiceAccount with its token Secret (filled by the token controller)."""
    api.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}})
    api.create({"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
                "metadata": {"name": f"{C}-bootstrap-acl-token", "namespace": NS}, "data": {"token": b64(ROOT_TOKEN)}})
    accounts.create_account(api, NS, OUR_SA, token_secrets=(OUR_TOKEN,))
    api.create({"apiVersion": "v1", "kind": "Secret", "type": accounts.TOKEN_TYPE,
                "metadata": {"name": OUR_TOKEN, "namespace": NS,
                             "annotations": {accounts.NAME_ANNOTATION: OUR_SA}}})
    accounts.fill_token(api, NS, OUR_TOKEN)


@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[Env]:
    async with FakeKubeAPI(resources=RESOURCES + accounts.ACCOUNTS) as api, \
            FakeConsul(1, acl_enabled=True, master_token=ROOT_TOKEN) as consul:
        install_consul_release(api)
        yield Env(api, consul, api.kubeconfig(tmp_path / "kubeconfig", namespace=NS))


@pytest.fixture
async def enterprise(tmp_path: Path) -> AsyncIterator[Env]:
    async with FakeKubeAPI(resources=RESOURCES + accounts.ACCOUNTS) as api, \
            FakeConsul(1, acl_enabled=True, master_token=ROOT_TOKEN, enterprise=True) as consul:
        install_consul_release(api)
        yield Env(api, consul, api.kubeconfig(tmp_path / "kubeconfig", namespace=NS))


def token_of(env: Env, secret: str) -> dict[str, Any]:
    stored = env.api.get("v1", "Secret", NS, secret)
    assert stored is not None
    token = env.consul.token_by_secret(accounts.secret_value(stored, "token"))
    assert token is not None
    return token


async def test_first_run_creates_everything_and_the_second_changes_nothing(env: Env) -> None:
    """Fakes: consul_agent + consul_acl (ACLs on, OSS), kube_api + kube_accounts."""
    code, report = await env.run()
    assert code == 0, report.errors
    assert report.lines == [
        f"created auth-method {C}-k8s-auth-method",
        f"created binding-rule {C}-k8s-auth-method: selector 'serviceaccount.name!=default' "
        f"(ID {next(iter(env.consul.acl.binding_rules))})",
        "created policy connect-inject-token",
        f"created secret {NS}/{C}-connect-inject-acl-token: token for policy connect-inject-token",
        "created policy controller-token",
        f"created secret {NS}/{C}-controller-acl-token: token for policy controller-token",
    ]
    method = env.consul.acl.auth_methods[("default", f"{C}-k8s-auth-method")]
    sa_secret = env.api.get("v1", "Secret", NS, OUR_TOKEN)
    assert sa_secret is not None
    assert method["Type"] == "kubernetes" and method["Description"] == "Kubernetes Auth Method"
    assert method["Config"] == {"Host": "https://kubernetes.default.svc", "CACert": accounts.cluster_ca(),
                                "ServiceAccountJWT": accounts.secret_value(sa_secret, "token")}
    [rule] = env.consul.acl.binding_rules.values()
    assert (rule["BindType"], rule["BindName"], rule["Selector"], rule["Description"]) == (
        "service", "${serviceaccount.name}", "serviceaccount.name!=default", "Kubernetes binding rule")
    inject = token_of(env, f"{C}-connect-inject-acl-token")
    assert [p["Name"] for p in inject["Policies"]] == ["connect-inject-token"] and inject["Local"] is True
    assert inject["Description"] == "connect-inject-token Token"
    controller = token_of(env, f"{C}-controller-acl-token")
    assert [p["Name"] for p in controller["Policies"]] == ["controller-token"] and controller["Local"] is False
    policies = {p["Name"]: p for p in env.consul.policies.values()}
    assert policies["connect-inject-token"]["Datacenters"] == ["dc1"]
    assert policies["controller-token"]["Datacenters"] == []
    assert policies["connect-inject-token"]["Description"] == "connect-inject-token Token Policy"

    env.consul.clear_journal()
    env.api.journal.clear()
    code, report = await env.run()
    assert code == 0, report.errors
    assert report.lines == [
        f"unchanged auth-method {C}-k8s-auth-method",
        f"unchanged binding-rule {C}-k8s-auth-method",
        "unchanged policy connect-inject-token",
        f"unchanged secret {NS}/{C}-connect-inject-acl-token",
        "unchanged policy controller-token",
        f"unchanged secret {NS}/{C}-controller-acl-token",
    ]
    assert env.consul_writes() == [] and env.kube_writes() == []


async def test_an_auth_method_holding_a_deleted_service_accounts_token_is_re_pointed(env: Env) -> None:
    """Fakes: consul_agent + consul_acl, kube_api + kube_accounts. The Consul release's own
    auth-method ServiceAccount wrote its JWT into the method, then the release turned
    connectInject off: the account and (token controller) its token Secret are gone."""
    old_sa = f"{C}-connect-injector-authmethod-svc-account"
    accounts.create_account(env.api, NS, old_sa)
    old_secret = accounts.issue_token(env.api, NS, old_sa)
    old_jwt = accounts.secret_value(old_secret, "token")
    env.consul.add_policy("connect-inject-token", "", "connect-inject-token Token Policy")
    method = {"Name": f"{C}-k8s-auth-method", "Type": "kubernetes", "Description": "Kubernetes Auth Method",
              "Config": {"Host": "https://kubernetes.default.svc", "CACert": accounts.cluster_ca(),
                         "ServiceAccountJWT": old_jwt}}
    env.consul.acl.auth_methods[("default", method["Name"])] = {**method, "CreateIndex": 1, "ModifyIndex": 1}
    env.consul.auth_methods.add(method["Name"])
    accounts.delete_account(env.api, NS, old_sa)
    assert env.api.get("v1", "Secret", NS, old_secret["metadata"]["name"]) is None

    code, report = await env.run()
    assert code == 0, report.errors
    assert f"updated auth-method {C}-k8s-auth-method: re-pointed from ServiceAccount {NS}/{old_sa} " \
           f"(no longer exists) to {NS}/{OUR_SA}" in report.lines
    ours = env.api.get("v1", "Secret", NS, OUR_TOKEN)
    assert ours is not None
    stored = env.consul.acl.auth_methods[("default", method["Name"])]
    assert stored["Config"]["ServiceAccountJWT"] == accounts.secret_value(ours, "token")
    # The policy the Consul job made with other rules is brought to the reference's rules.
    assert "updated policy connect-inject-token: rules and datacenters" in report.lines


async def test_a_wrong_management_token_fails_with_the_secret_and_the_fix(env: Env) -> None:
    """Fakes: consul_agent (ACLs on; an unknown X-Consul-Token is 403 `ACL not found`) + kube_api."""
    env.api.patch("v1", "Secret", NS, f"{C}-bootstrap-acl-token", {"data": {"token": b64("not-the-token")}})
    code, report = await env.run()
    assert code == 1 and report.lines == []
    [message] = report.errors
    assert f"the management token from Secret {NS}/{C}-bootstrap-acl-token key 'token'" in message
    assert "is not known to Consul" in message and "global.acls.bootstrapToken" in message
    assert env.consul_writes() == []


async def test_a_missing_bootstrap_secret_names_the_values_key(env: Env) -> None:
    """Fakes: kube_api (no Secret `mgmt`) + consul_agent."""
    code, report = await env.run("global.acls.bootstrapToken.secretName=mgmt",
                                 "global.acls.bootstrapToken.secretKey=key")
    assert code == 1
    assert report.errors == [
        f"management token: Secret {NS}/mgmt key 'key' (global.acls.bootstrapToken) not found (is the Consul "
        f"release 'consul' installed in namespace '{NS}' with global.acls.manageSystemACLs?); put the Consul "
        f"release's bootstrap token in Secret {NS}/mgmt key 'key' (global.acls.bootstrapToken), or set "
        f"global.acls.bootstrapToken.secretName and secretKey to the Secret that holds it, or set CONSUL_HTTP_TOKEN"]


async def test_consul_unreachable_is_retried_then_named(env: Env) -> None:
    """Fakes: consul_agent stopped (connection refused) + kube_api. The run retries within its
    deadline and then says which address it tried and what to check."""
    await env.consul.down()
    code, report = await env.run(timeout=0.5)
    assert code == 1
    assert any(e.startswith("retrying read the management token in Consul") for e in report.errors)
    assert "no success within 0.5s" in report.errors[-1]
    assert f"Check CONSUL_HTTP_ADDR ({env.consul.address};" in report.errors[-1]


async def test_a_secret_whose_token_consul_forgot_gets_a_new_token(env: Env) -> None:
    """Fakes: consul_agent + consul_acl, kube_api. The reference trusts an existing Secret; we
    check its token is known to Consul and mint a new one when it is not."""
    await env.run()
    secret = f"{C}-controller-acl-token"
    forgotten = token_of(env, secret)
    del env.consul.tokens[forgotten["AccessorID"]]
    code, report = await env.run()
    assert code == 0, report.errors
    assert (f"updated secret {NS}/{secret}: the token it held is not known to Consul; now a new token for "
            f"policy controller-token") in report.lines
    assert token_of(env, secret)["AccessorID"] != forgotten["AccessorID"]


async def test_foreign_binding_rules_fail_that_object_only(env: Env) -> None:
    """Fakes: consul_agent + consul_acl. Rules of the auth method that the Consul chart did not
    make are not overwritten (reference: "unable to find a matching ACL binding rule")."""
    await env.run()
    [rule] = env.consul.acl.binding_rules.values()
    rule["BindName"] = "someone-else"
    code, report = await env.run()
    assert code == 1
    assert any("unable to find a matching ACL binding rule to update" in e and rule["ID"] in e
               for e in report.errors)
    assert f"unchanged secret {NS}/{C}-controller-acl-token" in report.lines


async def test_a_selector_change_updates_the_binding_rule(env: Env) -> None:
    """Fakes: consul_agent + consul_acl."""
    await env.run()
    code, report = await env.run("connectInject.aclBindingRuleSelector=serviceaccount.name!=build")
    assert code == 0
    assert (f"updated binding-rule {C}-k8s-auth-method: selector 'serviceaccount.name!=default' -> "
            f"'serviceaccount.name!=build'") in report.lines
    [rule] = env.consul.acl.binding_rules.values()
    assert rule["Selector"] == "serviceaccount.name!=build"


async def test_namespaces_with_mirroring(enterprise: Env) -> None:
    """Fakes: consul_agent Enterprise (namespaces) + consul_acl, kube_api. Mirroring: the auth
    method stays in `default` and maps namespaces; cross-namespace-policy becomes the default
    namespace's policy default; the inject policy is global and namespace-aware."""
    env = enterprise
    sets = ("global.enableConsulNamespaces=true", "connectInject.consulNamespaces.mirroringK8S=true",
            "connectInject.consulNamespaces.mirroringK8SPrefix=k8s-")
    code, report = await env.run(*sets)
    assert code == 0, report.errors
    assert report.lines[:4] == [
        "created policy cross-namespace-policy",
        "updated namespace default: policy default cross-namespace-policy added",
        f"created auth-method {C}-k8s-auth-method",
        report.lines[3],
    ]
    method = env.consul.acl.auth_methods[("default", f"{C}-k8s-auth-method")]
    assert method["Config"]["MapNamespaces"] is True and method["Config"]["ConsulNamespacePrefix"] == "k8s-"
    policies = {p["Name"]: p for p in env.consul.policies.values()}
    assert policies["cross-namespace-policy"]["Description"] == \
        "Policy to allow permissions to cross Consul namespaces for k8s services"
    assert policies["cross-namespace-policy"]["Rules"].startswith('\n  namespace_prefix "" {')
    assert policies["connect-inject-token"]["Datacenters"] == []
    assert 'namespace_prefix "k8s-" {' in policies["controller-token"]["Rules"]
    assert [p["Name"] for p in env.consul.namespaces["default"]["ACLs"]["PolicyDefaults"]] == \
        ["cross-namespace-policy"]
    assert token_of(env, f"{C}-connect-inject-acl-token")["Local"] is False

    env.consul.clear_journal()
    code, report = await env.run(*sets)
    assert code == 0 and all(line.startswith("unchanged ") for line in report.lines), report.lines
    assert env.consul_writes() == []


async def test_namespaces_with_a_destination_namespace(enterprise: Env) -> None:
    """Fakes: consul_agent Enterprise + consul_acl. Without mirroring the auth method and its rule
    live in the destination namespace, created with cross-namespace-policy as its default."""
    env = enterprise
    code, report = await env.run("global.enableConsulNamespaces=true",
                                 "connectInject.consulNamespaces.consulDestinationNamespace=apps")
    assert code == 0, report.errors
    assert "created namespace apps" in report.lines
    assert [p["Name"] for p in env.consul.namespaces["apps"]["ACLs"]["PolicyDefaults"]] == ["cross-namespace-policy"]
    assert ("apps", f"{C}-k8s-auth-method") in env.consul.acl.auth_methods
    [rule] = env.consul.acl.binding_rules.values()
    assert rule["Namespace"] == "apps"
    assert 'namespace "apps" {' in {p["Name"]: p for p in env.consul.policies.values()}["controller-token"]["Rules"]


async def test_a_policy_made_by_hand_is_not_overwritten(env: Env) -> None:
    """Fakes: consul_agent + consul_acl. Same name, another description: the reference's error."""
    env.consul.add_policy("controller-token", 'operator = "read"', "mine")
    code, report = await env.run()
    assert code == 1
    assert any(e.startswith("policy controller-token: found with description 'mine'") and "rename it" in e
               for e in report.errors)
    assert {p["Name"]: p for p in env.consul.policies.values()}["controller-token"]["Rules"] == 'operator = "read"'
    assert f"created secret {NS}/{C}-connect-inject-acl-token: token for policy connect-inject-token" in report.lines


async def test_a_secondary_datacenter_of_a_federation_suffixes_the_policies(tmp_path: Path) -> None:
    """Fakes: consul_agent in dc2 whose primary is dc1 (agent/self), kube_api. Replicated global
    policy names must be unique: `<name>-token-dc2`, as the reference."""
    async with FakeKubeAPI(resources=RESOURCES + accounts.ACCOUNTS) as api, \
            FakeConsul(1, acl_enabled=True, master_token=ROOT_TOKEN, datacenter="dc2",
                       primary_datacenter="dc1") as consul:
        install_consul_release(api)
        env = Env(api, consul, api.kubeconfig(tmp_path / "kubeconfig", namespace=NS))
        code, report = await env.run("global.federation.enabled=true")
        assert code == 0, report.errors
        assert "created policy connect-inject-token-dc2" in report.lines
        assert "created policy controller-token-dc2" in report.lines


async def test_a_federations_primary_gives_the_anonymous_token_read_on_services(tmp_path: Path) -> None:
    """Fakes: consul_agent (primary dc1; Consul's anonymous token exists from the bootstrap) +
    kube_api. Cross-datacenter requests arrive without the pod's token: with the Consul release's
    own injector off, only this job writes `anonymous-token-policy` (reference §1.5). A second run
    changes nothing; a policy an operator linked to the token stays."""
    async with FakeKubeAPI(resources=RESOURCES + accounts.ACCOUNTS) as api, \
            FakeConsul(1, acl_enabled=True, master_token=ROOT_TOKEN) as consul:
        install_consul_release(api)
        consul.add_policy("operators-read", 'node_prefix "" { policy = "read" }', "mine")
        anonymous = consul.tokens["00000000-0000-0000-0000-000000000002"]
        anonymous["Policies"] = [{"ID": consul._policy_by_name("operators-read")["ID"], "Name": "operators-read"}]
        env = Env(api, consul, api.kubeconfig(tmp_path / "kubeconfig", namespace=NS))
        code, report = await env.run("global.federation.enabled=true")
        assert code == 0, report.errors
        assert "created policy anonymous-token-policy" in report.lines
        assert "updated token anonymous: policy anonymous-token-policy added" in report.lines
        assert [p["Name"] for p in anonymous["Policies"]] == ["operators-read", "anonymous-token-policy"]
        policy = {p["Name"]: p for p in consul.policies.values()}["anonymous-token-policy"]
        assert policy["Description"] == "Anonymous token Policy"
        assert policy["Rules"] == ('\n    node_prefix "" {\n       policy = "read"\n    }\n'
                                   '    service_prefix "" {\n       policy = "read"\n    }')
        code, report = await env.run("global.federation.enabled=true")
        assert code == 0 and "unchanged token anonymous" in report.lines


async def test_without_federation_the_anonymous_token_is_left_alone(env: Env) -> None:
    """Fakes: consul_agent + consul_acl. Nothing cross-datacenter: no anonymous policy written."""
    code, report = await env.run()
    assert code == 0, report.errors
    assert not any("anonymous" in line for line in report.lines)


async def test_a_secondary_datacenter_uses_the_replication_token_as_management_token(tmp_path: Path) -> None:
    """Fakes: consul_agent in dc2 (primary dc1) + kube_api. The reference's order: bootstrapToken,
    else replicationToken (a secondary has no bootstrap Secret), else <C>-bootstrap-acl-token."""
    async with FakeKubeAPI(resources=RESOURCES + accounts.ACCOUNTS) as api, \
            FakeConsul(1, acl_enabled=True, master_token=ROOT_TOKEN, datacenter="dc2",
                       primary_datacenter="dc1") as consul:
        install_consul_release(api)
        api.delete("v1", "Secret", NS, f"{C}-bootstrap-acl-token")
        api.create({"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
                    "metadata": {"name": "replication", "namespace": NS}, "data": {"token": b64(ROOT_TOKEN)}})
        env = Env(api, consul, api.kubeconfig(tmp_path / "kubeconfig", namespace=NS))
        code, report = await env.run("global.federation.enabled=true", "global.acls.replicationToken.secretName=replication",
                                     "global.acls.replicationToken.secretKey=token")
        assert code == 0, report.errors
        assert "created policy connect-inject-token-dc2" in report.lines
