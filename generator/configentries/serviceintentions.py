"""ServiceIntentions → Consul `service-intentions`: who may call the destination service, as L4
actions or L7 (HTTP) permissions.

Unlike the other kinds, the Consul entry is named after `spec.destination.name` (not
metadata.name) and lives in the Consul namespace `spec.destination.namespace` (the webhook fills it
when Consul namespaces are on); that namespace is also the mirroring source. Consul stores the
sources sorted by precedence and adds `Precedence`, `Type` and legacy fields to each, so the
comparison ignores those and compares the sources in any order.
"""

from __future__ import annotations

import json
from typing import Any

import generator.configentries.fields as F
import generator.configentries.shared as S
from generator.configentries.errors import FieldError, invalid, required
from generator.configentries.kind import ConsulMeta, Kind, spec_of

ACTIONS = ("allow", "deny")
METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "CONNECT", "OPTIONS", "TRACE")
# Keys Consul fills in per source; the reference's comparison ignores them (the legacy ones are not
# in the tree, so the canonical form drops them already).
SERVER_SOURCE_KEYS = ("Precedence", "Type")

HEADER = F.obj(None, "", struct=True, fields=(
    F.string("name", "Name is the name of the header to match.", always=True),
    F.boolean("present", "Present matches if the header with the given name is present with any value."),
    F.string("exact", "Exact matches if the header with the given name is this value."),
    F.string("prefix", "Prefix matches if the header with the given name has this prefix."),
    F.string("suffix", "Suffix matches if the header with the given name has this suffix."),
    F.string("regex", "Regex matches if the header with the given name matches this pattern."),
    F.boolean("invert", "Invert inverts the logic of the match."),
))
HTTP = F.obj("http", "HTTP is a set of HTTP-specific authorization criteria.", consul="HTTP", fields=(
    F.string("pathExact", "PathExact is the exact path to match on the HTTP request path."),
    F.string("pathPrefix", "PathPrefix is the path prefix to match on the HTTP request path."),
    F.string("pathRegex", "PathRegex is the regular expression to match on the HTTP request path."),
    F.array("header", "Header is a set of criteria that can match on HTTP request headers. If more than one is "
            "configured all must match for the overall match to apply.", HEADER),
    F.array("methods", "Methods is a list of HTTP methods for which this match applies. If unspecified all HTTP "
            "methods are matched. If provided the names must be a valid method.", F.string(None)),
))
PERMISSION = F.obj(None, "", fields=(
    F.string("action", "Action is one of \"allow\" or \"deny\" for the action that should be taken if this "
             "permission matches a request.", always=True),
    HTTP,
))
SOURCE = F.obj(None, "", fields=(
    F.string("name", "Name is the source of the intention. This is the name of a Consul service. The service "
             "doesn't need to be registered.", always=True),
    F.string("namespace", "Namespace is the namespace for the Name parameter."),
    F.string("partition", "Partition is the Admin Partition for the Name parameter."),
    F.string("action", "Action is required for an L4 intention, and should be set to one of \"allow\" or \"deny\" for "
             "the action that should be taken if this intention matches a request."),
    F.array("permissions", "Permissions is the list of all additional L7 attributes that extend the intention match "
            "criteria. Permission precedence is applied top to bottom. For any given request the first permission to "
            "match in the list is terminal and stops further evaluation. As with L4 intentions, traffic that fails "
            "to match any of the provided permissions in this intention will be subject to the default intention "
            "behavior is defined by the default ACL policy. This should be omitted for an L4 intention as it is "
            "mutually exclusive with the Action field.", PERMISSION),
    F.string("description", "Description for the intention. This is not used by Consul, but is presented in API "
             "responses to assist tooling."),
    # The Go API client always sends these (no omitempty); Consul sets them itself.
    F.integer("precedence", consul="Precedence", always=True, crd=False),
    F.string("type", consul="Type", always=True, crd=False),
))
SPEC = F.obj("spec", "ServiceIntentionsSpec defines the desired state of ServiceIntentions", struct=True, fields=(
    F.obj("destination", "Destination is the intention destination that will have the authorization granted to.",
          struct=True, consul=None, fields=(
              F.string("name", "Name is the destination of all intentions defined in this config entry. This may be "
                       "set to the wildcard character (*) to match all services that don't otherwise have intentions "
                       "defined."),
              F.string("namespace", "Namespace specifies the namespace the config entry will apply to. This may be "
                       "set to the wildcard character (*) to match all services in all namespaces that don't "
                       "otherwise have intentions defined."),
          )),
    F.array("sources", "Sources is the list of all intention sources and the authorization granted to those sources. "
            "The order of this list does not matter, but out of convenience Consul will always store this reverse "
            "sorted by intention precedence, as that is the order that they will be evaluated at enforcement time.",
            SOURCE, always=True),
))


def _destination(resource: dict) -> dict:
    return S.as_dict(spec_of(resource).get("destination"))


def destination_name(resource: dict) -> str:
    """The Consul entry's name."""
    return str(_destination(resource).get("name") or "")


def destination_namespace(resource: dict) -> str:
    """The Consul entry's namespace (and the mirroring source)."""
    return str(_destination(resource).get("namespace") or "")


def _top_level(resource: dict) -> dict[str, Any]:
    namespace = destination_namespace(resource)
    return {"Namespace": namespace} if namespace else {}


def _normalize(canon: dict) -> dict:
    """Sources without what Consul adds, in a fixed order (the reference's SortSlices)."""
    sources = canon.get("Sources")
    if not sources:
        return canon
    cleaned = []
    for source in sources:
        source = {k: v for k, v in (source or {}).items() if k not in SERVER_SOURCE_KEYS}
        cleaned.append(source)
    cleaned.sort(key=lambda s: json.dumps(s, sort_keys=True))
    return {**canon, "Sources": cleaned}


# --- validation ----------------------------------------------------------------------------------

def _action(value: Any, path: str) -> list[FieldError]:
    action = value or ""
    if action not in ACTIONS:
        return [invalid(f"{path}.action", action, S.not_in_slice(ACTIONS))]
    return []


def _validate_http(http: dict, path: str) -> list[FieldError]:
    errors = []
    parts = 0
    if http.get("pathRegex"):
        parts += 1
    for key in ("pathPrefix", "pathExact"):
        if http.get(key):
            parts += 1
            if S.bad_path_prefix(http[key]):
                errors.append(invalid(f"{path}.{key}", http[key], "must begin with a '/'"))
    if parts > 1:
        errors.append(invalid(path, F.dump(HTTP, http),
                              "at most only one of pathExact, pathPrefix, or pathRegex may be configured."))
    found: list[Any] = []
    for k, method in enumerate(S.as_list(http.get("methods"))):
        if method not in METHODS:
            errors.append(invalid(f"{path}.methods[{k}]", method, S.not_in_slice(METHODS)))
        if method in found:
            errors.append(invalid(f"{path}.methods[{k}]", method, "method listed more than once."))
        found.append(method)
    for k, header in enumerate(S.as_list(http.get("header"))):
        header = S.as_dict(header)
        parts = int(bool(header.get("present"))) + sum(
            1 for key in ("exact", "regex", "prefix", "suffix") if header.get(key))
        if parts > 1:
            errors.append(invalid(f"{path}.header[{k}]", F.dump(HEADER, header),
                                  "at most only one of exact, prefix, suffix, regex, or present may be configured."))
    return errors


def validate(resource: dict, meta: ConsulMeta) -> list[FieldError]:
    spec = spec_of(resource)
    sources = [S.as_dict(s) for s in S.as_list(spec.get("sources"))]
    errors = []
    if not sources:
        errors.append(required("spec.sources", "at least one source must be specified"))
    for i, source in enumerate(sources):
        path = f"spec.sources[{i}]"
        permissions = S.as_list(source.get("permissions"))
        if permissions and source.get("action"):
            errors.append(invalid(path, F.dump(SOURCE, source), "action and permissions are mutually exclusive and "
                                  "only one of them can be specified"))
        elif not permissions:
            errors += _action(source.get("action"), path)
        else:
            for j, permission in enumerate(permissions):
                permission = S.as_dict(permission)
                here = f"{path}.permissions[{j}]"
                errors += _action(permission.get("action"), here)
                if isinstance(permission.get("http"), dict):
                    errors += _validate_http(permission["http"], here)
    if not meta.namespaces_enabled:
        if destination_namespace(resource):
            errors.append(invalid("spec.destination.namespace", destination_namespace(resource),
                                  S.NAMESPACES_OFF + "destination.namespace"))
        for i, source in enumerate(sources):
            if source.get("namespace"):
                errors.append(invalid(f"spec.sources[{i}].namespace", source["namespace"],
                                      S.NAMESPACES_OFF + "source.namespace"))
    if not meta.partitions_enabled:
        for i, source in enumerate(sources):
            if source.get("partition"):
                errors.append(invalid(f"spec.sources[{i}].partition", source["partition"],
                                      S.PARTITIONS_OFF + "source.partition"))
    return errors


def default_namespace(spec: dict, namespace: str) -> None:
    """Only `spec.destination.namespace` is defaulted (sources never are)."""
    destination = spec.get("destination")
    if destination is None:
        destination = spec["destination"] = {}
    if isinstance(destination, dict) and not destination.get("namespace"):
        destination["namespace"] = namespace


KIND = Kind(kind="ServiceIntentions", plural="serviceintentions", singular="serviceintentions",
            consul_kind="service-intentions", spec=SPEC, validate_spec=validate, default_spec=default_namespace,
            consul_name_of=destination_name, mirroring_ns_of=destination_namespace, top_level=_top_level,
            normalize=_normalize)
