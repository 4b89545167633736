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
read, a bug), and then the webhook's `failurePolicy` decides.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import logging
import os
import signal
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web
from prometheus_client.aiohttp import make_aiohttp_handler

from generator import logs
from generator.metrics import Metrics
from generator.nscache import NamespaceCache, NamespaceUnavailable, api_from_environment
from generator.review import ReviewError, ReviewResult, parse_review, pod_namespace, review
from generator.tlsreload import CertReloader
from generator.workloads import review_workload

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
    parser.add_argument("--log-level", choices=("debug", "info", "warn", "error"), default="info",
                        help="default info: one line per admission")
    parser.add_argument("--log-json", action="store_true", help="log one JSON object per line")


# ---- the server ----------------------------------------------------------------------------

def _status(code: int, reason: str, message: str) -> web.Response:
    """A Kubernetes `Status` body: the API server quotes its message in the webhook error."""
    body = {"apiVersion": "v1", "kind": "Status", "metadata": {}, "status": "Failure",
            "code": code, "reason": reason, "message": message}
    return web.json_response(body, status=code)


_STATUS_REASONS = {400: "BadRequest", 408: "Timeout", 413: "RequestEntityTooLarge"}


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
                 cert_poll_seconds: float = CERT_POLL_SECONDS) -> None:
        self.config = config
        self.metrics = metrics or Metrics()
        self.certs = CertReloader(tls_cert_dir, self.metrics)
        self.namespaces = NamespaceCache(namespaces_api, self.metrics)
        self.body_timeout = body_timeout
        self.cert_poll_seconds = cert_poll_seconds
        self.stopping = False
        self.in_flight = 0
        self.webhook_port = self.health_port = 0
        app = web.Application(client_max_size=MAX_BODY)
        app.router.add_post("/mutate", self._mutate)
        app.router.add_post("/validate-workload", self._validate_workload)
        self.shutdown_timeout = shutdown_timeout
        self._drained = asyncio.Event()
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False,
                                     shutdown_timeout=1.0, keepalive_timeout=keepalive_timeout,
                                     lingering_time=LINGER_SECONDS)
        health = web.Application()
        health.router.add_get("/healthz", self._healthz)
        health.router.add_get("/readyz", self._readyz)
        health.router.add_get("/readyz/ready", self._readyz)  # the reference chart's probe path
        health.router.add_get("/metrics", make_aiohttp_handler(self.metrics.registry))
        self._health_runner = web.AppRunner(health, access_log=None, handle_signals=False)
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
            await _bind(web.TCPSite(self._health_runner, health_listen.host or None, health_listen.port),
                        health_listen, "--health-listen")
            self.health_port = self._health_runner.addresses[0][1]
            await _bind(web.TCPSite(self._runner, listen.host or None, listen.port,
                                    ssl_context=self.certs.context, backlog=1024), listen, "--listen")
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
        try:
            async with asyncio.timeout(self.shutdown_timeout):
                while self.in_flight:
                    await self._drained.wait()
        except TimeoutError:
            logs.log(logger, logging.WARNING, "shutdown timeout: abandoning requests in flight",
                     in_flight=self.in_flight, timeout_s=self.shutdown_timeout)
        await self._runner.cleanup()  # closes idle keep-alive connections
        await self._health_runner.cleanup()
        if self._cert_task is not None:
            self._cert_task.cancel()
        await asyncio.to_thread(self.namespaces.stop)

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
        m.in_flight.inc()
        self.in_flight += 1
        self._drained.clear()
        fields: dict[str, Any] = {}
        try:
            response, result, reason = await self._answer(request, fields)
        except _Refused as e:
            response, result, reason = _status(e.status, _STATUS_REASONS[e.status], e.message), "invalid", e.code
            if e.status in (408, 413):  # the rest of the body is unread: the connection is unusable
                response.force_close()
            fields["error"] = e.message
        except NamespaceUnavailable as e:  # a deployment problem (network, RBAC): failurePolicy decides
            response, result, reason = _status(500, "InternalError", str(e)), "error", "namespace-unavailable"
            fields["error"] = str(e)
        except Exception:  # our own bug: log it here, never show a traceback to the caller
            logger.exception("internal error while answering an admission request")
            response = _status(500, "InternalError", "internal error in the injector; see its log")
            result, reason = "error", "internal-error"
        finally:
            m.in_flight.dec()
            self.in_flight -= 1
            if not self.in_flight:
                self._drained.set()
        elapsed = time.perf_counter() - started
        m.latency.observe(elapsed)
        m.requests.labels(result=result, reason=reason).inc()
        fields.update(decision=result, reason=reason, duration_ms=round(elapsed * 1000, 3), status=response.status)
        logs.log(logger, logging.INFO, "admission", **fields)
        return response

    async def _validate_workload(self, request: web.Request) -> web.Response:
        """Warnings for workloads (misplaced or unknown annotations). Registered with failurePolicy
        Ignore, it must never block a deploy: every request, even garbage, is allowed."""
        self.in_flight += 1  # counted for shutdown draining, not in the admission metrics
        self._drained.clear()
        try:
            try:
                async with asyncio.timeout(self.body_timeout):
                    body = await request.read()
                data = json.loads(body)
            except Exception:  # unreadable, too large or not JSON: still allowed, with nothing to say
                data = None
            try:
                answer = review_workload(data)
            except Exception:  # our bug; still never block a deploy
                logger.exception("internal error while reviewing a workload")
                answer = review_workload(None)
        finally:
            self.in_flight -= 1
            if not self.in_flight:
                self._drained.set()
        warnings = answer["response"].get("warnings") or []
        result = "warnings" if warnings else "clean"
        self.metrics.workload_reviews.labels(result=result).inc()
        logs.log(logger, logging.INFO, "workload review", uid=answer["response"]["uid"], result=result, warnings=len(warnings))
        return web.json_response(answer)

    async def _review(self, parsed: dict) -> ReviewResult:
        """review() with the namespace's labels, fetched only when the engine asks for them.

        A pod that is skipped (opted out, system namespace, ...) never waits for, nor fails on, an
        API call; a pod that is injected in a namespace not yet cached is reviewed again once its
        labels are fetched (review() is cheap; the GET is not)."""
        namespace = pod_namespace(parsed)
        cached = self.namespaces.has(namespace)
        consulted = False

        def lookup(name: str) -> Mapping[str, str]:
            nonlocal consulted
            consulted = True
            return self.namespaces.peek(name)

        result = review(parsed, self.config, lookup)
        if consulted:
            labels = await self.namespaces.resolve(namespace)  # a GET only on a miss
            if not cached:
                result = review(parsed, self.config, _lookup(namespace, labels, self.namespaces))
        return result

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
        try:
            parsed = parse_review(body)
        except ReviewError as e:
            raise _Refused(400, "bad-review", str(e))
        fields["uid"] = parsed["request"]["uid"]
        result = await self._review(parsed)
        fields.update(namespace=result.namespace, pod=result.name)
        if result.warnings:
            fields["warnings"] = len(result.warnings)
            self.metrics.warnings.inc(len(result.warnings))
        body_out = json.dumps(result.review, separators=(",", ":")).encode()
        return web.Response(body=body_out, content_type="application/json"), result.outcome, result.reason


def _lookup(namespace: str, labels: Mapping[str, str], cache: NamespaceCache) -> Callable[[str], Mapping[str, str]]:
    """The engine's synchronous label callback, with the request's namespace pre-resolved."""
    return lambda name: labels if name == namespace else cache.peek(name)


class ListenError(Exception):
    """An address could not be bound; the message names the flag and the address."""


async def _bind(site: web.TCPSite, address: Address, flag: str) -> None:
    try:
        await site.start()
    except OSError as e:
        reason = os.strerror(e.errno) if e.errno else str(e)
        raise ListenError(f"{flag} {address}: cannot listen: {reason}") from e


def _show(address: Address, port: int) -> str:
    return str(Address(address.host or "0.0.0.0", port))


# ---- entry point -------------------------------------------------------------------------

def main(args: argparse.Namespace, config: Any) -> int:
    """Run the webhook until SIGTERM/SIGINT; 0 after a clean shutdown, non-zero on a startup problem."""
    logs.setup(args.log_level, args.log_json)
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


async def _serve(args: argparse.Namespace, config: Any, api: Any) -> int:
    server = WebhookServer(config, args.tls_cert_dir, namespaces_api=api)
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
