"""The steps of `acl-init`, each reading what Consul and Kubernetes hold before it writes.

Order and bodies are the reference's (install-beside-consul.md §1.2-1.5): cross-namespace policy
and the `default` namespace's policy defaults (Consul namespaces only), the auth method and its
binding rule, then a policy and a token Secret for the injector and for the controller. Where the
reference writes unconditionally (auth method, binding rule) we compare first, so a second run
writes nothing; where it skips (policy rules "already exist", a token Secret that exists) we check
the content, so a stale policy or a Secret holding a token Consul forgot is repaired.

Each object prints one line: `created|updated|unchanged <kind> <name>[: why]`. Failures go to
stderr and name the object and the fix. Three kinds of failure:
- transient (no answer, 429/5xx without a Consul verdict, a token Secret not yet filled by the
  token controller): retried with capped exponential backoff until the run's deadline;
- an object in the way (a policy of the same name made by hand, foreign binding rules, a missing
  ServiceAccount): that object and what depends on it fail, the others still run;
- fatal (Consul unreachable at the deadline, ACLs off, a management token Consul does not know or
  that may not write ACLs): the run stops.
Nothing is ever deleted.
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar
from urllib.parse import urlsplit

from generator.aclinit import kube as k8s
from generator.aclinit.settings import (ANONYMOUS_ACCESSOR, ANONYMOUS_DESCRIPTION, ANONYMOUS_POLICY,
                                        AUTH_METHOD_DESCRIPTION, BINDING_RULE_BIND_NAME, BINDING_RULE_DESCRIPTION,
                                        CROSS_NAMESPACE_DESCRIPTION, CROSS_NAMESPACE_POLICY, TOKEN_KEY, Settings)
from generator.consul import (Consul, ConsulClient, ConsulConfig, ConsulStatusError, ConsulTLSError,
                              ConsulUnreachable, TokenSource)

T = TypeVar("T")
Json = dict[str, Any]

DEFAULT_TIMEOUT = 300.0   # seconds for the whole run (the Job's hook must end)
FIRST_DELAY = 0.2         # backoff: 0.2 s, doubling ...
MAX_DELAY = 5.0           # ... capped at 5 s
# 500 bodies that mean "try again" (leader election, a server restarting), not a verdict.
_TRANSIENT_500 = ("No cluster leader", "leadership lost", "rpc error making call: EOF", "connection refused",
                  "i/o timeout", "Raft", "too many")


class Fatal(Exception):
    """Stops the run: nothing further can succeed."""


class ObjectFailure(Exception):
    """One object cannot be put in place; independent ones still can."""


class _NotYet(Exception):
    """A state that another actor completes soon (the token controller filling a Secret)."""


@dataclass
class Report:
    """What a run printed (tests read it; the CLI prints as it goes)."""

    lines: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    write: Callable[[str], None] | None = None
    warn: Callable[[str], None] | None = None

    def line(self, action: str, kind: str, name: str, detail: str = "") -> None:
        text = f"{action} {kind} {name}" + (f": {detail}" if detail else "")
        self.lines.append(text)
        if self.write is not None:
            self.write(text)

    def error(self, text: str) -> None:
        self.errors.append(text)
        if self.warn is not None:
            self.warn(text)


@dataclass(frozen=True)
class ManagementToken:
    value: str
    source: str   # "CONSUL_HTTP_TOKEN", "Secret ns/name key k (global.acls.bootstrapToken)"
    fix: str      # what the user changes when Consul refuses it


class Runner:
    """One run. `config` is Consul's address and TLS from the environment (`CONSUL_HTTP_*`)."""

    def __init__(self, settings: Settings, config: ConsulConfig, kube: k8s.Kube, report: Report, *,
                 timeout: float = DEFAULT_TIMEOUT, env_token_source: str = ""):
        self.s = settings
        self.config = replace(config, partition=settings.partition) if settings.partition else config
        self.kube = kube
        self.report = report
        self.timeout = timeout
        self.env_token_source = env_token_source
        self.failed = False
        self._deadline = 0.0
        self.consul: Consul | None = None
        self.token = ManagementToken("", "", "")

    # -- plumbing --

    async def _retry(self, what: str, fn: Callable[[], Awaitable[T]]) -> T:
        """`fn()` until it succeeds, fails for good, or the run's deadline passes."""
        loop = asyncio.get_running_loop()
        delay = FIRST_DELAY
        while True:
            try:
                return await fn()
            except Exception as err:  # noqa: BLE001 - sorted just below
                reason = _transient(err)
                if reason is None:
                    raise
                remaining = self._deadline - loop.time()
                if remaining <= 0:
                    raise Fatal(self._gave_up(what, err, reason)) from None
                self.report.error(f"retrying {what}: {reason}")
                await asyncio.sleep(min(delay, remaining))
                delay = min(delay * 2, MAX_DELAY)

    def _gave_up(self, what: str, err: Exception, reason: str) -> str:
        head = f"{what}: no success within {self.timeout:g}s: {reason}"
        if isinstance(err, ConsulUnreachable):
            return (f"{head}. Check CONSUL_HTTP_ADDR ({self.config.address}; the chart points it at the Consul "
                    f"release's server Service) and that the Consul servers of release {self.s.consul_release!r} run")
        if isinstance(err, k8s.KubeTransient):
            return f"{head}. Check that the Kubernetes API server answers"
        return head

    async def _kube(self, what: str, fn: Callable[..., T], *args: Any) -> T:
        async def call() -> T:
            return await asyncio.to_thread(fn, *args)
        return await self._retry(what, call)

    def _client(self, namespace: str = "") -> ConsulClient:
        assert self.consul is not None
        return self.consul.local(namespace)

    async def _group(self, step: Callable[[], Awaitable[None]]) -> None:
        """Run one independent step; its object failures are reported, fatal ones propagate."""
        try:
            await step()
        except ObjectFailure as err:
            self.failed = True
            self.report.error(str(err))
        except k8s.KubeForbidden as err:
            self.failed = True
            self.report.error(f"{err}: the acl-init Job's Role (chart: acl-init-rbac.yaml) must allow it")
        except k8s.KubeError as err:
            self.failed = True
            self.report.error(str(err))
        except ConsulStatusError as err:
            if err.status == 403:
                raise Fatal(f"Consul refused {err.method} {_path(err.url)}: {err}. The management token from "
                            f"{self.token.source} may not write ACLs: use the Consul release's bootstrap "
                            f"(global-management) token") from None
            self.failed = True
            self.report.error(f"{err.method} {_path(err.url)}: {err}")

    # -- the run --

    async def run(self) -> int:
        """Everything in place: 0; otherwise 1 (the reasons are on stderr)."""
        self._deadline = asyncio.get_running_loop().time() + self.timeout
        try:
            self.token = await self._management_token()
            async with Consul(replace(self.config, token=TokenSource(self.token.value))) as consul:
                self.consul = consul
                await self._check_token()
                datacenter, primary_datacenter = await self._datacenter()
                primary = datacenter == primary_datacenter
                s = self.s
                if s.enable_namespaces:
                    await self._group(self._cross_namespace)
                if s.inject:
                    await self._group(self._auth_method)
                    await self._group(lambda: self._policy_and_token(
                        s.policy_name("connect-inject", datacenter, primary), s.inject_rules(),
                        local=not s.enable_namespaces, datacenter=datacenter, secret_name=s.inject_secret))
                if s.needs_anonymous_policy(primary):
                    await self._group(self._anonymous)
                if s.controller:
                    await self._group(lambda: self._policy_and_token(
                        s.policy_name("controller", datacenter, primary), s.controller_rules(),
                        local=False, datacenter=datacenter, secret_name=s.controller_secret))
        except Fatal as err:
            self.report.error(str(err))
            return 1
        return 1 if self.failed else 0

    async def _management_token(self) -> ManagementToken:
        """CONSUL_HTTP_TOKEN(_FILE) when set, else the Secret the Consul chart keeps it in."""
        if self.env_token_source:
            value = self.config.token.get()
            if not value:
                raise Fatal(f"management token: {self.env_token_source} is set but empty")
            return ManagementToken(value, self.env_token_source,
                                   f"set {self.env_token_source} to the Consul release's bootstrap token")
        ref = self.s.management_secret
        where = f"Secret {self.s.namespace}/{ref.name} key {ref.key!r} ({ref.source})"
        fix = (f"put the Consul release's bootstrap token in {where}, or set global.acls.bootstrapToken.secretName "
               f"and secretKey to the Secret that holds it, or set CONSUL_HTTP_TOKEN")
        try:
            secret = await self._kube(f"read the management token ({where})", self.kube.secret, ref.name)
        except k8s.KubeNotFound:
            raise Fatal(f"management token: {where} not found (is the Consul release {self.s.consul_release!r} "
                        f"installed in namespace {self.s.namespace!r} with global.acls.manageSystemACLs?); "
                        f"{fix}") from None
        except k8s.KubeForbidden as err:
            raise Fatal(f"management token: {err}: the acl-init Job's Role must allow get on it") from None
        value = k8s.secret_value(secret, ref.key)
        if not value:
            raise Fatal(f"management token: {where} has no value under key {ref.key!r}; {fix}")
        return ManagementToken(value, where, fix)

    async def _check_token(self) -> None:
        """The token is known to Consul: without this check a wrong token would read as "no
        policy exists" (Consul 1.10 answers both with 403 `ACL not found`)."""
        try:
            me = await self._retry("read the management token in Consul",
                                   lambda: self._client().acl_token_self())
        except ConsulTLSError as err:
            raise Fatal(f"{err}: check CONSUL_CACERT and CONSUL_TLS_SERVER_NAME") from None
        except ConsulStatusError as err:
            if err.status == 401:
                raise Fatal(f"Consul at {self.config.address} answers {err}: ACLs are off in Consul; "
                            f"turn global.acls.manageSystemACLs off in the values, or turn ACLs on in the "
                            f"Consul release") from None
            if err.status == 403:
                raise Fatal(f"the management token from {self.token.source} is refused by Consul at "
                            f"{self.config.address} ({err}); {self.token.fix}") from None
            raise Fatal(f"reading the management token in Consul: {err}") from None
        if me is None:
            raise Fatal(f"the management token from {self.token.source} is not known to Consul at "
                        f"{self.config.address} (403 ACL not found); {self.token.fix}")

    async def _datacenter(self) -> tuple[str, str]:
        """This datacenter and the primary one (GET /v1/agent/self, as the reference)."""
        me = await self._retry("read the datacenter (agent/self)", lambda: self._client().agent_self())
        config = me.get("Config") or {}
        debug = me.get("DebugConfig") or {}
        datacenter = str(config.get("Datacenter") or "")
        if not datacenter:
            raise Fatal(f"Consul at {self.config.address}: /v1/agent/self names no Config.Datacenter")
        primary = str(config.get("PrimaryDatacenter") or debug.get("PrimaryDatacenter") or datacenter)
        return datacenter, primary

    # -- steps --

    async def _cross_namespace(self) -> None:
        """`cross-namespace-policy` and the `default` namespace's policy default (§1.5)."""
        await self._policy(CROSS_NAMESPACE_POLICY, CROSS_NAMESPACE_DESCRIPTION, self.s.cross_namespace_rules(), [])
        client = self._client()
        current = await self._retry("read Consul namespace default", lambda: client.read_namespace("default"))
        if current is None:
            raise ObjectFailure("namespace default: Consul answers 404 for /v1/namespace/default: Consul namespaces "
                                "need Consul Enterprise; turn global.enableConsulNamespaces off, or run Enterprise")
        acls = dict(current.get("ACLs") or {})
        defaults = list(acls.get("PolicyDefaults") or [])
        if any(link.get("Name") == CROSS_NAMESPACE_POLICY for link in defaults):
            self.report.line("unchanged", "namespace", "default")
            return
        body = {"Description": current.get("Description") or "", "Meta": current.get("Meta") or {},
                "ACLs": {"PolicyDefaults": defaults + [{"Name": CROSS_NAMESPACE_POLICY}],
                         "RoleDefaults": acls.get("RoleDefaults") or []}}
        await self._retry("update Consul namespace default", lambda: client.update_namespace("default", body))
        self.report.line("updated", "namespace", "default", f"policy default {CROSS_NAMESPACE_POLICY} added")

    async def _anonymous(self) -> None:
        """`anonymous-token-policy` on Consul's anonymous token (reference configureAnonymousPolicy).
        The policy is added to the token's links, never replacing others an operator gave it."""
        await self._policy(ANONYMOUS_POLICY, ANONYMOUS_DESCRIPTION, self.s.anonymous_rules(), [])
        client = self._client()
        token = await self._retry("read the anonymous token", lambda: client.acl_token(ANONYMOUS_ACCESSOR))
        if token is None:
            raise ObjectFailure(f"token {ANONYMOUS_ACCESSOR} (anonymous): Consul does not know it; are ACLs "
                                "bootstrapped in this datacenter?")
        links = [{"Name": p.get("Name")} for p in token.get("Policies") or [] if isinstance(p, dict)]
        if any(link["Name"] == ANONYMOUS_POLICY for link in links):
            self.report.line("unchanged", "token", "anonymous")
            return
        body = {"Description": token.get("Description") or "", "Policies": links + [{"Name": ANONYMOUS_POLICY}]}
        await self._retry("update the anonymous token", lambda: client.update_acl_token(ANONYMOUS_ACCESSOR, body))
        self.report.line("updated", "token", "anonymous", f"policy {ANONYMOUS_POLICY} added")

    async def _policy(self, name: str, description: str, rules: str, datacenters: list[str]) -> None:
        client = self._client()
        existing = await self._retry(f"read policy {name}", lambda: client.acl_policy_by_name(name))
        body: Json = {"Name": name, "Description": description, "Rules": rules}
        if datacenters:
            body["Datacenters"] = datacenters
        if existing is None:
            await self._retry(f"create policy {name}", lambda: client.create_acl_policy(body))
            self.report.line("created", "policy", name)
            return
        if (existing.get("Description") or "") != description:
            raise ObjectFailure(f"policy {name}: found with description {existing.get('Description')!r}, not "
                                f"{description!r}; if it was made by hand, rename it: this name is reserved for "
                                f"consul-k8s")
        if (existing.get("Rules") or "") == rules and sorted(existing.get("Datacenters") or []) == sorted(datacenters):
            self.report.line("unchanged", "policy", name)
            return
        changed = [k for k, same in (("rules", (existing.get("Rules") or "") == rules),
                                     ("datacenters", sorted(existing.get("Datacenters") or []) == sorted(datacenters)))
                   if not same]
        await self._retry(f"update policy {name}", lambda: client.update_acl_policy(str(existing["ID"]), body))
        self.report.line("updated", "policy", name, " and ".join(changed))

    async def _policy_and_token(self, policy: str, rules: str, *, local: bool, datacenter: str,
                                secret_name: str) -> None:
        """A policy and, in Secret `secret_name` key `token`, a token linked to it (§1.3 5-6)."""
        await self._policy(policy, f"{policy} Token Policy", rules, [datacenter] if local and datacenter else [])
        where = f"{self.s.namespace}/{secret_name}"
        try:
            secret: Json | None = await self._kube(f"read secret {where}", self.kube.secret, secret_name)
        except k8s.KubeNotFound:
            secret = None
        reason = ""
        if secret is not None:
            value = k8s.secret_value(secret, TOKEN_KEY)
            if value:
                client = self._client()
                known = await self._retry(f"read the token in secret {where}", lambda: client.acl_token_self(value))
                if known is not None:
                    self.report.line("unchanged", "secret", where)
                    return
                reason = "the token it held is not known to Consul"
            else:
                reason = f"it had no data key {TOKEN_KEY!r}"
        body = {"Description": f"{policy} Token", "Policies": [{"Name": policy}], "Local": local}
        client = self._client()
        token = await self._retry(f"create a token for policy {policy}", lambda: client.create_acl_token(body))
        encoded = k8s.encode(str(token.get("SecretID") or ""))
        if secret is None:
            new = {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
                   "metadata": {"name": secret_name, "namespace": self.s.namespace}, "data": {TOKEN_KEY: encoded}}
            await self._kube(f"create secret {where}", self.kube.create_secret, new)
            self.report.line("created", "secret", where, f"token for policy {policy}")
            return
        secret = dict(secret)
        secret["data"] = {**(secret.get("data") or {}), TOKEN_KEY: encoded}
        await self._kube(f"update secret {where}", self.kube.replace_secret, secret)
        self.report.line("updated", "secret", where, f"{reason}; now a new token for policy {policy}")

    async def _service_account_token(self) -> tuple[str, str]:
        """(JWT, CA) of our auth-method ServiceAccount: the first Secret of type
        service-account-token its `secrets` list names, as the reference."""
        s = self.s
        who = f"{s.namespace}/{s.auth_method_service_account}"
        try:
            account = await self._kube(f"read serviceaccount {who}", self.kube.service_account,
                                       s.auth_method_service_account)
        except k8s.KubeNotFound:
            raise ObjectFailure(f"auth method {s.auth_method}: ServiceAccount {who} (--auth-method-service-account) "
                                f"not found; the chart creates it (acl-init-auth-method.yaml): check the name and "
                                f"--namespace") from None

        async def token() -> tuple[str, str]:
            for ref in account.get("secrets") or []:
                name = str((ref or {}).get("name") or "")
                if not name:
                    continue
                try:
                    secret = await asyncio.to_thread(self.kube.secret, name)
                except k8s.KubeNotFound:
                    continue
                if secret.get("type") != k8s.SERVICE_ACCOUNT_TOKEN:
                    continue
                jwt, ca = k8s.secret_value(secret, "token"), k8s.secret_value(secret, "ca.crt", strip=False)
                if not jwt or not ca:
                    raise _NotYet(f"Secret {s.namespace}/{name} of ServiceAccount {who} has no token yet "
                                  f"(the token controller fills it)")
                return jwt, ca
            raise ObjectFailure(f"auth method {s.auth_method}: found no secret of type "
                                f"'{k8s.SERVICE_ACCOUNT_TOKEN}' associated with the {who} service account; list "
                                f"one in its `secrets` (a Secret of that type annotated "
                                f"kubernetes.io/service-account.name: {s.auth_method_service_account}; the chart "
                                f"creates it)")
        return await self._retry(f"read the token of ServiceAccount {who}", token)

    async def _auth_method(self) -> None:
        """The Kubernetes auth method and its binding rule (§1.3 1-4)."""
        s = self.s
        jwt, ca = await self._service_account_token()
        namespace = s.auth_method_namespace
        if namespace and namespace != "default":
            await self._namespace(namespace)
        config: Json = {"Host": s.k8s_host, "CACert": ca, "ServiceAccountJWT": jwt}
        if s.enable_namespaces and s.mirroring:
            config["MapNamespaces"] = True
            config["ConsulNamespacePrefix"] = s.mirroring_prefix
        desired: Json = {"Name": s.auth_method, "Type": "kubernetes", "Description": AUTH_METHOD_DESCRIPTION,
                         "Config": config}
        client = self._client(namespace)
        existing = await self._retry(f"read auth method {s.auth_method}", lambda: client.acl_auth_method(s.auth_method))
        if existing is None:
            await self._retry(f"create auth method {s.auth_method}", lambda: client.set_acl_auth_method(desired))
            self.report.line("created", "auth-method", s.auth_method)
        elif existing.get("Type") != "kubernetes":
            raise ObjectFailure(f"auth method {s.auth_method}: exists with type {existing.get('Type')!r}, not "
                                f"'kubernetes': it was not made by the Consul chart; delete it in Consul (consul acl "
                                f"auth-method delete -name {s.auth_method}) or set global.name to another name")
        else:
            changes = _config_changes(existing, desired)
            if not changes:
                self.report.line("unchanged", "auth-method", s.auth_method)
            else:
                detail = await self._describe_changes(existing, changes)
                await self._retry(f"update auth method {s.auth_method}", lambda: client.set_acl_auth_method(desired))
                self.report.line("updated", "auth-method", s.auth_method, detail)
        await self._binding_rule(client)

    async def _describe_changes(self, existing: Json, changes: list[str]) -> str:
        """Say what the update changes; for the JWT, whose ServiceAccount it was and whether that
        ServiceAccount still exists (the Consul chart deletes its own when connectInject goes off)."""
        parts = [c for c in changes if c != "ServiceAccountJWT"]
        if "ServiceAccountJWT" in changes:
            ours = f"{self.s.namespace}/{self.s.auth_method_service_account}"
            old = _jwt_service_account((existing.get("Config") or {}).get("ServiceAccountJWT"))
            if old is None:
                parts.insert(0, f"re-pointed to the token of ServiceAccount {ours}")
            else:
                state = await self._account_state(*old)
                parts.insert(0, f"re-pointed from ServiceAccount {old[0]}/{old[1]}{state} to {ours}")
        return "; ".join(parts)

    async def _account_state(self, namespace: str, name: str) -> str:
        if namespace != self.s.namespace:
            return ""
        try:
            await asyncio.to_thread(self.kube.service_account, name)
        except k8s.KubeNotFound:
            return " (no longer exists)"
        except k8s.KubeError:
            return ""
        return ""

    async def _binding_rule(self, client: ConsulClient) -> None:
        s = self.s
        desired: Json = {"Description": BINDING_RULE_DESCRIPTION, "AuthMethod": s.auth_method, "BindType": "service",
                         "BindName": BINDING_RULE_BIND_NAME, "Selector": s.binding_rule_selector}
        if s.auth_method_namespace:
            desired["Namespace"] = s.auth_method_namespace
        what = f"binding rule of auth method {s.auth_method}"
        rules = await self._retry(f"list the {what}s", lambda: client.acl_binding_rules(s.auth_method))
        match = next((r for r in rules if r.get("BindName") == BINDING_RULE_BIND_NAME
                      and r.get("Description") == BINDING_RULE_DESCRIPTION), None)
        if match is None and rules:
            ids = ", ".join(str(r.get("ID")) for r in rules)
            raise ObjectFailure(f"{what}: unable to find a matching ACL binding rule to update: the auth method has "
                                f"{len(rules)} rule(s) ({ids}), none with BindName {BINDING_RULE_BIND_NAME} and "
                                f"Description {BINDING_RULE_DESCRIPTION!r}; they were not made by the Consul chart: "
                                f"delete them (consul acl binding-rule delete -id ID) or give one that BindName and "
                                f"Description")
        if match is None:
            created = await self._retry(f"create the {what}", lambda: client.create_acl_binding_rule(desired))
            self.report.line("created", "binding-rule", s.auth_method, f"selector {s.binding_rule_selector!r} "
                                                                       f"(ID {created.get('ID')})")
            return
        if (match.get("Selector") or "") == s.binding_rule_selector and match.get("BindType") == "service":
            self.report.line("unchanged", "binding-rule", s.auth_method)
            return
        rule_id = str(match["ID"])
        await self._retry(f"update the {what}", lambda: client.update_acl_binding_rule(rule_id, desired))
        self.report.line("updated", "binding-rule", s.auth_method,
                         f"selector {match.get('Selector') or ''!r} -> {s.binding_rule_selector!r}")

    async def _namespace(self, name: str) -> None:
        """The injection destination namespace, created as the reference does (EnsureExists)."""
        client = self._client()
        if await self._retry(f"read Consul namespace {name}", lambda: client.read_namespace(name)) is not None:
            self.report.line("unchanged", "namespace", name)
            return
        await self._retry(f"create Consul namespace {name}",
                          lambda: client.create_namespace(name, policy_defaults=[CROSS_NAMESPACE_POLICY]))
        self.report.line("created", "namespace", name)


def _config_changes(existing: Json, desired: Json) -> list[str]:
    """The auth method fields that differ (absent equals false/empty, as Consul stores them)."""
    changes = []
    if (existing.get("Description") or "") != desired["Description"]:
        changes.append("Description")
    have, want = existing.get("Config") or {}, desired["Config"]
    for key in ("Host", "CACert", "ServiceAccountJWT", "MapNamespaces", "ConsulNamespacePrefix"):
        if (have.get(key) or None) != (want.get(key) or None):
            changes.append(key)
    return changes


def _jwt_service_account(jwt: Any) -> tuple[str, str] | None:
    """(namespace, name) of the ServiceAccount a Kubernetes JWT names, read without verifying
    it (only to tell the user whose token the auth method held): legacy Secret-based tokens
    and bound (projected) tokens."""
    if not isinstance(jwt, str) or jwt.count(".") != 2:
        return None
    payload = jwt.split(".")[1]
    try:
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(claims, dict):
        return None
    legacy_ns = claims.get("kubernetes.io/serviceaccount/namespace")
    legacy_name = claims.get("kubernetes.io/serviceaccount/service-account.name")
    if isinstance(legacy_ns, str) and isinstance(legacy_name, str):
        return legacy_ns, legacy_name
    bound = claims.get("kubernetes.io")
    if isinstance(bound, dict) and isinstance(bound.get("serviceaccount"), dict):
        name = bound["serviceaccount"].get("name")
        if isinstance(bound.get("namespace"), str) and isinstance(name, str):
            return bound["namespace"], name
    sub = claims.get("sub")
    if isinstance(sub, str) and sub.startswith("system:serviceaccount:") and sub.count(":") == 3:
        _, _, ns, name = sub.split(":")
        return ns, name
    return None


def _transient(err: BaseException) -> str | None:
    """Why `err` is worth retrying, or None when it is a verdict."""
    if isinstance(err, ConsulTLSError):
        return None
    if isinstance(err, ConsulUnreachable):
        return str(err)
    if isinstance(err, ConsulStatusError):
        if err.status in (429, 502, 503, 504) or (err.status == 500 and any(t in err.body for t in _TRANSIENT_500)):
            return str(err)
        return None
    if isinstance(err, (k8s.KubeTransient, _NotYet)):
        return str(err)
    return None


def _path(url: str) -> str:
    """The path and query of a request URL, for messages."""
    parts = urlsplit(url)
    return parts.path + (f"?{parts.query}" if parts.query else "")
