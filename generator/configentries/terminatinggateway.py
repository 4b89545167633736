"""TerminatingGateway → Consul `terminating-gateway`: the services a terminating gateway fronts."""

from __future__ import annotations

import generator.configentries.fields as F
import generator.configentries.shared as S
from generator.configentries.errors import FieldError, invalid
from generator.configentries.kind import ConsulMeta, Kind, spec_of

SERVICE = F.obj(None, "A LinkedService is a service represented by a terminating gateway", struct=True, fields=(
    F.string("namespace", "The namespace the service is registered in."),
    F.string("name", "Name is the name of the service, as defined in Consul's catalog."),
    F.string("caFile", "CAFile is the optional path to a CA certificate to use for TLS connections from the gateway "
             "to the linked service.", consul="CAFile"),
    F.string("certFile", "CertFile is the optional path to a client certificate to use for TLS connections from the "
             "gateway to the linked service."),
    F.string("keyFile", "KeyFile is the optional path to a private key to use for TLS connections from the gateway "
             "to the linked service."),
    F.string("sni", "SNI is the optional name to specify during the TLS handshake with a linked service.",
             consul="SNI"),
))
SPEC = F.obj("spec", "TerminatingGatewaySpec defines the desired state of TerminatingGateway", struct=True, fields=(
    F.array("services", "Services is a list of service names represented by the terminating gateway.", SERVICE),
))


def _services(spec: dict) -> list[dict]:
    return [S.as_dict(s) for s in S.as_list(spec.get("services"))]


def validate(resource: dict, meta: ConsulMeta) -> list[FieldError]:
    services = _services(spec_of(resource))
    errors = []
    for i, svc in enumerate(services):
        if bool(svc.get("certFile")) != bool(svc.get("keyFile")):
            errors.append(invalid(f"spec.services[{i}]", F.dump(SERVICE, svc),
                                  "if certFile or keyFile is set, the other must also be set"))
    if not meta.namespaces_enabled:
        for i, svc in enumerate(services):
            if svc.get("namespace"):
                errors.append(invalid(f"spec.services[{i}].namespace", svc["namespace"],
                                      S.NAMESPACES_OFF + "service.namespace"))
    return errors


def default_namespaces(spec: dict, namespace: str) -> None:
    for svc in S.as_list(spec.get("services")):
        if isinstance(svc, dict) and not svc.get("namespace"):
            svc["namespace"] = namespace


KIND = Kind(kind="TerminatingGateway", plural="terminatinggateways", singular="terminatinggateway",
            consul_kind="terminating-gateway", spec=SPEC, validate_spec=validate, default_spec=default_namespaces)
