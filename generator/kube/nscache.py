"""Namespace labels for the webhook, from a list+watch cache kept off the request path.

Injection reads two namespace labels (`consul.hashicorp.com/transparent-proxy` and
`consul.hashicorp.com/consul-dns`). The reference GETs the Namespace on every admission;
we keep a cache filled by the generic list+watch cache (cache.py) in a background thread, so
an admission normally costs a dict lookup. A namespace the cache has not seen yet (created a
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
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from generator.base.logs import LOGGER_NAME, log
from generator.base.errors import Unavailable
from generator.kube.cache import WATCH_SECONDS, WatchCache

logger = logging.getLogger(LOGGER_NAME + ".namespaces")

Labels = Mapping[str, str]
EMPTY: Labels = {}

GET_TIMEOUT = (2.0, 3.0)  # connect, read: a miss must never eat the API server's 10 s budget
GET_DEADLINE = 3.0         # and the whole GET, whatever the socket does
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


def _labels(obj: Mapping[str, Any]) -> dict[str, str]:
    """What the cache keeps of a Namespace: its labels (nothing else is read)."""
    return dict((obj.get("metadata") or {}).get("labels") or {})


class _WatchCounts:
    """The generic cache's WatchMetrics, on the webhook's namespace-cache metrics."""

    def __init__(self, metrics: CacheMetrics) -> None:
        self.metrics = metrics

    def failed(self, operation: str) -> None:
        self.metrics.ns_errors.labels(operation=operation).inc()

    def stored(self, count: int) -> None:
        self.metrics.ns_count.set(count)


def _no_api(**_kwargs: Any) -> Any:
    raise RuntimeError("no Kubernetes API configured")


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
        self.get_deadline = get_deadline
        self.negative_ttl = negative_ttl
        self.negative_entries = negative_entries
        # Namespace name -> labels, kept by list+watch (and by GETs of misses, see _get).
        self.watch: WatchCache[dict[str, str]] = WatchCache(
            api.list_namespace if api is not None else _no_api, name="namespace", plural="namespaces",
            transform=_labels, metrics=_WatchCounts(metrics), logger=logger, serving="labels",
            watch_seconds=watch_seconds)
        # Names a GET found missing (404) -> monotonic expiry, least recently missed first.
        # Changed on the event loop only; has() may read it from a review thread.
        self._missing: OrderedDict[str, float] = OrderedDict()
        self._pending: dict[str, asyncio.Future[Labels]] = {}  # GETs in progress
        self._get_failing = False       # an error of a GET was logged and not yet followed by success
        self.synced = self.watch.synced  # set after the first successful list
        metrics.staleness_from(self.staleness)

    # ---- request path ------------------------------------------------------------------

    def staleness(self) -> float:
        """Seconds since the cache was known to match the API server (0 while in sync)."""
        return self.watch.staleness()

    def has(self, name: str) -> bool:
        """Whether a lookup of `name` would need no API call: cached, or recently found missing."""
        return name in self.watch or self._known_missing(name)

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
        labels = self.watch.get(name)
        return EMPTY if labels is None else labels

    def needs_get(self, name: str) -> bool:
        """Whether resolve(name) would ask the API server (not cached, not known to be missing)."""
        return self.api is not None and bool(name) and not self.has(name)

    def cached(self, name: str) -> Labels | None:
        """resolve() without the API call: the labels (counted as resolve counts them), or None
        when a GET would be needed."""
        if self.needs_get(name):
            return None
        labels = self.watch.get(name)
        self.metrics.ns_lookups.labels(source="unknown" if labels is None else "cache" if self.watch.in_sync else "stale").inc()
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
            obj = json.loads(resp.data)
            obj.setdefault("metadata", {})["name"] = name  # the key it was asked for
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
        labels = self.watch.remember(obj)  # the watch may have delivered it meanwhile: it wins
        self.metrics.ns_lookups.labels(source="get").inc()
        return labels

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
        self.watch.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the thread; a blocked watch read is interrupted by shutting its socket."""
        self.watch.stop(timeout)
