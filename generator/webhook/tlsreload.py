"""Serving certificate that follows the files on disk, without restarting or dropping connections.

cert-manager and the kubelet update a mounted TLS secret by writing a new timestamped
directory and atomically swapping the `..data` symlink that `tls.crt` and `tls.key` point
through. We poll the resolved files (cheap `stat` calls), and when they change we build a
complete new `ssl.SSLContext` from them. The listening socket keeps one outer context whose
SNI callback (OpenSSL calls it on every ClientHello, with or without SNI) hands each new
handshake the current inner context: the swap is a single reference assignment, existing
connections keep the context they negotiated with, and a half-written or mismatched pair is
rejected by `load_cert_chain` and never replaces a good one.

Expiry: the certificate being served is checked at every poll. Within `expiry_warning` of its
notAfter a warning is logged (once per certificate and state) and the
`connect_inject_tls_certificate_expiring` gauge is 1; once expired, readiness fails (the API
server would refuse the handshake anyway) and an error is logged. Readiness does not fail merely
because expiry is near unless `unready_within` says so: every replica mounts the same secret, so
they would all leave the Service at once and, with failurePolicy Fail, block every pod creation
days before the certificate stops working.
"""

from __future__ import annotations

import asyncio
import logging
import os
import ssl
import time
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509

from generator.base.logs import LOGGER_NAME, log
from generator.webhook.metrics import Metrics

CERT_FILE = "tls.crt"
KEY_FILE = "tls.key"

# Warn (log, gauge) when the served certificate expires within this; cert-manager renews at 2/3
# of a certificate's life, so a 90-day certificate still inside 7 days was not renewed.
EXPIRY_WARNING = 7 * 24 * 3600.0

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

    def __init__(self, directory: str | os.PathLike[str], metrics: Metrics, *,
                 expiry_warning: float = EXPIRY_WARNING, unready_within: float = 0.0) -> None:
        self.directory = Path(directory)
        self.metrics = metrics
        self.expiry_warning = expiry_warning  # seconds before notAfter: warn
        self.unready_within = unready_within  # seconds before notAfter: readiness fails (0: once expired)
        self.current: LoadedCert | None = None
        self._inner: ssl.SSLContext | None = None
        self._last_error: str | None = None
        self._expiry_logged: tuple[tuple, str] | None = None  # (fingerprint, state) last logged
        self.context = _server_context()
        self.context.sni_callback = self._select
        metrics.cert_expiring.set_function(lambda: 1.0 if self._expiry_state() != "valid" else 0.0)

    @property
    def problem(self) -> str | None:
        """Why the webhook cannot serve (for the readiness endpoint): no certificate loaded yet,
        or the one served has expired (or expires within `unready_within`); else None."""
        if self._inner is None:
            return self._last_error or f"no certificate loaded yet from {self.directory}"
        if self._expiry_state() in ("expired", "unready"):
            return self._expiry_message()
        return None

    def _expiry_state(self) -> str:
        """valid, expiring (within expiry_warning), unready (within unready_within) or expired."""
        current = self.current
        if current is None:
            return "valid"
        left = current.not_after - time.time()
        if left <= 0:
            return "expired"
        if left <= self.unready_within:
            return "unready"
        if left <= self.expiry_warning:
            return "expiring"
        return "valid"

    def _expiry_message(self) -> str:
        assert self.current is not None
        left = self.current.not_after - time.time()
        when = _utc(self.current.not_after)
        if left <= 0:
            return f"serving certificate {self.current.subject} expired at {when}; renew {self.directory}"
        return (f"serving certificate {self.current.subject} expires at {when} (in {_duration(left)}); "
                f"renew {self.directory}")

    def _note_expiry(self) -> None:
        """Log the served certificate's expiry once per certificate and state, not at every poll."""
        if self.current is None:
            return
        state = self._expiry_state()
        key = (self.current.fingerprint, state)
        if state == "valid" or key == self._expiry_logged:
            return
        self._expiry_logged = key
        level = logging.WARNING if state == "expiring" else logging.ERROR
        log(logger, level, "serving certificate expired" if state == "expired" else "serving certificate expires soon",
            subject=self.current.subject, not_after=_utc(self.current.not_after),
            ready=state == "expiring", detail=self._expiry_message())

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
            self._note_expiry()
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
        self._note_expiry()
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


def _utc(timestamp: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(timestamp))


def _duration(seconds: float) -> str:
    if seconds >= 2 * 86400:
        return f"{seconds / 86400:.1f} days"
    if seconds >= 2 * 3600:
        return f"{seconds / 3600:.1f} hours"
    return f"{max(seconds, 0) / 60:.0f} minutes"
