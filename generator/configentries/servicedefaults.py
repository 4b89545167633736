"""ServiceDefaults → Consul `service-defaults`: a service's protocol, mesh gateway mode, expose
paths, external SNI and upstream settings."""

from __future__ import annotations

import generator.configentries.fields as F
import generator.configentries.shared as S
from generator.configentries.errors import FieldError, invalid
from generator.configentries.kind import ConsulMeta, Kind, spec_of

PROTOCOLS = ("tcp", "http", "http2", "grpc")


def _upstream(name: str | None, doc: str) -> F.Field:
    return F.obj(name, doc, fields=(
        F.string("name", "Name is only accepted within a service-defaults config entry."),
        F.string("namespace", "Namespace is only accepted within a service-defaults config entry."),
        F.string("partition", "Partition is only accepted within a service-defaults config entry."),
        F.string("envoyListenerJSON", "EnvoyListenerJSON is a complete override (\"escape hatch\") for the upstream's "
                 "listener. Note: This escape hatch is NOT compatible with the discovery chain and will be ignored if "
                 "a discovery chain is active."),
        F.string("envoyClusterJSON", "EnvoyClusterJSON is a complete override (\"escape hatch\") for the upstream's "
                 "cluster. The Connect client TLS certificate and context will be injected overriding any TLS "
                 "settings present. Note: This escape hatch is NOT compatible with the discovery chain and will be "
                 "ignored if a discovery chain is active."),
        F.string("protocol", "Protocol describes the upstream's service protocol. Valid values are \"tcp\", \"http\" "
                 "and \"grpc\". Anything else is treated as tcp. This enables protocol aware features like "
                 "per-request metrics and connection pooling, tracing, routing etc."),
        F.integer("connectTimeoutMs", "ConnectTimeoutMs is the number of milliseconds to timeout making a new "
                  "connection to this upstream. Defaults to 5000 (5 seconds) if not set."),
        F.obj("limits", "Limits are the set of limits that are applied to the proxy for a specific upstream of a "
              "service instance.", fields=(
                  F.integer("maxConnections", "MaxConnections is the maximum number of connections the local proxy "
                            "can make to the upstream service.", nullable=True, always=True),
                  F.integer("maxPendingRequests", "MaxPendingRequests is the maximum number of requests that will be "
                            "queued waiting for an available connection. This is mostly applicable to HTTP/1.1 "
                            "clusters since all HTTP/2 requests are streamed over a single connection.",
                            nullable=True, always=True),
                  F.integer("maxConcurrentRequests", "MaxConcurrentRequests is the maximum number of in-flight "
                            "requests that will be allowed to the upstream cluster at a point in time. This is mostly "
                            "applicable to HTTP/2 clusters since all HTTP/1.1 requests are limited by MaxConnections.",
                            nullable=True, always=True),
              )),
        F.obj("passiveHealthCheck", "PassiveHealthCheck configuration determines how upstream proxy instances will "
              "be monitored for removal from the load balancing pool.", fields=(
                  F.duration("interval", "Interval between health check analysis sweeps. Each sweep may remove hosts "
                             "or return hosts to the pool.", nanos=True),
                  F.integer("maxFailures", "MaxFailures is the count of consecutive failures that results in a host "
                            "being removed from the pool.", fmt="int32", always=True),
              )),
        S.mesh_gateway("MeshGatewayConfig controls how Mesh Gateways are configured and used."),
    ))


SPEC = F.obj("spec", "ServiceDefaultsSpec defines the desired state of ServiceDefaults", struct=True, fields=(
    F.string("protocol", "Protocol sets the protocol of the service. This is used by Connect proxies for things like "
             "observability features and to unlock usage of the service-splitter and service-router config entries "
             "for a service."),
    S.mesh_gateway("MeshGateway controls the default mesh gateway configuration for this service."),
    S.expose(),
    F.string("externalSNI", "ExternalSNI is an optional setting that allows for the TLS SNI value to be changed to a "
             "non-connect value when federating with an external system."),
    S.transparent_proxy(),
    S.mode(),
    F.obj("upstreamConfig", "UpstreamConfig controls default configuration settings that apply across all upstreams, "
          "and per-upstream configuration overrides. Note that per-upstream configuration applies across all "
          "federated datacenters to the pairing of source and upstream destination services.", fields=(
              _upstream("defaults", "Defaults contains default configuration for all upstreams of a given service. "
                        "The name field must be empty."),
              F.array("overrides", "Overrides is a slice of per-service configuration. The name field is required.",
                      _upstream(None, "")),
          )),
))


def _validate_upstream(upstream: dict, path: str, default: bool, meta: ConsulMeta) -> list[FieldError]:
    errors = []
    name = upstream.get("name") or ""
    if default and name:
        errors.append(invalid(f"{path}.name", name, 'upstream.name for a default upstream must be ""'))
    if not default and not name:
        errors.append(invalid(f"{path}.name", name, 'upstream.name for an override upstream cannot be ""'))
    partition = upstream.get("partition") or ""
    if partition and not meta.partitions_enabled:
        errors.append(invalid(f"{path}.partition", partition, S.PARTITIONS_OFF + "upstream.partition"))
    return errors + S.validate_mesh_gateway(upstream.get("meshGateway"), f"{path}.meshGateway")


def validate(resource: dict, meta: ConsulMeta) -> list[FieldError]:
    spec = spec_of(resource)
    errors = []
    protocol = spec.get("protocol") or ""
    if protocol and protocol not in PROTOCOLS:
        errors.append(invalid("spec.protocol", protocol, S.not_in_slice(PROTOCOLS)))
    errors += S.validate_mesh_gateway(spec.get("meshGateway"), "spec.meshGateway")
    errors += S.validate_transparent_proxy(spec.get("transparentProxy"), "spec.transparentProxy")
    errors += S.validate_mode(spec, "spec.mode")
    upstreams = spec.get("upstreamConfig")
    if isinstance(upstreams, dict):
        if isinstance(upstreams.get("defaults"), dict):
            errors += _validate_upstream(upstreams["defaults"], "spec.upstreamConfig.defaults", True, meta)
        for i, override in enumerate(S.as_list(upstreams.get("overrides"))):
            if isinstance(override, dict):
                errors += _validate_upstream(override, f"spec.upstreamConfig.overrides[{i}]", False, meta)
    return errors + S.validate_expose(spec.get("expose"), "spec.expose")


KIND = Kind(kind="ServiceDefaults", plural="servicedefaults", singular="servicedefaults",
            consul_kind="service-defaults", spec=SPEC, validate_spec=validate, consul_only=("Mode",))
