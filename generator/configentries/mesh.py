"""Mesh → Consul `mesh`: mesh-wide settings (one resource, named `mesh`; the Consul entry has no
Name)."""

from __future__ import annotations

import generator.configentries.fields as F
from generator.configentries.errors import FieldError
from generator.configentries.kind import DEFAULT_NAMESPACE, ConsulMeta, Kind

SPEC = F.obj("spec", "MeshSpec defines the desired state of Mesh", struct=True, fields=(
    F.obj("transparentProxy", "TransparentProxyMeshConfig controls configuration specific to proxies in "
          "\"transparent\" mode. Added in v1.10.0.", struct=True, fields=(
        F.boolean("meshDestinationsOnly", "MeshDestinationsOnly determines whether sidecar proxies operating in "
                  "\"transparent\" mode can proxy traffic to IP addresses not registered in Consul's catalog. If "
                  "enabled, traffic will only be proxied to upstreams with service registrations in the catalog.",
                  always=True),
    )),
))


def validate(resource: dict, meta: ConsulMeta) -> list[FieldError]:
    """Mesh has no spec rules (the webhook only checks its name and that it is the only one)."""
    return []


KIND = Kind(kind="Mesh", plural="meshes", singular="mesh", consul_kind="mesh", spec=SPEC, validate_spec=validate,
            global_resource=True, mirroring_ns_of=lambda r: DEFAULT_NAMESPACE, sends_name=False, fixed_name="mesh",
            schema_doc="Mesh is the Schema for the mesh API")
