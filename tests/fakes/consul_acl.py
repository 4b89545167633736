"""The fake Consul's ACL objects beyond tokens and policies: auth methods, binding rules, policy
reads and updates, `token/self`, namespace updates (used by consul_agent.FakeConsul).

Written from Consul's ACL HTTP API documentation (auth methods, binding rules, policies, tokens)
and the 1.10 agent/server code that answers it (`agent/acl_endpoint.go`, `agent/consul/
acl_endpoint.go`, `authmethod/kubeauth`):

- `GET /v1/acl/auth-method/:name`: the method, or 404 with an empty body;
- `PUT /v1/acl/auth-method` and `PUT /v1/acl/auth-method/:name`: an upsert by name (`Type` is
  immutable: 500 `the Type field of an Auth Method is immutable`); a `kubernetes` method is
  validated as Consul's validator does (`Config.Host is required`, `Config.CACert is required`,
  a PEM certificate, `Config.ServiceAccountJWT is required` and a three-part JWT), errors as 500
  `Invalid Auth Method: ...`; `MapNamespaces`/`ConsulNamespacePrefix` only with Enterprise;
- `GET /v1/acl/auth-methods`: stubs (no Config);
- `DELETE /v1/acl/auth-method/:name`: also deletes its binding rules and its login tokens;
- `GET /v1/acl/binding-rules[?authmethod=]`, `GET|PUT|DELETE /v1/acl/binding-rule/:id`,
  `PUT /v1/acl/binding-rule`: the method must exist (`cannot find auth method with name "x"`),
  `BindType` `service` or `role`, `BindName` non-empty, an update must name an existing rule
  (`cannot find binding rule <id>`) and keep its `AuthMethod` (immutable);
- `GET /v1/acl/policy/:id`, `GET /v1/acl/policy/name/:name`: 403 `ACL not found` when absent
  (Consul 1.10 answers acl.ErrNotFound so); `PUT /v1/acl/policy/:id`: replace, the name unique;
- `GET /v1/acl/token/self`: the request token's own record, 403 `ACL not found` when unknown;
- `PUT /v1/namespace/:name` (Enterprise): replace description, meta and ACL defaults.

Auth methods and binding rules live in a Consul namespace (`ns`, Enterprise); server errors
carry the client agent's `rpc error making call: ` prefix like the rest of the fake.
"""

from __future__ import annotations

import base64
import copy
import uuid
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from cryptography import x509

from .consul_config import RPC_PREFIX, ApiError
from .consul_decode import ACL_POLICY, NAMESPACE, DecodeError, Struct, decode

DEFAULT = "default"

AUTH_METHOD = Struct("ACLAuthMethod", {
    "Name": "str", "Type": "str", "DisplayName": "str", "Description": "str", "MaxTokenTTL": "str",
    "TokenLocality": "str", "Config": ("map", "any"), "Namespace": "str", "Partition": "str"})
BINDING_RULE = Struct("ACLBindingRule", {
    "ID": "str", "Description": "str", "AuthMethod": "str", "Selector": "str", "BindType": "str",
    "BindName": "str", "Namespace": "str", "Partition": "str"})
AUTH_METHOD_TYPES = ("kubernetes", "jwt", "oidc")
K8S_CONFIG_KEYS = {"Host", "CACert", "ServiceAccountJWT"}
K8S_ENTERPRISE_KEYS = {"MapNamespaces", "ConsulNamespaceDefault", "ConsulNamespacePrefix", "ConsulNamespaceOverrides"}


@dataclass
class ACLObjects:
    """Auth methods by (namespace, name); binding rules by ID."""

    auth_methods: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    binding_rules: dict[str, dict[str, Any]] = field(default_factory=dict)


def _server_error(fake: Any, message: str) -> ApiError:
    return ApiError(500, (RPC_PREFIX if fake.rpc_prefix else "") + message)


def _validate_k8s(fake: Any, config: dict[str, Any]) -> None:
    unknown = sorted(set(config) - K8S_CONFIG_KEYS - (K8S_ENTERPRISE_KEYS if fake.enterprise else set()))
    if unknown:
        raise _server_error(fake, f"Invalid Auth Method: 1 error(s) decoding:\n\n* '' has invalid keys: "
                                  f"{', '.join(unknown)}")
    if not config.get("Host"):
        raise _server_error(fake, "Invalid Auth Method: Config.Host is required")
    ca = config.get("CACert")
    if not ca:
        raise _server_error(fake, "Invalid Auth Method: Config.CACert is required")
    try:
        if not isinstance(ca, str) or not x509.load_pem_x509_certificates(ca.encode()):
            raise ValueError("no certificate")
    except ValueError:
        raise _server_error(fake, "Invalid Auth Method: error parsing kubernetes ca cert: data does not contain "
                                  "any valid RSA or ECDSA certificates") from None
    jwt = config.get("ServiceAccountJWT")
    if not jwt:
        raise _server_error(fake, "Invalid Auth Method: Config.ServiceAccountJWT is required")
    parts = jwt.split(".") if isinstance(jwt, str) else []
    try:
        if len(parts) != 3:
            raise ValueError
        for part in parts[:2]:
            base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))
    except ValueError:
        raise _server_error(fake, "Invalid Auth Method: Config.ServiceAccountJWT is not a valid JWT: square/go-jose: "
                                  "compact JWS format must have three parts") from None


def auth_method_get(fake: Any, agent: Any, request: web.Request, body: Any, ns: str, partition: str,
                    name: str) -> tuple[int, Any]:
    fake._require_acl()
    method = fake.acl.auth_methods.get((ns, name))
    if method is None:
        return 404, None
    return 200, copy.deepcopy(method)


def auth_method_put(fake: Any, agent: Any, request: web.Request, body: Any, ns: str, partition: str,
                    name: str = "") -> tuple[int, Any]:
    fake._require_acl()
    try:
        spec = decode(body, AUTH_METHOD)
    except DecodeError as err:
        raise ApiError(400, f"Bad request: AuthMethod decoding failed: {err}") from None
    if name:
        if spec["Name"] and spec["Name"] != name:
            raise ApiError(400, "Bad request: AuthMethod Name in URL and payload do not match")
        spec["Name"] = name
    if not spec["Name"]:
        raise _server_error(fake, "Invalid Auth Method: no Name is set")
    ns = spec["Namespace"] or ns
    existing = fake.acl.auth_methods.get((ns, spec["Name"]))
    if existing is not None:
        if not spec["Type"]:
            spec["Type"] = existing["Type"]
        elif spec["Type"] != existing["Type"]:
            raise _server_error(fake, "the Type field of an Auth Method is immutable")
    if spec["Type"] not in AUTH_METHOD_TYPES:
        raise _server_error(fake, f"Invalid Auth Method: Type should be one of: [{' '.join(AUTH_METHOD_TYPES)}]")
    config = dict(spec["Config"] or {})
    if spec["Type"] == "kubernetes":
        _validate_k8s(fake, config)
    index = fake.next_index()
    method: dict[str, Any] = {"Name": spec["Name"], "Type": spec["Type"], "Description": spec["Description"],
                              "Config": config, "CreateIndex": existing["CreateIndex"] if existing else index,
                              "ModifyIndex": index}
    if spec["DisplayName"]:
        method["DisplayName"] = spec["DisplayName"]
    if spec["TokenLocality"]:
        method["TokenLocality"] = spec["TokenLocality"]
    if fake.enterprise:
        method["Namespace"] = ns
    fake.acl.auth_methods[(ns, spec["Name"])] = method
    fake.auth_methods.add(spec["Name"])  # logins with it (FakeConsul.login)
    fake.changed()
    return 200, copy.deepcopy(method)


def auth_method_delete(fake: Any, agent: Any, request: web.Request, body: Any, ns: str, partition: str,
                       name: str) -> tuple[int, Any]:
    fake._require_acl()
    if fake.acl.auth_methods.pop((ns, name), None) is not None:
        for rule_id in [i for i, r in fake.acl.binding_rules.items() if r["AuthMethod"] == name]:
            del fake.acl.binding_rules[rule_id]
        for accessor in [a for a, t in fake.tokens.items() if t["AuthMethod"] == name]:
            del fake.tokens[accessor]
        fake.auth_methods.discard(name)
        fake.changed()
    return 200, True


def auth_methods_list(fake: Any, agent: Any, request: web.Request, body: Any, ns: str,
                      partition: str) -> tuple[int, Any]:
    fake._require_acl()
    return 200, [{k: v for k, v in m.items() if k != "Config"}
                 for (mns, _), m in sorted(fake.acl.auth_methods.items()) if ns == "*" or mns == ns]


def binding_rules_list(fake: Any, agent: Any, request: web.Request, body: Any, ns: str,
                       partition: str) -> tuple[int, Any]:
    fake._require_acl()
    method = request.query.get("authmethod", "")
    return 200, [copy.deepcopy(r) for r in fake.acl.binding_rules.values()
                 if (not method or r["AuthMethod"] == method) and (ns == "*" or r.get("Namespace", DEFAULT) == ns)]


def binding_rule_get(fake: Any, agent: Any, request: web.Request, body: Any, ns: str, partition: str,
                     id: str) -> tuple[int, Any]:
    fake._require_acl()
    rule = fake.acl.binding_rules.get(id)
    if rule is None:
        return 404, None
    return 200, copy.deepcopy(rule)


def binding_rule_put(fake: Any, agent: Any, request: web.Request, body: Any, ns: str, partition: str,
                     id: str = "") -> tuple[int, Any]:
    fake._require_acl()
    try:
        spec = decode(body, BINDING_RULE)
    except DecodeError as err:
        raise ApiError(400, f"Bad request: BindingRule decoding failed: {err}") from None
    if spec["ID"] and spec["ID"] != id:
        raise ApiError(400, "Bad request: BindingRule ID in URL and payload do not match")
    ns = spec["Namespace"] or ns
    existing = None
    if id:
        try:
            uuid.UUID(id)
        except ValueError:
            raise _server_error(fake, "Binding Rule ID invalid UUID") from None
        existing = fake.acl.binding_rules.get(id)
        if existing is None:
            raise _server_error(fake, f"cannot find binding rule {id}")
        if not spec["AuthMethod"]:
            spec["AuthMethod"] = existing["AuthMethod"]
        elif spec["AuthMethod"] != existing["AuthMethod"]:
            raise _server_error(fake, "the AuthMethod field of an Binding Rule is immutable")
    if not spec["AuthMethod"]:
        raise _server_error(fake, "Invalid Binding Rule: no AuthMethod is set")
    if (ns, spec["AuthMethod"]) not in fake.acl.auth_methods:
        raise _server_error(fake, f'cannot find auth method with name "{spec["AuthMethod"]}"')
    if not spec["BindType"]:
        raise _server_error(fake, "Invalid Binding Rule: no BindType is set")
    if not spec["BindName"]:
        raise _server_error(fake, "Invalid Binding Rule: no BindName is set")
    if spec["BindType"] not in ("service", "role"):
        raise _server_error(fake, f'Invalid Binding Rule: unknown BindType "{spec["BindType"]}"')
    index = fake.next_index()
    rule: dict[str, Any] = {"ID": id or str(uuid.uuid4()), "Description": spec["Description"],
                            "AuthMethod": spec["AuthMethod"], "Selector": spec["Selector"],
                            "BindType": spec["BindType"], "BindName": spec["BindName"],
                            "CreateIndex": existing["CreateIndex"] if existing else index, "ModifyIndex": index}
    if fake.enterprise:
        rule["Namespace"] = ns
    fake.acl.binding_rules[rule["ID"]] = rule
    fake.changed()
    return 200, copy.deepcopy(rule)


def binding_rule_delete(fake: Any, agent: Any, request: web.Request, body: Any, ns: str, partition: str,
                        id: str) -> tuple[int, Any]:
    fake._require_acl()
    if fake.acl.binding_rules.pop(id, None) is not None:
        fake.changed()
    return 200, True


def _policy_view(policy: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(policy)
    if not out.get("Datacenters"):
        out.pop("Datacenters", None)
    return out


def policy_get(fake: Any, agent: Any, request: web.Request, body: Any, ns: str, partition: str,
               id: str) -> tuple[int, Any]:
    fake._require_acl()
    policy = fake.policies.get(id)
    if policy is None:
        raise ApiError(403, "ACL not found")
    return 200, _policy_view(policy)


def policy_get_by_name(fake: Any, agent: Any, request: web.Request, body: Any, ns: str, partition: str,
                       name: str) -> tuple[int, Any]:
    fake._require_acl()
    policy = next((p for p in fake.policies.values() if p["Name"] == name), None)
    if policy is None:
        raise ApiError(403, "ACL not found")
    return 200, _policy_view(policy)


def policy_update(fake: Any, agent: Any, request: web.Request, body: Any, ns: str, partition: str,
                  id: str) -> tuple[int, Any]:
    fake._require_acl()
    try:
        spec = decode(body, ACL_POLICY)
    except DecodeError as err:
        raise ApiError(400, f"Bad request: Policy decoding failed: {err}") from None
    if spec["ID"] and spec["ID"] != id:
        raise ApiError(400, "Bad request: Policy ID in URL and payload do not match")
    policy = fake.policies.get(id)
    if policy is None:
        raise _server_error(fake, f"cannot find policy {id}")
    if not spec["Name"]:
        raise _server_error(fake, "Invalid Policy: no Name is set")
    if any(p["Name"] == spec["Name"] and pid != id for pid, p in fake.policies.items()):
        raise _server_error(fake, f'Invalid Policy: A Policy with Name "{spec["Name"]}" already exists')
    policy.update(Name=spec["Name"], Description=spec["Description"], Rules=spec["Rules"],
                  Datacenters=list(spec["Datacenters"] or []), ModifyIndex=fake.next_index())
    fake.changed()
    return 200, _policy_view(policy)


def token_self(fake: Any, agent: Any, request: web.Request, body: Any, ns: str, partition: str) -> tuple[int, Any]:
    fake._require_acl()
    secret = request.headers.get("X-Consul-Token", "") or request.query.get("token", "")
    token = fake.token_by_secret(secret) if secret else None
    if token is None:
        raise ApiError(403, "ACL not found")
    return 200, copy.deepcopy(token)


def namespace_update(fake: Any, agent: Any, request: web.Request, body: Any, ns: str, partition: str,
                     name: str) -> tuple[int, Any]:
    if not fake.enterprise:
        raise ApiError(404, "404 page not found")
    try:
        spec = decode(body, NAMESPACE)
    except DecodeError as err:
        raise ApiError(400, f"Bad request: Request decode failed: {err}") from None
    if spec["Name"] and spec["Name"] != name:
        raise ApiError(400, "Bad request: Namespace name in URL and payload do not match")
    current = fake.namespaces.get(name)
    if current is None:
        raise _server_error(fake, f'Namespace "{name}" does not exist')
    links = []
    for link in (spec["ACLs"] or {}).get("PolicyDefaults") or []:
        found = fake.policies.get(link["ID"]) if link["ID"] else None
        if found is None and link["Name"]:
            found = next((p for p in fake.policies.values() if p["Name"] == link["Name"]), None)
        if found is None and fake.acl_enabled:
            raise _server_error(fake, f'Invalid Namespace: policy default "{link["Name"] or link["ID"]}" '
                                      f'does not exist')
        links.append({"ID": found["ID"] if found else link["ID"], "Name": found["Name"] if found else link["Name"]})
    current.update(Description=spec["Description"], Meta=dict(spec["Meta"] or {}),
                   ACLs={"PolicyDefaults": links, "RoleDefaults": (spec["ACLs"] or {}).get("RoleDefaults") or []},
                   ModifyIndex=fake.next_index())
    fake.changed()
    return 200, copy.deepcopy(current)


# (methods, path regex, handler); consul_agent puts these before its own routes, so that
# `token/self` is not read as an accessor ID.
ROUTES: list[tuple[str, str, Any]] = [
    ("GET", r"/v1/acl/token/self", token_self),
    ("GET", r"/v1/acl/auth-methods", auth_methods_list),
    ("PUT", r"/v1/acl/auth-method", auth_method_put),
    ("GET", r"/v1/acl/auth-method/(?P<name>[^/]+)", auth_method_get),
    ("PUT", r"/v1/acl/auth-method/(?P<name>[^/]+)", auth_method_put),
    ("DELETE", r"/v1/acl/auth-method/(?P<name>[^/]+)", auth_method_delete),
    ("GET", r"/v1/acl/binding-rules", binding_rules_list),
    ("PUT", r"/v1/acl/binding-rule", binding_rule_put),
    ("GET", r"/v1/acl/binding-rule/(?P<id>[^/]+)", binding_rule_get),
    ("PUT", r"/v1/acl/binding-rule/(?P<id>[^/]+)", binding_rule_put),
    ("DELETE", r"/v1/acl/binding-rule/(?P<id>[^/]+)", binding_rule_delete),
    ("GET", r"/v1/acl/policy/name/(?P<name>[^/]+)", policy_get_by_name),
    ("GET", r"/v1/acl/policy/(?P<id>[^/]+)", policy_get),
    ("PUT", r"/v1/acl/policy/(?P<id>[^/]+)", policy_update),
    ("PUT", r"/v1/namespace/(?P<name>[^/]+)", namespace_update),
]
