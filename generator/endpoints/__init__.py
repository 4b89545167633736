"""The endpoints controller (issue 11): registers injected pods and their Envoy proxies in Consul.

Pure parts, no I/O: `settings` (what the registrations depend on besides the pod, and the Consul
namespace mapping), `errors` (a pod's own problems), `upstreams` and `probes` (annotation parsing),
`registration` (ignore rules, IDs, the service/proxy registration bodies and the TTL check).
"""
