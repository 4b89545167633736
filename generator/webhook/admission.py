"""What every admission endpoint of the server shares: the envelope, the HTTP bodies, and the
bookkeeping of requests in flight.

- `response()` (from generator/base/admission.py, where the engine's review() uses it too) builds
  the AdmissionReview answer: apiVersion echoed, the request's uid, allowed, status, patch, warnings.
- `answer()` sends an AdmissionReview (HTTP 200); `status_error()` sends a Kubernetes `Status`
  body with an HTTP error code, for a request that is not a usable AdmissionReview or that we
  could not answer (the API server quotes its message; the webhook's failurePolicy decides).
- `InFlight` counts the requests being answered, so that a graceful shutdown waits for them.
- `review_workload()` is `/validate-workload`'s whole answer: the engine's workload warnings in
  the envelope, always allowed.

The CRD webhooks of the config-entry controller will answer through the same pieces.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Protocol

from aiohttp import web

from generator.base.admission import response
from generator.inject.workloads import workload_warnings

__all__ = ["InFlight", "answer", "decode_json", "response", "review_workload", "status_error"]


def answer(review: dict[str, Any]) -> web.Response:
    """HTTP 200 with the AdmissionReview `review` as compact JSON."""
    return web.Response(body=json.dumps(review, separators=(",", ":")).encode(), content_type="application/json")


def status_error(code: int, reason: str, message: str) -> web.Response:
    """HTTP `code` with a Kubernetes `Status` body: the API server quotes its message in the
    webhook error it reports."""
    body = {"apiVersion": "v1", "kind": "Status", "metadata": {}, "status": "Failure",
            "code": code, "reason": reason, "message": message}
    return web.json_response(body, status=code)


def decode_json(body: bytes) -> Any:
    """The request body as JSON, or None when it is not JSON (or nested too deeply)."""
    try:
        return json.loads(body)
    except Exception:
        return None


def review_workload(data: Any) -> dict[str, Any]:
    """`/validate-workload`: always allowed, with warnings for misplaced and unknown annotations.

    Registered with failurePolicy Ignore, it must never block a deploy: whatever arrives (`data`
    is any JSON value, None for a body that is not JSON), the answer allows it.
    """
    request = data.get("request") if isinstance(data, dict) else None
    obj = request.get("object") if isinstance(request, dict) else None
    return response(data, True, warnings=workload_warnings(obj))


class _Gauge(Protocol):
    def inc(self) -> None: ...

    def dec(self) -> None: ...


class InFlight:
    """Admission requests being answered now, for the shutdown to wait for."""

    def __init__(self) -> None:
        self.count = 0
        self._drained = asyncio.Event()
        self._drained.set()

    @contextmanager
    def track(self, gauge: _Gauge | None = None) -> Iterator[None]:
        """Count one request (and in `gauge`, when given) for the duration of the block."""
        if gauge is not None:
            gauge.inc()
        self.count += 1
        self._drained.clear()
        try:
            yield
        finally:
            if gauge is not None:
                gauge.dec()
            self.count -= 1
            if not self.count:
                self._drained.set()

    async def drained(self, timeout: float) -> bool:
        """Wait until no request is in flight; False when `timeout` passed first."""
        try:
            async with asyncio.timeout(timeout):
                while self.count:
                    await self._drained.wait()
            return True
        except TimeoutError:
            return False
