"""A list+watch cache of one Kubernetes resource kind, kept in sync by a background thread.

The same machinery serves every reader of the API server here: the webhook's Namespace labels
(nscache.py) and, next, the controllers' Endpoints, Pods, Namespaces and Services. What is kept
is a map `namespace/name` (or `name` for cluster-scoped kinds) → the object, optionally reduced
by a caller-given `transform` (by default only `metadata.managedFields` is dropped, which no
reader needs and which can be most of an object's size).

How it stays in sync, as client-go's reflector does:
- list (in pages of `page_size`), replace the store, remember the list's resourceVersion;
- watch from that version with a server-side timeout (`watch_seconds`) and bookmarks, applying
  ADDED/MODIFIED/DELETED, and moving the version on with every event and BOOKMARK; when the
  server ends the stream (the timeout), watch again from the last version;
- a watch that was open and lost its connection is resumed from the last version it delivered
  (no event is lost, no list is needed); a watch that cannot be opened, a list that fails, or an
  ERROR event relists after a capped exponential backoff with jitter;
- 410 Gone (our version, or a list's continue token, left the server's window) relists at once:
  that is routine, not an error.

Readers call `get()` from any thread (a dict lookup; a relist swaps the whole dict at once). A
consumer that needs to react registers a handler: it gets `added`, `modified`, `deleted` for each
change (after a relist too: the differences between the old and the new store, so a deletion
missed during an outage still arrives) and then one `relisted`, after which a controller can
enqueue every key. Handlers run in the watch thread, or on an asyncio loop through
`loop.call_soon_threadsafe` when one is given.

While the API server cannot be reached the store keeps the last objects it knew: staleness
(seconds since last known to be in sync) says how old they may be, errors are counted by the
caller-given `WatchMetrics`, and the first error of an outage is logged as a warning (the rest at
debug level) until "back in sync".
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import random
import socket
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Generic, Literal, Protocol, TypeVar

from kubernetes.client.exceptions import ApiException
from kubernetes.watch.watch import iter_resp_lines

from generator.base.logs import LOGGER_NAME, log

Obj = dict[str, Any]
T = TypeVar("T")

# Server-side watch timeout: the stream ends cleanly after this and is reopened from the last
# resourceVersion, so a silently dead connection is noticed within this time (+ READ_SLACK).
WATCH_SECONDS = 240
READ_SLACK = 30.0
CONNECT_TIMEOUT = 2.0
LIST_TIMEOUT = (5.0, 60.0)  # connect, read (per page): off the request path, a big page may take a while
PAGE_SIZE = 500             # as client-go's reflector: bounds the memory one list response needs
BACKOFF_MIN, BACKOFF_MAX = 0.5, 30.0
JITTER = 0.2                # each wait is the backoff ± 20 %, so replicas do not retry in step

EventType = Literal["added", "modified", "deleted", "relisted"]
ListFunction = Callable[..., Any]
"""A list function of the official client with its positional arguments bound, e.g.
`CoreV1Api.list_namespace`, `CoreV1Api.list_endpoints_for_all_namespaces`, or
`functools.partial(CoreV1Api.list_namespaced_pod, "consul")`. It is called with the keyword
arguments every generated list function takes (label_selector, field_selector, limit, _continue,
watch, resource_version, allow_watch_bookmarks, timeout_seconds, _preload_content,
_request_timeout)."""


@dataclass(frozen=True, slots=True)
class Event(Generic[T]):
    """One change seen by the cache, as delivered to handlers.

    `obj` is the object now (for `deleted`, its last state); `old` what the store held before
    (None for `added`, and for a `deleted` of an object the store never held). A `relisted` event
    has neither, and an empty key: the store was replaced by a fresh list.
    """

    type: EventType
    key: str
    obj: T | None = None
    old: T | None = None


Handler = Callable[[Event[Any]], None]


class WatchMetrics(Protocol):
    """What a cache reports; the caller maps it onto its own metrics (the cache imports none)."""

    def failed(self, operation: str) -> None:
        """A list or watch call failed ("list" or "watch"); 410 Gone is not counted."""

    def stored(self, count: int) -> None:
        """The store now holds `count` objects."""


class NoMetrics:
    """A WatchMetrics that counts nothing."""

    def failed(self, operation: str) -> None:
        pass

    def stored(self, count: int) -> None:
        pass


def object_key(obj: Obj) -> str:
    """`namespace/name`, or `name` for a cluster-scoped object ("" without a name), as client-go."""
    meta = obj.get("metadata") or {}
    name = meta.get("name") or ""
    namespace = meta.get("namespace")
    return f"{namespace}/{name}" if namespace and name else name


def key(namespace: str | None, name: str) -> str:
    """The store key of `name` in `namespace` (None or "" for a cluster-scoped object)."""
    return f"{namespace}/{name}" if namespace else name


def drop_managed_fields(obj: Obj) -> Obj:
    """The object without `metadata.managedFields` (server-side apply bookkeeping)."""
    meta = obj.get("metadata")
    if isinstance(meta, dict):
        meta.pop("managedFields", None)
    return obj


class _Expired(Exception):
    """The API server answered 410 Gone: our resourceVersion or continue token is too old."""


class _Stopped(Exception):
    """stop() was called in the middle of a paged list."""


def _expired(e: Exception) -> bool:
    return isinstance(e, _Expired) or (isinstance(e, ApiException) and e.status == 410)


def describe_error(e: Exception) -> str:
    """One line for a failed API call: `HTTP 503 Service Unavailable`, or the exception's text."""
    if isinstance(e, ApiException):
        return f"HTTP {e.status} {e.reason}"
    return str(e) or type(e).__name__


class WatchCache(Generic[T]):
    """Objects of one kind (filtered by selectors), kept by a list+watch thread.

    `name` names the cache in its thread name and log lines ("namespace" → thread
    `namespace-watch`, "namespace cache cannot reach the API server; ..."); `plural` is the field
    that carries the count in those lines; `serving` says what stale readers get ("serving last
    known labels").
    """

    def __init__(self, list_fn: ListFunction, *, name: str, plural: str | None = None,
                 label_selector: str = "", field_selector: str = "",
                 transform: Callable[[Obj], T] = drop_managed_fields,  # type: ignore[assignment]
                 metrics: WatchMetrics | None = None, logger: logging.Logger | None = None,
                 serving: str = "objects", watch_seconds: int = WATCH_SECONDS,
                 page_size: int = PAGE_SIZE, backoff_min: float = BACKOFF_MIN,
                 backoff_max: float = BACKOFF_MAX) -> None:
        self.list_fn = list_fn
        self.name = name
        self.plural = plural or name + "s"
        self.selectors = {k: v for k, v in (("label_selector", label_selector),
                                            ("field_selector", field_selector)) if v}
        self.transform = transform
        self.metrics: WatchMetrics = metrics or NoMetrics()
        self.logger = logger or logging.getLogger(f"{LOGGER_NAME}.{self.plural}")
        self.serving = serving
        self.watch_seconds = watch_seconds
        self.page_size = page_size
        self.backoff_min, self.backoff_max = backoff_min, backoff_max
        self._store: dict[str, T] = {}
        self._versions: dict[str, str] = {}  # key → resourceVersion, to tell what a relist changed
        self._lock = threading.Lock()         # store writes (watch thread, remember()) and waiters
        self._handlers: list[tuple[Handler, asyncio.AbstractEventLoop | None]] = []
        self._waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = []
        self._version: str | None = None  # where the next watch starts; None: list first
        self._in_sync = False           # a list succeeded and the watch since then is healthy
        self._last_sync = -math.inf     # monotonic time at which we were last known in sync
        self._outage = False            # an error was logged and not yet followed by recovery
        self._stop = threading.Event()
        self._resp: Any = None          # the response being read, so that stop() can cut it
        self._opened = False            # the current watch request was answered (200)
        self._thread: threading.Thread | None = None
        self.synced = threading.Event()  # set after the first successful list; stays set

    # ---- readers (any thread) --------------------------------------------------------------

    def get(self, key: str) -> T | None:
        """The object stored under `key` (see `key()`), or None."""
        return self._store.get(key)

    def __contains__(self, key: str) -> bool:
        return key in self._store

    def __len__(self) -> int:
        return len(self._store)

    def keys(self) -> list[str]:
        """Every key, as of now (a copy)."""
        return list(self._store.copy())

    def values(self) -> list[T]:
        return list(self._store.copy().values())

    def items(self) -> list[tuple[str, T]]:
        return list(self._store.copy().items())

    @property
    def in_sync(self) -> bool:
        """Whether the store is known to match the API server now (a healthy watch)."""
        return self._in_sync

    def staleness(self) -> float:
        """Seconds since the cache was known to match the API server (0 while in sync; +Inf
        before the first list)."""
        if self._in_sync:
            return 0.0
        return time.monotonic() - self._last_sync

    def remember(self, obj: Obj) -> T:
        """Store an object read directly (a GET on a cache miss) unless the cache already holds
        its key: what the watch delivered is newer or as new. Returns what the store holds.
        No handler is told: the watch delivers the object too."""
        k = object_key(obj)
        value = self.transform(obj)
        with self._lock:
            if k in self._store:
                return self._store[k]
            self._store[k] = value
            self._versions[k] = (obj.get("metadata") or {}).get("resourceVersion") or ""
        self.metrics.stored(len(self._store))
        return value

    # ---- consumers -------------------------------------------------------------------------

    def add_handler(self, handler: Handler, loop: asyncio.AbstractEventLoop | None = None) -> None:
        """Call `handler(event)` for every change; on `loop` (call_soon_threadsafe) when given,
        else in the watch thread (then it must be quick and must not raise). Register before
        start() to see the first list's `added` events."""
        self._handlers.append((handler, loop))

    async def wait_synced(self, timeout: float | None = None) -> bool:
        """Wait (on the running loop, without a thread) for the first list; False on timeout."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        with self._lock:
            if self.synced.is_set():
                return True
            self._waiters.append((loop, future))
        try:
            async with asyncio.timeout(timeout):
                await future
            return True
        except TimeoutError:
            return False
        finally:
            with self._lock:
                if (loop, future) in self._waiters:
                    self._waiters.remove((loop, future))

    # ---- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        """Start the list+watch thread (once)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name=f"{self.name}-watch", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the thread; a blocked read is interrupted by shutting its socket."""
        self._stop.set()
        self._interrupt()
        if self._thread is not None:
            self._thread.join(timeout)

    def _interrupt(self) -> None:
        # As kubernetes.watch.Watch.stop: shutting the socket (not closing it, which would wait for
        # the lock the blocked read holds) makes the read in the watch thread return at once.
        conn = getattr(self._resp, "connection", None)
        sock = getattr(conn, "sock", None)
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    # ---- the watch thread ------------------------------------------------------------------

    def _run(self) -> None:
        backoff = self.backoff_min
        while not self._stop.is_set():
            operation = "list" if self._version is None else "watch"
            self._opened = False
            try:
                if self._version is None:
                    self._version = self._list()
                    operation = "watch"
                self._watch()
                backoff = self.backoff_min
            except Exception as e:
                if self._stop.is_set():
                    break
                self._mark_unsynced()
                if _expired(e):  # our version is too old: relist now, this is routine
                    self._version = None
                    continue
                # A watch that was open and lost its connection resumes from the last version it
                # delivered; anything else (no connection, an ERROR event, a failed list) relists.
                if not self._opened or isinstance(e, ApiException):
                    self._version = None
                self._failed(operation, e)
                self._stop.wait(backoff * random.uniform(1 - JITTER, 1 + JITTER))
                backoff = min(backoff * 2, self.backoff_max)
        self._mark_unsynced()

    def _call(self, request_timeout: Any, **kwargs: Any) -> Any:
        """One request, its response kept in self._resp (for stop()) until the caller closes it."""
        self._resp = self.list_fn(_preload_content=False, _request_timeout=request_timeout,
                                  **self.selectors, **kwargs)
        if self._stop.is_set():  # stop() may have run before self._resp was set
            self._interrupt()
        return self._resp

    def _release(self, resp: Any) -> None:
        self._resp = None
        resp.close()
        resp.release_conn()

    def _list(self) -> str:
        """List every page, replace the store, tell handlers; returns the list's resourceVersion."""
        store: dict[str, T] = {}
        versions: dict[str, str] = {}
        version = ""
        token = ""
        while True:
            paging: dict[str, Any] = {"limit": self.page_size} if self.page_size else {}
            if token:
                paging["_continue"] = token
            resp = self._call(LIST_TIMEOUT, **paging)
            try:
                body = json.loads(resp.data)
            finally:
                self._release(resp)
            for item in body.get("items") or ():
                k = object_key(item)
                if k:
                    versions[k] = (item.get("metadata") or {}).get("resourceVersion") or ""
                    store[k] = self.transform(item)
            meta = body.get("metadata") or {}
            version = meta.get("resourceVersion") or version
            token = meta.get("continue") or ""
            if not token:
                break
            if self._stop.is_set():
                raise _Stopped()
        self._replace(store, versions)
        return version

    def _replace(self, store: dict[str, T], versions: dict[str, str]) -> None:
        with self._lock:
            old, old_versions = self._store, self._versions
            self._store, self._versions = store, versions
        self.metrics.stored(len(store))
        self._mark_synced()
        self.synced.set()
        with self._lock:
            waiters, self._waiters = self._waiters, []
        for loop, future in waiters:
            _call_soon(loop, _resolve, future)
        if self._handlers:
            events: list[Event[T]] = [Event("deleted", k, v, v) for k, v in old.items() if k not in store]
            for k, v in store.items():
                if k not in old:
                    events.append(Event("added", k, v))
                elif versions[k] != old_versions.get(k) or not versions[k]:
                    events.append(Event("modified", k, v, old[k]))
            events.append(Event("relisted", ""))
            self._emit(events)

    def _watch(self) -> None:
        """Apply watch events from self._version until the server ends the stream."""
        resp = self._call((CONNECT_TIMEOUT, self.watch_seconds + READ_SLACK), watch=True,
                          resource_version=self._version, allow_watch_bookmarks=True,
                          timeout_seconds=self.watch_seconds)
        # The server sends every change after our version (or 410 Gone at once).
        self._opened = True
        self._mark_synced()
        try:
            for line in iter_resp_lines(resp):
                if self._stop.is_set():
                    break
                if line:
                    self._apply(json.loads(line))
        finally:
            self._release(resp)

    def _apply(self, event: Obj) -> None:
        kind = event.get("type")
        obj = event.get("object") or {}
        if kind == "ERROR":  # a Status (410 Gone when our version left the server's window)
            if obj.get("code") == 410:
                raise _Expired(obj.get("message") or "")
            raise ApiException(status=obj.get("code") or 0, reason=f"{obj.get('reason')}: {obj.get('message')}")
        meta = obj.get("metadata") or {}
        version = meta.get("resourceVersion") or ""
        if version:
            self._version = version
        k = object_key(obj)
        change: Event[T] | None = None
        if kind in ("ADDED", "MODIFIED") and k:
            value = self.transform(obj)
            with self._lock:
                old = self._store.get(k)
                existed = k in self._store
                self._store[k] = value
                self._versions[k] = version
            change = Event("modified" if existed else "added", k, value, old)
        elif kind == "DELETED" and k:
            value = self.transform(obj)
            with self._lock:
                old = self._store.pop(k, None)
                self._versions.pop(k, None)
            change = Event("deleted", k, value, old)
        # BOOKMARK: only the version moves on (its object carries nothing else).
        self.metrics.stored(len(self._store))
        self._mark_synced()
        if change is not None and self._handlers:
            self._emit((change,))

    def _emit(self, events: Iterable[Event[T]]) -> None:
        events = tuple(events)
        for handler, loop in self._handlers:
            if loop is None:
                for event in events:
                    try:
                        handler(event)
                    except Exception:  # a consumer's bug must not stop the watch
                        self.logger.exception("%s cache event handler failed", self.name)
            else:
                for event in events:
                    if not _call_soon(loop, handler, event):
                        break

    # ---- state and logs --------------------------------------------------------------------

    def _mark_synced(self) -> None:
        self._in_sync = True
        self._last_sync = time.monotonic()
        if self._outage:
            self._outage = False
            log(self.logger, logging.INFO, f"{self.name} cache back in sync with the API server",
                **{self.plural: len(self._store)})

    def _mark_unsynced(self) -> None:
        if self._in_sync:
            self._last_sync = time.monotonic()
        self._in_sync = False

    def _failed(self, operation: str, e: Exception) -> None:
        self.metrics.failed(operation)
        level = logging.DEBUG if self._outage else logging.WARNING  # once per outage
        self._outage = True
        log(self.logger, level, f"{self.name} cache cannot reach the API server; serving last known {self.serving}",
            operation=operation, error=describe_error(e), **{self.plural: len(self._store)})


def _call_soon(loop: asyncio.AbstractEventLoop, fn: Callable[..., Any], *args: Any) -> bool:
    """loop.call_soon_threadsafe, False when the loop is closed (its consumer is gone)."""
    try:
        loop.call_soon_threadsafe(fn, *args)
        return True
    except RuntimeError:
        return False


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)
