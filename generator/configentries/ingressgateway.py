"""IngressGateway → Consul `ingress-gateway`: the listeners of an ingress gateway and the services
each one exposes.

The CRD renames two Consul keys: `tls` / `gatewayTLSConfig` / `gatewayServiceTLSConfig` → `TLS`,
and `gatewayTLSSDSConfig` → `SDS`.
"""

from __future__ import annotations

import generator.configentries.fields as F
import generator.configentries.shared as S
from generator.configentries.errors import FieldError, invalid
from generator.configentries.gofmt import quote
from generator.configentries.kind import ConsulMeta, Kind, spec_of

PROTOCOLS = ("tcp", "http", "http2", "grpc")
WILDCARD = "*"

_SDS = F.obj("gatewayTLSSDSConfig", "SDS allows configuring TLS certificate from an SDS service.", consul="SDS",
             fields=(F.string("clusterName"), F.string("certResource")))


def _tls(name: str, doc: str, struct: bool = False) -> F.Field:
    """A GatewayTLSConfig (`enabled` is required in the schema and always sent to Consul)."""
    return F.obj(name, doc, consul="TLS", fields=(
        F.boolean("enabled", "Indicates that TLS should be enabled for this gateway service.", required=True,
                  always=True),
        _SDS,
    ), struct=struct)


SERVICE = F.obj(None, "IngressService manages configuration for services that are exposed to ingress traffic.",
                struct=True, fields=(
    F.string("name", "Name declares the service to which traffic should be forwarded. \n This can either be a "
             "specific service, or the wildcard specifier, \"*\". If the wildcard specifier is provided, the listener "
             "must be of \"http\" protocol and means that the listener will forward traffic to all services. \n A "
             "name can be specified on multiple listeners, and will be exposed on both of the listeners.",
             always=True),
    F.array("hosts", "Hosts is a list of hostnames which should be associated to this service on the defined "
            "listener. Only allowed on layer 7 protocols, this will be used to route traffic to the service by "
            "matching the Host header of the HTTP request. \n If a host is provided for a service that also has a "
            "wildcard specifier defined, the host will override the wildcard-specifier-provided \"<service-name>.*\" "
            "domain for that listener. \n This cannot be specified when using the wildcard specifier, \"*\", or when "
            "using a \"tcp\" listener.", F.string(None), always=True),
    F.string("namespace", "Namespace is the namespace where the service is located. Namespacing is a Consul "
             "Enterprise feature."),
    F.string("partition", "Partition is the admin-partition where the service is located. Partitioning is a Consul "
             "Enterprise feature."),
    F.obj("gatewayServiceTLSConfig", "TLS allows specifying some TLS configuration per listener.", consul="TLS",
          fields=(_SDS,)),
    S.header_modifiers("requestHeaders", "Allow HTTP header manipulation to be configured."),
    S.header_modifiers("responseHeaders", "HTTPHeaderModifiers is a set of rules for HTTP header modification that "
                       "should be performed by proxies as the request passes through them. It can operate on either "
                       "request or response headers depending on the context in which it is used."),
))
SERVICES = F.array("services", "Services declares the set of services to which the listener forwards traffic. \n "
                   "For \"tcp\" protocol listeners, only a single service is allowed. For \"http\" listeners, multiple "
                   "services can be declared.", SERVICE, always=True)
LISTENER = F.obj(None, "IngressListener manages the configuration for a listener on a specific port.", struct=True,
                 fields=(
    F.integer("port", "Port declares the port on which the ingress gateway should listen for traffic.", always=True),
    F.string("protocol", "Protocol declares what type of traffic this listener is expected to receive. Depending on "
             "the protocol, a listener might support multiplexing services over a single port, or additional "
             "discovery chain features. The current supported values are: (tcp | http | http2 | grpc).",
             always=True),
    _tls("gatewayTLSConfig", "TLS config for this listener."),
    SERVICES,
))
SPEC = F.obj("spec", "IngressGatewaySpec defines the desired state of IngressGateway", struct=True, fields=(
    _tls("tls", "TLS holds the TLS configuration for this gateway.", struct=True),
    F.array("listeners", "Listeners declares what ports the ingress gateway should listen on, and what services to "
            "associated to those ports.", LISTENER, always=True),
))


def _validate_listener(listener: dict, path: str, meta: ConsulMeta) -> list[FieldError]:
    errors = []
    protocol = listener.get("protocol") or ""
    if protocol not in PROTOCOLS:
        errors.append(invalid(f"{path}.protocol", protocol, S.not_in_slice(PROTOCOLS)))
    raw_services = listener.get("services")
    services = [S.as_dict(s) for s in S.as_list(raw_services)]
    if protocol == "tcp" and len(services) > 1:
        errors.append(invalid(f"{path}.services", F.dump(SERVICES, raw_services),
                              f'if protocol is "tcp", only a single service is allowed, found {len(services)}'))
    hosts_field = SERVICE.child("hosts")
    for j, svc in enumerate(services):
        here = f"{path}.services[{j}]"
        name, hosts = svc.get("name") or "", S.as_list(svc.get("hosts"))
        if name == WILDCARD and protocol != "http":
            errors.append(invalid(f"{here}.name", name,
                                  f'if name is {quote(WILDCARD)}, protocol must be "http" but was {quote(protocol)}'))
        if name == WILDCARD and hosts:
            errors.append(invalid(f"{here}.hosts", F.dump(hosts_field, hosts),
                                  f"hosts must be empty if name is {quote(WILDCARD)}"))
        if svc.get("partition") and not meta.partitions_enabled:
            errors.append(invalid(f"{here}.partition", svc["partition"],
                                  "Consul Enterprise admin-partitions must be enabled to set service.partition"))
        if svc.get("namespace") and not meta.namespaces_enabled:
            errors.append(invalid(f"{here}.namespace", svc["namespace"], S.NAMESPACES_OFF + "service.namespace"))
        if hosts and protocol == "tcp":
            errors.append(invalid(f"{here}.hosts", F.dump(hosts_field, hosts),
                                  'hosts must be empty if protocol is "tcp"'))
    return errors


def validate(resource: dict, meta: ConsulMeta) -> list[FieldError]:
    errors = []
    for i, listener in enumerate(S.as_list(spec_of(resource).get("listeners"))):
        errors += _validate_listener(S.as_dict(listener), f"spec.listeners[{i}]", meta)
    return errors


def default_namespaces(spec: dict, namespace: str) -> None:
    for listener in S.as_list(spec.get("listeners")):
        for svc in S.as_list(S.as_dict(listener).get("services")):
            if isinstance(svc, dict) and not svc.get("namespace"):
                svc["namespace"] = namespace


KIND = Kind(kind="IngressGateway", plural="ingressgateways", singular="ingressgateway",
            consul_kind="ingress-gateway", spec=SPEC, validate_spec=validate, default_spec=default_namespaces)
