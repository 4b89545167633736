"""Self-signed certificates in the Kubernetes secret layout, for `make run`, benchmarks and tests.

In a cluster the serving certificate comes from the chart's secret (or cert-manager) and the
kubelet writes it; outside a cluster we make a throwaway CA and a serving certificate for
127.0.0.1/localhost and write them exactly as the kubelet does (`..data` symlink swapped
atomically), so the server's reload path is exercised the same way here as in production.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

DEFAULT_HOSTS = ("127.0.0.1", "localhost")


@dataclass(frozen=True)
class Pair:
    """A PEM certificate and its PEM private key."""

    cert_pem: bytes
    key_pem: bytes

    @property
    def cert(self) -> x509.Certificate:
        return x509.load_pem_x509_certificate(self.cert_pem)


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


class CA:
    """A throwaway certificate authority that issues serving certificates."""

    def __init__(self, name: str = "connect-inject test CA") -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.timezone.utc)
        self.cert = (
            x509.CertificateBuilder().subject_name(_name(name)).issuer_name(_name(name))
            .public_key(self.key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=31))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                         content_commitment=False, key_encipherment=False, data_encipherment=False,
                                         key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
            .sign(self.key, hashes.SHA256())
        )

    @property
    def cert_pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    def issue(self, common_name: str = "connect-injector", hosts: tuple[str, ...] = DEFAULT_HOSTS,
              valid_for: datetime.timedelta = datetime.timedelta(days=30)) -> Pair:
        """A serving certificate for `hosts` (IP addresses and DNS names)."""
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.timezone.utc)
        sans: list[x509.GeneralName] = []
        for host in hosts:
            try:
                sans.append(x509.IPAddress(ipaddress.ip_address(host)))
            except ValueError:
                sans.append(x509.DNSName(host))
        cert = (
            x509.CertificateBuilder().subject_name(_name(common_name)).issuer_name(self.cert.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + valid_for)
            .add_extension(x509.SubjectAlternativeName(sans), critical=False)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .sign(self.key, hashes.SHA256())
        )
        return Pair(cert.public_bytes(serialization.Encoding.PEM), _key_pem(key))


def write_secret(directory: str | os.PathLike[str], pair: Pair) -> None:
    """Write or replace `tls.crt`/`tls.key` as the kubelet updates a mounted secret.

    The files go into a fresh `..<n>` directory; `..data` is then swapped to it with one
    atomic rename, and `tls.crt`/`tls.key` are symlinks through `..data`. A reader sees
    either the whole old pair or the whole new one (if it resolves both names at once).
    """
    root = Path(directory)
    root.mkdir(parents=True, exist_ok=True)
    n = 0
    while (root / f"..{n}").exists():
        n += 1
    version = root / f"..{n}"
    version.mkdir()
    (version / "tls.crt").write_bytes(pair.cert_pem)
    (version / "tls.key").write_bytes(pair.key_pem)
    tmp = root / "..data_tmp"
    if tmp.is_symlink():
        tmp.unlink()
    tmp.symlink_to(version.name)
    old = os.readlink(root / "..data") if (root / "..data").is_symlink() else None
    os.replace(tmp, root / "..data")
    for name in ("tls.crt", "tls.key"):
        if not (root / name).is_symlink():
            (root / name).symlink_to(f"..data/{name}")
    if old:  # the kubelet removes the previous version after the swap
        for f in (root / old).iterdir():
            f.unlink()
        (root / old).rmdir()
