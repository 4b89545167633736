"""The ten consul.hashicorp.com/v1alpha1 config-entry kinds as data, and what follows from them.

Each kind's module declares its spec once (a field tree, fields.py) plus the rules a tree cannot
hold (validation, namespace defaulting). From that come the CRD schema (`kind.crd`), the Consul
JSON the controller writes (`to_consul`), the "Consul already has this" test (`matches_consul`),
the webhook's validation (`validate`, messages verbatim from the reference) and defaulting
(`defaulting_patch` for the webhook, `defaulted` for the offline checker), and the Consul
namespace of an entry (`consul_namespace`). Everything here is pure: no I/O.

Usage:
    kind = KINDS["ServiceDefaults"]            # or kind_of(resource)
    entry = to_consul(kind, resource, "dc1")
    if not matches_consul(kind, resource, consul_entry): ...
    validate(kind, defaulted(kind, resource, meta), meta)   # raises ConfigEntryInvalid
"""

from __future__ import annotations

from generator.configentries import (ingressgateway, mesh, partitionexports, proxydefaults, servicedefaults,
                                     serviceintentions, serviceresolver, servicerouter, servicesplitter,
                                     terminatinggateway)
from generator.configentries.errors import ConfigEntryInvalid, FieldError
from generator.configentries.kind import (API_VERSION, DATACENTER_KEY, GROUP, SOURCE_KEY, SOURCE_VALUE, VERSION,
                                          ConsulMeta, Kind, consul_namespace, crd, defaulted, defaulting_patch,
                                          matches_consul, to_consul, validate, validation_errors)

ALL: tuple[Kind, ...] = (
    servicedefaults.KIND,
    proxydefaults.KIND,
    mesh.KIND,
    partitionexports.KIND,
    terminatinggateway.KIND,
    servicesplitter.KIND,
    servicerouter.KIND,
    serviceresolver.KIND,
    ingressgateway.KIND,
    serviceintentions.KIND,
)
KINDS: dict[str, Kind] = {k.kind: k for k in ALL}
BY_PLURAL: dict[str, Kind] = {k.plural: k for k in ALL}
BY_SINGULAR: dict[str, Kind] = {k.singular: k for k in ALL}


class UnknownKind(ValueError):
    """A resource that is not one of the config-entry kinds."""


def kind_of(resource: dict) -> Kind:
    """The Kind of a resource by its apiVersion and kind (`consul.hashicorp.com/v1alpha1`)."""
    api, name = resource.get("apiVersion"), resource.get("kind")
    if api != API_VERSION or name not in KINDS:
        known = ", ".join(sorted(KINDS))
        raise UnknownKind(f"apiVersion {api!r} kind {name!r} is not a config entry ({API_VERSION}: {known})")
    return KINDS[str(name)]


__all__ = ["ALL", "API_VERSION", "BY_PLURAL", "BY_SINGULAR", "ConfigEntryInvalid", "ConsulMeta", "DATACENTER_KEY",
           "FieldError", "GROUP", "KINDS", "Kind", "SOURCE_KEY", "SOURCE_VALUE", "UnknownKind", "VERSION",
           "consul_namespace", "crd", "defaulted", "defaulting_patch", "kind_of", "matches_consul", "to_consul",
           "validate", "validation_errors"]
