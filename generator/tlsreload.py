"""Serving certificate that follows the files on disk, without restarting or dropping connections.

cert-manager and the kubelet update a mounted TLS secret by writing a new timestamped
directory and atomically swapping the `..data` symlink that `tls.crt` and `tls.key` point
through. We poll the resolved files (cheap `stat` calls), and when they change we build a
complete new `ssl.SSLContext` from them. The listening socket keeps one outer context whose
SNI callback (OpenSSL calls it on every ClientHello, with or without SNI) hands each new
handshake the current inner context: the swap is a single reference assignment, existing
connections keep the context they negotiated with, and a half-written or mismatched pair is
rejected by `load_cert_chain` and never replaces a good one.
"""

from __future__ import annotations

import asyncio
import logging
import os
import ssl
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509

from generator.logs import LOGGER_NAME, log
from generator.metrics import Metrics

CERT_FILE = "tls.crt"
KEY_FILE = "tls.key"

logger = logging.getLogger(LOGGER_NAME + ".tls")


@dataclass(frozen=True)
class LoadedCert:
    """What is being served now: when it expires and which files it came from."""

    not_after: float  # Unix time
    subject: str
    fingerprint: tuple


def _fingerprint(directory: Path) -> tuple:
    """Identity of the files the names resolve to now (symlink swaps change it)."""
    out = []
    for name in (CERT_FILE, KEY_FILE):
        path = directory / name
        st = os.stat(path)  # follows symlinks: the secret's ..data swap shows up here
        out.append((os.path.realpath(path), st.st_ino, st.st_size, st.st_mtime_ns))
    return tuple(out)


def _server_context() -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.set_alpn_protocols(["http/1.1"])
    return ctx


class CertReloader:
    """Owns the TLS context of the webhook listener and keeps it in step with `directory`."""

    def __init__(self, directory: str | os.PathLike[str], metrics: Metrics) -> None:
        self.directory = Path(directory)
        self.metrics = metrics
        self.current: LoadedCert | None = None
        self._inner: ssl.SSLContext | None = None
        self._last_error: str | None = None
        self.context = _server_context()
        self.context.sni_callback = self._select

    @property
    def problem(self) -> str | None:
        """Why no certificate is being served (for the readiness endpoint), or None."""
        if self._inner is not None:
            return None
        return self._last_error or f"no certificate loaded yet from {self.directory}"

    def _select(self, sslobj: ssl.SSLObject, _server_name: str | None, _ctx: ssl.SSLContext) -> int | None:
        inner = self._inner
        if inner is None:
            return ssl.ALERT_DESCRIPTION_INTERNAL_ERROR  # not ready: refuse the handshake
        sslobj.context = inner
        return None

    def check(self) -> bool:
        """Reload if the files changed; True when a new pair was loaded. Never raises."""
        try:
            fingerprint = _fingerprint(self.directory)
        except OSError as e:
            self._failed(f"cannot read {self.directory}/{{{CERT_FILE},{KEY_FILE}}}: {e.strerror or e}")
            return False
        if self.current is not None and fingerprint == self.current.fingerprint:
            return False
        try:
            inner = _server_context()
            inner.load_cert_chain(self.directory / CERT_FILE, self.directory / KEY_FILE)
            leaf = x509.load_pem_x509_certificate((self.directory / CERT_FILE).read_bytes())
        except (OSError, ssl.SSLError, ValueError) as e:
            # A swap may be half-way (new cert, old key): keep serving the old pair and retry.
            self._failed(f"invalid certificate/key pair in {self.directory}: {e}")
            return False
        loaded = LoadedCert(leaf.not_valid_after_utc.timestamp(), leaf.subject.rfc4514_string(), fingerprint)
        self._inner, self.current, self._last_error = inner, loaded, None
        self.metrics.cert_expiry.set(loaded.not_after)
        self.metrics.cert_reloads.labels(result="success").inc()
        log(logger, logging.INFO, "serving certificate loaded", subject=loaded.subject,
            not_after=leaf.not_valid_after_utc.isoformat(), directory=str(self.directory))
        return True

    def _failed(self, message: str) -> None:
        if message != self._last_error:  # log each distinct problem once, not every poll
            log(logger, logging.ERROR, "certificate reload failed", error=message,
                still_serving=self.current.subject if self.current else None)
            self.metrics.cert_reloads.labels(result="failure").inc()
        self._last_error = message

    async def watch(self, interval: float = 1.0) -> None:
        """Poll the directory until cancelled."""
        while True:
            try:
                self.check()
            except Exception:  # an unforeseen error must not end reloading for good
                logger.exception("unexpected error while checking the certificate files")
            await asyncio.sleep(interval)
