"""One generic reconcile for the ten config-entry kinds (reference crd-controller §2).

For a resource: keep our finalizer on it; write its Consul config entry when Consul lacks it or
holds something else; leave entries created outside Kubernetes (or by another datacenter) alone
unless the resource says `consul.hashicorp.com/migrate-entry: "true"`; on deletion remove the
entry (when this datacenter wrote it) and then the finalizer; and report each outcome as the
`Synced` condition, `status.lastSyncedTime` and, for a failure, a Kubernetes Event.

Kubernetes writes are merge patches (the finalizer list, the status subresource), so a concurrent
edit of the spec is never overwritten. Consul is written only when the entry differs
(`matches_consul`): a no-change resync writes nothing anywhere.

Where the reference GETs each entry on every reconcile, `EntryBook` lists each kind (per Consul
namespace) once per `list_period` and keeps what it listed and what was written since: 2,000
resources cost a few list requests rather than 2,000 reads, and an entry changed directly in Consul
is still seen (and repaired) within a period, as the reference's 10-hour resync would.

Deviation: a resource that fails validation (one that slipped past the webhook, e.g. created
while it was not installed) is `Synced=False` with reason `InvalidResource` and the validation
message, and Consul is not touched, where the reference sent it to Consul.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, NoReturn, Protocol

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


class EntryBook:
    """Consul's entries of each (kind, namespace), listed at most once per `period` seconds."""

    def __init__(self, period: float) -> None:
        self.period = period
        self.entries: dict[tuple[str, str], dict[str, dict[str, Any]]] = {}
        self.listed_at: dict[tuple[str, str], float] = {}
        self._locks: dict[tuple[str, str], asyncio.Lock] = {}

    async def get(self, client: Any, consul_kind: str, ns: str, name: str) -> dict[str, Any] | None:
        where = (consul_kind, ns)
        if time.monotonic() - self.listed_at.get(where, -math.inf) > self.period:
            async with self._locks.setdefault(where, asyncio.Lock()):
                if time.monotonic() - self.listed_at.get(where, -math.inf) > self.period:
                    listed = await client.config_entries(consul_kind)
                    self.entries[where] = {_entry_name(e): e for e in listed if isinstance(e, dict)}
                    self.listed_at[where] = time.monotonic()
        return self.entries.get(where, {}).get(name)

    def wrote(self, consul_kind: str, ns: str, name: str, entry: dict[str, Any] | None) -> None:
        held = self.entries.setdefault((consul_kind, ns), {})
        if entry is None:
            held.pop(name, None)
        else:
            held[name] = entry

    def forget(self) -> None:
        """After a Consul error: read again before trusting anything."""
        self.listed_at.clear()


def _entry_name(entry: Mapping[str, Any]) -> str:
    kind = entry.get("Kind")
    return "global" if kind == "proxy-defaults" else "mesh" if kind == "mesh" else str(entry.get("Name") or "")


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
                 may_write: Callable[[], bool] = lambda: True, list_period: float = 300.0) -> None:
        self.resources = resources
        self.consul = consul
        self.settings = settings
        self.may_write = may_write
        self.book = EntryBook(list_period)
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
            self.book.wrote(kind.consul_kind, client.namespace, consul_name, None)
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
            entry = await self.book.get(client, kind.consul_kind, ns, consul_name)
        except ConsulError as e:
            self.book.forget()
            await self._failed(kind, obj, "False", CONSUL_AGENT_ERROR, str(e))
        if entry is None:
            await self._create(kind, obj, client, ns, desired)
            self.book.wrote(kind.consul_kind, ns, consul_name, desired)
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
            self.book.wrote(kind.consul_kind, ns, consul_name, desired)
            log(logger, logging.INFO, "config entry updated", kind=kind.kind, name=consul_name)
            return
        if migrating:
            log(logger, logging.INFO, "migrating config entry to be managed by Kubernetes", kind=kind.kind,
                name=consul_name)
            await self._write(kind, obj, client, desired, "updating config entry in consul", "Unknown")
            self.book.wrote(kind.consul_kind, ns, consul_name, desired)
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
            self.book.forget()
            await self._failed(kind, obj, status_on_error, CONSUL_AGENT_ERROR, f"{what}: {e}")
        await self._synced(kind, obj)

    # -- status --

    async def _synced(self, kind: Kind, obj: Mapping[str, Any]) -> None:
        await self._status(kind, obj, "True", "", "", synced_at=_now())

    async def _failed(self, kind: Kind, obj: Mapping[str, Any], status: str, reason: str, message: str) -> NoReturn:
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
