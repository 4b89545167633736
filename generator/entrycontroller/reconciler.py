"""One generic reconcile for the ten config-entry kinds (reference crd-controller §2).

For a resource: keep our finalizer on it; write its Consul config entry when Consul lacks it or
holds something else; leave entries created outside Kubernetes (or by another datacenter) alone
unless the resource says `consul.hashicorp.com/migrate-entry: "true"`; on deletion remove the
entry (when this datacenter wrote it) and then the finalizer; and report each outcome as the
`Synced` condition, `status.lastSyncedTime` and, for a failure, a Kubernetes Event.

Kubernetes writes are merge patches (the finalizer list, the status subresource), so a concurrent
edit of the spec is never overwritten. Consul is written only when the entry differs
(`matches_consul`): a no-change resync writes nothing anywhere.

Deviation: a resource that fails validation (one that slipped past the webhook, e.g. created
while it was not installed) is `Synced=False` with reason `InvalidResource` and the validation
message, and Consul is not touched, where the reference sent it to Consul.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Protocol

from generator.base.logs import LOGGER_NAME, log
from generator.configentries import (DATACENTER_KEY, ConfigEntryInvalid, ConsulMeta, Kind, consul_namespace,
                                     defaulted, matches_consul, to_consul, validate)
from generator.consul.client import Consul
from generator.consul.errors import ConsulError

logger = logging.getLogger(LOGGER_NAME + ".controller.config-entries")

FINALIZER = "finalizers.consul.hashicorp.com"
MIGRATE = "consul.hashicorp.com/migrate-entry"
SYNCED = "Synced"
CONSUL_AGENT_ERROR = "ConsulAgentError"
EXTERNALLY_MANAGED = "ExternallyManagedConfigError"
MIGRATION_FAILED = "MigrationFailedError"
INVALID = "InvalidResource"


class Resources(Protocol):
    """The Kubernetes side: reads from the watch caches, writes through the API."""

    def get(self, kind: Kind, namespace: str, name: str) -> Mapping[str, Any] | None: ...
    async def set_finalizers(self, kind: Kind, obj: Mapping[str, Any], finalizers: list[str]) -> None: ...
    async def set_status(self, kind: Kind, obj: Mapping[str, Any], status: dict[str, Any]) -> None: ...
    def event(self, kind: Kind, obj: Mapping[str, Any], reason: str, message: str) -> None: ...


@dataclass(frozen=True)
class Settings:
    """What the reconcile needs besides the resource (values: global.datacenter, the Consul
    namespace keys, global.adminPartitions, and the cross-namespace policy with managed ACLs)."""

    datacenter: str
    consul_meta: ConsulMeta = ConsulMeta()
    cross_namespace_policy: str = ""


class SyncFailed(Exception):
    """The resource could not be synced now; the work queue retries it with backoff."""


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def synced_status(obj: Mapping[str, Any]) -> str:
    """The current `Synced` condition's status; a missing condition reads as Unknown."""
    for condition in (obj.get("status") or {}).get("conditions") or []:
        if isinstance(condition, dict) and condition.get("type") == SYNCED:
            return str(condition.get("status") or "Unknown")
    return "Unknown"


class Reconciler:
    def __init__(self, resources: Resources, consul: Consul, settings: Settings,
                 may_write: Callable[[], bool] = lambda: True) -> None:
        self.resources = resources
        self.consul = consul
        self.settings = settings
        self.may_write = may_write
        self._namespaces: set[str] = set()

    async def reconcile(self, kind: Kind, namespace: str, name: str) -> None:
        obj = self.resources.get(kind, namespace, name)
        if obj is None:
            return
        if not self.may_write():
            raise SyncFailed("not the leader")
        meta = obj.get("metadata") or {}
        finalizers = list(meta.get("finalizers") or [])
        if meta.get("deletionTimestamp"):
            if FINALIZER in finalizers:
                await self._delete(kind, obj)
                await self.resources.set_finalizers(kind, obj, [f for f in finalizers if f != FINALIZER])
                log(logger, logging.INFO, "finalizer removed", request=f"{namespace}/{name}", kind=kind.kind)
            return
        if FINALIZER not in finalizers:
            await self.resources.set_finalizers(kind, obj, finalizers + [FINALIZER])
        await self._sync(kind, obj)

    # -- deletion (§2 step 4) --

    async def _delete(self, kind: Kind, obj: Mapping[str, Any]) -> None:
        client = self.consul.local(consul_namespace(kind, dict(obj), self.settings.consul_meta))
        consul_name = kind.consul_name_of(dict(obj))
        try:
            entry = await client.config_entry(kind.consul_kind, consul_name)
        except ConsulError as e:
            raise SyncFailed(f"getting config entry from consul: {e}") from None
        if entry is None:
            return
        if (entry.get("Meta") or {}).get(DATACENTER_KEY) != self.settings.datacenter:
            log(logger, logging.INFO, "config entry in Consul was created in another datacenter - skipping delete "
                "from Consul", kind=kind.kind, name=consul_name)
            return
        try:
            await client.delete_config_entry(kind.consul_kind, consul_name)
        except ConsulError as e:
            await self._failed(kind, obj, "False", CONSUL_AGENT_ERROR, f"deleting config entry from consul: {e}")
        log(logger, logging.INFO, "deletion from Consul successful", kind=kind.kind, name=consul_name)

    # -- sync (§2 steps 5-12) --

    async def _sync(self, kind: Kind, obj: Mapping[str, Any]) -> None:
        resource = dict(obj)
        consul_meta = self.settings.consul_meta
        try:
            validate(kind, defaulted(kind, resource, consul_meta), consul_meta)
            desired = to_consul(kind, resource, self.settings.datacenter)
        except (ConfigEntryInvalid, ValueError) as e:
            if synced_status(obj) != "False" or _message(obj) != str(e):
                await self._status(kind, obj, "False", INVALID, str(e))
                self.resources.event(kind, obj, INVALID, str(e))
            return  # nothing to retry until the resource changes
        ns = consul_namespace(kind, resource, consul_meta)
        client = self.consul.local(ns)
        consul_name = kind.consul_name_of(resource)
        try:
            entry = await client.config_entry(kind.consul_kind, consul_name)
        except ConsulError as e:
            await self._failed(kind, obj, "False", CONSUL_AGENT_ERROR, str(e))
        if entry is None:
            await self._create(kind, obj, client, ns, desired)
            return
        source = str((entry.get("Meta") or {}).get(DATACENTER_KEY) or "")
        migrating = source != self.settings.datacenter
        if migrating and (obj.get("metadata") or {}).get("annotations", {}).get(MIGRATE) != "true":
            message = ("config entry already exists in Consul" if not source
                       else f'config entry managed in different datacenter: "{source}"')
            await self._failed(kind, obj, "False", EXTERNALLY_MANAGED, message)
        if not matches_consul(kind, resource, entry):
            if migrating:
                await self._failed(kind, obj, "False", MIGRATION_FAILED,
                                   "migration failed: Kubernetes resource does not match existing Consul config "
                                   f"entry: consul={_go_json(entry)}, kube={_go_json(desired)}")
            log(logger, logging.INFO, "config entry does not match consul", kind=kind.kind, name=consul_name,
                modify_index=entry.get("ModifyIndex"))
            await self._write(kind, obj, client, desired, "updating config entry in consul", "Unknown")
            log(logger, logging.INFO, "config entry updated", kind=kind.kind, name=consul_name)
            return
        if migrating:
            log(logger, logging.INFO, "migrating config entry to be managed by Kubernetes", kind=kind.kind,
                name=consul_name)
            await self._write(kind, obj, client, desired, "updating config entry in consul", "Unknown")
            return
        if synced_status(obj) != "True":
            await self._synced(kind, obj)

    async def _create(self, kind: Kind, obj: Mapping[str, Any], client: Any, ns: str, desired: dict) -> None:
        if ns and self.settings.consul_meta.namespaces_enabled and ns not in self._namespaces:
            try:
                if await client.ensure_namespace(ns, self.settings.cross_namespace_policy):
                    log(logger, logging.INFO, "consul namespace created", ns=ns)
            except ConsulError as e:
                await self._failed(kind, obj, "False", CONSUL_AGENT_ERROR, f'creating consul namespace "{ns}": {e}')
            self._namespaces.add(ns)
        await self._write(kind, obj, client, desired, "writing config entry to consul", "False")
        log(logger, logging.INFO, "config entry created", kind=kind.kind, name=desired.get("Name", ""))

    async def _write(self, kind: Kind, obj: Mapping[str, Any], client: Any, desired: dict, what: str,
                     status_on_error: str) -> None:
        if not self.may_write():
            raise SyncFailed("not the leader")
        try:
            await client.set_config_entry(desired)
        except ConsulError as e:
            await self._failed(kind, obj, status_on_error, CONSUL_AGENT_ERROR, f"{what}: {e}")
        await self._synced(kind, obj)

    # -- status --

    async def _synced(self, kind: Kind, obj: Mapping[str, Any]) -> None:
        await self._status(kind, obj, "True", "", "", synced_at=_now())

    async def _failed(self, kind: Kind, obj: Mapping[str, Any], status: str, reason: str, message: str) -> None:
        """Record the failure (condition and Event) and raise SyncFailed for a retry."""
        log(logger, logging.WARNING, "sync failed" if status == "False" else "sync status unknown", kind=kind.kind,
            request=_request(obj), reason=reason, error=message)
        await self._status(kind, obj, status, reason, message)
        self.resources.event(kind, obj, reason, message)
        raise SyncFailed(message)

    async def _status(self, kind: Kind, obj: Mapping[str, Any], status: str, reason: str, message: str, *,
                      synced_at: str | None = None) -> None:
        condition: dict[str, Any] = {"type": SYNCED, "status": status, "lastTransitionTime": _now()}
        if reason:
            condition["reason"] = reason
        if message:
            condition["message"] = message
        body: dict[str, Any] = {"conditions": [condition]}
        if synced_at:
            body["lastSyncedTime"] = synced_at
        await self.resources.set_status(kind, obj, body)


def _message(obj: Mapping[str, Any]) -> str:
    for condition in (obj.get("status") or {}).get("conditions") or []:
        if isinstance(condition, dict) and condition.get("type") == SYNCED:
            return str(condition.get("message") or "")
    return ""


def _request(obj: Mapping[str, Any]) -> str:
    meta = obj.get("metadata") or {}
    return f"{meta.get('namespace', '')}/{meta.get('name', '')}"


def _go_json(entry: Mapping[str, Any]) -> str:
    return json.dumps(entry, separators=(",", ":"))
