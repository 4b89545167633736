"""PartitionExports → Consul `partition-exports` (Consul Enterprise 1.11 beta): the services a
partition exports to other partitions. One per cluster, named after the controller's partition."""

from __future__ import annotations

import generator.configentries.fields as F
import generator.configentries.shared as S
from generator.configentries.errors import ConfigEntryInvalid, FieldError, GoValue, invalid
from generator.configentries.kind import DEFAULT_NAMESPACE, ConsulMeta, Kind, spec_of

SPEC = F.obj("spec", "PartitionExportsSpec defines the desired state of PartitionExports", struct=True, fields=(
    F.array("services", "Services is a list of services to be exported and the list of partitions to expose them to.",
            F.obj(None, "ExportedService manages the exporting of a service in the local partition to other "
                  "partitions.", struct=True, fields=(
                      F.string("name", "Name is the name of the service to be exported.", always=True),
                      F.string("namespace", "Namespace is the namespace to export the service from."),
                      F.array("consumers", "Consumers is a list of downstream consumers of the service to be exported.",
                              F.obj(None, "ServiceConsumer represents a downstream consumer of the service to be "
                                    "exported.", struct=True, fields=(
                                        F.string("partition", "Partition is the admin partition to export the service "
                                                 "to.", always=True),
                                    )), always=True),
                  )), always=True),
))


def validate(resource: dict, meta: ConsulMeta) -> list[FieldError]:
    name = str((resource.get("metadata") or {}).get("name") or "")
    if not meta.partitions_enabled:
        raise ConfigEntryInvalid("partitionexports", name, forbidden="Consul Enterprise Admin Partitions must be "
                                 "enabled to create PartitionExports")
    errors = []
    if name != meta.partition:
        errors.append(invalid("name", name, "partitionexports resource name must be the same name as the partition, "
                              f'"{meta.partition}"'))
    raw_services = spec_of(resource).get("services")
    services = S.as_list(raw_services)
    if not services:
        errors.append(invalid("spec.services", GoValue(_go_slice("ExportedService", raw_services)),
                              "at least one service must be exported"))
    for i, svc in enumerate(services):
        raw_consumers = S.as_dict(svc).get("consumers")
        if not S.as_list(raw_consumers):
            errors.append(invalid(f"spec.services[{i}]", GoValue(_go_slice("ServiceConsumer", raw_consumers)),
                                  "service must have at least 1 consumer."))
    return errors


def _go_slice(type_: str, raw: object) -> str:
    """Go's `%#v` of the empty slice a decoded object holds: nil when absent, `{}` when `[]`."""
    return f"[]v1alpha1.{type_}{{}}" if isinstance(raw, list) else f"[]v1alpha1.{type_}(nil)"


KIND = Kind(kind="PartitionExports", plural="partitionexports", singular="partitionexports",
            consul_kind="partition-exports", spec=SPEC, validate_spec=validate, global_resource=True,
            mirroring_ns_of=lambda r: DEFAULT_NAMESPACE, entry_namespace=lambda entry: DEFAULT_NAMESPACE)
