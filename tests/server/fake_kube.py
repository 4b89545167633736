"""A small fake Kubernetes API server for Namespaces, standing in for the real API server.

Why not kmock: kmock 0.8's path parser crashes on `/api/v1/namespaces` (it reads the cluster-
scoped `namespaces` resource as a namespace prefix and answers 500), so it cannot serve the one
resource the cache watches. This fake implements just what the official client uses, with the
API server's semantics that matter to the cache and that kmock lacks: increasing
resourceVersions, watch from a resourceVersion, `timeoutSeconds`, 410 Gone for a version that
is too old, and 404 `Status` bodies. `down = True` makes it answer 503 and cut open watches,
like an API server outage.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from typing import Any

from aiohttp import web


class FakeKube:
    """In-memory Namespaces served over HTTP on 127.0.0.1."""

    def __init__(self) -> None:
        self.version = 1
        self.namespaces: dict[str, dict[str, Any]] = {}
        self.events: list[tuple[int, dict[str, Any]]] = []  # (resourceVersion, event)
        self.oldest = 1                                     # watches from below this get 410 Gone
        self.calls: Counter[str] = Counter()                 # list / watch / get
        self.down = False
        self.hang = False  # GETs never answer (an overloaded API server)
        self._changed = asyncio.Condition()
        self._runner: web.AppRunner | None = None
        self.url = ""

    # -- state changes, as kubectl would make them --

    async def _emit(self, kind: str, name: str, labels: dict[str, str] | None) -> None:
        self.version += 1
        obj = {"apiVersion": "v1", "kind": "Namespace",
               "metadata": {"name": name, "labels": labels or {}, "resourceVersion": str(self.version)}}
        if kind == "DELETED":
            self.namespaces.pop(name, None)
        else:
            self.namespaces[name] = obj
        self.events.append((self.version, {"type": kind, "object": obj}))
        async with self._changed:
            self._changed.notify_all()

    async def add(self, name: str, labels: dict[str, str] | None = None) -> None:
        await self._emit("ADDED", name, labels)

    async def modify(self, name: str, labels: dict[str, str]) -> None:
        await self._emit("MODIFIED", name, labels)

    async def delete(self, name: str) -> None:
        await self._emit("DELETED", name, self.namespaces[name]["metadata"]["labels"])

    def compact(self) -> None:
        """Expire every version up to now, as the watch cache window moving on does: a new
        watch from any of them gets 410 Gone (open watches go on)."""
        self.oldest = self.version + 1
        self.events.clear()

    async def set_down(self, down: bool) -> None:
        self.down = down
        async with self._changed:
            self._changed.notify_all()

    # -- HTTP --

    @staticmethod
    def _status(code: int, reason: str, message: str) -> dict[str, Any]:
        return {"apiVersion": "v1", "kind": "Status", "status": "Failure", "code": code,
                "reason": reason, "message": message}

    async def _list_or_watch(self, request: web.Request) -> web.StreamResponse:
        if self.down:
            return web.json_response(self._status(503, "ServiceUnavailable", "down"), status=503)
        if request.query.get("watch", "").lower() in ("true", "1"):  # the client sends "True"
            return await self._watch(request)
        self.calls["list"] += 1
        return web.json_response({"apiVersion": "v1", "kind": "NamespaceList",
                                  "metadata": {"resourceVersion": str(self.version)},
                                  "items": list(self.namespaces.values())})

    async def _watch(self, request: web.Request) -> web.StreamResponse:
        self.calls["watch"] += 1
        since = int(request.query.get("resourceVersion") or self.version)
        timeout = float(request.query.get("timeoutSeconds") or 60)
        resp = web.StreamResponse(headers={"Content-Type": "application/json"})
        await resp.prepare(request)
        if since < self.oldest:
            gone = self._status(410, "Expired", f"too old resource version: {since} ({self.oldest})")
            await resp.write(json.dumps({"type": "ERROR", "object": gone}).encode() + b"\n")
            return resp
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not self.down:
            for version, event in self.events:
                if version > since:
                    await resp.write(json.dumps(event).encode() + b"\n")
                    since = version
            remaining = deadline - loop.time()
            if remaining <= 0:
                return resp
            async with self._changed:
                try:
                    await asyncio.wait_for(self._changed.wait(), remaining)
                except TimeoutError:
                    pass
        request.transport.close()  # outage: the connection drops mid-stream
        return resp

    async def _get(self, request: web.Request) -> web.Response:
        if self.down:
            return web.json_response(self._status(503, "ServiceUnavailable", "down"), status=503)
        self.calls["get"] += 1
        if self.hang:
            await asyncio.Event().wait()  # until the server is stopped
        name = request.match_info["name"]
        if name not in self.namespaces:
            return web.json_response(self._status(404, "NotFound", f'namespaces "{name}" not found'), status=404)
        return web.json_response(self.namespaces[name])

    async def start(self) -> str:
        app = web.Application()
        app.router.add_get("/api/v1/namespaces", self._list_or_watch)
        app.router.add_get("/api/v1/namespaces/{name}", self._get)
        self._runner = web.AppRunner(app, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}"
        return self.url

    async def stop(self) -> None:
        await self.set_down(True)
        if self._runner is not None:
            await self._runner.cleanup()
