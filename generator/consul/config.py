"""Where Consul is and how to talk to it: address, token, TLS, timeouts, from the environment.

The process contract (design.md, "Controllers") names the variables: `CONSUL_HTTP_ADDR`
(`[http://|https://]host:port`; its scheme and port are reused for every client agent, whose
host is the pod's node or the agent pod's IP), `CONSUL_HTTP_TOKEN` or `CONSUL_HTTP_TOKEN_FILE`,
and `CONSUL_CACERT`. We also read the other standard Consul client variables the reference's Go
client honours (`CONSUL_HTTP_SSL`, `CONSUL_CAPATH`, `CONSUL_CLIENT_CERT`, `CONSUL_CLIENT_KEY`,
`CONSUL_TLS_SERVER_NAME`, `CONSUL_HTTP_SSL_VERIFY`), so a Consul operator's usual settings work.

Unlike the Go client, an address without a port is refused at startup: the reference would
build agent URLs like `http://10.0.0.7:` from it (reference §1.2).
"""

from __future__ import annotations

import ipaddress
import os
import ssl
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from generator.consul.errors import ConsulConfigError

DEFAULT_ADDRESS = "127.0.0.1:8500"  # the Go client's default
SCHEMES = ("http", "https")


@dataclass(frozen=True)
class ConsulAddress:
    """scheme://host:port[/prefix] of one Consul agent."""

    scheme: str
    host: str
    port: int
    path_prefix: str = ""

    @classmethod
    def parse(cls, text: str, *, default_scheme: str = "http") -> ConsulAddress:
        """Parse `CONSUL_HTTP_ADDR`: `[http://|https://]host:port[/prefix]`; IPv6 hosts in brackets."""
        raw = text.strip()
        if not raw:
            raise ConsulConfigError("Consul address is empty")
        scheme = default_scheme
        rest = raw
        if "://" in raw:
            scheme, rest = raw.split("://", 1)
            scheme = scheme.lower()
            if scheme not in SCHEMES:
                raise ConsulConfigError(f"Consul address {raw!r}: unsupported scheme {scheme!r} (use http or https)")
        prefix = ""
        if "/" in rest:
            rest, tail = rest.split("/", 1)
            prefix = "/" + tail.strip("/") if tail.strip("/") else ""
        host, port_text = _split_host_port(rest, raw)
        try:
            port = int(port_text, 10)
        except ValueError:
            raise ConsulConfigError(f"Consul address {raw!r}: port {port_text!r} is not a number") from None
        if not 0 < port < 65536:
            raise ConsulConfigError(f"Consul address {raw!r}: port {port} is out of range")
        return cls(scheme, host, port, prefix)

    def with_host(self, host: str) -> ConsulAddress:
        """The same scheme, port and prefix on another host (a client agent on another node)."""
        host = host.strip()
        if host.startswith("[") and host.endswith("]"):
            host = host[1:-1]
        if not host:
            raise ConsulConfigError("Consul agent host is empty")
        return replace(self, host=host)

    @property
    def netloc(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    def __str__(self) -> str:
        return f"{self.scheme}://{self.netloc}{self.path_prefix}"


def _split_host_port(text: str, raw: str) -> tuple[str, str]:
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            raise ConsulConfigError(f"Consul address {raw!r}: unclosed '[' in the host")
        host, after = text[1:end], text[end + 1:]
        if not after.startswith(":") or len(after) == 1:
            raise ConsulConfigError(f"Consul address {raw!r} has no port (expected [host]:port)")
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ConsulConfigError(f"Consul address {raw!r}: {host!r} is not an IPv6 address") from None
        return host, after[1:]
    if text.count(":") != 1:
        if text.count(":") > 1:
            raise ConsulConfigError(f"Consul address {raw!r}: write an IPv6 host in brackets, [host]:port")
        raise ConsulConfigError(f"Consul address {raw!r} has no port (expected host:port)")
    host, port = text.split(":")
    if not host or not port:
        raise ConsulConfigError(f"Consul address {raw!r}: expected host:port")
    return host, port


class TokenSource:
    """The ACL token: a fixed value, or a file re-read whenever it changes.

    As in the Go client, a token file wins over a token value (a projected or rotated secret is
    the source of truth); an empty file falls back to the value. The file's identity (inode,
    size, mtime) is checked on each use, a single stat() call, so a rotated Secret is picked up
    on the next request without a restart; a file that vanishes for a moment (the kubelet's
    symlink swap) keeps the last token read.
    """

    def __init__(self, token: str = "", path: str | None = None):
        self._static = token.strip()
        self.path = path
        self._lock = threading.Lock()
        self._stamp: tuple[int, int, int] | None = None
        self._from_file = ""
        if path is not None:
            try:
                self._reload(os.stat(path))
            except OSError as err:
                raise ConsulConfigError(f"Consul token file {path}: {err.strerror or err}") from None

    def _reload(self, st: os.stat_result) -> None:
        assert self.path is not None
        with open(self.path, encoding="utf-8") as f:
            self._from_file = f.read().strip()
        self._stamp = (st.st_ino, st.st_size, st.st_mtime_ns)

    def get(self) -> str:
        if self.path is not None:
            try:
                st = os.stat(self.path)
                if (st.st_ino, st.st_size, st.st_mtime_ns) != self._stamp:
                    with self._lock:
                        self._reload(st)
            except (OSError, UnicodeDecodeError):
                pass  # keep the last token read
        return self._from_file or self._static

    def __repr__(self) -> str:  # never print the secret
        return f"TokenSource(path={self.path!r}, static={'set' if self._static else 'unset'})"


@dataclass(frozen=True)
class TLSSettings:
    """How https agents are verified. Empty fields mean the system's defaults."""

    ca_file: str | None = None
    ca_path: str | None = None
    client_cert: str | None = None
    client_key: str | None = None
    server_name: str | None = None  # SNI and verified name; unset = the host in the URL
    verify: bool = True

    def context(self) -> ssl.SSLContext:
        """An SSL context with these settings; unreadable files are a ConsulConfigError."""
        try:
            ctx = ssl.create_default_context(cafile=self.ca_file, capath=self.ca_path)
            if self.client_cert:
                ctx.load_cert_chain(self.client_cert, self.client_key)
        except (OSError, ssl.SSLError, ValueError) as err:
            raise ConsulConfigError(f"Consul TLS settings: {err}") from None
        if not self.verify:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        return ctx


def _user_agent() -> str:
    try:
        from importlib.metadata import version
        return f"consul-connect-inject/{version('consul-connect-inject')}"
    except Exception:  # not installed (a source checkout)
        return "consul-connect-inject/dev"


@dataclass(frozen=True)
class ConsulConfig:
    """Everything a `Consul` session needs. Build it with `from_env()` in the controllers."""

    address: ConsulAddress = field(default_factory=lambda: ConsulAddress.parse(DEFAULT_ADDRESS))
    token: TokenSource = field(default_factory=TokenSource)
    tls: TLSSettings = field(default_factory=TLSSettings)
    partition: str = ""          # `partition=` on every request when set (reference §5.6)
    connect_timeout: float = 2.0  # TCP (and TLS) connect to one agent
    timeout: float = 10.0         # the whole request, connect included
    max_connections: int = 100    # bound of the shared pool
    max_connections_per_agent: int = 8
    user_agent: str = field(default_factory=_user_agent)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: object) -> ConsulConfig:
        """Read the standard Consul client variables; keyword arguments override fields."""
        env = os.environ if env is None else env
        ssl_on = _bool(env, "CONSUL_HTTP_SSL", False)
        address = ConsulAddress.parse(env.get("CONSUL_HTTP_ADDR") or DEFAULT_ADDRESS,
                                      default_scheme="https" if ssl_on else "http")
        token = TokenSource(env.get("CONSUL_HTTP_TOKEN", ""), env.get("CONSUL_HTTP_TOKEN_FILE") or None)
        tls = TLSSettings(ca_file=env.get("CONSUL_CACERT") or None, ca_path=env.get("CONSUL_CAPATH") or None,
                          client_cert=env.get("CONSUL_CLIENT_CERT") or None,
                          client_key=env.get("CONSUL_CLIENT_KEY") or None,
                          server_name=env.get("CONSUL_TLS_SERVER_NAME") or None,
                          verify=_bool(env, "CONSUL_HTTP_SSL_VERIFY", True))
        config = cls(address=address, token=token, tls=tls)
        return replace(config, **overrides) if overrides else config  # type: ignore[arg-type]


def _bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    value = env.get(name, "").strip().lower()
    if not value:
        return default
    if value in ("1", "t", "true", "yes", "on"):
        return True
    if value in ("0", "f", "false", "no", "off"):
        return False
    raise ConsulConfigError(f"{name}={env[name]!r} is not a boolean")
