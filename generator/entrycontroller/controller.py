"""`connect-inject controller`: the config-entry controller's caches, queue, webhooks, wired.

One watch cache per kind (the ten `consul.hashicorp.com/v1alpha1` plurals) feeds one work queue
keyed `<plural>/<namespace>/<name>`; the leader reconciles (reconciler.py). Every replica serves
the webhooks (`--listen`, HTTPS with the certificate files reloaded as `serve` reloads them), whose
uniqueness checks read the same caches. Lease `consul.hashicorp.com`.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import logging
from collections.abc import Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from aiohttp import web
from kubernetes import client as k8s

from generator.base import logs
from generator.base.logs import LOGGER_NAME, log
from generator.configentries import ALL, BY_PLURAL, GROUP, VERSION, ConsulMeta, Kind
from generator.consul.client import Consul
from generator.consul.config import ConsulConfig
from generator.consul.errors import ConsulConfigError
from generator.controllers import runtime
from generator.entrycontroller import admission
from generator.entrycontroller.reconciler import Reconciler, Settings
from generator.values.controllers import ControllerSettings
from generator.kube.cache import Event, WatchCache, key as cache_key
from generator.kube.client import controller_api_client
from generator.kube.workqueue import QueueMetrics, RateLimiter, WorkQueue
from generator.webhook.admission import status_error
from generator.webhook.metrics import Metrics
from generator.webhook.tlsreload import CertReloader

logger = logging.getLogger(LOGGER_NAME + ".controller.config-entries")

LEASE = "consul.hashicorp.com"
WORKERS = 8
RETRY_BASE, RETRY_CAP = 0.2, 5.0  # the reference: 200 ms doubling, capped at 5 s
MAX_BODY = 3 * 1024 * 1024
BODY_TIMEOUT = 10.0  # seconds to receive a request body (the API server sends it at once)
K8S_TIMEOUT = 10
MAX_REMEMBERED_EVENTS = 10_000


def settings_from(section: ControllerSettings) -> Settings:
    """The reconcile's settings from the values layer's config-entry controller section
    (generator.values.controllers.ControllerSettings)."""
    meta = ConsulMeta(partitions_enabled=section.enable_partitions, partition=section.partition,
                      namespaces_enabled=section.enable_consul_namespaces,
                      destination_namespace=section.consul_destination_namespace or "default",
                      mirroring=section.enable_mirroring, prefix=section.mirroring_prefix or "")
    return Settings(datacenter=section.datacenter, consul_meta=meta, cross_namespace_policy=section.cross_namespace_policy)


class KubeResources:
    """The reconciler's Kubernetes side: caches for reads, merge patches for writes."""

    def __init__(self, api: k8s.ApiClient, caches: dict[str, WatchCache[dict[str, Any]]]) -> None:
        self.custom = k8s.CustomObjectsApi(api)
        self.core = k8s.CoreV1Api(api)
        self.caches = caches
        self._sent: dict[str, tuple[str, str]] = {}  # resource uid -> the failure last reported

    def get(self, kind: Kind, namespace: str, name: str) -> Mapping[str, Any] | None:
        return self.caches[kind.plural].get(cache_key(namespace, name))

    async def _call(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(None, functools.partial(fn, *args, **kwargs))

    async def set_finalizers(self, kind: Kind, obj: Mapping[str, Any], finalizers: list[str]) -> None:
        meta = obj.get("metadata") or {}
        body = {"metadata": {"finalizers": finalizers, "resourceVersion": meta.get("resourceVersion")}}
        updated = await self._call(self.custom.patch_namespaced_custom_object, GROUP, VERSION, meta.get("namespace"),
                                   kind.plural, meta.get("name"), body, _request_timeout=K8S_TIMEOUT,
                                   _content_type="application/merge-patch+json")
        self.caches[kind.plural].remember(updated)

    async def set_status(self, kind: Kind, obj: Mapping[str, Any], status: dict[str, Any]) -> None:
        meta = obj.get("metadata") or {}
        if status["conditions"][0]["status"] == "True":  # synced: a later failure is news again
            self._sent.pop(str(meta.get("uid") or f"{meta.get('namespace')}/{meta.get('name')}"), None)
        updated = await self._call(self.custom.patch_namespaced_custom_object_status, GROUP, VERSION,
                                   meta.get("namespace"), kind.plural, meta.get("name"), {"status": status},
                                   _request_timeout=K8S_TIMEOUT, _content_type="application/merge-patch+json")
        self.caches[kind.plural].remember(updated)

    def event(self, kind: Kind, obj: Mapping[str, Any], reason: str, message: str) -> None:
        """A Warning Event on the resource, once per distinct failure (a retry every 5 s of the same
        failure, as for an externally managed entry, does not flood the namespace's Events)."""
        meta = obj.get("metadata") or {}
        uid = str(meta.get("uid") or f"{meta.get('namespace')}/{meta.get('name')}")
        if self._sent.get(uid) == (reason, message):
            return
        self._sent[uid] = (reason, message)
        if len(self._sent) > MAX_REMEMBERED_EVENTS:
            self._sent.pop(next(iter(self._sent)))
        now = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        body = {"metadata": {"generateName": f"{meta.get('name')}.", "namespace": meta.get("namespace")},
                "involvedObject": {"apiVersion": f"{GROUP}/{VERSION}", "kind": kind.kind, "name": meta.get("name"),
                                   "namespace": meta.get("namespace"), "uid": meta.get("uid")},
                "reason": reason or "SyncFailed", "message": message[:1024], "type": "Warning",
                "source": {"component": "consul-config-entry-controller"}, "firstTimestamp": now,
                "lastTimestamp": now, "count": 1}

        def create() -> None:
            try:
                self.core.create_namespaced_event(meta.get("namespace"), body, _request_timeout=5)
            except Exception as e:  # an Event is a courtesy, never a failure of the sync
                log(logger, logging.DEBUG, "could not create an Event", error=str(e))
        asyncio.get_running_loop().run_in_executor(None, create)


class ConfigEntryController:
    def __init__(self, config: ControllerSettings, api: k8s.ApiClient, consul: Consul, *, settings: Settings | None = None,
                 workers: int = WORKERS, resync: float = 300.0) -> None:
        self.metrics = Metrics()  # the webhook's families (certificate expiry) plus ours, one registry
        self.registry = self.metrics.registry
        custom = k8s.CustomObjectsApi(api)
        self.caches: dict[str, WatchCache[dict[str, Any]]] = {
            kind.plural: WatchCache(functools.partial(custom.list_cluster_custom_object, GROUP, VERSION, kind.plural),
                                    name=kind.plural, plural=kind.plural)
            for kind in ALL}
        self.settings = settings or settings_from(config)
        self.consul = consul
        self.is_leader = lambda: True
        self.reconciler = Reconciler(KubeResources(api, self.caches), consul, self.settings,
                                     may_write=lambda: self.is_leader(), list_period=resync)
        self.workers = workers
        self.resync_period = resync
        self.queue: WorkQueue | None = None
        self._queue_metrics = QueueMetrics(self.registry)
        self.certs: CertReloader | None = None

    # -- reconciling --

    def _on_event(self, plural: str) -> Any:
        def handle(event: Event[dict[str, Any]]) -> None:
            if self.queue is None:
                return
            keys = self.caches[plural].keys() if event.type == "relisted" else [event.key]
            for key in keys:
                self.queue.add(f"{plural}/{key}")
        return handle

    def keys(self) -> list[str]:
        return [f"{plural}/{key}" for plural, cache in self.caches.items() for key in cache.keys()]

    async def _reconcile(self, key: str) -> None:
        plural, namespace, name = key.split("/", 2)
        await self.reconciler.reconcile(BY_PLURAL[plural], namespace, name)

    async def lead(self, stop: asyncio.Event) -> None:
        if not await runtime.synced_or_stopped(list(self.caches.values()), stop):
            return
        queue = WorkQueue("config-entries", self._reconcile, workers=self.workers,
                          rate_limiter=RateLimiter(RETRY_BASE, RETRY_CAP), metrics=self._queue_metrics)
        self.queue = queue
        try:
            await runtime.drive(queue, self.keys, self.resync_period, stop)
        finally:
            self.queue = None

    # -- webhooks (every replica) --

    def _existing(self, kind: Kind) -> list[dict[str, Any]]:
        return self.caches[kind.plural].values()

    def _handler(self, kind: Kind) -> Any:
        async def handle(request: web.Request) -> web.Response:
            if request.content_type != "application/json":
                return status_error(400, "BadRequest", f"contentType={request.content_type}, expected application/json")
            try:
                async with asyncio.timeout(BODY_TIMEOUT):  # a client that stalls cannot hold the handler
                    body = await request.read()
                data = json.loads(body)
                answer = admission.review(data, kind, self.settings.consul_meta, self._existing)
            except web.HTTPRequestEntityTooLarge:
                return status_error(413, "RequestEntityTooLarge", f"request body is more than {MAX_BODY} bytes")
            except TimeoutError:
                return status_error(408, "Timeout", f"request body not received within {BODY_TIMEOUT:g}s")
            except RecursionError:  # JSON nested deeper than Python parses
                return status_error(400, "BadRequest", "not a usable AdmissionReview: nested too deeply")
            except (ValueError, admission.BadReview) as e:  # JSON errors are ValueErrors too
                return status_error(400, "BadRequest", f"not a usable AdmissionReview: {e}")
            except Exception:
                logger.exception("internal error in the %s webhook", kind.singular)
                return status_error(500, "InternalError", "internal error in the controller's webhook; see its log")
            return web.json_response(answer)
        return handle

    async def start_webhooks(self, address: Any, cert_dir: str) -> web.AppRunner:
        self.certs = CertReloader(cert_dir, self.metrics)
        self.certs.check()
        app = web.Application(client_max_size=MAX_BODY)
        for kind in ALL:
            app.router.add_post(f"/mutate-v1alpha1-{kind.singular}", self._handler(kind))
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        await web.TCPSite(runner, address.host or None, address.port, ssl_context=self.certs.context).start()
        port = runner.addresses[0][1] if runner.addresses else address.port
        log(logger, logging.INFO, "config-entry webhooks listening", webhook_port=port,
            paths=f"/mutate-v1alpha1-<kind> for {len(ALL)} kinds")
        return runner

    def problems(self) -> list[str]:
        problem = self.certs.problem if self.certs is not None else None
        return [problem] if problem else []

    def controller(self, loop: asyncio.AbstractEventLoop) -> runtime.Controller:
        for plural, cache in self.caches.items():
            cache.add_handler(self._on_event(plural), loop)
        return runtime.Controller(name="config-entry-controller", lease=LEASE, caches=list(self.caches.values()),
                                  registry=self.registry, lead=self.lead, close=self.consul.close,
                                  problems=self.problems)


async def serve(args: argparse.Namespace, config: ControllerSettings, api: k8s.ApiClient) -> int:
    consul = Consul(ConsulConfig.from_env(partition=config.partition or ""))
    entries = ConfigEntryController(config, api, consul, resync=args.resync_period)
    webhooks = None
    watcher = None
    if args.listen is not None:
        try:
            webhooks = await entries.start_webhooks(args.listen, args.tls_cert_dir)
        except OSError as e:
            log(logger, logging.ERROR, "cannot listen on --listen", address=str(args.listen), error=str(e))
            return 1
        assert entries.certs is not None
        watcher = asyncio.create_task(entries.certs.watch())
    controller = entries.controller(asyncio.get_running_loop())

    def bind(elector: Any) -> None:
        entries.is_leader = elector.is_leader
    try:
        return await runtime.run(controller, args, api, on_elector=bind)
    finally:
        if watcher is not None:
            watcher.cancel()
        if webhooks is not None:
            await webhooks.cleanup()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from generator.webhook.server import parse_address

    parser.add_argument("--listen", type=parse_address, default=None, metavar="HOST:PORT",
                        help="HTTPS address of the config-entry webhooks (/mutate-v1alpha1-<kind>)")
    parser.add_argument("--tls-cert-dir", default=None, metavar="DIR", help="tls.crt and tls.key of the webhooks")
    runtime.add_arguments(parser)


def main(args: argparse.Namespace, config: ControllerSettings) -> int:
    """`connect-inject controller`: 0 after SIGTERM, 1 on a startup problem."""
    logs.setup(args.log_level, args.log_json)
    if args.listen is not None and not args.tls_cert_dir:
        log(logger, logging.ERROR, "--listen needs --tls-cert-dir")
        return 1
    if args.tls_cert_dir and not Path(args.tls_cert_dir).is_dir():
        log(logger, logging.ERROR, "--tls-cert-dir is not a directory", path=args.tls_cert_dir)
        return 1
    try:
        api = controller_api_client()
    except Exception as e:
        log(logger, logging.ERROR, "cannot load the Kubernetes configuration", error=str(e))
        return 1
    if api is None:
        log(logger, logging.ERROR, "no Kubernetes API: set KUBECONFIG or run in a cluster")
        return 1
    try:
        return asyncio.run(serve(args, config, api))
    except ConsulConfigError as e:
        log(logger, logging.ERROR, "bad Consul settings", error=str(e))
        return 1
