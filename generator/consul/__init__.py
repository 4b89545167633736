"""A small typed async client for the Consul agent HTTP API (the controllers' only way to Consul).

`config` reads the standard `CONSUL_*` environment, `client` talks HTTP, `types` are the request
bodies exactly as the Go client serialises them, `errors` the three failure kinds, `namespaces`
the reference's choice of Consul namespace for a config entry. This layer
imports only `generator.base` (tests/test_imports.py).
"""

from generator.consul.client import Consul, ConsulClient
from generator.consul.config import ConsulAddress, ConsulConfig, TLSSettings, TokenSource
from generator.consul.errors import (ConsulConfigError, ConsulError, ConsulResponseError, ConsulStatusError,
                                     ConsulTLSError, ConsulUnreachable)
from generator.consul.types import (CRITICAL, KIND_CONNECT_PROXY, MODE_TRANSPARENT, PASSING, WARNING,
                                    CheckRegistration, ExposePath, ProxyConfig, ServiceAddress, ServiceCheck,
                                    ServiceRegistration, Upstream)

__all__ = ["CRITICAL", "KIND_CONNECT_PROXY", "MODE_TRANSPARENT", "PASSING", "WARNING", "CheckRegistration",
           "Consul", "ConsulAddress", "ConsulClient", "ConsulConfig", "ConsulConfigError", "ConsulError",
           "ConsulResponseError", "ConsulStatusError", "ConsulTLSError", "ConsulUnreachable", "ExposePath",
           "ProxyConfig", "ServiceAddress", "ServiceCheck", "ServiceRegistration", "TLSSettings", "TokenSource",
           "Upstream"]
