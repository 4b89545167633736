"""ServiceResolver → Consul `service-resolver`: a service's subsets, redirect, failover, connect
timeout and load balancing.

Failover entries are a map; Go iterates it in random order, so the reference's messages for several
keys have no stable order. Here keys are checked in sorted order (one of Go's possible orders).
The redirect and failover namespaces are never defaulted (the reference's DefaultNamespaceFields
is empty for this kind).
"""

from __future__ import annotations

from typing import Any

import generator.configentries.fields as F
import generator.configentries.shared as S
from generator.configentries.errors import FieldError, invalid
from generator.configentries.gofmt import DurationError, parse_duration
from generator.configentries.kind import ConsulMeta, Kind, spec_of

HASH_POLICY_FIELDS = ("header", "cookie", "query_parameter")

SUBSET = F.obj(None, "", struct=True, fields=(
    F.string("filter", "Filter is the filter expression to be used for selecting instances of the requested service. "
             "If empty all healthy instances are returned. This expression can filter on the same selectors as the "
             "Health API endpoint."),
    F.boolean("onlyPassing", "OnlyPassing specifies the behavior of the resolver's health check interpretation. If "
              "this is set to false, instances with checks in the passing as well as the warning states will be "
              "considered healthy. If this is set to true, only instances with checks in the passing state will be "
              "considered healthy."),
))
REDIRECT = F.obj("redirect", "Redirect when configured, all attempts to resolve the service this resolver defines "
                 "will be substituted for the supplied redirect EXCEPT when the redirect has already been applied. "
                 "When substituting the supplied redirect, all other fields besides Kind, Name, and Redirect will be "
                 "ignored.", fields=(
                     F.string("service", "Service is a service to resolve instead of the current service."),
                     F.string("serviceSubset", "ServiceSubset is a named subset of the given service to resolve "
                              "instead of one defined as that service's DefaultSubset If empty the default subset is "
                              "used."),
                     F.string("namespace", "Namespace is the namespace to resolve the service from instead of the "
                              "current one."),
                     F.string("datacenter", "Datacenter is the datacenter to resolve the service from instead of the "
                              "current one."),
                 ))
FAILOVER = F.obj(None, "", struct=True, fields=(
    F.string("service", "Service is the service to resolve instead of the default as the failover group of instances "
             "during failover."),
    F.string("serviceSubset", "ServiceSubset is the named subset of the requested service to resolve as the failover "
             "group of instances. If empty the default subset for the requested service is used."),
    F.string("namespace", "Namespace is the namespace to resolve the requested service from to form the failover "
             "group of instances. If empty the current namespace is used."),
    F.array("datacenters", "Datacenters is a fixed list of datacenters to try during failover.", F.string(None)),
))
COOKIE_CONFIG = F.obj("cookieConfig", "CookieConfig contains configuration for the \"cookie\" hash policy type.",
                      fields=(
                          F.boolean("session", "Session determines whether to generate a session cookie with no "
                                    "expiration."),
                          F.duration("ttl", "TTL is the ttl for generated cookies. Cannot be specified for session "
                                     "cookies.", consul="TTL", nanos=True),
                          F.string("path", "Path is the path to set for the cookie."),
                      ))
HASH_POLICY = F.obj(None, "", struct=True, fields=(
    F.string("field", "Field is the attribute type to hash on. Must be one of \"header\", \"cookie\", or "
             "\"query_parameter\". Cannot be specified along with sourceIP."),
    F.string("fieldValue", "FieldValue is the value to hash. ie. header name, cookie name, URL query parameter name "
             "Cannot be specified along with sourceIP."),
    COOKIE_CONFIG,
    F.boolean("sourceIP", "SourceIP determines whether the hash should be of the source IP rather than of a field and "
              "field value. Cannot be specified along with field or fieldValue."),
    F.boolean("terminal", "Terminal will short circuit the computation of the hash when multiple hash policies are "
              "present. If a hash is computed when a Terminal policy is evaluated, then that hash will be used and "
              "subsequent hash policies will be ignored."),
))
LOAD_BALANCER = F.obj("loadBalancer", "LoadBalancer determines the load balancing policy and configuration for "
                      "services issuing requests to this upstream service.", fields=(
                          F.string("policy", "Policy is the load balancing policy used to select a host."),
                          F.obj("ringHashConfig", "RingHashConfig contains configuration for the \"ringHash\" policy "
                                "type.", fields=(
                                    F.integer("minimumRingSize", "MinimumRingSize determines the minimum number of "
                                              "entries in the hash ring.", fmt="int64"),
                                    F.integer("maximumRingSize", "MaximumRingSize determines the maximum number of "
                                              "entries in the hash ring.", fmt="int64"),
                                )),
                          F.obj("leastRequestConfig", "LeastRequestConfig contains configuration for the "
                                "\"leastRequest\" policy type.", fields=(
                                    F.integer("choiceCount", "ChoiceCount determines the number of random healthy "
                                              "hosts from which to select the one with the least requests.",
                                              fmt="int32"),
                                )),
                          F.array("hashPolicies", "HashPolicies is a list of hash policies to use for hashing load "
                                  "balancing algorithms. Hash policies are evaluated individually and combined such "
                                  "that identical lists result in the same hash. If no hash policies are present, or "
                                  "none are successfully evaluated, then a random backend host will be selected.",
                                  HASH_POLICY),
                      ))
SPEC = F.obj("spec", "ServiceResolverSpec defines the desired state of ServiceResolver", struct=True, fields=(
    F.string("defaultSubset", "DefaultSubset is the subset to use when no explicit subset is requested. If empty the "
             "unnamed subset is used."),
    F.mapping("subsets", "Subsets is map of subset name to subset definition for all usable named subsets of this "
              "service. The map key is the name of the subset and all names must be valid DNS subdomain elements. "
              "This may be empty, in which case only the unnamed default subset will be usable.", SUBSET),
    REDIRECT,
    F.mapping("failover", "Failover controls when and how to reroute traffic to an alternate pool of service "
              "instances. The map is keyed by the service subset it applies to and the special string \"*\" is a "
              "wildcard that applies to any subset not otherwise specified here.", FAILOVER),
    F.duration("connectTimeout", "ConnectTimeout is the timeout for establishing new network connections to this "
               "service."),
    LOAD_BALANCER,
))


def _failovers(spec: dict) -> list[tuple[str, dict]]:
    failover = spec.get("failover")
    if not isinstance(failover, dict):
        return []
    return [(key, S.as_dict(failover[key])) for key in sorted(failover)]


def _positive_duration(raw: Any) -> bool:
    if isinstance(raw, bool):
        return False
    if isinstance(raw, int):
        return raw > 0
    if isinstance(raw, str):
        try:
            return parse_duration(raw) > 0
        except DurationError:
            return False  # reported as an invalid duration already
    return False


def _validate_hash_policy(policy: dict, path: str) -> list[FieldError]:
    errors = []
    field = policy.get("field") or ""
    if field:
        if field not in HASH_POLICY_FIELDS:
            errors.append(invalid(f"{path}.field", field, S.not_in_slice(HASH_POLICY_FIELDS)))
        if policy.get("sourceIP"):
            errors.append(invalid(path, F.dump(HASH_POLICY, policy), "cannot set both field and sourceIP"))
        elif not policy.get("fieldValue"):
            errors.append(invalid(f"{path}.fieldValue", policy.get("fieldValue") or "",
                                  "fieldValue cannot be empty if field is set"))
    cookie = policy.get("cookieConfig")
    if isinstance(cookie, dict) and cookie.get("session") and _positive_duration(cookie.get("ttl")):
        errors.append(invalid(f"{path}.cookieConfig", F.dump(COOKIE_CONFIG, cookie), "cannot set both session and ttl"))
    return errors


def validate(resource: dict, meta: ConsulMeta) -> list[FieldError]:
    spec = spec_of(resource)
    errors = []
    for key, failover in _failovers(spec):
        if not (failover.get("service") or failover.get("serviceSubset") or failover.get("namespace")
                or S.as_list(failover.get("datacenters"))):
            # The reference passes "{}" literally: the object is empty.
            errors.append(invalid(f"spec.failover[{key}]", "{}",
                                  "service, serviceSubset, namespace and datacenters cannot all be empty at once"))
    load_balancer = spec.get("loadBalancer")
    if isinstance(load_balancer, dict):
        for i, policy in enumerate(S.as_list(load_balancer.get("hashPolicies"))):
            errors += _validate_hash_policy(S.as_dict(policy), f"spec.loadBalancer.hashPolicies[{i}]")
    if not meta.namespaces_enabled:
        redirect = spec.get("redirect")
        if isinstance(redirect, dict) and redirect.get("namespace"):
            errors.append(invalid("spec.redirect.namespace", redirect["namespace"],
                                  S.NAMESPACES_OFF + "redirect.namespace"))
        for key, failover in _failovers(spec):
            if failover.get("namespace"):
                errors.append(invalid(f"spec.failover[{key}].namespace", failover["namespace"],
                                      S.NAMESPACES_OFF + "failover.namespace"))
    return errors


KIND = Kind(kind="ServiceResolver", plural="serviceresolvers", singular="serviceresolver",
            consul_kind="service-resolver", spec=SPEC, validate_spec=validate)
