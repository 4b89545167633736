"""ServiceRouter → Consul `service-router`: L7 routes (path, header, query and method matches) to
destination services, subsets and namespaces, with retries, timeouts and header rewrites."""

from __future__ import annotations

from typing import Any

import generator.configentries.fields as F
import generator.configentries.shared as S
from generator.configentries.errors import FieldError, invalid
from generator.configentries.kind import ConsulMeta, Kind, spec_of

HEADER = F.obj(None, "", struct=True, fields=(
    F.string("name", "Name is the name of the header to match.", required=True, always=True),
    F.boolean("present", "Present will match if the header with the given name is present with any value."),
    F.string("exact", "Exact will match if the header with the given name is this value."),
    F.string("prefix", "Prefix will match if the header with the given name has this prefix."),
    F.string("suffix", "Suffix will match if the header with the given name has this suffix."),
    F.string("regex", "Regex will match if the header with the given name matches this pattern."),
    F.boolean("invert", "Invert inverts the logic of the match."),
))
QUERY_PARAM = F.obj(None, "", struct=True, fields=(
    F.string("name", "Name is the name of the query parameter to match on.", required=True, always=True),
    F.boolean("present", "Present will match if the query parameter with the given name is present with any value."),
    F.string("exact", "Exact will match if the query parameter with the given name is this value."),
    F.string("regex", "Regex will match if the query parameter with the given name matches this pattern."),
))
HTTP_MATCH = F.obj("http", "HTTP is a set of http-specific match criteria.", consul="HTTP", fields=(
    F.string("pathExact", "PathExact is an exact path to match on the HTTP request path."),
    F.string("pathPrefix", "PathPrefix is a path prefix to match on the HTTP request path."),
    F.string("pathRegex", "PathRegex is a regular expression to match on the HTTP request path."),
    F.array("header", "Header is a set of criteria that can match on HTTP request headers. If more than one is "
            "configured all must match for the overall match to apply.", HEADER),
    F.array("queryParam", "QueryParam is a set of criteria that can match on HTTP query parameters. If more than one "
            "is configured all must match for the overall match to apply.", QUERY_PARAM),
    F.array("methods", "Methods is a list of HTTP methods for which this match applies. If unspecified all http "
            "methods are matched.", F.string(None)),
))
DESTINATION = F.obj("destination", "Destination controls how to proxy the matching request(s) to a service.", fields=(
    F.string("service", "Service is the service to resolve instead of the default service. If empty then the "
             "default service name is used."),
    F.string("serviceSubset", "ServiceSubset is a named subset of the given service to resolve instead of the one "
             "defined as that service's DefaultSubset. If empty, the default subset is used."),
    F.string("namespace", "Namespace is the Consul namespace to resolve the service from instead of the current "
             "namespace. If empty the current namespace is assumed."),
    F.string("prefixRewrite", "PrefixRewrite defines how to rewrite the HTTP request path before proxying it to its "
             "final destination. This requires that either match.http.pathPrefix or match.http.pathExact be "
             "configured on this route."),
    F.duration("requestTimeout", "RequestTimeout is the total amount of time permitted for the entire downstream "
               "request (and retries) to be processed."),
    F.integer("numRetries", "NumRetries is the number of times to retry the request when a retryable result occurs",
              fmt="int32"),
    F.boolean("retryOnConnectFailure", "RetryOnConnectFailure allows for connection failure errors to trigger a "
              "retry."),
    F.array("retryOnStatusCodes", "RetryOnStatusCodes is a flat list of http response status codes that are "
            "eligible for retry.", F.integer(None, fmt="int32")),
    S.header_modifiers("requestHeaders", "Allow HTTP header manipulation to be configured."),
    S.header_modifiers("responseHeaders", "HTTPHeaderModifiers is a set of rules for HTTP header modification that "
                       "should be performed by proxies as the request passes through them. It can operate on either "
                       "request or response headers depending on the context in which it is used."),
))
ROUTE = F.obj(None, "", struct=True, fields=(
    F.obj("match", "Match is a set of criteria that can match incoming L7 requests. If empty or omitted it acts as "
          "a catch-all.", fields=(HTTP_MATCH,)),
    DESTINATION,
))
SPEC = F.obj("spec", "ServiceRouterSpec defines the desired state of ServiceRouter", struct=True, fields=(
    F.array("routes", "Routes are the list of routes to consider when processing L7 requests. The first route to "
            "match in the list is terminal and stops further evaluation. Traffic that fails to match any of the "
            "provided routes will be routed to the default service.", ROUTE),
))


def _set(*values: Any) -> int:
    """The reference's numNonZeroValue: how many of the strings/bools are set."""
    return sum(1 for v in values if v)


def _validate_http(http: dict, path: str) -> list[FieldError]:
    errors = []
    if _set(http.get("pathExact"), http.get("pathPrefix"), http.get("pathRegex")) > 1:
        errors.append(invalid(path, F.dump(HTTP_MATCH, http),
                              "at most only one of pathExact, pathPrefix, or pathRegex may be configured"))
    for key in ("pathExact", "pathPrefix"):
        if S.bad_path_prefix(http.get(key)):
            errors.append(invalid(f"{path}.{key}", http[key], "must begin with a '/'"))
    for i, h in enumerate(S.as_list(http.get("header"))):
        h = S.as_dict(h)
        if _set(h.get("exact"), h.get("prefix"), h.get("suffix"), h.get("regex"), h.get("present")) > 1:
            errors.append(invalid(f"{path}.header[{i}]", F.dump(HEADER, h),
                                  "at most only one of exact, prefix, suffix, regex, or present may be configured"))
    for i, q in enumerate(S.as_list(http.get("queryParam"))):
        q = S.as_dict(q)
        if _set(q.get("exact"), q.get("regex"), q.get("present")) > 1:
            errors.append(invalid(f"{path}.queryParam[{i}]", F.dump(QUERY_PARAM, q),
                                  "at most only one of exact, regex, or present may be configured"))
    return errors


def _validate_route(route: dict, path: str) -> list[FieldError]:
    errors = []
    match, destination = route.get("match"), route.get("destination")
    http = match.get("http") if isinstance(match, dict) else None
    if isinstance(destination, dict) and destination.get("prefixRewrite"):
        if not isinstance(http, dict) or not (http.get("pathPrefix") or http.get("pathExact")):
            errors.append(invalid(path, F.dump(ROUTE, route), "destination.prefixRewrite requires that either "
                                  "match.http.pathPrefix or match.http.pathExact be configured on this route"))
    if isinstance(http, dict):
        errors += _validate_http(http, f"{path}.match.http")
    return errors


def _routes(spec: dict) -> list[dict]:
    return [S.as_dict(r) for r in S.as_list(spec.get("routes"))]


def validate(resource: dict, meta: ConsulMeta) -> list[FieldError]:
    routes = _routes(spec_of(resource))
    errors = []
    for i, route in enumerate(routes):
        errors += _validate_route(route, f"spec.routes[{i}]")
    if not meta.namespaces_enabled:
        for i, route in enumerate(routes):
            destination = route.get("destination")
            if isinstance(destination, dict) and destination.get("namespace"):
                errors.append(invalid(f"spec.routes[{i}].destination.namespace", destination["namespace"],
                                      S.NAMESPACES_OFF + "destination.namespace"))
    return errors


def default_namespaces(spec: dict, namespace: str) -> None:
    """Routes that have a destination get its empty namespace filled; routes without one stay so."""
    for route in S.as_list(spec.get("routes")):
        destination = route.get("destination") if isinstance(route, dict) else None
        if isinstance(destination, dict) and not destination.get("namespace"):
            destination["namespace"] = namespace


KIND = Kind(kind="ServiceRouter", plural="servicerouters", singular="servicerouter",
            consul_kind="service-router", spec=SPEC, validate_spec=validate, default_spec=default_namespaces)
