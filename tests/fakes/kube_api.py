"""A small fake Kubernetes API server (aiohttp, real HTTP on 127.0.0.1) for the controllers' tests.

Written from the Kubernetes API conventions (api-concepts: "Efficient detection of changes",
"Resource versions", "Retrieving large results sets in chunks"; sig-architecture
api-conventions: Status objects, 409/410 semantics), not from our code. It serves:

- core v1 `pods`, `endpoints`, `services`, `namespaces` (cluster-scoped), `events`;
  `coordination.k8s.io/v1` `leases`; `events.k8s.io/v1` `events`;
- list, across all namespaces or in one, with `labelSelector` (equality and set-based:
  `a=b`, `a==b`, `a!=b`, `a in (x,y)`, `a notin (x)`, `a`, `!a`) and `fieldSelector`
  (`metadata.name`, `metadata.namespace`, and the few fields the real server indexes for
  pods, namespaces and events; any other field is a 400 as on a real server), `limit` and
  `continue`; the list's `metadata.resourceVersion` is the store's current version;
- watch (`?watch=true`): a chunked stream of one JSON event per line, ADDED/MODIFIED/DELETED,
  BOOKMARK every `bookmark_interval` seconds when `allowWatchBookmarks=true`, resumed after a
  given `resourceVersion` (no `resourceVersion` or `"0"`: synthetic ADDED for the current
  objects first), an `ERROR` event with a 410 `Expired` Status for a version older than the
  retained history (`compact()` / `history`), and `timeoutSeconds` ending the stream cleanly.
  With selectors, an object that stops matching arrives as DELETED and one that starts
  matching as ADDED, as the API server's watch cache does;
- get, create (`generateName`, uid, creationTimestamp; 409 AlreadyExists), replace (PUT; a
  stale `metadata.resourceVersion` is a 409 Conflict; no change → no new version and no event),
  patch (`merge-patch+json`; `strategic-merge-patch+json` treated as a merge patch, i.e. lists
  are replaced, not merged by key; `json-patch+json`; apply-patch is a 415), delete (with
  `preconditions`), deletecollection; `/status` subresources for pods, services and
  namespaces (the main resource then ignores `status` changes, the subresource changes only
  `status`);
- `/version`, `/healthz`, `/readyz`, `/livez`; discovery (`/api`, `/api/v1`, `/apis`,
  `/apis/{group}/{version}`, unaggregated) listing exactly the served resources.

Why not kmock (already a test dependency): kmock 0.8's emulator serves `resourceVersion: '...'`
on every object and list, replays every stored object at the start of each watch and cannot
resume one from a version (so no 410 either), has no PUT (replace), no resourceVersion
conflicts, ignores label and field selectors, and cannot serve the cluster-scoped
`namespaces` resource (tests/server/fake_kube.py). A controller's list+watch and a Lease's
optimistic concurrency are exactly those semantics, so this stand-in implements them.

Finalizers are modelled: DELETE of an object that has some only sets `deletionTimestamp`, and
the object goes when an update removes the last one. Deliberately not modelled: admission
(nothing is validated beyond what the conventions above need; namespaces need not exist unless
`require_namespaces=True`), graceful pod deletion (DELETE of an object without finalizers
removes it at once, as for a pod with no node or `gracePeriodSeconds=0`), server-side apply, protobuf, authentication (the kubeconfig has no
credentials, which design.md requires to work), and `continue` snapshots (a later page reads
the current state after the last key).

Test helpers (call them on the event loop that runs the server): `create`, `replace`, `patch`,
`delete`, `get`, `objects` change and read the store as a kubelet or kubectl would, emitting the
same watch events as HTTP writes do; `compact()` expires every version so far; `bookmark()`;
faults: `go_down()`/`come_up()` (connections refused and open ones cut, same port after),
`fail(status, times, ...)`, `slow(delay, ...)`, `hang(...)`; `journal` (every request) and
`calls` (counts by verb and resource).
"""

from __future__ import annotations

import asyncio
import base64
import copy
import itertools
import json
import random
import re
import uuid
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import jsonpatch
from aiohttp import web

Obj = dict[str, Any]


@dataclass(frozen=True)
class Resource:
    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool = True
    status: bool = False                       # has a /status subresource
    fields: frozenset[str] = frozenset()       # field selectors beyond metadata.name/namespace

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version


_POD_FIELDS = frozenset({"spec.nodeName", "spec.restartPolicy", "spec.schedulerName",
                         "spec.serviceAccountName", "spec.hostNetwork", "status.phase",
                         "status.podIP", "status.nominatedNodeName"})
_EVENT_FIELDS = frozenset({"involvedObject.kind", "involvedObject.namespace", "involvedObject.name",
                           "involvedObject.uid", "involvedObject.apiVersion",
                           "involvedObject.resourceVersion", "involvedObject.fieldPath",
                           "reason", "reportingComponent", "source", "type"})

RESOURCES: tuple[Resource, ...] = (
    Resource("", "v1", "pods", "Pod", status=True, fields=_POD_FIELDS),
    Resource("", "v1", "endpoints", "Endpoints"),
    Resource("", "v1", "services", "Service", status=True),
    Resource("", "v1", "namespaces", "Namespace", namespaced=False, status=True,
             fields=frozenset({"status.phase"})),
    Resource("", "v1", "events", "Event", fields=_EVENT_FIELDS),
    Resource("coordination.k8s.io", "v1", "leases", "Lease"),
    Resource("events.k8s.io", "v1", "events", "Event"),
)

# What the real server answers for a watch without timeoutSeconds is 30-60 min; 30 min here.
DEFAULT_WATCH_SECONDS = 1800.0


class ApiError(Exception):
    """Answered as a `Status` object with this code and reason."""

    def __init__(self, code: int, reason: str, message: str, details: Obj | None = None):
        super().__init__(message)
        self.code, self.reason, self.message, self.details = code, reason, message, details

    def status(self) -> Obj:
        out: Obj = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                    "message": self.message, "reason": self.reason, "code": self.code}
        if self.details:
            out["details"] = self.details
        return out


def _not_found(res: Resource, name: str) -> ApiError:
    return ApiError(404, "NotFound", f'{res.plural}{"." + res.group if res.group else ""} "{name}" not found',
                    {"name": name, "group": res.group, "kind": res.plural})


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = _merge_patch(out.get(key), value)
    return out


# -- selectors ------------------------------------------------------------------------------

_LABEL_KEY = r"[A-Za-z0-9]([-A-Za-z0-9_./]*[A-Za-z0-9])?"
_SET_RE = re.compile(rf"^\s*({_LABEL_KEY})\s+(in|notin)\s+\(([^)]*)\)\s*$")
_EQ_RE = re.compile(rf"^\s*({_LABEL_KEY})\s*(==|=|!=)\s*([-A-Za-z0-9_.]*)\s*$")
_EXISTS_RE = re.compile(rf"^\s*(!?)\s*({_LABEL_KEY})\s*$")

Predicate = Callable[[dict[str, str]], bool]


def _split_requirements(text: str) -> list[str]:
    """Split on commas outside parentheses (set-based values contain commas)."""
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return [p for p in parts if p.strip()]


def parse_label_selector(text: str) -> Predicate:
    """The labelSelector query parameter as a predicate on a labels dict (400 when malformed)."""
    checks: list[Predicate] = []
    for part in _split_requirements(text):
        if m := _SET_RE.match(part):
            key, op, values = m.group(1), m.group(3), {v.strip() for v in m.group(4).split(",") if v.strip()}
            if op == "in":
                checks.append(lambda labels, k=key, vs=values: labels.get(k) in vs)
            else:
                checks.append(lambda labels, k=key, vs=values: labels.get(k) not in vs)
        elif m := _EQ_RE.match(part):
            key, op, value = m.group(1), m.group(3), m.group(4)
            if op == "!=":
                checks.append(lambda labels, k=key, v=value: labels.get(k) != v)
            else:
                checks.append(lambda labels, k=key, v=value: k in labels and labels[k] == v)
        elif m := _EXISTS_RE.match(part):
            negate, key = m.group(1) == "!", m.group(2)
            checks.append(lambda labels, k=key, n=negate: (k in labels) != n)
        else:
            raise ApiError(400, "BadRequest", f"unable to parse requirement: {part.strip()!r}")
    return lambda labels: all(check(labels) for check in checks)


def _field_value(obj: Obj, path: str) -> str:
    value: Any = obj
    for part in path.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


def parse_field_selector(text: str, res: Resource) -> Callable[[Obj], bool]:
    checks: list[Callable[[Obj], bool]] = []
    allowed = {"metadata.name", "metadata.namespace"} | res.fields
    for part in _split_requirements(text):
        m = re.match(r"^\s*([A-Za-z0-9_.]+)\s*(==|=|!=)\s*(.*?)\s*$", part)
        if not m:
            raise ApiError(400, "BadRequest", f"invalid selector: {part.strip()!r}")
        path, op, value = m.groups()
        if path not in allowed:
            raise ApiError(400, "BadRequest", f'field label not supported: {path}')
        if op == "!=":
            checks.append(lambda obj, p=path, v=value: _field_value(obj, p) != v)
        else:
            checks.append(lambda obj, p=path, v=value: _field_value(obj, p) == v)
    return lambda obj: all(check(obj) for check in checks)


# -- store and watches ----------------------------------------------------------------------

Key = tuple[str, str, str, str]  # group, plural, namespace ("" when cluster-scoped), name


@dataclass
class Change:
    version: int
    type: str            # ADDED / MODIFIED / DELETED
    res: Resource
    old: Obj | None
    new: Obj             # for DELETED: the last state, carrying the deletion's resourceVersion


@dataclass(eq=False)  # hashed by identity: the set of open watches
class Watch:
    res: Resource
    namespace: str | None
    matches: Callable[[Obj], bool]
    bookmarks: bool
    queue: asyncio.Queue[Obj | None] = field(default_factory=asyncio.Queue)

    def event_for(self, change: Change) -> Obj | None:
        """The event this watch sees for `change`, following selector transitions."""
        if change.res is not self.res:
            return None
        ns = change.new.get("metadata", {}).get("namespace", "")
        if self.namespace is not None and ns != self.namespace:
            return None
        now = self.matches(change.new)
        if change.type == "ADDED":
            return {"type": "ADDED", "object": change.new} if now else None
        if change.type == "DELETED":
            return {"type": "DELETED", "object": change.new} if now else None
        before = change.old is not None and self.matches(change.old)
        if now and before:
            return {"type": "MODIFIED", "object": change.new}
        if now:
            return {"type": "ADDED", "object": change.new}
        if before:  # no longer selected: the previous state, at this change's version
            assert change.old is not None
            gone = copy.deepcopy(change.old)
            gone["metadata"]["resourceVersion"] = str(change.version)
            return {"type": "DELETED", "object": gone}
        return None


@dataclass
class Fault:
    """One injected fault: the requests it applies to, and what happens to them."""

    method: str | None = None        # e.g. "PUT"; None: any
    path: str | None = None          # regular expression searched in the path; None: any
    status: int | None = None        # answer this status (a Status body) instead of serving
    delay: float = 0.0               # wait this long first
    hang: bool = False               # never answer (until the fault is cleared or the server stops)
    times: int | None = None         # applies to this many requests, then disappears; None: until cleared

    def applies(self, method: str, path: str) -> bool:
        return ((self.method is None or self.method == method)
                and (self.path is None or re.search(self.path, path) is not None))


@dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, str]
    content_type: str
    body: Any
    status: int = 0


class FakeKubeAPI:
    """In-memory API objects served over HTTP. `async with FakeKubeAPI() as kube:` starts it."""

    def __init__(self, *, history: int = 100_000, bookmark_interval: float = 60.0,
                 require_namespaces: bool = False, resources: tuple[Resource, ...] = RESOURCES) -> None:
        self.resources = resources
        self.history = history
        self.bookmark_interval = bookmark_interval
        self.require_namespaces = require_namespaces
        self.version = 1
        self.compacted = 0          # every change after this version is still in `changes`
        self.store: dict[Key, Obj] = {}
        self.changes: deque[Change] = deque()
        self.watches: set[Watch] = set()
        self.faults: list[Fault] = []
        self.journal: deque[Recorded] = deque(maxlen=100_000)
        self.calls: Counter[tuple[str, str]] = Counter()   # (verb, plural)
        self.url = ""
        self.port = 0
        self.is_down = False
        self._ips = itertools.count(1)
        self._unhang = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self._site: web.TCPSite | None = None

    # -- lifecycle --

    async def start(self) -> str:
        app = web.Application(client_max_size=16 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, shutdown_timeout=0.5, handle_signals=False)
        await self._runner.setup()
        await self._listen()
        self.url = f"http://127.0.0.1:{self.port}"
        return self.url

    async def _listen(self) -> None:
        assert self._runner is not None
        self._site = web.TCPSite(self._runner, "127.0.0.1", self.port, reuse_address=True)
        await self._site.start()
        self.port = self._runner.addresses[-1][1]

    async def stop(self) -> None:
        self._end_watches()
        self._unhang.set()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeKubeAPI:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def kubeconfig(self, path: Path | str, namespace: str = "default") -> Path:
        """A kubeconfig for this server (plain http, no credentials) that the official client loads."""
        path = Path(path)
        path.write_text(json.dumps({  # JSON is YAML
            "apiVersion": "v1", "kind": "Config", "current-context": "fake",
            "clusters": [{"name": "fake", "cluster": {"server": self.url}}],
            "users": [{"name": "fake", "user": {}}],
            "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "fake",
                                                       "namespace": namespace}}],
        }, indent=2))
        return path

    # -- faults --

    async def go_down(self) -> None:
        """The API server is gone: new connections are refused, open ones (watches too) cut."""
        self.is_down = True
        self._end_watches()
        if self._site is not None:
            await self._site.stop()
            self._site = None
        if self._runner is not None and self._runner.server is not None:
            for handler in self._runner.server.connections:
                if handler.transport is not None:
                    handler.transport.close()

    async def come_up(self) -> None:
        """Listen again on the same port (the store is as it was)."""
        self.is_down = False
        await self._listen()

    def fail(self, status: int = 500, *, times: int | None = 1, method: str | None = None,
             path: str | None = None) -> Fault:
        return self._add_fault(Fault(method, path, status=status, times=times))

    def slow(self, delay: float, *, times: int | None = None, method: str | None = None,
             path: str | None = None) -> Fault:
        return self._add_fault(Fault(method, path, delay=delay, times=times))

    def hang(self, *, times: int | None = None, method: str | None = None, path: str | None = None) -> Fault:
        """Matching requests are read and never answered (an overloaded API server)."""
        return self._add_fault(Fault(method, path, hang=True, times=times))

    def _add_fault(self, fault: Fault) -> Fault:
        self.faults.append(fault)
        return fault

    def clear_faults(self) -> None:
        """Remove every fault; hung requests are then served."""
        self.faults.clear()
        self._unhang.set()
        self._unhang = asyncio.Event()

    # -- the store, as the cluster's own actors change it --

    def resource(self, api_version: str, kind_or_plural: str) -> Resource:
        group, _, version = api_version.rpartition("/")
        for res in self.resources:
            if res.group == group and res.version == version and kind_or_plural in (res.kind, res.plural):
                return res
        raise KeyError(f"{api_version} {kind_or_plural} is not served by the fake")

    def _res_of(self, obj: Obj) -> Resource:
        return self.resource(obj.get("apiVersion", "v1"), obj.get("kind", ""))

    @staticmethod
    def _key(res: Resource, namespace: str | None, name: str) -> Key:
        return (res.group, res.plural, namespace or "" if res.namespaced else "", name)

    def create(self, obj: Obj) -> Obj:
        """Store a new object as given (status included), as a controller-created object."""
        res = self._res_of(obj)
        return self._create(res, copy.deepcopy(obj), obj.get("metadata", {}).get("namespace"), keep_status=True)

    def replace(self, obj: Obj) -> Obj:
        """Replace an object unconditionally (status included); it must exist."""
        res = self._res_of(obj)
        meta = obj.get("metadata", {})
        old = self._existing(res, meta.get("namespace"), meta["name"])
        new = copy.deepcopy(obj)
        new["metadata"].pop("resourceVersion", None)
        return self._update(res, old, new)

    def patch(self, api_version: str, kind: str, namespace: str | None, name: str, patch: Obj) -> Obj:
        """Merge-patch an object (status included), as the kubelet updates a pod's status."""
        res = self.resource(api_version, kind)
        old = self._existing(res, namespace, name)
        return self._update(res, old, _merge_patch(old, patch))

    def delete(self, api_version: str, kind: str, namespace: str | None, name: str) -> Obj:
        res = self.resource(api_version, kind)
        return self._delete(res, self._existing(res, namespace, name))

    def get(self, api_version: str, kind: str, namespace: str | None, name: str) -> Obj | None:
        res = self.resource(api_version, kind)
        obj = self.store.get(self._key(res, namespace, name))
        return copy.deepcopy(obj) if obj is not None else None

    def objects(self, api_version: str, kind: str, namespace: str | None = None) -> list[Obj]:
        res = self.resource(api_version, kind)
        return [copy.deepcopy(o) for (g, p, ns, _), o in sorted(self.store.items())
                if (g, p) == (res.group, res.plural) and (namespace is None or ns == namespace)]

    def compact(self) -> None:
        """Expire every version so far: a watch or list continuation from any of them gets 410."""
        self.compacted = self.version
        self.changes.clear()

    def bookmark(self) -> None:
        """Send a BOOKMARK now on every watch that asked for bookmarks."""
        for w in self.watches:
            if w.bookmarks:
                w.queue.put_nowait(self._bookmark(w.res))

    # -- internals of the store --

    def _existing(self, res: Resource, namespace: str | None, name: str) -> Obj:
        obj = self.store.get(self._key(res, namespace, name))
        if obj is None:
            raise _not_found(res, name)
        return obj

    def _record(self, kind: str, res: Resource, old: Obj | None, new: Obj) -> None:
        change = Change(self.version, kind, res, old, new)
        self.changes.append(change)
        while len(self.changes) > self.history:
            self.compacted = self.changes.popleft().version
        for w in self.watches:
            if (event := w.event_for(change)) is not None:
                w.queue.put_nowait(event)

    def _create(self, res: Resource, obj: Obj, namespace: str | None, *, keep_status: bool) -> Obj:
        meta = obj.setdefault("metadata", {})
        if res.namespaced:
            body_ns = meta.get("namespace")
            namespace = namespace or body_ns or "default"
            if body_ns and body_ns != namespace:
                raise ApiError(400, "BadRequest", "the namespace of the provided object does not match "
                                                  "the namespace sent on the request")
            meta["namespace"] = namespace
            if self.require_namespaces and self._key(self._namespaces(), None, namespace) not in self.store:
                raise ApiError(404, "NotFound", f'namespaces "{namespace}" not found',
                               {"name": namespace, "kind": "namespaces"})
        else:
            meta.pop("namespace", None)
        if not meta.get("name"):
            if not meta.get("generateName"):
                raise ApiError(422, "Invalid", f"{res.kind} is invalid: metadata.name: Required value: "
                                               "name or generateName is required")
            suffix = "".join(random.choices("bcdfghjklmnpqrstvwxz2456789", k=5))
            meta["name"] = meta["generateName"] + suffix
        key = self._key(res, namespace, meta["name"])
        if key in self.store:
            raise ApiError(409, "AlreadyExists", f'{res.plural} "{meta["name"]}" already exists',
                           {"name": meta["name"], "group": res.group, "kind": res.plural})
        obj["apiVersion"], obj["kind"] = res.api_version, res.kind
        meta.update(uid=str(uuid.uuid4()), creationTimestamp=_now())
        meta.pop("deletionTimestamp", None)
        self._defaults(res, obj, keep_status)
        self.version += 1
        meta["resourceVersion"] = str(self.version)
        self.store[key] = obj
        self._record("ADDED", res, None, obj)
        return copy.deepcopy(obj)

    def _namespaces(self) -> Resource:
        return self.resource("v1", "namespaces")

    def _defaults(self, res: Resource, obj: Obj, keep_status: bool) -> None:
        """What the API server fills in on create for the kinds served here."""
        meta = obj["metadata"]
        if res.kind == "Namespace" and not res.group:
            meta.setdefault("labels", {})["kubernetes.io/metadata.name"] = meta["name"]
            if not keep_status or "status" not in obj:
                obj["status"] = {"phase": "Active"}
        elif res.kind == "Pod" and not res.group:
            if not keep_status or "status" not in obj:
                obj["status"] = {"phase": "Pending"}
        elif res.kind == "Service" and not res.group:
            spec = obj.setdefault("spec", {})
            spec.setdefault("type", "ClusterIP")
            if spec["type"] != "ExternalName" and not spec.get("clusterIP"):
                n = next(self._ips)
                spec["clusterIP"] = f"10.96.{n // 250}.{n % 250 + 1}"
            if spec.get("clusterIP"):
                spec.setdefault("clusterIPs", [spec["clusterIP"]])
            if not keep_status or "status" not in obj:
                obj["status"] = {"loadBalancer": {}}

    def _update(self, res: Resource, old: Obj, new: Obj, *, expect_version: str | None = None) -> Obj:
        if expect_version and expect_version != old["metadata"]["resourceVersion"]:
            raise ApiError(409, "Conflict",
                           f'Operation cannot be fulfilled on {res.plural}{"." + res.group if res.group else ""} '
                           f'"{old["metadata"]["name"]}": the object has been modified; please apply your '
                           "changes to the latest version and try again",
                           {"name": old["metadata"]["name"], "group": res.group, "kind": res.plural})
        meta = new.setdefault("metadata", {})
        for immutable in ("name", "namespace", "uid", "creationTimestamp"):
            if immutable in old["metadata"]:
                meta[immutable] = old["metadata"][immutable]
            else:
                meta.pop(immutable, None)
        new["apiVersion"], new["kind"] = res.api_version, res.kind
        meta["resourceVersion"] = old["metadata"]["resourceVersion"]
        if old["metadata"].get("deletionTimestamp"):  # set by a DELETE; only finalizers may go
            meta["deletionTimestamp"] = old["metadata"]["deletionTimestamp"]
            if not meta.get("finalizers"):
                return self._delete(res, old, finalized=True)
        if new == old:  # nothing changed: no new version, no event (as the real server)
            return copy.deepcopy(old)
        self.version += 1
        meta["resourceVersion"] = str(self.version)
        self.store[self._key(res, meta.get("namespace"), meta["name"])] = new
        self._record("MODIFIED", res, old, new)
        return copy.deepcopy(new)

    def _delete(self, res: Resource, old: Obj, *, finalized: bool = False) -> Obj:
        """DELETE: an object with finalizers only gets a deletionTimestamp (a MODIFIED event) and
        goes when an update removes the last finalizer, as on a real API server."""
        meta = old["metadata"]
        if meta.get("finalizers") and not finalized:
            if meta.get("deletionTimestamp"):
                return copy.deepcopy(old)
            marked = copy.deepcopy(old)
            marked["metadata"]["deletionTimestamp"] = _now()
            self.version += 1
            marked["metadata"]["resourceVersion"] = str(self.version)
            self.store[self._key(res, meta.get("namespace"), meta["name"])] = marked
            self._record("MODIFIED", res, old, marked)
            return copy.deepcopy(marked)
        del self.store[self._key(res, meta.get("namespace"), meta["name"])]
        self.version += 1
        gone = copy.deepcopy(old)
        gone["metadata"]["resourceVersion"] = str(self.version)
        self._record("DELETED", res, old, gone)
        return copy.deepcopy(gone)

    def _bookmark(self, res: Resource) -> Obj:
        return {"type": "BOOKMARK", "object": {"kind": res.kind, "apiVersion": res.api_version,
                                               "metadata": {"resourceVersion": str(self.version)}}}

    def _end_watches(self) -> None:
        for w in self.watches:
            w.queue.put_nowait(None)

    # -- HTTP --

    def _discovery(self, path: str) -> Obj | None:
        """Discovery documents (api-concepts "Discovery API", unaggregated form) for the served
        resources: `/api`, `/api/v1`, `/apis`, `/apis/{group}/{version}`; None for any other path.
        Helm's `lookup` resolves a kind to its resource through them."""
        parts = [p for p in path.split("/") if p]
        verbs = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]

        def resource_list(group: str, version: str) -> Obj | None:
            served = [r for r in self.resources if (r.group, r.version) == (group, version)]
            if not served:
                return None
            items: list[Obj] = []
            for r in served:
                items.append({"name": r.plural, "singularName": r.kind.lower(), "namespaced": r.namespaced,
                              "kind": r.kind, "verbs": verbs})
                if r.status:
                    items.append({"name": f"{r.plural}/status", "singularName": "", "namespaced": r.namespaced,
                                  "kind": r.kind, "verbs": ["get", "patch", "update"]})
            return {"kind": "APIResourceList", "apiVersion": "v1",
                    "groupVersion": f"{group}/{version}" if group else version, "resources": items}

        if parts == ["api"]:
            return {"kind": "APIVersions", "versions": ["v1"],
                    "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1"}]}
        if parts == ["api", "v1"]:
            return resource_list("", "v1")
        if parts == ["apis"]:
            groups: dict[str, list[str]] = {}
            for r in self.resources:
                if r.group and r.version not in groups.setdefault(r.group, []):
                    groups[r.group].append(r.version)
            return {"kind": "APIGroupList", "apiVersion": "v1", "groups": [
                {"name": g, "versions": [{"groupVersion": f"{g}/{v}", "version": v} for v in vs],
                 "preferredVersion": {"groupVersion": f"{g}/{vs[0]}", "version": vs[0]}}
                for g, vs in groups.items()]}
        if len(parts) == 3 and parts[0] == "apis":
            return resource_list(parts[1], parts[2])
        return None

    def _route(self, path: str) -> tuple[Resource, str | None, str | None, str | None]:
        """(resource, namespace, name, subresource) for an API path, else 404."""
        parts = [p for p in path.split("/") if p]
        if parts[:2] == ["api", "v1"]:
            group, version, rest = "", "v1", parts[2:]
        elif len(parts) >= 3 and parts[0] == "apis":
            group, version, rest = parts[1], parts[2], parts[3:]
        else:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")

        def lookup(plural: str) -> Resource:
            for res in self.resources:
                if (res.group, res.version, res.plural) == (group, version, plural):
                    return res
            raise ApiError(404, "NotFound", "the server could not find the requested resource")

        namespace: str | None = None
        if len(rest) >= 3 and rest[0] == "namespaces":
            candidate = next((r for r in self.resources if (r.group, r.version, r.plural)
                              == (group, version, rest[2]) and r.namespaced), None)
            if candidate is not None:  # /namespaces/{ns}/{plural}[/{name}[/{sub}]]
                namespace, rest = rest[1], rest[2:]
        if not rest or len(rest) > 3:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        res = lookup(rest[0])
        if namespace is None and res.namespaced and len(rest) > 1:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        name = rest[1] if len(rest) > 1 else None
        sub = rest[2] if len(rest) > 2 else None
        if sub is not None and not (sub == "status" and res.status):
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        return res, namespace, name, sub

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body_text = await request.text() if request.can_read_body else ""
        try:
            body = json.loads(body_text) if body_text else None
        except ValueError:
            body = body_text
        rec = Recorded(request.method, request.path, dict(request.query),
                       request.headers.get("Content-Type", ""), body)
        self.journal.append(rec)
        try:
            for fault in list(self.faults):
                if not fault.applies(request.method, request.path):
                    continue
                if fault.times is not None:
                    fault.times -= 1
                    if fault.times <= 0:
                        self.faults.remove(fault)
                if fault.delay:
                    await asyncio.sleep(fault.delay)
                if fault.hang:
                    await self._unhang.wait()
                if fault.status is not None:
                    raise ApiError(fault.status, {500: "InternalError", 503: "ServiceUnavailable",
                                                  429: "TooManyRequests", 504: "Timeout"}.get(fault.status, "Unknown"),
                                   f"injected fault: HTTP {fault.status}")
            if isinstance(body, str):
                raise ApiError(400, "BadRequest", "the request body is not JSON")
            resp = await self._serve(request, body)
        except ApiError as err:
            resp = web.json_response(err.status(), status=err.code)
        rec.status = resp.status
        return resp

    async def _serve(self, request: web.Request, body: Any) -> web.StreamResponse:
        path, method, query = request.path, request.method, request.query
        if path in ("/healthz", "/readyz", "/livez"):
            return web.Response(text="ok")
        if path.rstrip("/") == "/version":
            return web.json_response({"major": "1", "minor": "30", "gitVersion": "v1.30.0-fake",
                                      "platform": "linux/amd64"})
        if method == "GET" and (discovery := self._discovery(path)) is not None:
            return web.json_response(discovery)
        res, namespace, name, sub = self._route(path)
        if name is None:
            if method == "GET" and query.get("watch", "").lower() in ("true", "1"):
                self.calls["watch", res.plural] += 1
                return await self._watch(request, res, namespace)
            if method == "GET":
                self.calls["list", res.plural] += 1
                return web.json_response(self._list(res, namespace, query))
            if method == "POST":
                self.calls["create", res.plural] += 1
                if not isinstance(body, dict):
                    raise ApiError(400, "BadRequest", "the request body must be an object")
                if body.get("kind") not in (None, res.kind):
                    raise ApiError(400, "BadRequest", f"kind {body.get('kind')} does not match {res.kind}")
                return web.json_response(self._create(res, copy.deepcopy(body), namespace, keep_status=False),
                                         status=201)
            if method == "DELETE":
                self.calls["deletecollection", res.plural] += 1
                listed = self._list(res, namespace, query)
                for item in listed["items"]:
                    meta = item["metadata"]
                    self._delete(res, self._existing(res, meta.get("namespace"), meta["name"]))
                return web.json_response(listed)
            raise ApiError(405, "MethodNotAllowed", f"{method} is not allowed on a collection")

        if method == "GET":
            self.calls["get", res.plural] += 1
            return web.json_response(copy.deepcopy(self._existing(res, namespace, name)))
        if method == "PUT":
            self.calls["update", res.plural] += 1
            return web.json_response(self._put(res, namespace, name, sub, body))
        if method == "PATCH":
            self.calls["patch", res.plural] += 1
            return web.json_response(self._patch(request, res, namespace, name, sub, body))
        if method == "DELETE":
            self.calls["delete", res.plural] += 1
            old = self._existing(res, namespace, name)
            pre = (body or {}).get("preconditions") or {}
            if pre.get("uid") and pre["uid"] != old["metadata"].get("uid"):
                raise ApiError(409, "Conflict", f"Precondition failed: UID in precondition: {pre['uid']}, "
                                                f"UID in object meta: {old['metadata'].get('uid')}")
            if pre.get("resourceVersion") and pre["resourceVersion"] != old["metadata"]["resourceVersion"]:
                raise ApiError(409, "Conflict", "Precondition failed: ResourceVersion in precondition: "
                                                f"{pre['resourceVersion']}, ResourceVersion in object meta: "
                                                f"{old['metadata']['resourceVersion']}")
            self._delete(res, old)
            return web.json_response({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
                                      "details": {"name": name, "group": res.group, "kind": res.plural,
                                                  "uid": old["metadata"].get("uid")}})
        raise ApiError(405, "MethodNotAllowed", f"{method} is not allowed")

    def _with_status_rules(self, res: Resource, old: Obj, new: Obj, sub: str | None) -> Obj:
        """The main resource keeps the stored status; /status changes nothing but status."""
        if not res.status:
            return new
        if sub == "status":
            out = copy.deepcopy(old)
            if "status" in new:
                out["status"] = new["status"]
            else:
                out.pop("status", None)
            out["metadata"]["resourceVersion"] = new.get("metadata", {}).get("resourceVersion")
            return out
        if "status" in old:
            new["status"] = copy.deepcopy(old["status"])
        else:
            new.pop("status", None)
        return new

    def _put(self, res: Resource, namespace: str | None, name: str, sub: str | None, body: Any) -> Obj:
        if not isinstance(body, dict):
            raise ApiError(400, "BadRequest", "the request body must be an object")
        meta = body.get("metadata") or {}
        if meta.get("name") != name:
            raise ApiError(400, "BadRequest", "the name of the object does not match the name on the URL")
        if res.namespaced and meta.get("namespace") not in (None, "", namespace):
            raise ApiError(400, "BadRequest", "the namespace of the provided object does not match "
                                              "the namespace sent on the request")
        key = self._key(res, namespace, name)
        if key not in self.store and res.plural == "endpoints" and not res.group and sub is None:
            # Endpoints allow create-on-update (AllowCreateOnUpdate in its registry strategy).
            return self._create(res, copy.deepcopy(body), namespace, keep_status=True)
        old = self._existing(res, namespace, name)
        new = self._with_status_rules(res, old, copy.deepcopy(body), sub)
        expect = (new.get("metadata") or {}).get("resourceVersion")
        return self._update(res, old, new, expect_version=expect or None)

    def _patch(self, request: web.Request, res: Resource, namespace: str | None, name: str,
               sub: str | None, body: Any) -> Obj:
        old = self._existing(res, namespace, name)
        ctype = request.headers.get("Content-Type", "").split(";")[0].strip()
        if ctype == "application/json-patch+json":
            if not isinstance(body, list):
                raise ApiError(400, "BadRequest", "a JSON patch must be a list of operations")
            try:
                new = jsonpatch.apply_patch(old, body, in_place=False)
            except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException) as err:
                raise ApiError(422, "Invalid", f"the server rejected our request due to an error in our request: {err}")
        elif ctype in ("application/merge-patch+json", "application/strategic-merge-patch+json"):
            if not isinstance(body, dict):
                raise ApiError(400, "BadRequest", "a merge patch must be an object")
            new = _merge_patch(old, body)
        else:
            raise ApiError(415, "UnsupportedMediaType", f"the body of the request was in an unknown format: {ctype}")
        expect = ((body.get("metadata") or {}).get("resourceVersion") if isinstance(body, dict) else None)
        new = self._with_status_rules(res, old, new, sub)
        return self._update(res, old, new, expect_version=expect)

    def _selected(self, res: Resource, query: Any) -> Callable[[Obj], bool]:
        labels = parse_label_selector(query.get("labelSelector", ""))
        fields = parse_field_selector(query.get("fieldSelector", ""), res)
        return lambda obj: labels(obj.get("metadata", {}).get("labels") or {}) and fields(obj)

    def _list(self, res: Resource, namespace: str | None, query: Any) -> Obj:
        matches = self._selected(res, query)
        keys = sorted(k for k in self.store if k[:2] == (res.group, res.plural)
                      and (namespace is None or k[2] == namespace))
        token = query.get("continue")
        if token:
            try:
                start = tuple(json.loads(base64.urlsafe_b64decode(token))["after"])
            except (ValueError, KeyError, TypeError):
                raise ApiError(400, "BadRequest", "invalid continue token")
            keys = [k for k in keys if k[2:] > start]
        items = [copy.deepcopy(self.store[k]) for k in keys if matches(self.store[k])]
        meta: Obj = {"resourceVersion": str(self.version)}
        limit = int(query.get("limit") or 0)
        if limit and len(items) > limit:
            last = items[limit - 1]["metadata"]
            after = [last.get("namespace", ""), last["name"]]
            meta["continue"] = base64.urlsafe_b64encode(json.dumps({"after": after}).encode()).decode()
            meta["remainingItemCount"] = len(items) - limit
            items = items[:limit]
        return {"kind": f"{res.kind}List", "apiVersion": res.api_version, "metadata": meta, "items": items}

    async def _watch(self, request: web.Request, res: Resource, namespace: str | None) -> web.StreamResponse:
        query = request.query
        matches = self._selected(res, query)
        since_text = query.get("resourceVersion", "")
        try:
            since = int(since_text) if since_text else 0
        except ValueError:
            raise ApiError(400, "BadRequest", f"invalid resource version: {since_text!r}")
        timeout = float(query.get("timeoutSeconds") or DEFAULT_WATCH_SECONDS)
        w = Watch(res, namespace, matches, query.get("allowWatchBookmarks", "").lower() in ("true", "1"))
        # Everything up to registering the watch happens without an await: no change can slip between.
        resp = web.StreamResponse(headers={"Content-Type": "application/json"})
        if since_text in ("", "0"):
            for (g, p, ns, _), obj in sorted(self.store.items()):
                if (g, p) == (res.group, res.plural) and (namespace is None or ns == namespace) and matches(obj):
                    w.queue.put_nowait({"type": "ADDED", "object": obj})
        elif since < self.compacted:
            gone = ApiError(410, "Expired", f"too old resource version: {since} ({self.compacted + 1})")
            w.queue.put_nowait({"type": "ERROR", "object": gone.status()})
            w.queue.put_nowait(None)
        else:
            for change in self.changes:
                if change.version > since and (event := w.event_for(change)) is not None:
                    w.queue.put_nowait(event)
        self.watches.add(w)
        try:
            await resp.prepare(request)
            loop = asyncio.get_running_loop()
            deadline = loop.time() + timeout
            while True:
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                wait = min(remaining, self.bookmark_interval) if w.bookmarks else remaining
                try:
                    event = await asyncio.wait_for(w.queue.get(), wait)
                except TimeoutError:
                    if w.bookmarks and deadline - loop.time() > 0:
                        event = self._bookmark(res)
                    else:
                        break
                if event is None:  # server going down or 410 sent
                    if self.is_down and request.transport is not None:
                        request.transport.close()
                    break
                await resp.write(json.dumps(event).encode() + b"\n")
        except ConnectionResetError:  # the client went away
            pass
        finally:
            self.watches.discard(w)
        return resp


__all__ = ["FakeKubeAPI", "Fault", "Recorded", "Resource", "RESOURCES", "ApiError",
           "parse_label_selector", "parse_field_selector"]
