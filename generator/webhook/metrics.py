"""Prometheus metrics of the webhook server.

Each server instance owns its own registry, so several servers in one process (tests,
benchmarks) never share counters, and `/metrics` shows exactly one server's figures.
The names are part of the operator-facing surface (dashboards, alerts): keep them stable.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client import PlatformCollector, ProcessCollector

PREFIX = "connect_inject"

# The API server waits at most 10 s by default (30 s maximum); a typical admission takes
# well under a millisecond, so the buckets start at 100 us to see the interesting part.
LATENCY_BUCKETS = (
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
    0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)

# Result values of the requests counter. `invalid` is a request that is not a usable
# AdmissionReview (HTTP 400/413), `error` is our own fault (500 in the review or HTTP 500;
# reason `review-timeout` when the review did not finish within --review-timeout).
RESULTS = ("injected", "skipped", "denied", "error", "invalid")


class Metrics:
    """All metrics of one server; the code that observes something holds a reference."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        ProcessCollector(registry=r)
        PlatformCollector(registry=r)
        self.requests = Counter(
            f"{PREFIX}_admission_requests", "Admission requests answered, by result and reason code.",
            ["result", "reason"], registry=r)
        self.latency = Histogram(
            f"{PREFIX}_admission_duration_seconds",
            "Time from request headers read to response ready, per admission request.",
            buckets=LATENCY_BUCKETS, registry=r)
        self.workload_reviews = Counter(
            f"{PREFIX}_workload_reviews", "Workload reviews answered on /validate-workload (always allowed), "
            "by whether they carried warnings.", ["result"], registry=r)
        self.in_flight = Gauge(
            f"{PREFIX}_admission_in_flight", "Admission requests being processed now.", registry=r)
        self.warnings = Counter(
            f"{PREFIX}_admission_warnings", "Warnings returned to the API server in admission responses.",
            registry=r)
        self.cert_expiry = Gauge(
            f"{PREFIX}_tls_certificate_expiry_timestamp_seconds",
            "notAfter of the serving certificate in use (Unix time); NaN until one is loaded.",
            registry=r)
        self.cert_expiry.set(math.nan)
        self.cert_expiring = Gauge(
            f"{PREFIX}_tls_certificate_expiring",
            "1 while the serving certificate in use expires within the warning period "
            "(--cert-expiry-warning-days) or has expired, else 0.", registry=r)
        self.cert_reloads = Counter(
            f"{PREFIX}_tls_certificate_reloads", "Attempts to load the certificate/key pair from disk, by result.",
            ["result"], registry=r)
        self.ns_staleness = Gauge(
            f"{PREFIX}_namespace_cache_staleness_seconds",
            "Seconds since the namespace cache was last in sync with the API server "
            "(0 while its watch is healthy; +Inf if it never synced or has no API server).",
            registry=r)
        self.ns_errors = Counter(
            f"{PREFIX}_namespace_cache_errors", "Failed calls to the API server by the namespace cache.",
            ["operation"], registry=r)
        self.ns_lookups = Counter(
            f"{PREFIX}_namespace_lookups",
            "Namespace label lookups by source: cache (in sync), stale (cache while the API is "
            "unreachable), get (cache miss answered by one GET), unknown (no labels could be had).",
            ["source"], registry=r)
        self.ns_count = Gauge(
            f"{PREFIX}_namespace_cache_namespaces", "Namespaces held in the label cache.", registry=r)
        self.abandoned_reviews = Gauge(
            f"{PREFIX}_abandoned_reviews_running",
            "Reviews already answered as timed out (--review-timeout) whose engine call still "
            "occupies a worker thread (a Python thread cannot be stopped).", registry=r)
        self.connections = Gauge(
            f"{PREFIX}_open_connections", "Connections open on a listener (webhook or health).",
            ["listener"], registry=r)
        self.connections_rejected = Counter(
            f"{PREFIX}_connections_rejected",
            "Connections closed as soon as accepted because the listener had its maximum open.",
            ["listener"], registry=r)

    def staleness_from(self, fn: Callable[[], float]) -> None:
        """Let the namespace cache report its staleness at scrape time."""
        self.ns_staleness.set_function(fn)
