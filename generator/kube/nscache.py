"""Namespace labels for the webhook, from a list+watch cache kept off the request path.

Injection reads two namespace labels (`consul.hashicorp.com/transparent-proxy` and
`consul.hashicorp.com/consul-dns`). The reference GETs the Namespace on every admission;
we keep a cache filled by the official client's list+watch in a background thread, so an
admission normally costs a dict lookup. A namespace the cache has not seen yet (created a
moment ago) costs one GET, shared by concurrent requests for it; a namespace that does not
exist (404) is remembered for a few seconds (NEGATIVE_TTL, at most NEGATIVE_ENTRIES names, least
recently missed dropped first), so pods naming random namespaces cost the API server one GET per
name and period, and cannot grow our memory. When the API server is
unreachable the cache keeps answering with the last labels it knew; that is logged once
per outage, counted, and visible as staleness.
"""

from __future__ import annotations

import asyncio
import json
import os
import logging
import math
import random
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from kubernetes import client, config, watch
from kubernetes.client.exceptions import ApiException

from generator.base.logs import LOGGER_NAME, log
from generator.base.errors import Unavailable

logger = logging.getLogger(LOGGER_NAME + ".namespaces")

Labels = Mapping[str, str]
EMPTY: Labels = {}

# Server-side watch timeout: the stream ends cleanly after this and is reopened from the
# last resourceVersion, so a silently dead connection is noticed within this time.
WATCH_SECONDS = 240
GET_TIMEOUT = (2.0, 3.0)  # connect, read: a miss must never eat the API server's 10 s budget
GET_DEADLINE = 3.0         # and the whole GET, whatever the socket does
LIST_TIMEOUT = (5.0, 60.0)  # off the request path; a big cluster's list may take a while
BACKOFF_MIN, BACKOFF_MAX = 0.5, 30.0
# A namespace that does not exist: pods created in it fail in the API server anyway, so remembering
# the 404 briefly costs nothing; a namespace created meanwhile reaches us by the watch first.
NEGATIVE_TTL = 5.0
NEGATIVE_ENTRIES = 1000


class CacheMetrics(Protocol):
    """What the cache reports (the webhook's Metrics has these; the cache does not import it)."""

    ns_lookups: Any
    ns_errors: Any
    ns_count: Any

    def staleness_from(self, fn: Callable[[], float]) -> None: ...


def _labels(obj: Mapping[str, Any]) -> tuple[str, dict[str, str]]:
    meta = obj.get("metadata") or {}
    return meta.get("name", ""), dict(meta.get("labels") or {})


class NamespaceUnavailable(Unavailable):
    """A namespace the cache has never seen could not be read: its labels are unknown.

    Injecting with guessed labels could silently give the pod the wrong transparent-proxy or
    DNS setup, so the admission fails instead (HTTP 500; the webhook's failurePolicy decides,
    and the ReplicaSet controller retries). Only namespaces created during an outage hit this.
    """


class NamespaceCache:
    """Labels of every Namespace, by name. `api` None means no API server: every lookup is {}."""

    def __init__(self, api: client.CoreV1Api | None, metrics: CacheMetrics, *,
                 watch_seconds: int = WATCH_SECONDS, get_deadline: float = GET_DEADLINE,
                 negative_ttl: float = NEGATIVE_TTL, negative_entries: int = NEGATIVE_ENTRIES) -> None:
        self.api = api
        self.metrics = metrics
        self.watch_seconds = watch_seconds
        self.get_deadline = get_deadline
        self.negative_ttl = negative_ttl
        self.negative_entries = negative_entries
        self._labels: dict[str, dict[str, str]] = {}
        # Names a GET found missing (404) -> monotonic expiry, least recently missed first.
        # Changed on the event loop only; has() may read it from a review thread.
        self._missing: OrderedDict[str, float] = OrderedDict()
        self._pending: dict[str, asyncio.Future[Labels]] = {}  # GETs in progress
        self._in_sync = False           # a list succeeded and the watch since then is healthy
        self._last_sync = -math.inf     # monotonic time at which we were last known in sync
        self._outage = False            # an error was logged and not yet followed by recovery
        self._get_failing = False       # the same, for GETs of cache misses
        self._stop = threading.Event()
        self._watch: watch.Watch | None = None
        self._thread: threading.Thread | None = None
        self.synced = threading.Event()  # set after the first successful list
        metrics.staleness_from(self.staleness)

    # ---- request path ------------------------------------------------------------------

    def staleness(self) -> float:
        """Seconds since the cache was known to match the API server (0 while in sync)."""
        if self._in_sync:
            return 0.0
        return time.monotonic() - self._last_sync

    def has(self, name: str) -> bool:
        """Whether a lookup of `name` would need no API call: cached, or recently found missing."""
        return name in self._labels or self._known_missing(name)

    def _known_missing(self, name: str) -> bool:
        expiry = self._missing.get(name)
        return expiry is not None and time.monotonic() < expiry

    def _remember_missing(self, name: str) -> None:
        if self.negative_ttl <= 0 or self.negative_entries <= 0:
            return
        self._missing[name] = time.monotonic() + self.negative_ttl
        self._missing.move_to_end(name)
        while len(self._missing) > self.negative_entries:
            self._missing.popitem(last=False)

    def peek(self, name: str) -> Labels:
        """Labels from the cache only; {} when unknown (counted in no metric)."""
        return self._labels.get(name, EMPTY)

    def needs_get(self, name: str) -> bool:
        """Whether resolve(name) would ask the API server (not cached, not known to be missing)."""
        return self.api is not None and bool(name) and not self.has(name)

    def cached(self, name: str) -> Labels | None:
        """resolve() without the API call: the labels (counted as resolve counts them), or None
        when a GET would be needed."""
        if self.needs_get(name):
            return None
        labels = self._labels.get(name)
        self.metrics.ns_lookups.labels(source="unknown" if labels is None else "cache" if self._in_sync else "stale").inc()
        return EMPTY if labels is None else labels

    async def resolve(self, name: str) -> Labels:
        """Labels of `name`: from the cache, else from one GET (shared by concurrent callers).

        Raises NamespaceUnavailable when the namespace is not cached and cannot be read.
        """
        labels = self.cached(name)
        if labels is not None:
            return labels
        task = self._pending.get(name)
        if task is None:
            task = asyncio.ensure_future(self._get(name))
            self._pending[name] = task
            task.add_done_callback(lambda _: self._pending.pop(name, None))
        return await asyncio.shield(task)  # one caller's cancellation must not cancel the others'

    async def _get(self, name: str) -> Labels:
        assert self.api is not None
        try:
            # The thread may outlive the deadline (urllib3 cannot be cancelled); the admission does not wait.
            resp = await asyncio.wait_for(asyncio.to_thread(
                self.api.read_namespace, name, _preload_content=False, _request_timeout=GET_TIMEOUT), self.get_deadline)
            _, labels = _labels(json.loads(resp.data))
        except ApiException as e:
            if e.status == 404:  # the pod's admission will fail in the API server anyway
                self._remember_missing(name)
                self.metrics.ns_lookups.labels(source="unknown").inc()
                return EMPTY
            raise self._get_failed(name, f"HTTP {e.status} {e.reason}") from None
        except Exception as e:  # connection refused, timeout, bad JSON
            raise self._get_failed(name, str(e) or type(e).__name__) from None
        self._get_failing = False
        self._missing.pop(name, None)
        if name not in self._labels:  # the watch may have delivered it meanwhile: it wins
            self._labels[name] = labels
        self.metrics.ns_lookups.labels(source="get").inc()
        return self._labels[name]

    def _get_failed(self, name: str, error: str) -> NamespaceUnavailable:
        self.metrics.ns_errors.labels(operation="get").inc()
        self.metrics.ns_lookups.labels(source="unknown").inc()
        level = logging.DEBUG if self._get_failing else logging.WARNING  # once per streak
        self._get_failing = True
        log(logger, level, "cannot read a namespace missing from the cache", namespace=name, error=error)
        return NamespaceUnavailable(f"cannot read the labels of namespace {name!r} from the Kubernetes API: {error}")

    # ---- background list+watch -----------------------------------------------------------

    def start(self) -> None:
        """Start the list+watch thread (no-op without an API server)."""
        if self.api is None:
            log(logger, logging.WARNING, "no Kubernetes API configured: namespace labels are "
                "treated as empty (transparent-proxy and consul-dns namespace labels are ignored)")
            return
        self._thread = threading.Thread(target=self._run, name="namespace-watch", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the thread; a blocked watch read is interrupted by shutting its socket."""
        self._stop.set()
        if self._watch is not None:
            self._watch.stop()
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self) -> None:
        backoff = BACKOFF_MIN
        version: str | None = None
        while not self._stop.is_set():
            operation = "list" if version is None else "watch"
            try:
                if version is None:
                    version = self._list()
                version = self._watch_from(version)
                backoff = BACKOFF_MIN
            except Exception as e:
                gone = isinstance(e, ApiException) and e.status == 410
                if self._stop.is_set():
                    break
                self._mark_unsynced()
                version = None  # relist after any failure: we may have missed events
                if gone:  # our resourceVersion is too old: relist now, this is routine
                    continue
                self._failed(operation, e)
                self._stop.wait(backoff * random.uniform(0.8, 1.2))
                backoff = min(backoff * 2, BACKOFF_MAX)
        self._mark_unsynced()

    def _list(self) -> str:
        assert self.api is not None
        resp = self.api.list_namespace(_preload_content=False, _request_timeout=LIST_TIMEOUT)
        body = json.loads(resp.data)
        self._labels = dict(_labels(item) for item in body.get("items") or ())
        self.metrics.ns_count.set(len(self._labels))
        self._mark_synced()
        self.synced.set()
        return (body.get("metadata") or {}).get("resourceVersion") or ""

    def _watch_from(self, version: str) -> str:
        """Apply watch events until the server ends the stream; returns the last resourceVersion."""
        assert self.api is not None
        self._watch = w = watch.Watch()
        if self._stop.is_set():  # stop() may have run before this Watch existed
            return version
        for event in w.stream(self.api.list_namespace, resource_version=version,
                              allow_watch_bookmarks=True, timeout_seconds=self.watch_seconds,
                              _request_timeout=(GET_TIMEOUT[0], self.watch_seconds + 30)):
            if self._stop.is_set():
                break
            # Watch raises ApiException for ERROR events (410 Gone included) itself.
            kind, obj = event.get("type"), event.get("raw_object") or {}
            version = (obj.get("metadata") or {}).get("resourceVersion") or version
            name, labels = _labels(obj)
            if kind in ("ADDED", "MODIFIED") and name:
                self._labels[name] = labels
            elif kind == "DELETED":
                self._labels.pop(name, None)
            self.metrics.ns_count.set(len(self._labels))
            self._mark_synced()
        return version

    def _mark_synced(self) -> None:
        self._in_sync = True
        self._last_sync = time.monotonic()
        if self._outage:
            self._outage = False
            log(logger, logging.INFO, "namespace cache back in sync with the API server",
                namespaces=len(self._labels))

    def _mark_unsynced(self) -> None:
        if self._in_sync:
            self._last_sync = time.monotonic()
        self._in_sync = False

    def _failed(self, operation: str, e: Exception) -> None:
        self.metrics.ns_errors.labels(operation=operation).inc()
        level = logging.DEBUG if self._outage else logging.WARNING  # once per outage
        self._outage = True
        error = f"HTTP {e.status} {e.reason}" if isinstance(e, ApiException) else (str(e) or type(e).__name__)
        log(logger, level, "namespace cache cannot reach the API server; serving last known labels",
            operation=operation, error=error, namespaces=len(self._labels))


def api_from_environment() -> client.CoreV1Api | None:
    """The in-cluster service account, else KUBECONFIG / ~/.kube/config, else None (no cluster).

    Raises `kubernetes.config.ConfigException` when a configuration exists but is broken.
    """
    cfg = client.Configuration()
    if os.environ.get("KUBERNETES_SERVICE_HOST"):
        config.load_incluster_config(client_configuration=cfg)
    elif os.environ.get("KUBECONFIG") or os.path.exists(os.path.expanduser(config.KUBE_CONFIG_DEFAULT_LOCATION)):
        config.load_kube_config(client_configuration=cfg)
    else:
        return None
    return api_for(cfg)


def api_for(cfg: client.Configuration) -> client.CoreV1Api:
    """A client without urllib3's silent retries: the cache has its own backoff, and a miss's
    GET must stay within its timeout (three retries would outlast the API server's 10 s)."""
    cfg.retries = False
    return client.CoreV1Api(client.ApiClient(cfg))
