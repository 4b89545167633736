"""What `migrate` reads from the cluster, and the one kind of write it makes (metadata patches).

Objects are plain dicts in the API's own JSON form (camelCase, as `kubectl get -o json` shows
them), so the decisions in `steps` read like the reference study and the tests seed the fake API
server with the same shapes. Every API failure other than "not found" becomes a `MigrateError`
naming the object, so the command stops with a sentence instead of a traceback.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import urllib3
from kubernetes import client
from kubernetes.client.exceptions import ApiException

Obj = dict[str, Any]

GROUP = "consul.hashicorp.com"
# The ten CRDs of consul-k8s v0.37.0 (install-beside-consul.md §3.1 step 1), by plural.
CRD_PLURALS = ("ingressgateways", "meshes", "partitionexports", "proxydefaults", "servicedefaults",
               "serviceintentions", "serviceresolvers", "servicerouters", "servicesplitters",
               "terminatinggateways")
CRD_NAMES = tuple(f"{plural}.{GROUP}" for plural in CRD_PLURALS)

RELEASE_NAME = "meta.helm.sh/release-name"
RELEASE_NAMESPACE = "meta.helm.sh/release-namespace"
MANAGED_BY = "app.kubernetes.io/managed-by"
KEEP = "helm.sh/resource-policy"
MERGE_PATCH = "application/merge-patch+json"
TIMEOUT = 10.0  # seconds per API call: a hung API server is an error message, not a hang


class MigrateError(Exception):
    """Something in the cluster is not as the migration needs it: the message names the object
    and the fix, and the command exits 1 without changing anything further."""


def owner(obj: Obj | None) -> tuple[str, str]:
    """(release, namespace) of the Helm release that owns `obj`, from its ownership annotations
    ("" for a missing one)."""
    notes = ((obj or {}).get("metadata") or {}).get("annotations") or {}
    return notes.get(RELEASE_NAME, ""), notes.get(RELEASE_NAMESPACE, "")


def annotation(obj: Obj | None, key: str) -> str:
    return (((obj or {}).get("metadata") or {}).get("annotations") or {}).get(key, "")


def label(obj: Obj | None, key: str) -> str:
    return (((obj or {}).get("metadata") or {}).get("labels") or {}).get(key, "")


def name_of(obj: Obj) -> str:
    return str(obj["metadata"]["name"])


class Cluster:
    """Reads through the official client (one `ApiClient`, no urllib3 retries: see kube.client)."""

    def __init__(self, api: client.ApiClient) -> None:
        self.api = api
        self.core = client.CoreV1Api(api)
        self.apps = client.AppsV1Api(api)
        self.batch = client.BatchV1Api(api)
        self.rbac = client.RbacAuthorizationV1Api(api)
        self.ext = client.ApiextensionsV1Api(api)
        self.admission = client.AdmissionregistrationV1Api(api)
        self.custom = client.CustomObjectsApi(api)

    @property
    def host(self) -> str:
        return str(self.api.configuration.host)

    def _call(self, what: str, fn: Callable[[], Any], *, missing_ok: bool = False) -> Any:
        """`fn()` as JSON dicts; None for a 404 when `missing_ok`; a MigrateError otherwise."""
        try:
            result = fn()
        except ApiException as err:
            if missing_ok and err.status == 404:
                return None
            raise MigrateError(f"reading or writing {what} failed: HTTP {err.status} {_reason(err)}") from None
        except (urllib3.exceptions.HTTPError, OSError) as err:
            raise MigrateError(f"cannot reach the Kubernetes API at {self.host} ({what}): {err}") from None
        return self.api.sanitize_for_serialization(result)

    # -- reads --

    def crd(self, name: str) -> Obj | None:
        return self._call(f"CustomResourceDefinition {name}",
                          lambda: self.ext.read_custom_resource_definition(name, _request_timeout=TIMEOUT), missing_ok=True)

    def custom_resource_count(self, crd: Obj) -> int:
        spec = crd.get("spec") or {}
        versions = [v["name"] for v in spec.get("versions") or [] if v.get("storage")] or ["v1alpha1"]
        plural = (spec.get("names") or {}).get("plural") or name_of(crd).split(".")[0]
        listed = self._call(f"{plural}.{GROUP}", lambda: self.custom.list_cluster_custom_object(
            GROUP, versions[0], plural, _request_timeout=TIMEOUT), missing_ok=True)
        return len((listed or {}).get("items") or [])

    def mutating_webhooks(self) -> list[Obj]:
        listed = self._call("MutatingWebhookConfigurations",
                            lambda: self.admission.list_mutating_webhook_configuration(_request_timeout=TIMEOUT))
        return list(listed.get("items") or [])

    def deployments(self, namespace: str) -> list[Obj]:
        listed = self._call(f"Deployments in {namespace}", lambda: self.apps.list_namespaced_deployment(namespace, _request_timeout=TIMEOUT))
        return list(listed.get("items") or [])

    def service_accounts(self, namespace: str) -> list[Obj]:
        listed = self._call(f"ServiceAccounts in {namespace}",
                            lambda: self.core.list_namespaced_service_account(namespace, _request_timeout=TIMEOUT))
        return list(listed.get("items") or [])

    def jobs(self, namespace: str) -> list[Obj]:
        listed = self._call(f"Jobs in {namespace}", lambda: self.batch.list_namespaced_job(namespace, _request_timeout=TIMEOUT))
        return list(listed.get("items") or [])

    def cluster_role(self, name: str) -> Obj | None:
        return self._call(f"ClusterRole {name}", lambda: self.rbac.read_cluster_role(name, _request_timeout=TIMEOUT), missing_ok=True)

    def cluster_role_binding(self, name: str) -> Obj | None:
        return self._call(f"ClusterRoleBinding {name}", lambda: self.rbac.read_cluster_role_binding(name, _request_timeout=TIMEOUT),
                          missing_ok=True)

    def secret_exists(self, namespace: str, name: str) -> bool:
        """Whether a Secret exists; its data is never printed (only metadata is kept)."""
        found = self._call(f"Secret {namespace}/{name}",
                           lambda: self.core.read_namespaced_secret(name, namespace, _request_timeout=TIMEOUT).metadata,
                           missing_ok=True)
        return found is not None

    def helm_revisions(self, namespace: str, release: str) -> list[Obj]:
        """The metadata of the release's deployed revisions (Helm's default Secret storage:
        `sh.helm.release.v1.<release>.v<N>`, labels owner=helm, name, status)."""
        listed = self._call(f"Helm release Secrets of {release} in {namespace}", lambda: self.core.list_namespaced_secret(
            namespace, label_selector=f"owner=helm,name={release},status=deployed", _request_timeout=TIMEOUT))
        return [{"metadata": item.get("metadata") or {}} for item in listed.get("items") or []]

    def pods_injected(self) -> list[Obj]:
        listed = self._call("injected pods", lambda: self.core.list_pod_for_all_namespaces(
            label_selector="consul.hashicorp.com/connect-inject-status=injected", _request_timeout=TIMEOUT))
        return [{"metadata": item.get("metadata") or {}} for item in listed.get("items") or []]

    def namespaces_matching(self, selector: str) -> list[str]:
        listed = self._call("Namespaces", lambda: self.core.list_namespace(label_selector=selector, _request_timeout=TIMEOUT))
        return [name_of(item) for item in listed.get("items") or []]

    # -- the one write: metadata --

    def patch_metadata(self, kind: str, name: str, namespace: str | None, meta: Obj) -> Obj:
        """Merge-patch `metadata` (annotations/labels; a None value removes a key) of one object.
        `meta` carries the resourceVersion it was decided on: a concurrent change is a 409, not
        a silent overwrite of what someone else just wrote."""
        body = {"metadata": meta}
        patchers: dict[str, Callable[[], Any]] = {
            "CustomResourceDefinition": lambda: self.ext.patch_custom_resource_definition(
                name, body, _content_type=MERGE_PATCH, _request_timeout=TIMEOUT),
            "ServiceAccount": lambda: self.core.patch_namespaced_service_account(
                name, namespace, body, _content_type=MERGE_PATCH, _request_timeout=TIMEOUT),
            "ClusterRole": lambda: self.rbac.patch_cluster_role(name, body, _content_type=MERGE_PATCH, _request_timeout=TIMEOUT),
            "ClusterRoleBinding": lambda: self.rbac.patch_cluster_role_binding(name, body, _content_type=MERGE_PATCH, _request_timeout=TIMEOUT),
        }
        where = f"{kind} {namespace}/{name}" if namespace else f"{kind} {name}"
        try:
            return dict(self._call(where, patchers[kind]))
        except MigrateError as err:
            raise MigrateError(f"{err}; nothing after it was changed: run migrate again") from None

    def read(self, kind: str, name: str, namespace: str | None) -> Obj | None:
        """Read back one object of the kinds `patch_metadata` writes."""
        if kind == "CustomResourceDefinition":
            return self.crd(name)
        if kind == "ServiceAccount":
            assert namespace is not None
            return self._call(f"ServiceAccount {namespace}/{name}",
                              lambda: self.core.read_namespaced_service_account(name, namespace, _request_timeout=TIMEOUT), missing_ok=True)
        if kind == "ClusterRole":
            return self.cluster_role(name)
        return self.cluster_role_binding(name)


def _reason(err: ApiException) -> str:
    """The API's own Status message when the body has one, else the HTTP reason."""
    import json

    try:
        return str(json.loads(err.body or "{}").get("message") or err.reason)
    except (ValueError, AttributeError):
        return str(err.reason)
