"""What the endpoints controller registers for one pod behind one Service: pure, no I/O.

The runtime reads Endpoints, Pods, Namespaces and Services from its caches, asks Consul for
`proxy-defaults` when `needs()` says so, and hands plain dicts to `build()`; it gets back the two
`PUT /v1/agent/service/register` bodies, exactly as the reference's Go client serialises them
(JSON field names, field order, omitted empties; reference §2.2, §2.3, §2.6), the query
parameters, and the TTL check with its status and output (§3). Everything else here is the
reference's ignore rules (§1.4) and IDs as predicates and small functions.

Bad input is the pod's error (`errors.RegistrationError`), never an exception of another kind: a
value that would register something wrong, or that Consul refuses, is refused with a message
naming the pod, the annotation and the value; a value that has no effect (an upstream port name no
container has, a `service-meta-` annotation naming a key the controller sets) is ignored with a
warning. Deliberate differences from v0.37 (reference §10; design.md "Controllers"):

- malformed upstream entries and probes are the pod's error, not a panic (R1, R2);
- reserved meta keys (`pod-name`, `k8s-service-name`, `k8s-namespace`, `managed-by`) win over
  `service-meta-*`, which are checked against Consul's meta rules first (R3);
- `service-tags` / `connect-service-tags` entries are trimmed and empty ones dropped (R4);
- a `connect-service-port` that is neither a port number nor a container port name of the pod is
  an error (v0.37 registered the service without a port, silently); "0" still means no port;
- transparent proxy is off for `hostNetwork` pods unless their annotation says otherwise, as the
  webhook decides; a missing Namespace object means no labels;
- a Service `targetPort` name the pod does not have means "not this port" (v0.37 failed the pod);
- `original-pod` is only read when the pod has an HTTP probe to expose (v0.37 failed a pod without);
- exposed paths carry `"ParsedFromCheck": false`, as the Go client sends them (§2.6 shows them without);
- the proxy's TCP check address is `[ip]:20000` for an IPv6 pod (v0.37 wrote `ip:20000`).
"""

from __future__ import annotations

import dataclasses
import enum
import hashlib
import ipaddress
import json
from dataclasses import dataclass, field
from typing import Any, Mapping

from generator.base import gostr
from generator.endpoints import probes, upstreams
from generator.inject import annotations as annotation_table
from generator.endpoints.errors import (BadAnnotation, BadNamespaceLabel, BadPodSpec, MissingService,
                                        RegistrationError)
from generator.endpoints.fields import dicts, is_int, mapping, pod_ports, string, string_map
from generator.endpoints.settings import Settings
from generator.endpoints.upstreams import ConsulUpstream, ProxyDefaults
from generator.inject.annotations import (PREFIX, BadValue, PodPorts, go_int, parse_bool, parse_service_port,
                                          parse_unprivileged_port, show)

# Annotations and labels (reference §1.4.2, §2); the webhook writes the first two. The names come
# from the webhook's annotation table (a key missing there fails at import, not silently).
INJECT_STATUS = annotation_table.BY_KEY["connect-inject-status"].full
MANAGED_BY_LABEL = PREFIX + "connect-inject-managed-by"  # a label the webhook sets, not an annotation
MANAGED_BY = "consul-k8s-endpoints-controller"
INJECTED = "injected"
SERVICE_NAME = annotation_table.BY_KEY["connect-service"].full
SERVICE_PORT = annotation_table.BY_KEY["connect-service-port"].full
UPSTREAMS = annotation_table.BY_KEY["connect-service-upstreams"].full
TAGS = annotation_table.BY_KEY["service-tags"].full
CONNECT_TAGS = annotation_table.BY_KEY["connect-service-tags"].full  # deprecated alias, appended after service-tags
META_PREFIX = annotation_table.BY_KEY["service-meta-"].full
ENABLE_METRICS = annotation_table.BY_KEY["enable-metrics"].full
SCRAPE_PORT = annotation_table.BY_KEY["prometheus-scrape-port"].full
TPROXY = annotation_table.BY_KEY["transparent-proxy"].full
OVERWRITE_PROBES = annotation_table.BY_KEY["transparent-proxy-overwrite-probes"].full

# Service meta the controller sets; deregistration finds instances by the last three.
META_POD_NAME = "pod-name"
META_K8S_SERVICE = "k8s-service-name"
META_K8S_NAMESPACE = "k8s-namespace"
META_MANAGED_BY = "managed-by"
RESERVED_META = (META_POD_NAME, META_K8S_SERVICE, META_K8S_NAMESPACE, META_MANAGED_BY)
# Consul's service meta rules (agent/structs: validateMetaPair), checked before sending.
META_MAX_PAIRS = 64
META_KEY_MAX = 128
META_VALUE_MAX = 512  # bytes
META_KEY_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-")
META_RESERVED_PREFIX = "consul-"

PROXY_PORT = 20000
PROMETHEUS_BIND_ADDR = "envoy_prometheus_bind_addr"
VIRTUAL = "virtual"  # the tagged address holding the Service's cluster IP
CHECK_NAME = "Kubernetes Health Check"
CHECK_TTL = "100000h"
PASSING = "passing"
CRITICAL = "critical"
PASSING_OUTPUT = "Kubernetes health checks passing"


# --- Ignore rules and identities (reference §1.4) ------------------------------------------------

class PodKind(enum.Enum):
    NOT_INJECTED = "not-injected"  # skipped; its IP is not live (instances there are deregistered)
    LEGACY = "legacy"  # injected by consul-k8s < 0.26: only the TTL check is kept in sync
    MANAGED = "managed"  # registered (service and proxy), then the TTL check


def pod_kind(pod: Mapping[str, Any]) -> PodKind:
    """The `connect-inject-status` annotation (not the label) says injected; the managed-by label
    says managed (reference §1.4.2)."""
    metadata = mapping(pod.get("metadata"))
    if mapping(metadata.get("annotations")).get(INJECT_STATUS) != INJECTED:
        return PodKind.NOT_INJECTED
    if mapping(metadata.get("labels")).get(MANAGED_BY_LABEL) == MANAGED_BY:
        return PodKind.MANAGED
    return PodKind.LEGACY


def pod_key(pod: Mapping[str, Any], default_namespace: str = "") -> str:
    """`namespace/name` of a pod, as messages name it."""
    metadata = mapping(pod.get("metadata"))
    return f"{string(metadata.get('namespace')) or default_namespace}/{string(metadata.get('name'))}"


def consul_service_name(pod: Mapping[str, Any], endpoints_name: str) -> str:
    """The `connect-service` annotation when present and non-empty, else the Service's name."""
    return string(mapping(mapping(pod.get("metadata")).get("annotations")).get(SERVICE_NAME)) or endpoints_name


def service_id(pod_name: str, service_name: str) -> str:
    return f"{pod_name}-{service_name}"


def proxy_id(pod_name: str, service_name: str) -> str:
    return f"{pod_name}-{service_name}-sidecar-proxy"


def check_id(pod_namespace: str, service_id_: str) -> str:
    """The TTL check's ID: the pod's Kubernetes namespace (not the Consul one), the service ID."""
    return f"{pod_namespace}/{service_id_}/kubernetes-health-check"


@dataclass(frozen=True)
class EndpointAddress:
    """One address of an Endpoints object, ready or not."""

    ip: str
    ready: bool
    node_name: str = ""
    target_kind: str = ""
    target_name: str = ""
    target_namespace: str = ""

    @property
    def is_pod(self) -> bool:
        """Only addresses whose targetRef is a Pod are reconciled."""
        return self.target_kind == "Pod" and bool(self.target_name)


def addresses(endpoints: Mapping[str, Any]) -> list[EndpointAddress]:
    """Every address of every subset: `addresses` are ready (`passing`), `notReadyAddresses` are not
    (`critical`), in subset order, ready ones first.

    A pod listed more than once (hand-written Endpoints) is one address, at its first place, ready
    only if ready everywhere (the reference's Go map made the last write win at random). A
    targetRef without a namespace means the Endpoints' own."""
    namespace = string(mapping(endpoints.get("metadata")).get("namespace"))
    out: list[EndpointAddress] = []
    pods: dict[tuple[str, str], int] = {}
    for subset in dicts(endpoints.get("subsets")):
        for key, ready in (("addresses", True), ("notReadyAddresses", False)):
            for item in dicts(subset.get(key)):
                ref = mapping(item.get("targetRef"))
                address = EndpointAddress(
                    ip=string(item.get("ip")), ready=ready, node_name=string(item.get("nodeName")),
                    target_kind=string(ref.get("kind")), target_name=string(ref.get("name")),
                    target_namespace=string(ref.get("namespace")) or namespace,
                )
                if not address.is_pod:
                    out.append(address)
                    continue
                where = pods.get((address.target_namespace, address.target_name))
                if where is None:
                    pods[(address.target_namespace, address.target_name)] = len(out)
                    out.append(address)
                elif out[where].ready and not ready:
                    out[where] = dataclasses.replace(out[where], ready=False)
    return out


def on_node(endpoints: Mapping[str, Any], node_name: str) -> bool:
    """Whether any address (ready or not, pod or not) is on `node_name`: such Endpoints are
    reconciled again when the Consul agent on that node (re)starts (reference §1.3)."""
    return bool(node_name) and any(a.node_name == node_name for a in addresses(endpoints))


# --- The TTL check (reference §3) --------------------------------------------------------------

@dataclass(frozen=True)
class Health:
    """The pod's readiness as a Consul TTL check on its service instance."""

    check_id: str
    service_id: str
    status: str  # "passing" or "critical"
    output: str
    name: str = CHECK_NAME

    def register_body(self) -> dict[str, Any]:
        """`PUT /v1/agent/check/register` when the agent does not have it (`ns` is a query
        parameter, not in the body); Output cannot be set here, so an update follows."""
        return {"ID": self.check_id, "Name": self.name, "ServiceID": self.service_id, "TTL": CHECK_TTL,
                "Status": self.status, "SuccessBeforePassing": 1, "FailuresBeforeCritical": 1}

    def update_body(self) -> dict[str, str]:
        """`PUT /v1/agent/check/update/<check_id>` (the ID, slashes included, goes in the path verbatim)."""
        return {"Status": self.status, "Output": self.output}

    @property
    def update_path(self) -> str:
        return f"/v1/agent/check/update/{self.check_id}"

    @property
    def filter(self) -> str:
        """`GET /v1/agent/checks?filter=` finding this check (a backtick-quoted raw string)."""
        return f"CheckID == `{self.check_id}`"


def health(pod: Mapping[str, Any], endpoints_name: str, ready: bool, endpoints_namespace: str = "") -> Health:
    """The TTL check of a managed or legacy pod behind `endpoints_name`."""
    metadata = mapping(pod.get("metadata"))
    name = string(metadata.get("name"))
    namespace = string(metadata.get("namespace")) or endpoints_namespace
    sid = service_id(name, consul_service_name(pod, endpoints_name))
    if ready:
        return Health(check_id(namespace, sid), sid, PASSING, PASSING_OUTPUT)
    return Health(check_id(namespace, sid), sid, CRITICAL, f'Pod "{namespace}/{name}" is not ready')


# --- The registrations (reference §2) ------------------------------------------------------------

@dataclass(frozen=True)
class Needs:
    """What `build()` needs besides the pod: the Kubernetes Service (transparent proxy: its cluster
    IP and ports) and the `proxy-defaults` lookup (an upstream with a datacenter)."""

    service: bool
    proxy_defaults: bool


def needs(pod: Mapping[str, Any], settings: Settings, namespace_labels: Mapping[str, str] | None = None) -> Needs:
    """Never raises: when a value is malformed, `build()` reports it before needing anything."""
    metadata = mapping(pod.get("metadata"))
    ann = string_map(metadata.get("annotations"))
    try:
        tproxy = _tproxy("", ann, mapping(pod.get("spec")), namespace_labels, "", settings)
    except RegistrationError:
        tproxy = False
    return Needs(service=tproxy, proxy_defaults=upstreams.has_datacenter(ann.get(UPSTREAMS, "")))


@dataclass(frozen=True)
class Registration:
    """Everything the controller sends for one managed pod behind one Service, in order: `service`
    then `proxy` (the proxy's alias check names the service), then the TTL check."""

    pod: str  # namespace/name
    host_ip: str  # the agent on the pod's node: <scheme>://<host_ip>:<port> ("" until scheduled)
    address: str  # the pod IP: instances at other addresses are deregistered
    consul_namespace: str  # "" without Consul namespaces
    params: Mapping[str, str]  # query parameters of every request for this pod (ns, partition)
    service: dict[str, Any]  # PUT /v1/agent/service/register
    proxy: dict[str, Any]  # PUT /v1/agent/service/register, after `service`
    health: Health
    upstreams: tuple[ConsulUpstream, ...] = ()
    warnings: tuple[str, ...] = field(default=())  # ignored values, for a log line and an Event

    @property
    def service_id(self) -> str:
        return self.service["ID"]

    @property
    def proxy_id(self) -> str:
        return self.proxy["ID"]

    def digest(self) -> str:
        """A stable fingerprint of what would be sent (registrations and parameters, not the
        check's status): equal digests mean re-sending changes nothing on an agent that kept them."""
        text = json.dumps([self.params, self.service, self.proxy], sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def build(pod: Mapping[str, Any], *, endpoints_name: str, endpoints_namespace: str, ready: bool,
          settings: Settings, namespace_labels: Mapping[str, str] | None = None,
          service: Mapping[str, Any] | None = None, proxy_defaults: ProxyDefaults | None = None) -> Registration:
    """The registrations of a managed pod behind the Endpoints `endpoints_namespace/endpoints_name`.

    `namespace_labels`: the labels of the pod's Namespace (None when it has none or is missing).
    `service`: the Kubernetes Service of that name, needed when `needs().service`.
    `proxy_defaults`: the lookup's answer, needed when `needs().proxy_defaults`.
    Raises RegistrationError (a subclass naming what to fix) for a problem of this pod."""
    metadata = mapping(pod.get("metadata"))
    name = string(metadata.get("name"))
    namespace = string(metadata.get("namespace")) or endpoints_namespace
    key = f"{namespace}/{name}"
    if not name:
        raise BadPodSpec(key, "the pod has no metadata.name")
    ann = string_map(metadata.get("annotations"))
    spec = mapping(pod.get("spec"))
    status = mapping(pod.get("status"))
    ports = pod_ports(pod)
    warnings: list[str] = []

    service_name = consul_service_name(pod, endpoints_name)
    sid, pid = service_id(name, service_name), proxy_id(name, service_name)
    port = _service_port(key, ann, ports)
    meta = _meta(key, ann, name, endpoints_name, endpoints_namespace, warnings)
    tags = _tags(ann)
    prometheus = _prometheus_bind_addr(key, ann, ports, settings)
    upstream_list = _upstreams(key, ann, ports, settings, proxy_defaults, warnings)
    tagged: dict[str, Any] | None = None
    expose: list[dict[str, Any]] = []
    if _tproxy(key, ann, spec, namespace_labels, namespace, settings):
        if service is None:
            raise MissingService(key, f'Kubernetes Service "{endpoints_namespace}/{endpoints_name}" not found: transparent '
                                      f"proxy registers its cluster IP")
        tagged = _virtual(key, service, ports, port)
        if _overwrite_probes(key, ann, settings):
            expose = probes.exposed_paths(key, pod, ann.get(probes.ORIGINAL_POD))

    pod_ip = string(status.get("podIP"))
    consul_namespace = settings.consul_namespace(namespace)
    common: dict[str, Any] = {}
    if tags:
        common["Tags"] = list(tags)
    service_body: dict[str, Any] = {"ID": sid, "Name": service_name, **common}
    if port:
        service_body["Port"] = port
    _address(service_body, pod_ip, tagged, meta)
    service_body["Check"] = None
    service_body["Checks"] = None
    if consul_namespace:
        service_body["Namespace"] = consul_namespace

    proxy_config: dict[str, Any] = {"DestinationServiceName": service_name, "DestinationServiceID": sid}
    if port:
        proxy_config["LocalServiceAddress"] = "127.0.0.1"
        proxy_config["LocalServicePort"] = port
    if tagged:
        proxy_config["Mode"] = "transparent"
    if prometheus:
        proxy_config["Config"] = {PROMETHEUS_BIND_ADDR: prometheus}
    if upstream_list:
        proxy_config["Upstreams"] = [upstream.body() for upstream in upstream_list]
    proxy_config["MeshGateway"] = {}
    proxy_config["Expose"] = {"Paths": expose} if expose else {}
    proxy_body: dict[str, Any] = {"Kind": "connect-proxy", "ID": pid, "Name": f"{service_name}-sidecar-proxy", **common,
                                  "Port": PROXY_PORT}
    _address(proxy_body, pod_ip, tagged, meta)
    proxy_body["Check"] = None
    proxy_body["Checks"] = [
        {"Name": "Proxy Public Listener", "Interval": "10s", "TCP": _host_port(pod_ip, PROXY_PORT),
         "DeregisterCriticalServiceAfter": "10m"},
        {"Name": "Destination Alias", "AliasService": sid},
    ]
    proxy_body["Proxy"] = proxy_config
    if consul_namespace:
        proxy_body["Namespace"] = consul_namespace

    return Registration(
        pod=key, host_ip=string(status.get("hostIP")), address=pod_ip, consul_namespace=consul_namespace,
        params=settings.query(consul_namespace), service=service_body, proxy=proxy_body,
        health=health(pod, endpoints_name, ready, endpoints_namespace), upstreams=upstream_list,
        warnings=tuple(warnings),
    )


def _address(body: dict[str, Any], pod_ip: str, tagged: dict[str, Any] | None, meta: Mapping[str, str]) -> None:
    """Address, TaggedAddresses and Meta, in the Go struct's field order (copies: bodies are independent)."""
    if pod_ip:
        body["Address"] = pod_ip
    if tagged:
        body["TaggedAddresses"] = {k: dict(v) for k, v in tagged.items()}
    body["Meta"] = dict(meta)


def _host_port(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _service_port(key: str, ann: Mapping[str, str], ports: PodPorts) -> int:
    """`connect-service-port`: a container port name of the pod, or a number (Go's ParseInt rules);
    absent, empty or "0" means no port (then no LocalServicePort either)."""
    raw = ann.get(SERVICE_PORT, "")
    if not raw:
        return 0
    try:
        return parse_service_port(raw, ports)
    except BadValue as exc:
        if go_int(raw.strip()) == 0:
            return 0
        raise BadAnnotation(key, SERVICE_PORT, raw, str(exc)) from None


def _meta(key: str, ann: Mapping[str, str], pod_name: str, endpoints_name: str, endpoints_namespace: str,
          warnings: list[str]) -> dict[str, str]:
    """The four reserved keys over `service-meta-<key>` annotations, keys sorted (as Go sends a map)."""
    user: dict[str, str] = {}
    for annotation, value in ann.items():
        if not annotation.startswith(META_PREFIX):
            continue
        meta_key = annotation[len(META_PREFIX):]
        if not meta_key:
            warnings.append(f'annotation {show(annotation)} is ignored: it names no meta key after "service-meta-"')
            continue
        if meta_key in RESERVED_META:
            warnings.append(f'annotation {show(annotation)} is ignored: the controller sets meta "{meta_key}" itself '
                            f"(deregistration finds the pod's instances by it)")
            continue
        problem = _meta_key_problem(meta_key)
        if problem:
            raise BadAnnotation(key, annotation, value, problem, about_key=True)
        if len(value.encode("utf-8", "surrogatepass")) > META_VALUE_MAX:
            raise BadAnnotation(key, annotation, value, f"longer than the {META_VALUE_MAX} bytes Consul accepts in a meta value")
        user[meta_key] = value
    if len(user) + len(RESERVED_META) > META_MAX_PAIRS:
        raise RegistrationError(key, f"{len(user)} {META_PREFIX}* annotations: Consul accepts at most {META_MAX_PAIRS} meta "
                                     f"pairs per service, {len(RESERVED_META)} of which the controller sets "
                                     f"({', '.join(RESERVED_META)})", "bad-annotation")
    user.update({META_POD_NAME: pod_name, META_K8S_SERVICE: endpoints_name, META_K8S_NAMESPACE: endpoints_namespace,
                 META_MANAGED_BY: MANAGED_BY})
    return dict(sorted(user.items()))


def _meta_key_problem(meta_key: str) -> str | None:
    """Why Consul would refuse this meta key (its agent answers 400 `Invalid Service Meta`)."""
    if not set(meta_key) <= META_KEY_CHARS:
        return f"Consul meta keys may contain only letters, digits, _ and - (meta key {show(meta_key)})"
    if len(meta_key) > META_KEY_MAX:
        return f"Consul meta keys are at most {META_KEY_MAX} characters"
    if meta_key.startswith(META_RESERVED_PREFIX):
        return f'Consul reserves meta keys starting with "{META_RESERVED_PREFIX}" for itself'
    return None


def _tags(ann: Mapping[str, str]) -> tuple[str, ...]:
    """`service-tags` then the deprecated `connect-service-tags`, comma-separated, trimmed, empties dropped."""
    return tuple(tag.strip() for raw in (ann.get(TAGS, ""), ann.get(CONNECT_TAGS, ""))
                 for tag in raw.split(",") if tag.strip())


def _prometheus_bind_addr(key: str, ann: Mapping[str, str], ports: PodPorts, settings: Settings) -> str:
    """`0.0.0.0:<scrape port>` when metrics are on for the pod, else ""; the port is only read then."""
    enabled = settings.metrics_default
    raw = ann.get(ENABLE_METRICS, "")
    if raw:
        try:
            enabled = parse_bool(raw)
        except BadValue as exc:
            raise BadAnnotation(key, ENABLE_METRICS, raw, str(exc)) from None
    if not enabled:
        return ""
    port = settings.prometheus_scrape_port
    raw = ann.get(SCRAPE_PORT, "")
    if raw:
        try:
            port = parse_unprivileged_port(raw, ports)
        except BadValue as exc:
            raise BadAnnotation(key, SCRAPE_PORT, raw, str(exc)) from None
    return f"0.0.0.0:{port}"


def _upstreams(key: str, ann: Mapping[str, str], ports: PodPorts, settings: Settings,
               proxy_defaults: ProxyDefaults | None, warnings: list[str]) -> tuple[ConsulUpstream, ...]:
    raw = ann.get(UPSTREAMS, "")
    if not raw:
        return ()
    try:
        found, dropped = upstreams.parse(raw, ports, split_names=settings.enable_consul_namespaces or settings.enable_partitions,
                                         proxy_defaults=proxy_defaults)
    except upstreams.MeshGatewayProblem as exc:
        raise BadAnnotation(key, UPSTREAMS, raw, str(exc), reason="upstream-mesh-gateway") from None
    except BadValue as exc:
        raise BadAnnotation(key, UPSTREAMS, raw, str(exc)) from None
    warnings.extend(f'annotation "{UPSTREAMS}": {warning}' for warning in dropped)
    return found


def _tproxy(key: str, ann: Mapping[str, str], spec: Mapping[str, Any], labels: Mapping[str, str] | None,
            namespace: str, settings: Settings) -> bool:
    """The pod's annotation (present, even empty, is read), else off on `hostNetwork` (as the
    webhook decides), else the namespace's label, else the default (reference §2.4)."""
    raw = ann.get(TPROXY)
    if raw is not None:
        try:
            return parse_bool(raw)
        except BadValue as exc:
            raise BadAnnotation(key, TPROXY, raw, str(exc)) from None
    if spec.get("hostNetwork") is True:
        return False
    label = (labels or {}).get(TPROXY)
    if isinstance(label, str):
        try:
            return parse_bool(label)
        except BadValue as exc:
            raise BadNamespaceLabel(key, namespace, TPROXY, label, str(exc)) from None
    return settings.tproxy_default


def _overwrite_probes(key: str, ann: Mapping[str, str], settings: Settings) -> bool:
    raw = ann.get(OVERWRITE_PROBES)
    if raw is None:
        return settings.overwrite_probes_default
    try:
        return parse_bool(raw)
    except BadValue as exc:
        raise BadAnnotation(key, OVERWRITE_PROBES, raw, str(exc)) from None


def _virtual(key: str, service: Mapping[str, Any], ports: PodPorts, consul_port: int) -> dict[str, Any] | None:
    """`{"virtual": {"Address": <cluster IP>, "Port": <Service port>}}`, or None when the cluster
    IP is not an IP address (headless `None`, empty): then no Mode either (reference §2.4).

    The port is that of the first Service port whose targetPort resolves (against this pod) to the
    Consul service port, or else whose own port equals it; 0 when none does."""
    spec = mapping(mapping(service).get("spec"))
    cluster_ip = spec.get("clusterIP")
    if not _is_ip(cluster_ip):
        return None
    chosen = 0
    for service_port in dicts(spec.get("ports")):
        port = int(service_port["port"]) if is_int(service_port.get("port")) else 0
        target = _target_port(service_port.get("targetPort"), ports)
        if (target != 0 and target == consul_port) or port == consul_port:
            chosen = port
            break
    return {VIRTUAL: {"Address": cluster_ip, "Port": chosen}}


def _target_port(value: Any, ports: PodPorts) -> int:
    """A targetPort as this pod resolves it: a number, a container port name of the pod, or a number
    as a string; 0 when absent or when the pod has no port of that name."""
    if is_int(value):
        return value
    if isinstance(value, str):
        named = ports.by_name.get(value)
        if named is not None:
            return named
        return go_int(value) or 0
    return 0


def _is_ip(value: Any) -> bool:
    """Go's net.ParseIP: an IPv4 or IPv6 address, no zone."""
    if not isinstance(value, str) or "%" in value:
        return False
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


# --- Deregistration lookups (reference §4.2) ------------------------------------------------------

def services_filter(k8s_service: str, k8s_namespace: str) -> str:
    """`GET /v1/agent/services?filter=` for the managed instances of a Kubernetes Service (its
    service and proxy instances), values quoted as Go's %q quotes them."""
    return (f"Meta[{go_quote(META_K8S_SERVICE)}] == {go_quote(k8s_service)} and "
            f"Meta[{go_quote(META_K8S_NAMESPACE)}] == {go_quote(k8s_namespace)} and "
            f"Meta[{go_quote(META_MANAGED_BY)}] == {go_quote(MANAGED_BY)}")


def go_quote(text: str) -> str:
    """Go's strconv.Quote (the filters quote values with %q)."""
    return gostr.quote(text)
