"""ServiceAccounts and Secrets for the fake Kubernetes API, and what the token controller does
with them (kube_api.FakeKubeAPI serves the kinds; pass `resources=RESOURCES + ACCOUNTS`).

The API server itself only stores these objects; the kube-controller-manager's token controller
(Kubernetes docs, "Managing Service Accounts": "Token controller") is what fills and cleans up
`kubernetes.io/service-account-token` Secrets. Tests play that controller, as they play the
kubelet for pods, with the helpers below:

- `issue_token(api, ns, account)`: Kubernetes before 1.24 (and a Secret the user lists in the
  account's `secrets`): a Secret `<account>-token-<5 chars>` of that type, annotated
  `kubernetes.io/service-account.name` / `.uid`, with `token` (a JWT with the legacy claims),
  `ca.crt` and `namespace` in its data, listed in the account's `secrets`;
- `fill_token(api, ns, secret)`: a Secret of that type created by hand (a chart) is filled in;
- `delete_account(api, ns, account)`: the account goes and, with it, every token Secret that
  names it (the controller deletes them).

The JWTs are well-formed but not signed by anyone: nothing here verifies them.
"""

from __future__ import annotations

import base64
import datetime
import json
import random
import secrets
from functools import lru_cache
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from .kube_api import FakeKubeAPI, Resource

Obj = dict[str, Any]
TOKEN_TYPE = "kubernetes.io/service-account-token"
NAME_ANNOTATION = "kubernetes.io/service-account.name"
UID_ANNOTATION = "kubernetes.io/service-account.uid"

ACCOUNTS: tuple[Resource, ...] = (
    Resource("", "v1", "serviceaccounts", "ServiceAccount"),
    Resource("", "v1", "secrets", "Secret", fields=frozenset({"type"})),
)


@lru_cache(maxsize=1)
def cluster_ca() -> str:
    """A PEM CA certificate standing for the cluster's (`ca.crt` of every token Secret)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kubernetes")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=365))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def legacy_jwt(namespace: str, account: str, secret: str, uid: str) -> str:
    """A Secret-based service account token's JWT, with the claims Kubernetes puts in it."""
    header = {"alg": "RS256", "kid": _b64url(secrets.token_bytes(12))}
    claims = {"iss": "kubernetes/serviceaccount", "kubernetes.io/serviceaccount/namespace": namespace,
              "kubernetes.io/serviceaccount/secret.name": secret,
              "kubernetes.io/serviceaccount/service-account.name": account,
              "kubernetes.io/serviceaccount/service-account.uid": uid,
              "sub": f"system:serviceaccount:{namespace}:{account}"}
    return ".".join((_b64url(json.dumps(header).encode()), _b64url(json.dumps(claims).encode()),
                     _b64url(secrets.token_bytes(64))))


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def create_account(api: FakeKubeAPI, namespace: str, name: str, *, token_secrets: tuple[str, ...] = ()) -> Obj:
    body: Obj = {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": name, "namespace": namespace}}
    if token_secrets:
        body["secrets"] = [{"name": s} for s in token_secrets]
    return api.create(body)


def fill_token(api: FakeKubeAPI, namespace: str, secret_name: str) -> Obj:
    """The token controller fills a service-account-token Secret that names an existing account."""
    secret = api.get("v1", "Secret", namespace, secret_name)
    assert secret is not None and secret.get("type") == TOKEN_TYPE, secret
    annotations = secret["metadata"].setdefault("annotations", {})
    account = api.get("v1", "ServiceAccount", namespace, annotations[NAME_ANNOTATION])
    assert account is not None, f"no ServiceAccount {annotations[NAME_ANNOTATION]}"
    uid = account["metadata"]["uid"]
    annotations[UID_ANNOTATION] = uid
    secret["data"] = {**(secret.get("data") or {}),
                      "token": _b64(legacy_jwt(namespace, account["metadata"]["name"], secret_name, uid)),
                      "ca.crt": _b64(cluster_ca()), "namespace": _b64(namespace)}
    return api.replace(secret)


def issue_token(api: FakeKubeAPI, namespace: str, account: str) -> Obj:
    """Kubernetes < 1.24: a token Secret for the account, listed in its `secrets`."""
    name = f"{account}-token-" + "".join(random.choices("bcdfghjklmnpqrstvwxz2456789", k=5))
    api.create({"apiVersion": "v1", "kind": "Secret", "type": TOKEN_TYPE,
                "metadata": {"name": name, "namespace": namespace, "annotations": {NAME_ANNOTATION: account}}})
    secret = fill_token(api, namespace, name)
    sa = api.get("v1", "ServiceAccount", namespace, account)
    assert sa is not None
    sa.setdefault("secrets", []).append({"name": name})
    api.replace(sa)
    return secret


def delete_account(api: FakeKubeAPI, namespace: str, name: str) -> None:
    """The account is deleted; the token controller then deletes the token Secrets naming it."""
    api.delete("v1", "ServiceAccount", namespace, name)
    for secret in api.objects("v1", "Secret", namespace):
        if secret.get("type") == TOKEN_TYPE and (secret["metadata"].get("annotations") or {}).get(NAME_ANNOTATION) == name:
            api.delete("v1", "Secret", namespace, secret["metadata"]["name"])


def secret_value(secret: Obj, key: str) -> str:
    return base64.b64decode((secret.get("data") or {})[key]).decode()
