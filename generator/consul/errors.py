"""What can go wrong talking to Consul, as three kinds the controllers handle differently.

- `ConsulConfigError`: the process is misconfigured (bad `CONSUL_HTTP_ADDR`, unreadable CA or
  token file). Found at startup; retrying does not help.
- `ConsulUnreachable`: no HTTP answer (connection refused or reset, DNS, TLS handshake, timeout).
  Transient by nature: the work is retried with backoff, and other agents are still served.
- `ConsulStatusError`: the agent answered with a status other than the one expected. It carries
  the status and Consul's body verbatim, and reads exactly like the Go client's error
  (`Unexpected response code: 500 (ServiceID "x" does not exist)`): the config-entry controller
  puts this text in a resource's `Synced` condition, where users must see Consul's own words
  (reference crd-controller §2.4), and operators who know the reference recognise it.
"""

from __future__ import annotations

BODY_EXCERPT = 1024  # characters kept of an error body; Consul's own are far shorter


class ConsulError(Exception):
    """Base of every error this package raises."""


class ConsulConfigError(ConsulError):
    """The Consul settings (environment or arguments) are unusable."""


class ConsulUnreachable(ConsulError):
    """No HTTP response from `address`: refused, reset, timed out, or the TLS handshake failed."""

    def __init__(self, address: str, reason: str):
        super().__init__(f"Consul agent {address} unreachable: {reason}")
        self.address = address
        self.reason = reason


class ConsulTLSError(ConsulUnreachable):
    """The TLS handshake failed (certificate not trusted, wrong name): a configuration problem
    that looks like an outage to the caller, so it is a kind of `ConsulUnreachable`."""


class ConsulStatusError(ConsulError):
    """An HTTP answer with an unexpected status. `body` is the answer as Consul wrote it, not
    trimmed (Go's client prints it as is, multi-line decode errors and trailing newlines
    included); only a body longer than BODY_EXCERPT (a proxy's HTML page, never Consul's own
    one-line or multierror text) is cut, with `...`, so it cannot flood logs and conditions."""

    def __init__(self, status: int, body: str, method: str = "", url: str = ""):
        if len(body) > BODY_EXCERPT:
            body = body[:BODY_EXCERPT] + "..."
        super().__init__(f"Unexpected response code: {status} ({body})")
        self.status = status
        self.body = body
        self.method = method
        self.url = url

    @property
    def not_found(self) -> bool:
        """A 404: the object (config entry, namespace) does not exist."""
        return self.status == 404


class ConsulResponseError(ConsulError):
    """A 200 answer whose body is not the JSON the endpoint documents."""
