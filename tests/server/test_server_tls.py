"""Serving certificate: TLS 1.2+, readiness gated on a loaded pair, reload from a swapped secret,
expiry warned about and (once expired) failing readiness."""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import logging
import ssl
import time
from pathlib import Path

import aiohttp
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from generator.tools.devcerts import CA, Pair, write_secret

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


def issue(ca: CA, name: str, not_before: datetime.datetime, not_after: datetime.datetime) -> Pair:
    """A serving certificate for 127.0.0.1 with the given validity (devcerts' issue() cannot make
    one that has already expired)."""
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(ca.cert.subject).public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(not_before).not_valid_after(not_after)
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .sign(ca.key, hashes.SHA256())
    )
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    return Pair(cert.public_bytes(serialization.Encoding.PEM), key_pem)


def now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


def expiry_records(caplog) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.getMessage().startswith("serving certificate exp")]


async def test_a_certificate_near_expiry_warns_once_and_stays_ready(start_server, tmp_path: Path, ca: CA, https, caplog) -> None:
    caplog.set_level("INFO", logger="connect-inject")
    certs = tmp_path / "secret"
    soon = issue(ca, "soon", now() - datetime.timedelta(days=80), now() + datetime.timedelta(hours=30))
    write_secret(certs, soon)
    server = await start_server(tls_cert_dir=certs)  # warning threshold: 7 days
    webhook = Webhook(server, https)
    for _ in range(5):  # polls and probes do not repeat the warning
        server.certs.check()
        status, text = await webhook.get("/readyz")
        assert status == 200, text
    [record] = expiry_records(caplog)
    assert record.levelname == "WARNING" and record.fields["subject"] == "CN=soon"
    assert "in 30.0 hours" in record.fields["detail"]
    text = await webhook.metrics()
    assert metric_value(text, "connect_inject_tls_certificate_expiring") == 1
    assert metric_value(text, "connect_inject_tls_certificate_expiry_timestamp_seconds") == \
        soon.cert.not_valid_after_utc.timestamp()

    # A renewed certificate clears the gauge; no new warning.
    write_secret(certs, issue(ca, "renewed", now(), now() + datetime.timedelta(days=60)))
    assert server.certs.check() is True
    assert metric_value(await webhook.metrics(), "connect_inject_tls_certificate_expiring") == 0
    assert len(expiry_records(caplog)) == 1


async def test_an_expired_certificate_fails_readiness_saying_so(start_server, tmp_path: Path, ca: CA, https, caplog) -> None:
    caplog.set_level("INFO", logger="connect-inject")
    certs = tmp_path / "secret"
    write_secret(certs, issue(ca, "old", now() - datetime.timedelta(days=90), now() - datetime.timedelta(hours=1)))
    server = await start_server(tls_cert_dir=certs)
    webhook = Webhook(server, https)
    status, text = await webhook.get("/readyz")
    assert status == 503 and "serving certificate CN=old expired at" in text and str(certs) in text
    server.certs.check()
    [record] = expiry_records(caplog)
    assert record.levelname == "ERROR" and record.getMessage() == "serving certificate expired"
    assert metric_value(await webhook.metrics(), "connect_inject_tls_certificate_expiring") == 1

    write_secret(certs, issue(ca, "new", now(), now() + datetime.timedelta(days=60)))
    server.certs.check()
    assert (await webhook.get("/readyz"))[0] == 200


async def test_readiness_fails_when_the_certificate_expires_while_served(start_server, tmp_path: Path, ca: CA, https, caplog) -> None:
    """Not only at reload: a certificate that runs out while served turns readiness off."""
    caplog.set_level("INFO", logger="connect-inject")
    certs = tmp_path / "secret"
    short = issue(ca, "short", now() - datetime.timedelta(minutes=1), now() + datetime.timedelta(seconds=2))
    write_secret(certs, short)
    server = await start_server(tls_cert_dir=certs, cert_poll_seconds=0.02)
    webhook = Webhook(server, https)
    assert (await webhook.get("/readyz"))[0] == 200
    deadline = short.cert.not_valid_after_utc.timestamp() + 5
    while (status := (await webhook.get("/readyz"))[0]) == 200 and time.time() < deadline:
        await asyncio.sleep(0.05)
    assert status == 503
    await until(lambda: any(r.getMessage() == "serving certificate expired" for r in caplog.records), "logged")
    assert [r.getMessage() for r in expiry_records(caplog)] == ["serving certificate expires soon", "serving certificate expired"]


async def test_readiness_can_fail_before_expiry_when_asked(start_server, tmp_path: Path, ca: CA, https) -> None:
    certs = tmp_path / "secret"
    write_secret(certs, issue(ca, "day", now(), now() + datetime.timedelta(days=1)))
    server = await start_server(tls_cert_dir=certs, cert_unready_within=2 * 86400)
    status, text = await Webhook(server, https).get("/readyz")
    assert status == 503 and "serving certificate CN=day expires at" in text and "(in 24.0 hours)" in text
