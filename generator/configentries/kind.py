"""One config-entry kind as data (`Kind`), and the operations every kind shares.

A `Kind` holds the spec tree (fields.py) plus the few things a tree cannot say: its validation
rules and namespace defaulting (code in the kind's module), how its Consul name and mirroring
namespace are found, and the kind-specific tweaks of the comparison with Consul. The functions
here are what the controller, the webhook and the offline checker call; all are pure.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any, Callable

import jsonpatch

import generator.configentries.fields as F
from generator.base import consulns
from generator.configentries.errors import ConfigEntryInvalid, FieldError, invalid

GROUP = "consul.hashicorp.com"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
SOURCE_KEY = "external-source"
SOURCE_VALUE = "kubernetes"
DATACENTER_KEY = "consul.hashicorp.com/source-datacenter"
DEFAULT_NAMESPACE = "default"
WILDCARD_NAMESPACE = "*"
# Top-level Consul keys the comparison ignores (the reference's cmpopts.IgnoreFields).
IGNORED_TOP = ("Partition", "Namespace", "Meta", "CreateIndex", "ModifyIndex")


@dataclass(frozen=True)
class ConsulMeta:
    """The installation facts validation and namespace choice depend on (reference ConsulMeta)."""

    partitions_enabled: bool = False
    partition: str = ""
    namespaces_enabled: bool = False
    destination_namespace: str = DEFAULT_NAMESPACE
    mirroring: bool = False
    prefix: str = ""

    def target_namespace(self, k8s_namespace: str) -> str:
        """The Consul namespace defaulted into spec fields: mirrored (prefix + k8s ns) or the
        destination namespace."""
        return self.prefix + k8s_namespace if self.mirroring else self.destination_namespace


def _metadata_name(resource: dict) -> str:
    return str((resource.get("metadata") or {}).get("name") or "")


def _k8s_namespace(resource: dict) -> str:
    return str((resource.get("metadata") or {}).get("namespace") or "")


def _no_defaults(spec: dict, namespace: str) -> None:
    """Most kinds have no namespace fields to default."""


Validator = Callable[[dict, ConsulMeta], list[FieldError]]


@dataclass(frozen=True)
class Kind:
    """One CRD kind. `validate_spec` returns the field errors of a resource in the reference's
    order (it may raise ConfigEntryInvalid itself for a Forbidden answer); `default_spec` fills
    empty Consul namespace fields of the spec in place."""

    kind: str                      # ServiceDefaults
    plural: str                    # servicedefaults
    singular: str                  # servicedefaults (the reference's KubeKind, used in messages)
    consul_kind: str               # service-defaults
    spec: F.Field
    validate_spec: Validator
    default_spec: Callable[[dict, str], None] = _no_defaults
    global_resource: bool = False  # lives in Consul's default namespace only
    consul_name_of: Callable[[dict], str] = _metadata_name
    mirroring_ns_of: Callable[[dict], str] = _k8s_namespace
    sends_name: bool = True        # Mesh's entry has no Name
    # Extra top-level Consul keys the resource sets (ServiceIntentions' Namespace).
    top_level: Callable[[dict], dict] = lambda resource: {}
    # Kind-specific reshaping of the canonical spec before comparing (ServiceIntentions' sources).
    normalize: Callable[[dict], dict] = lambda canon: canon
    # Consul keys the resource never sets; Consul holding a value there is a difference.
    consul_only: tuple[str, ...] = ()
    # Namespace of the Consul entry itself when the Go type reports one (PartitionExports: default).
    entry_namespace: Callable[[dict], str] = lambda entry: str(entry.get("Namespace") or "")
    # The only name a resource of the kind may have (`global`, `mesh`), checked by the webhook on CREATE.
    fixed_name: str | None = None
    # The CRD's top description when it is not "<Kind> is the Schema for the <plural> API".
    schema_doc: str = ""

    @property
    def list_kind(self) -> str:
        return self.kind + "List"


def spec_of(resource: dict) -> dict:
    spec = resource.get("spec")
    return spec if isinstance(spec, dict) else {}


def meta(datacenter: str) -> dict[str, str]:
    """The Meta every written entry carries (replaced wholesale on each write)."""
    return {DATACENTER_KEY: datacenter, SOURCE_KEY: SOURCE_VALUE}


def to_consul(kind: Kind, resource: dict, datacenter: str) -> dict[str, Any]:
    """The config entry JSON the controller PUTs to Consul for `resource`.

    Raises fields.SpecValueError for a value the webhook would not have let through (a bad
    duration), naming the field."""
    out: dict[str, Any] = {"Kind": kind.consul_kind}
    if kind.sends_name:
        out["Name"] = kind.consul_name_of(resource)
    out.update(kind.top_level(resource))
    out.update(F.to_consul_fields(kind.spec.fields, spec_of(resource), "spec"))
    out["Meta"] = meta(datacenter)
    out["CreateIndex"] = 0
    out["ModifyIndex"] = 0
    return out


def _canonical_entry(kind: Kind, entry: dict) -> dict[str, Any]:
    canon = kind.normalize(F.canonical_fields(kind.spec.fields, entry))
    for key in kind.consul_only:
        value = F._get_ci(entry, key)
        if value not in (None, "", 0, False, [], {}):
            canon[key] = value
    return canon


def matches_consul(kind: Kind, resource: dict, entry: dict) -> bool:
    """Consul's `entry` already says what `resource` says (so the controller writes nothing).

    As the reference's MatchesConsul: another kind never matches; Partition, Namespace, Meta and
    the indexes are ignored; empty equals absent; durations compare as durations; keys Consul
    adds that the Go type does not know are ignored (it drops them when decoding)."""
    if not isinstance(entry, dict) or F._get_ci(entry, "Kind") != kind.consul_kind:
        return False
    if kind.sends_name and F._get_ci(entry, "Name") != kind.consul_name_of(resource):
        return False
    desired = to_consul(kind, resource, "")
    return _canonical_entry(kind, desired) == _canonical_entry(kind, entry)


def validation_errors(kind: Kind, resource: dict, consul_meta: ConsulMeta) -> list[FieldError]:
    """The field errors of `resource` (after defaulting), in the reference's order.

    A duration the tree cannot parse is reported as an Invalid value at its field (the reference's
    webhook refuses such an object earlier, when decoding it)."""
    bad = _bad_durations(kind.spec, spec_of(resource), "spec")
    return bad + kind.validate_spec(resource, consul_meta)


def validate(kind: Kind, resource: dict, consul_meta: ConsulMeta) -> None:
    """Raise ConfigEntryInvalid with the reference's message when the resource is invalid."""
    errors = validation_errors(kind, resource, consul_meta)
    if errors:
        raise ConfigEntryInvalid(kind.singular, _metadata_name(resource), errors)


def _bad_durations(f: F.Field, value: Any, path: str) -> list[FieldError]:
    out: list[FieldError] = []
    if f.type == "duration" and value is not None:
        try:
            F._nanos(f, value, path)
        except F.SpecValueError as err:
            out.append(invalid(path, value, str(err).split(": ", 1)[1]))
    elif f.type == "object" and isinstance(value, dict):
        for c in f.fields:
            out += _bad_durations(c, value.get(c.name), f"{path}.{c.name}")
    elif f.type == "array" and isinstance(value, list) and f.item:
        for i, v in enumerate(value):
            out += _bad_durations(f.item, v, f"{path}[{i}]")
    elif f.type == "map" and isinstance(value, dict) and f.item:
        for k, v in value.items():
            out += _bad_durations(f.item, v, f"{path}[{k}]")
    return out


def defaulted(kind: Kind, resource: dict, consul_meta: ConsulMeta) -> dict:
    """A copy of `resource` with empty Consul namespace fields filled (only when namespaces are
    enabled), as the webhook's patches leave it; the input is not changed."""
    out = copy.deepcopy(resource)
    if consul_meta.namespaces_enabled and isinstance(out.get("spec"), dict):
        kind.default_spec(out["spec"], consul_meta.target_namespace(_k8s_namespace(resource)))
    return out


def defaulting_patch(kind: Kind, resource: dict, consul_meta: ConsulMeta) -> list[dict]:
    """The JSON Patch operations the webhook returns (e.g. `add /spec/routes/0/destination/namespace`)."""
    return list(jsonpatch.make_patch(resource, defaulted(kind, resource, consul_meta)))


def consul_namespace(kind: Kind, resource: dict, consul_meta: ConsulMeta) -> str:
    """The Consul namespace (`ns` query parameter) of the resource's entry; "" means none.

    The entry's own namespace first (ServiceIntentions' destination.namespace, PartitionExports'
    `default`); then, for non-global kinds and a namespace other than `*`: "" without Consul
    namespaces, prefix + mirroring source with mirroring, else the destination namespace; global
    kinds and `*` keep their own namespace name when Consul namespaces are on."""
    entry_ns = kind.entry_namespace(kind.top_level(resource))
    if entry_ns:
        return entry_ns
    source = kind.mirroring_ns_of(resource)
    if not kind.global_resource and source != WILDCARD_NAMESPACE:
        return consulns.consul_namespace(source, enabled=consul_meta.namespaces_enabled,
                                         destination=consul_meta.destination_namespace,
                                         mirroring=consul_meta.mirroring, prefix=consul_meta.prefix)
    return source if consul_meta.namespaces_enabled else ""


# --- the CustomResourceDefinition ---------------------------------------------------------------

_API_VERSION_DOC = ("APIVersion defines the versioned schema of this representation of an object. Servers should "
                    "convert recognized schemas to the latest internal value, and may reject unrecognized values. "
                    "More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#resources")
_KIND_DOC = ("Kind is a string value representing the REST resource this object represents. Servers may infer this "
             "from the endpoint the client submits requests to. Cannot be updated. In CamelCase. More info: "
             "https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#types-kinds")

STATUS = F.obj("status", "", fields=(
    F.array("conditions", "Conditions indicate the latest available observations of a resource's current state.",
            F.obj(None, "Conditions define a readiness condition for a Consul resource. See: "
                  "https://github.com/kubernetes/community/blob/master/contributors/devel/sig-architecture/"
                  "api-conventions.md#typical-status-properties", fields=(
                      F.string("type", "Type of condition.", required=True),
                      F.string("status", "Status of the condition, one of True, False, Unknown.", required=True),
                      F.string("lastTransitionTime", "LastTransitionTime is the last time the condition "
                               "transitioned from one status to another.", format="date-time"),
                      F.string("reason", "The reason for the condition's last transition."),
                      F.string("message", "A human readable message indicating details about the transition."),
                  ))),
    F.string("lastSyncedTime", "LastSyncedTime is the last time the resource successfully synced with Consul.",
             format="date-time"),
))

PRINTER_COLUMNS = [
    {"description": "The sync status of the resource with Consul",
     "jsonPath": '.status.conditions[?(@.type=="Synced")].status', "name": "Synced", "type": "string"},
    {"description": "The last successful synced time of the resource with Consul",
     "jsonPath": ".status.lastSyncedTime", "name": "Last Synced", "type": "date"},
    {"description": "The age of the resource", "jsonPath": ".metadata.creationTimestamp", "name": "Age", "type": "date"},
]


def open_api_schema(kind: Kind) -> dict[str, Any]:
    """The version's openAPIV3Schema, field for field the reference's."""
    root = F.obj(None, kind.schema_doc or f"{kind.kind} is the Schema for the {kind.plural} API", fields=(
        F.string("apiVersion", _API_VERSION_DOC),
        F.string("kind", _KIND_DOC),
        F.obj("metadata"),
        kind.spec,
        STATUS,
    ))
    return F.schema(root)


def crd(kind: Kind) -> dict[str, Any]:
    """The apiextensions.k8s.io/v1 CustomResourceDefinition of the kind (without chart labels)."""
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{kind.plural}.{GROUP}"},
        "spec": {
            "group": GROUP,
            "names": {"kind": kind.kind, "listKind": kind.list_kind, "plural": kind.plural,
                      "singular": kind.singular},
            "scope": "Namespaced",
            "versions": [{
                "additionalPrinterColumns": PRINTER_COLUMNS,
                "name": VERSION,
                "schema": {"openAPIV3Schema": open_api_schema(kind)},
                "served": True,
                "storage": True,
                "subresources": {"status": {}},
            }],
        },
    }
