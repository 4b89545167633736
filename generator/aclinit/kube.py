"""The Kubernetes side of `acl-init`: one ServiceAccount and a few Secrets, in one namespace.

Objects are read and written as plain JSON (the official client's `CoreV1Api` with
`_preload_content=False`), so Secret `data` stays base64 text as the API serves it and nothing
depends on the client's model classes. Every call has a timeout; failures are typed: `KubeNotFound`
(404), `KubeForbidden` (401/403: RBAC, with the verb and object in the message), `KubeTransient`
(no answer, 429, 5xx: worth retrying), `KubeError` (anything else).
"""

from __future__ import annotations

import base64
import json
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException
from urllib3.exceptions import HTTPError

Obj = dict[str, Any]
REQUEST_TIMEOUT = 10.0  # seconds, per call
SERVICE_ACCOUNT_TOKEN = "kubernetes.io/service-account-token"


class KubeError(Exception):
    """A Kubernetes API call failed."""


class KubeNotFound(KubeError):
    """404: the object does not exist."""


class KubeForbidden(KubeError):
    """401/403: our ServiceAccount may not do this (the chart's Role lacks a rule)."""


class KubeTransient(KubeError):
    """No answer, 429 or 5xx: the API server may answer a retry."""


class Kube:
    """ServiceAccounts and Secrets of one namespace."""

    def __init__(self, api_client: client.ApiClient, namespace: str):
        self.api = client.CoreV1Api(api_client)
        self.namespace = namespace

    def _call(self, what: str, fn: Any, *args: Any, **kwargs: Any) -> Obj:
        try:
            resp = fn(*args, _preload_content=False, _request_timeout=REQUEST_TIMEOUT, **kwargs)
            return dict(json.loads(resp.data or b"{}"))
        except ApiException as err:
            message = _status_message(err)
            if err.status == 404:
                raise KubeNotFound(f"{what}: not found") from None
            if err.status in (401, 403):
                raise KubeForbidden(f"{what}: forbidden ({message})") from None
            if err.status in (0, 429) or (err.status or 0) >= 500:
                raise KubeTransient(f"{what}: {err.status} {message}") from None
            raise KubeError(f"{what}: {err.status} {message}") from None
        except (HTTPError, OSError) as err:
            raise KubeTransient(f"{what}: Kubernetes API unreachable ({err})") from None

    def service_account(self, name: str) -> Obj:
        return self._call(f"get serviceaccount {self.namespace}/{name}",
                          self.api.read_namespaced_service_account, name, self.namespace)

    def secret(self, name: str) -> Obj:
        return self._call(f"get secret {self.namespace}/{name}", self.api.read_namespaced_secret, name, self.namespace)

    def create_secret(self, body: Obj) -> Obj:
        name = body["metadata"]["name"]
        return self._call(f"create secret {self.namespace}/{name}",
                          self.api.create_namespaced_secret, self.namespace, body)

    def replace_secret(self, body: Obj) -> Obj:
        """PUT the Secret as read and changed (its resourceVersion guards a concurrent write)."""
        name = body["metadata"]["name"]
        return self._call(f"update secret {self.namespace}/{name}",
                          self.api.replace_namespaced_secret, name, self.namespace, body)


def secret_value(secret: Obj, key: str, *, strip: bool = True) -> str:
    """The decoded value of `key` in a Secret's data ("" when absent or not UTF-8); tokens are
    stripped (a file written with a trailing newline), a CA certificate is kept as is."""
    raw = (secret.get("data") or {}).get(key)
    if not raw:
        return ""
    try:
        value = base64.b64decode(raw).decode("utf-8")
    except (ValueError, UnicodeDecodeError):
        return ""
    return value.strip() if strip else value


def encode(value: str) -> str:
    return base64.b64encode(value.encode()).decode()


def _status_message(err: ApiException) -> str:
    try:
        return str(json.loads(err.body or "{}").get("message") or err.reason)
    except (ValueError, AttributeError):
        return str(err.reason)
