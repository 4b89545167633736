"""Serving certificate: TLS 1.2+, readiness gated on a loaded pair, reload from a swapped secret."""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path

import aiohttp
from cryptography.hazmat.primitives import serialization

from generator.devcerts import CA, Pair, write_secret

from .conftest import Webhook, client_ssl, make_pod, metric_value


async def peer_cert(port: int, ca: CA) -> bytes:
    """DER of the certificate a new connection is served (verified against the CA)."""
    _, writer = await asyncio.open_connection("127.0.0.1", port, ssl=client_ssl(ca))
    der = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
    writer.close()
    return der


def der(pair: Pair) -> bytes:
    return pair.cert.public_bytes(serialization.Encoding.DER)


async def until(predicate, what: str, timeout: float = 10.0) -> None:
    """Wait for a condition the server reaches on its own (bounded)."""
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.01)


async def test_rotation_under_load_drops_nothing_and_new_connections_get_the_new_cert(
        start_server, tmp_path: Path, ca: CA, https) -> None:
    first, second = ca.issue("first"), ca.issue("second")
    certs = tmp_path / "secret"
    write_secret(certs, first)
    server = await start_server(tls_cert_dir=certs, cert_poll_seconds=0.02)
    assert await peer_cert(server.webhook_port, ca) == der(first)

    failures: list[str] = []
    done = {"before": 0, "after": 0}
    stop = asyncio.Event()
    rotated = asyncio.Event()

    async def worker(keepalive: bool) -> None:
        connector = aiohttp.TCPConnector(ssl=client_ssl(ca), force_close=not keepalive)
        async with aiohttp.ClientSession(connector=connector) as session:
            webhook = Webhook(server, session)
            for i in range(400):  # bounded in count and (below) in time
                if stop.is_set():
                    return
                try:
                    answer = await webhook.review(make_pod(name=f"p{i}"))
                    assert answer["response"]["allowed"] is True
                    done["after" if rotated.is_set() else "before"] += 1
                except Exception as e:  # any failure is a dropped request
                    failures.append(repr(e))

    workers = [asyncio.create_task(worker(keepalive=k)) for k in (True, True, False, False)]
    await until(lambda: done["before"] >= 40, "load running")
    write_secret(certs, second)  # the kubelet's ..data symlink swap
    await until(lambda: server.certs.current.subject == "CN=second", "reload")
    rotated.set()
    await until(lambda: done["after"] >= 40, "load after rotation")
    assert await peer_cert(server.webhook_port, ca) == der(second)
    stop.set()
    await asyncio.wait_for(asyncio.gather(*workers), 60)
    assert failures == []
    assert done["before"] + done["after"] >= 80
    text = await Webhook(server, https).metrics()
    assert metric_value(text, "connect_inject_tls_certificate_expiry_timestamp_seconds") == \
        second.cert.not_valid_after_utc.timestamp()
    assert metric_value(text, "connect_inject_tls_certificate_reloads_total", result="success") == 2


async def test_a_mismatched_pair_never_replaces_the_good_one(start_server, tmp_path: Path, ca: CA, https) -> None:
    good, other = ca.issue("good"), ca.issue("other")
    certs = tmp_path / "secret"
    write_secret(certs, good)
    server = await start_server(tls_cert_dir=certs)
    webhook = Webhook(server, https)
    write_secret(certs, Pair(other.cert_pem, good.key_pem))  # half-rotated: new cert, old key
    assert server.certs.check() is False
    assert await peer_cert(server.webhook_port, ca) == der(good)
    assert (await webhook.get("/readyz"))[0] == 200
    text = await webhook.metrics()
    assert metric_value(text, "connect_inject_tls_certificate_reloads_total", result="failure") == 1
    assert metric_value(text, "connect_inject_tls_certificate_expiry_timestamp_seconds") == \
        good.cert.not_valid_after_utc.timestamp()


async def test_not_ready_until_a_valid_pair_appears(start_server, tmp_path: Path, ca: CA, https) -> None:
    certs = tmp_path / "empty"
    certs.mkdir()
    server = await start_server(tls_cert_dir=certs, cert_poll_seconds=0.02)
    webhook = Webhook(server, https)
    status, text = await webhook.get("/readyz")
    assert status == 503 and str(certs) in text
    assert (await webhook.get("/healthz"))[0] == 200  # alive, just not ready
    try:
        await peer_cert(server.webhook_port, ca)
        raise AssertionError("handshake succeeded without a certificate")
    except (ssl.SSLError, ConnectionResetError):
        pass

    pair = ca.issue("late")
    write_secret(certs, pair)
    await until(lambda: server.ready, "certificate loaded")
    assert (await webhook.get("/readyz"))[0] == 200
    assert await peer_cert(server.webhook_port, ca) == der(pair)
    assert (await webhook.review(make_pod()))["response"]["allowed"] is True
