"""`connect-inject serve`: the mutating admission webhook over HTTPS.

The server adds only HTTP to the engine: it checks the request (content type, size, JSON),
fetches the namespace's labels from the cache, calls the same `review()` the CLI uses, and
sends its AdmissionReview back. Around that: a hot-reloaded TLS certificate, health and
Prometheus endpoints on a separate plain-HTTP port, one structured log line per admission,
and a bounded graceful shutdown on SIGTERM.

Status codes: 200 with an AdmissionReview for every usable review (including denials,
which carry their own `status.code` 400/500 inside); 400/408/413 with a Kubernetes
`Status` body when the request is not a usable AdmissionReview (the API server shows that
message in its error); 500 only for our own faults or deployment (a namespace that cannot be
read, a review that did not finish within --review-timeout, a bug), and then the webhook's
`failurePolicy` decides.

CPU work (JSON decoding, the engine's review()) runs in a small pool of worker threads, never on
the event loop: one costly pod must not hold up the others, nor the health probes. Each admission
gets a time budget below the API server's 10 s; past it the request is answered at once (500,
reason review-timeout) while the review finishes in its thread, unobserved (see ReviewPool).

Connections: each listener has a maximum of open connections, beyond which new ones are closed
as soon as they are accepted (before any TLS or HTTP work), and an idle timeout (short on the
health port), so idle connections cannot use up the process's file descriptors.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import gc
import logging
import queue
import signal
import socket
import sys
import threading
import time
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web
from prometheus_client.aiohttp import make_aiohttp_handler

from generator.base import logs
from generator.base.errors import Unavailable
from generator.webhook.admission import InFlight, answer, decode_json, review_workload, status_error
from generator.webhook.metrics import Metrics
from generator.kube.client import api_from_environment
from generator.kube.nscache import NamespaceCache, NamespaceUnavailable
from generator.inject.review import ReviewError, ReviewResult, parse_review, pod_namespace, review
from generator.webhook.tlsreload import EXPIRY_WARNING, CertReloader

logger = logging.getLogger(logs.LOGGER_NAME)

MAX_BODY = 3 * 1024 * 1024  # the API server's request size limit for one object
BODY_TIMEOUT = 10.0         # the API server gives up after its webhook timeout (10 s default)
# Longer than Go's 90 s idle-connection timeout, so the API server closes idle keep-alive
# connections and never races us on one; it also bounds a connection that never sends a
# complete request (slowloris).
KEEPALIVE_TIMEOUT = 120.0
# After refusing a body (413, 408) we read and drop what the client still sends for this long,
# so it can read our answer instead of a reset, then close (aiohttp's default is 10 s).
LINGER_SECONDS = 1.0
SHUTDOWN_DELAY = 5.0       # endpoint removal reaches the API servers within a few seconds
SHUTDOWN_TIMEOUT = 15.0     # in-flight requests get this long after SIGTERM (10 s API timeout + slack)
CERT_POLL_SECONDS = 1.0
# Budget for decoding and reviewing one request (queueing for a worker included), below the API
# server's default 10 s webhook timeout so that we, not a timeout, tell it what happened.
REVIEW_TIMEOUT = 8.0
# Worker threads for CPU work: the webhook's default CPU limit is 1 core (2 on the benchmark
# machine); a few threads let a costly review share the CPU with ordinary ones instead of
# queueing them, without letting a burst of costly ones take the whole process.
# Bodies up to this size are reviewed on the event loop: the engine's limits keep a review linear in
# its input and its output under 1.5 MiB (a few ms typically, tens of ms at worst), less than a
# thread handoff costs under the GIL for ordinary pods. Larger ones go to the worker pool.
INLINE_BODY_MAX = 64 * 1024
REVIEW_WORKERS = 4
MAX_CONNECTIONS = 1000        # webhook port: API servers keep a few each; far below any fd limit
HEALTH_MAX_CONNECTIONS = 64   # health port: the kubelet probes and Prometheus scrapes
HEALTH_IDLE_TIMEOUT = 5.0     # health clients do not reuse connections for long (aiohttp: 3,630 s)
TLS_HANDSHAKE_TIMEOUT = 10.0  # a connection that never finishes its handshake (asyncio: 60 s)
RESERVED_FDS = 128            # file descriptors besides the connections: threads, API client, files


# ---- command line ------------------------------------------------------------------------

@dataclass(frozen=True)
class Address:
    """A HOST:PORT listen address; an empty host means every interface."""

    host: str
    port: int

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


def parse_address(text: str) -> Address:
    """argparse type for HOST:PORT, ':PORT' or '[IPv6]:PORT'."""
    host, sep, port = text.rpartition(":")
    if not sep:
        raise argparse.ArgumentTypeError(f"missing port in address {text!r} (expected HOST:PORT, e.g. :8080)")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not port.isdigit() or not 0 <= int(port) <= 65535:
        raise argparse.ArgumentTypeError(f"invalid port {port!r} in address {text!r} (expected 0-65535)")
    return Address(host, int(port))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The `serve` flags (the CLI adds --values/--set/--release-name, shared with other commands)."""
    parser.add_argument("--listen", type=parse_address, default=parse_address(":8080"), metavar="HOST:PORT",
                        help="HTTPS address of the webhook (POST /mutate); default :8080")
    parser.add_argument("--tls-cert-dir", required=True, metavar="DIR",
                        help="directory holding tls.crt and tls.key (a mounted kubernetes.io/tls "
                             "secret); reloaded when the files change")
    parser.add_argument("--health-listen", type=parse_address, default=parse_address(":9445"),
                        metavar="HOST:PORT",
                        help="plain-HTTP address of /healthz, /readyz and /metrics; default :9445")
    parser.add_argument("--shutdown-delay", type=float, default=SHUTDOWN_DELAY, metavar="SECONDS",
                        help="after SIGTERM, keep serving this long while readiness fails, so the API "
                             "server stops sending new requests before the listener closes; default "
                             f"{SHUTDOWN_DELAY:g}")
    parser.add_argument("--review-timeout", type=_positive(float), default=REVIEW_TIMEOUT, metavar="SECONDS",
                        help="answer 500 (failurePolicy decides) when decoding and reviewing a request "
                             "takes longer; keep it below the webhook's timeoutSeconds; default "
                             f"{REVIEW_TIMEOUT:g}")
    parser.add_argument("--max-connections", type=_positive(int), default=MAX_CONNECTIONS, metavar="N",
                        help="most connections open at once on --listen; more are closed at once; "
                             f"default {MAX_CONNECTIONS}")
    parser.add_argument("--health-max-connections", type=_positive(int), default=HEALTH_MAX_CONNECTIONS,
                        metavar="N", help="the same for --health-listen (whose idle connections are "
                                          f"closed after {HEALTH_IDLE_TIMEOUT:g} s); default {HEALTH_MAX_CONNECTIONS}")
    parser.add_argument("--cert-expiry-warning-days", type=_non_negative(float), default=EXPIRY_WARNING / 86400,
                        metavar="DAYS", help="log a warning and set connect_inject_tls_certificate_expiring "
                                             "when the serving certificate expires within this; default "
                                             f"{EXPIRY_WARNING / 86400:g}")
    parser.add_argument("--cert-expiry-unready-days", type=_non_negative(float), default=0.0, metavar="DAYS",
                        help="fail readiness this long before the serving certificate expires; default 0 "
                             "(once expired: every replica serves the same secret, so they would all "
                             "become unready together)")
    parser.add_argument("--log-level", choices=("debug", "info", "warn", "error"), default="info",
                        help="default info: one line per admission")
    parser.add_argument("--log-json", action="store_true", help="log one JSON object per line")


def _at_least(kind: type, low: float, *, strictly: bool) -> Callable[[str], Any]:
    """An argparse type: `kind(text)`, which must be above (or at least, unless `strictly`) `low`."""
    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"invalid value {text!r}") from None
        if value < low or (strictly and value == low):
            raise argparse.ArgumentTypeError(f"must be {'more than' if strictly else 'at least'} {low:g}, got {text!r}")
        return value
    return parse


def _positive(kind: type) -> Callable[[str], Any]:
    return _at_least(kind, 0, strictly=True)


def _non_negative(kind: type) -> Callable[[str], Any]:
    return _at_least(kind, 0, strictly=False)


# ---- CPU work off the event loop -----------------------------------------------------------

class ReviewPool(concurrent.futures.Executor):
    """A fixed pool of daemon threads for the engine's CPU work; use with `loop.run_in_executor`.

    Why threads help although only one thread runs Python code at a time (the GIL): CPython makes
    a thread that holds the GIL give it up after `sys.getswitchinterval()` (5 ms) whenever another
    thread waits for it. The event loop spends its time in `select`, without the GIL; when a
    socket is ready it asks for the GIL and gets it within about 5 ms even while a review burns
    pure-Python CPU in a worker, and other workers get their turns too. So a review that takes
    seconds slows the others down by a share of the CPU instead of making them wait for it, and
    a request can be answered when its time budget runs out. (C code that keeps the GIL for long
    would defeat this; the engine is Python, and JSON decoding is bounded by the 3 MiB limit.)

    Why not ThreadPoolExecutor: its threads are joined when the interpreter exits, so a review
    that outlived its budget (a Python thread cannot be stopped) would hold up the exit after
    SIGTERM. A review has no side effects, so these threads are daemons and are simply dropped.
    A job still queued when its caller gives up is cancelled by `wrap_future` and never runs.
    """

    def __init__(self, workers: int = REVIEW_WORKERS, name: str = "review") -> None:
        self.workers, self.name = workers, name
        self._jobs: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._idle = threading.Semaphore(0)  # workers waiting for a job
        self._closed = False
        self._threads: list[threading.Thread] = []

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> concurrent.futures.Future[Any]:
        if self._closed:
            raise RuntimeError("cannot schedule new work after shutdown")
        future: concurrent.futures.Future[Any] = concurrent.futures.Future()
        self._jobs.put((future, fn, args, kwargs))
        # A new thread only when none is idle (as ThreadPoolExecutor does): at a low rate one
        # warm thread does all the work, which costs less than waking a different one each time.
        if not self._idle.acquire(blocking=False) and len(self._threads) < self.workers:
            thread = threading.Thread(target=self._work, name=f"{self.name}-{len(self._threads)}", daemon=True)
            self._threads.append(thread)
            thread.start()
        return future

    def _work(self) -> None:
        while (job := self._jobs.get()) is not None:
            _run_job(*job)
            job = None  # hold no request while idle
            self._idle.release()

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        self._closed = True
        if cancel_futures:
            while True:
                try:
                    job = self._jobs.get_nowait()
                except queue.Empty:
                    break
                if job is not None:
                    job[0].cancel()
        for _ in self._threads:
            self._jobs.put(None)
        if wait:
            for thread in self._threads:
                thread.join()


def _run_job(future: concurrent.futures.Future[Any], fn: Callable[..., Any], args: tuple, kwargs: dict) -> None:
    if not future.set_running_or_notify_cancel():  # its caller gave up while it was queued
        return
    try:
        result = fn(*args, **kwargs)
    except BaseException as e:
        future.set_exception(e)
    else:
        future.set_result(result)


# ---- connection limits ---------------------------------------------------------------------

class ConnectionLimit:
    """Open connections of one listener, and the most it accepts; counted from accept to close.

    aiohttp has no such limit (only the listen backlog), and counting in its protocol would miss
    connections still in their TLS handshake. So the listening socket itself closes a connection
    over the limit right after accepting it (see _LimitedListener): no TLS or HTTP work is spent
    on it, and the process never holds more descriptors than the limits allow.
    """

    WARNING_INTERVAL = 60.0  # log "limit reached" at most this often, with the count since

    def __init__(self, listener: str, limit: int, metrics: Metrics) -> None:
        self.listener, self.limit, self.metrics = listener, limit, metrics
        self._open: weakref.WeakSet[socket.socket] = weakref.WeakSet()  # a leaked socket leaves it too
        self._rejected = 0
        self._next_warning = 0.0
        metrics.connections.labels(listener=listener).set_function(lambda: len(self._open))

    @property
    def open(self) -> int:
        return len(self._open)

    def admit(self, conn: socket.socket) -> bool:
        if len(self._open) < self.limit:
            self._open.add(conn)
            return True
        self.metrics.connections_rejected.labels(listener=self.listener).inc()
        self._rejected += 1
        now = time.monotonic()
        if now >= self._next_warning:
            logs.log(logger, logging.WARNING, "connection limit reached: closing new connections at once",
                     listener=self.listener, limit=self.limit, rejected=self._rejected)
            self._rejected, self._next_warning = 0, now + self.WARNING_INTERVAL
        return False

    def release(self, conn: socket.socket) -> None:
        self._open.discard(conn)


class _CountedSocket(socket.socket):
    """An accepted connection that leaves its listener's count when closed."""

    __slots__ = ("limit",)
    limit: ConnectionLimit | None

    def close(self) -> None:
        limit = getattr(self, "limit", None)
        if limit is not None:
            self.limit = None
            limit.release(self)
        super().close()


class _LimitedListener(socket.socket):
    """A listening socket whose accept() closes connections over the limit before anyone sees them
    (asyncio's accept loop calls it; BlockingIOError, when none is waiting, ends that loop)."""

    __slots__ = ("limit",)
    limit: ConnectionLimit

    def accept(self) -> tuple[socket.socket, Any]:
        while True:
            fd, address = self._accept()  # type: ignore[attr-defined]
            conn = _CountedSocket(self.family, self.type, self.proto, fileno=fd)
            if self.limit.admit(conn):
                conn.limit = self.limit
                return conn, address
            conn.close()


def _listen(address: Address, limit: ConnectionLimit, backlog: int) -> list[socket.socket]:
    """Listening sockets for `address` (an empty host: every interface, IPv4 and IPv6), as asyncio
    would make them, but of the limited kind."""
    infos = socket.getaddrinfo(address.host or None, address.port, type=socket.SOCK_STREAM,
                               flags=socket.AI_PASSIVE)
    sockets: list[socket.socket] = []
    try:
        for family, kind, proto, _, sockaddr in dict.fromkeys(infos):
            try:
                sock: _LimitedListener = _LimitedListener(family, kind, proto)
            except OSError:  # e.g. IPv6 disabled in the kernel: serve the other families
                continue
            sockets.append(sock)
            sock.limit = limit
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind(sockaddr)
            sock.listen(backlog)
            sock.setblocking(False)
    except OSError:
        for opened in sockets:
            opened.close()
        raise
    if not sockets:
        raise OSError(f"no usable address for {address}")
    return sockets


class _LimitedSite(web.BaseSite):
    """An aiohttp site on one of our listening sockets (TLS with a bounded handshake time)."""

    __slots__ = ("_sock",)

    def __init__(self, runner: web.BaseRunner, sock: socket.socket, *, ssl_context: Any = None,
                 backlog: int = 128) -> None:
        super().__init__(runner, ssl_context=ssl_context, backlog=backlog)
        self._sock = sock

    @property
    def name(self) -> str:
        host, port = self._sock.getsockname()[:2]
        return f"{'https' if self._ssl_context else 'http'}://{Address(host, port)}"

    async def start(self) -> None:
        await super().start()
        server = self._runner.server
        assert server is not None
        extra = {"ssl_handshake_timeout": TLS_HANDSHAKE_TIMEOUT} if self._ssl_context else {}
        self._server = await asyncio.get_running_loop().create_server(  # type: ignore[call-overload]
            server, sock=self._sock, ssl=self._ssl_context, backlog=self._backlog, **extra)


# ---- the server ----------------------------------------------------------------------------

_STATUS_REASONS = {400: "BadRequest", 408: "Timeout", 413: "RequestEntityTooLarge"}


class _ReviewTimeout(Exception):
    """Decoding and reviewing the request did not finish within --review-timeout."""


class _LabelsBug(Unavailable):
    """A bug while reading namespace labels: review() lets it through (an Unavailable) and
    _mutate answers it as an internal error."""


class _Refused(Exception):
    """The request is not a usable AdmissionReview; answered without calling the engine.

    `code` is the reason code for logs and metrics, in the engine's kebab-case style.
    """

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


class WebhookServer:
    """The webhook listener, the health/metrics listener, the cert watcher and the cache."""

    def __init__(self, config: Any, tls_cert_dir: str | Path, *, namespaces_api: Any = None,
                 metrics: Metrics | None = None, shutdown_timeout: float = SHUTDOWN_TIMEOUT,
                 keepalive_timeout: float = KEEPALIVE_TIMEOUT, body_timeout: float = BODY_TIMEOUT,
                 cert_poll_seconds: float = CERT_POLL_SECONDS, review_timeout: float = REVIEW_TIMEOUT,
                 review_workers: int = REVIEW_WORKERS, max_connections: int = MAX_CONNECTIONS,
                 health_max_connections: int = HEALTH_MAX_CONNECTIONS,
                 health_idle_timeout: float = HEALTH_IDLE_TIMEOUT, cert_expiry_warning: float = EXPIRY_WARNING,
                 cert_unready_within: float = 0.0) -> None:
        self.config = config
        self.metrics = metrics or Metrics()
        self.certs = CertReloader(tls_cert_dir, self.metrics, expiry_warning=cert_expiry_warning,
                                  unready_within=cert_unready_within)
        self.namespaces = NamespaceCache(namespaces_api, self.metrics)
        self.body_timeout = body_timeout
        self.review_timeout = review_timeout
        self.cert_poll_seconds = cert_poll_seconds
        self.pool = ReviewPool(review_workers)
        self.webhook_limit = ConnectionLimit("webhook", max_connections, self.metrics)
        self.health_limit = ConnectionLimit("health", health_max_connections, self.metrics)
        self.stopping = False
        self.requests = InFlight()  # both admission endpoints, for the graceful shutdown
        self.webhook_port = self.health_port = 0
        app = web.Application(client_max_size=MAX_BODY)
        app.router.add_post("/mutate", self._mutate)
        app.router.add_post("/validate-workload", self._validate_workload)
        self.shutdown_timeout = shutdown_timeout
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False,
                                     shutdown_timeout=1.0, keepalive_timeout=keepalive_timeout,
                                     lingering_time=LINGER_SECONDS)
        health = web.Application()
        health.router.add_get("/healthz", self._healthz)
        health.router.add_get("/readyz", self._readyz)
        health.router.add_get("/readyz/ready", self._readyz)  # the reference chart's probe path
        health.router.add_get("/metrics", make_aiohttp_handler(self.metrics.registry))
        self._health_runner = web.AppRunner(health, access_log=None, handle_signals=False,
                                            keepalive_timeout=health_idle_timeout)
        self._cert_task: asyncio.Task[None] | None = None

    # -- lifecycle --

    async def start(self, listen: Address, health_listen: Address) -> None:
        """Load what can be loaded, then listen. Raises ListenError when an address cannot be bound."""
        self.certs.check()  # readiness stays false until a valid pair appears
        self._cert_task = asyncio.create_task(self.certs.watch(self.cert_poll_seconds))
        self.namespaces.start()
        await self._health_runner.setup()
        await self._runner.setup()
        try:
            await _bind(self._health_runner, health_listen, "--health-listen", self.health_limit)
            self.health_port = self._health_runner.addresses[0][1]
            await _bind(self._runner, listen, "--listen", self.webhook_limit, self.certs.context, backlog=1024)
            self.webhook_port = self._runner.addresses[0][1]
        except ListenError:
            await self.stop()
            raise
        logs.log(logger, logging.INFO, "listening", webhook=f"https://{_show(listen, self.webhook_port)}/mutate",
                 health=f"http://{_show(health_listen, self.health_port)}/readyz", ready=self.ready)

    async def stop(self, delay: float = 0.0) -> None:
        """Stop accepting, let in-flight requests finish (bounded), then close everything.

        With `delay`, keep serving that long first while readiness fails: Kubernetes removes the pod
        from the Service's endpoints only after SIGTERM, and until that reaches the API servers they
        still open new connections to this pod (with failurePolicy Fail, refusing them fails pods)."""
        self.stopping = True  # readiness fails from now on
        if delay > 0:
            logs.log(logger, logging.INFO, "still serving while endpoints are updated", delay_s=delay)
            await asyncio.sleep(delay)
        for site in list(self._runner.sites):
            await site.stop()
        logs.log(logger, logging.INFO, "stopped accepting connections; finishing requests in flight",
                 in_flight=self.in_flight)
        # Wait for requests in flight before closing connections: aiohttp's own shutdown stops
        # reading from them at once, which would strand a request whose body is still arriving.
        if not await self.requests.drained(self.shutdown_timeout):
            logs.log(logger, logging.WARNING, "shutdown timeout: abandoning requests in flight",
                     in_flight=self.in_flight, timeout_s=self.shutdown_timeout)
        await self._runner.cleanup()  # closes idle keep-alive connections
        await self._health_runner.cleanup()
        if self._cert_task is not None:
            self._cert_task.cancel()
        self.pool.shutdown(wait=False, cancel_futures=True)  # a review past its budget is dropped
        await asyncio.to_thread(self.namespaces.stop)

    @property
    def in_flight(self) -> int:
        """Admission requests (/mutate and /validate-workload) being answered now."""
        return self.requests.count

    @property
    def ready(self) -> bool:
        return not self._problems()

    def _problems(self) -> list[str]:
        problems = []
        if self.stopping:
            problems.append("shutting down")
        if self.config is None:
            problems.append("configuration not loaded")
        if self.certs.problem:
            problems.append(self.certs.problem)
        return problems

    # -- health --

    async def _healthz(self, _request: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    async def _readyz(self, _request: web.Request) -> web.Response:
        problems = self._problems()
        if problems:
            return web.Response(status=503, text="".join(f"not ready: {p}\n" for p in problems))
        return web.Response(text="ok\n")

    # -- admission --

    async def _mutate(self, request: web.Request) -> web.Response:
        started = time.perf_counter()
        m = self.metrics
        fields: dict[str, Any] = {}
        try:
            with self.requests.track(m.in_flight):
                response, result, reason = await self._answer(request, fields)
        except _Refused as e:
            response, result, reason = status_error(e.status, _STATUS_REASONS[e.status], e.message), "invalid", e.code
            if e.status in (408, 413):  # the rest of the body is unread: the connection is unusable
                response.force_close()
            fields["error"] = e.message
        except NamespaceUnavailable as e:  # a deployment problem (network, RBAC): failurePolicy decides
            response, result, reason = status_error(500, "InternalError", str(e)), "error", "namespace-unavailable"
            fields["error"] = str(e)
        except _ReviewTimeout as e:  # as if the API server had timed out, but sooner and explained
            response, result, reason = status_error(500, "ServerTimeout", str(e)), "error", "review-timeout"
            fields["error"] = str(e)
        except Exception:  # our own bug: log it here, never show a traceback to the caller
            logger.exception("internal error while answering an admission request")
            response = status_error(500, "InternalError", "internal error in the injector; see its log")
            result, reason = "error", "internal-error"
        elapsed = time.perf_counter() - started
        m.latency.observe(elapsed)
        m.requests.labels(result=result, reason=reason).inc()
        fields.update(decision=result, reason=reason, duration_ms=round(elapsed * 1000, 3), status=response.status)
        logs.log(logger, logging.WARNING if result == "error" else logging.INFO, "admission", **fields)
        return response

    async def _validate_workload(self, request: web.Request) -> web.Response:
        """Warnings for workloads (misplaced or unknown annotations). Registered with failurePolicy
        Ignore, it must never block a deploy: every request, even garbage, is allowed."""
        with self.requests.track():  # counted for shutdown draining, not in the admission metrics
            try:
                async with asyncio.timeout(self.body_timeout):
                    body = await request.read()
            except Exception:  # unreadable or too large: still allowed, with nothing to say
                body = b""
            try:
                async with asyncio.timeout(self.review_timeout):
                    reply = await self._in_pool(_workload_answer, body)
            except TimeoutError:
                logs.log(logger, logging.WARNING, "workload review timed out; allowed without warnings",
                         timeout_s=self.review_timeout)
                reply = review_workload(None)
            except Exception:  # our bug; still never block a deploy
                logger.exception("internal error while reviewing a workload")
                reply = review_workload(None)
        warnings = reply["response"].get("warnings") or []
        result = "warnings" if warnings else "clean"
        self.metrics.workload_reviews.labels(result=result).inc()
        logs.log(logger, logging.INFO, "workload review", uid=reply["response"]["uid"], result=result, warnings=len(warnings))
        return answer(reply)

    async def _in_pool(self, fn: Callable[..., Any], *args: Any) -> Any:
        """`fn(*args)` in the worker pool. When the caller gives up (its budget ran out), a job
        still queued never runs; one already running runs on and is counted until it ends."""
        future = self.pool.submit(fn, *args)
        try:
            return await asyncio.wrap_future(future)
        except asyncio.CancelledError:
            if not future.cancel():  # running: nothing can stop it
                gauge = self.metrics.abandoned_reviews
                gauge.inc()
                future.add_done_callback(lambda _: gauge.dec())
            raise

    def _decode(self, body: bytes, fields: dict[str, Any]) -> dict:
        try:
            parsed = parse_review(body)
        except ReviewError as e:
            raise _Refused(400, "bad-review", str(e))
        fields["uid"] = parsed["request"]["uid"]
        return parsed

    def _labels(self, loop: asyncio.AbstractEventLoop | None) -> Callable[[str], Mapping[str, str]]:
        """The engine's label callback. In a worker thread (`loop` given): the cache, else one GET
        run on the event loop and waited for here (NamespaceUnavailable goes through review() to
        _mutate). On the event loop (`loop` None) only cached labels can be had: it never waits."""
        def lookup(name: str) -> Mapping[str, str]:
            labels = self.namespaces.cached(name)
            if labels is None:
                if loop is None:
                    raise _LabelsBug(f"labels of namespace {name!r} need a GET on the event loop's thread")
                try:
                    labels = asyncio.run_coroutine_threadsafe(self.namespaces.resolve(name), loop).result()
                except Unavailable:
                    raise
                except Exception as e:  # our bug, not the pod's answer: an internal error (HTTP 500)
                    raise _LabelsBug(f"reading the labels of namespace {name!r} failed") from e
            return labels
        return lookup

    def _decode_and_review(self, body: bytes, fields: dict[str, Any], loop: asyncio.AbstractEventLoop) -> ReviewResult:
        return review(self._decode(body, fields), self.config, self._labels(loop))

    async def _review(self, body: bytes, fields: dict[str, Any]) -> ReviewResult:
        """One review() per request. The namespace's labels are read only when the engine asks
        for them (a skipped pod never waits for, nor fails on, an API call).

        A request up to INLINE_BODY_MAX is decoded and, when its namespace needs no API call,
        reviewed on the event loop: its work is bounded (see INLINE_BODY_MAX), and handing it to
        a thread costs more than an ordinary review under the GIL. Larger ones, and those whose
        labels may need a GET (the first pod of a namespace), are reviewed in a worker, which can
        wait for the GET."""
        loop = asyncio.get_running_loop()
        if len(body) > INLINE_BODY_MAX:
            return await self._in_pool(self._decode_and_review, body, fields, loop)
        parsed = self._decode(body, fields)
        if self.namespaces.needs_get(pod_namespace(parsed)):
            return await self._in_pool(review, parsed, self.config, self._labels(loop))
        return review(parsed, self.config, self._labels(None))

    async def _answer(self, request: web.Request, fields: dict[str, Any]) -> tuple[web.Response, str, str]:
        if request.content_type != "application/json":
            raise _Refused(400, "bad-content-type",
                           f"contentType={request.headers.get('Content-Type', '')}, expected application/json")
        if request.content_length is not None and request.content_length > MAX_BODY:
            raise _Refused(413, "too-large",
                           f"request body is {request.content_length} bytes, more than the {MAX_BODY} allowed")
        try:
            async with asyncio.timeout(self.body_timeout):
                body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            raise _Refused(413, "too-large", f"request body is more than the {MAX_BODY} bytes allowed")
        except TimeoutError:
            raise _Refused(408, "body-timeout", f"request body not received within {self.body_timeout:g}s")
        if not body:
            raise _Refused(400, "bad-review", "request body is empty")
        budget = asyncio.timeout(self.review_timeout)
        try:
            async with budget:
                result = await self._review(body, fields)
        except TimeoutError:
            if not budget.expired():
                raise
            raise _ReviewTimeout(f"the injector did not finish reviewing this request within "
                                 f"{self.review_timeout:g}s (--review-timeout)") from None
        fields.update(namespace=result.namespace, pod=result.name)
        if result.warnings:
            fields["warnings"] = len(result.warnings)
            self.metrics.warnings.inc(len(result.warnings))
        return answer(result.review), result.outcome, result.reason


def _workload_answer(body: bytes) -> dict:
    """In a worker: the /validate-workload answer (garbage gets an empty allow)."""
    return review_workload(decode_json(body))


class ListenError(Exception):
    """An address could not be bound; the message names the flag and the address."""


async def _bind(runner: web.AppRunner, address: Address, flag: str, limit: ConnectionLimit,
                ssl_context: Any = None, backlog: int = 128) -> None:
    try:
        for sock in _listen(address, limit, backlog):
            await _LimitedSite(runner, sock, ssl_context=ssl_context, backlog=backlog).start()
    except OSError as e:
        reason = e.strerror or str(e)
        raise ListenError(f"{flag} {address}: cannot listen: {reason}") from e


def _show(address: Address, port: int) -> str:
    return str(Address(address.host or "0.0.0.0", port))


# ---- entry point -------------------------------------------------------------------------

def main(args: argparse.Namespace, config: Any) -> int:
    """Run the webhook until SIGTERM/SIGINT; 0 after a clean shutdown, non-zero on a startup problem."""
    logs.setup(args.log_level, args.log_json)
    _raise_open_files_limit(args.max_connections + args.health_max_connections + RESERVED_FDS)
    cert_dir = Path(args.tls_cert_dir)
    if not cert_dir.is_dir():
        print(f"connect-inject serve: --tls-cert-dir {cert_dir}: not a directory", file=sys.stderr)
        return 2
    try:
        api = api_from_environment()
    except Exception as e:  # a kubeconfig that exists but cannot be used
        print(f"connect-inject serve: cannot load the Kubernetes client configuration: {e}", file=sys.stderr)
        return 1
    return asyncio.run(_serve(args, config, api))


def _raise_open_files_limit(needed: int) -> None:
    """Raise the soft open-files limit towards what the connection limits need (as Go programs do
    at start), up to the hard limit; warn when even that is lower."""
    try:
        import resource
    except ImportError:  # not on POSIX
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft >= needed:
        return
    target = needed if hard == resource.RLIM_INFINITY else min(hard, needed)
    if target > soft:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass
    if soft < needed:
        logs.log(logger, logging.WARNING, "the open-files limit is lower than the connection limits need; "
                 "lower --max-connections/--health-max-connections or raise the limit",
                 nofile=soft, needed=needed)


async def _serve(args: argparse.Namespace, config: Any, api: Any) -> int:
    server = WebhookServer(config, args.tls_cert_dir, namespaces_api=api, review_timeout=args.review_timeout,
                           max_connections=args.max_connections,
                           health_max_connections=args.health_max_connections,
                           cert_expiry_warning=args.cert_expiry_warning_days * 86400,
                           cert_unready_within=args.cert_expiry_unready_days * 86400)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):  # before listening: a SIGTERM right after is graceful too
        loop.add_signal_handler(sig, stop.set)
    try:
        await server.start(args.listen, args.health_listen)
    except ListenError as e:
        print(f"connect-inject serve: {e}", file=sys.stderr)
        return 1
    # Everything loaded so far (modules, compiled templates, config) lives as long as the process:
    # moving it out of the collector's sight keeps full collections, and their pauses, short.
    gc.collect()
    gc.freeze()
    await stop.wait()
    logs.log(logger, logging.INFO, "shutting down")
    await server.stop(args.shutdown_delay)
    logs.log(logger, logging.INFO, "stopped")
    return 0
