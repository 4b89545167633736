"""Fuzz `review()` over annotation values, pod shapes, namespaces and values sets (hypothesis).

The properties are the ones design.md's quality bar and issue 2 promise a cluster operator:
- `review()` never raises and always answers: injected, skipped or denied, never a 500;
- a denial is a 400 whose message names the `consul.hashicorp.com/...` key or the pod field;
- every patch applies cleanly (jsonpatch) to the pod the API server sent;
- an injected pod that was valid Kubernetes before is valid Kubernetes (1.30, strict) after;
- reviewing the injected pod again skips it (`already-injected`) with no patch;
- the request is not modified by answering it.

Schema validation costs ~15 ms a call, so the example counts are modest (about 300 reviews in all,
~120 of them validated).
"""

from __future__ import annotations

import base64
import copy
import json
import logging
import re

import jsonpatch
import pytest
from hypothesis import HealthCheck, event, given, note, settings
from hypothesis import strategies as st

from engine_helpers import P, admission, load_config, validate_k8s
from generator.inject.annotations import TABLE
from generator.inject.review import review

SA_TOKEN_PATH = "/var/run/secrets/kubernetes.io/serviceaccount"
# Consul DNS needs the DNS Service IP from the environment (as in the cluster); without it a
# `consul-dns: "true"` pod is a deployment fault (500) by design, which is not what this file fuzzes.
ENV = {"CONSUL_CONSUL_DNS_SERVICE_HOST": "10.96.0.10"}
VALUE_SETS: dict[str, tuple[str, ...]] = {
    "defaults": (),
    "tproxy-off": ("connectInject.transparentProxy.defaultEnabled=false",),
    "metrics-merging": ("connectInject.metrics.defaultEnabled=true", "connectInject.metrics.defaultEnableMerging=true"),
    "acls-mirroring": (
        "global.acls.manageSystemACLs=true",
        "global.enableConsulNamespaces=true",
        "connectInject.consulNamespaces.mirroringK8S=true",
        "connectInject.consulNamespaces.mirroringK8SPrefix=k8s-",
    ),
    "openshift": ("global.openshift.enabled=true",),
}
_BASE = settings(deadline=None, database=None, print_blob=True,
                 suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much])


def fuzz(examples: int) -> settings:
    return settings(_BASE, max_examples=examples)


@pytest.fixture(autouse=True)
def _quiet_engine_log():
    """A 500 is logged with a traceback by review(); the assertions below report it instead."""
    logging.disable(logging.CRITICAL)
    yield
    logging.disable(logging.NOTSET)


def config_for(name: str):
    return load_config(*VALUE_SETS[name], env=ENV)


# ---------------------------------------------------------------------------------------------
# Annotation values

SHELL_BITS = ["$(touch /tmp/pwned)", "`id`", "; rm -rf /", "'", '"', "\\", "\n", "${HOME}", "|", "&&",
              "*", "~", "#", "%s", "\t", " ", ",", ":", "=", "\x00", "é", "\u202e", "😀", "\r\n"]
nasty_text = st.one_of(
    st.sampled_from(SHELL_BITS + ["", " ", "true", "0", "-1", "65536", "http", "null"]),
    st.lists(st.one_of(st.sampled_from(SHELL_BITS), st.text(max_size=6)), max_size=6).map("".join),
    st.text(max_size=40),
    st.builds(lambda s, n: s * n, st.sampled_from(["a", "é", "$(x)", "a b ", "x:1,", "10.0.0.0/8,"]),
              st.integers(500, 3000)),
)
_ports = st.one_of(st.sampled_from(["8080", "http", "metrics", "0x1F90", "010", "0", "65536", "-1", "nope", " 9090 ", "1e3"]),
                   st.integers(-5, 70000).map(str))
PLAUSIBLE: dict[str, st.SearchStrategy[str]] = {
    "bool": st.sampled_from(["true", "false", "1", "0", "t", "F", "TRUE", "False", "yes", "", " true"]),
    "port or port name": _ports,
    "port 1024-65535": _ports,
    "quantity": st.sampled_from(["100m", "128Mi", "1", "0", "0.5", "1e3", "-1", "abc", "1Ki", "2Gi", "", "5G", ".5", "1.5.5"]),
    "arguments": st.sampled_from(["--log-level debug", '--concurrency 2 "a b"', "'unbalanced", '"', "--x=$(touch /tmp/p)", "", "a\\ b"]),
    "port list": st.sampled_from(["80, 443", "8080", "0", "70000", "a", "1,,2", " ", "22;id"]),
    "CIDR list": st.sampled_from(["10.0.0.0/8, 192.168.1.1", "::1/128", "300.0.0.1", "1.2.3.4/33", "", "$(id)"]),
    "UID list": st.sampled_from(["0,5995", "1000", "-1", "4294967295", "x", " 42 "]),
    "upstream list": st.sampled_from(["db:1234", "db.ns:80:dc1", "prepared_query:q:99", "foo", "svc:notaport",
                                      "a:1, b:2", "api:http", "x:1:", "prepared_query:q", "my-svc:9090:dc2,other:9091"]),
}
# Values every parser accepts (given the pod's named ports), so that injection is exercised as much as denial.
VALID: dict[str, st.SearchStrategy[str]] = {
    "bool": st.sampled_from(["true", "false", "1", "0", "t", "F", "TRUE", "False"]),
    "port or port name": st.one_of(st.just("http"), st.integers(1, 65535).map(str)),
    "port 1024-65535": st.integers(1024, 65535).map(str),
    "quantity": st.sampled_from(["100m", "128Mi", "1", "0.5", "1Ki", "2Gi", "5G", "250m"]),
    "arguments": st.sampled_from(["--log-level debug", '--concurrency 2 "a b"', "", "--x=$(touch /tmp/p) `id`", "a\\ b"]),
    "port list": st.lists(st.integers(1, 65535).map(str), max_size=4).map(", ".join),
    "CIDR list": st.sampled_from(["10.0.0.0/8, 192.168.1.1", "::1/128", "", "fd00::/8,1.2.3.4"]),
    "UID list": st.lists(st.integers(0, 2**32 - 2).map(str), max_size=3).map(",".join),
    "upstream list": st.sampled_from(["db:1234", "db.ns:80:dc1", "prepared_query:q:99", "a:1, b:2", "api:http",
                                      "my-svc:9090:dc2,other:9091", ""]),
    "string": nasty_text,
}
REMOVED_OR_WRITTEN = [spec for spec in TABLE if spec.removed or spec.kind == "written"]
ACTIVE = [spec for spec in TABLE if spec not in REMOVED_OR_WRITTEN and spec.key != "connect-inject"]


def value_for(spec, hostile: bool = True) -> st.SearchStrategy[str]:
    valid = VALID.get(spec.kind, nasty_text)
    if not hostile:
        return valid
    return st.one_of(valid, PLAUSIBLE.get(spec.kind, nasty_text), nasty_text)


@st.composite
def annotation_entry(draw, hostile: bool) -> tuple[str, str]:
    # Removed/written keys deny or skip the whole pod: drawn rarely so injection is exercised too.
    spec = draw(st.sampled_from(ACTIVE * 6 + REMOVED_OR_WRITTEN) if hostile else st.sampled_from(ACTIVE))
    key = spec.full
    if spec.key == "service-meta-":
        key += draw(st.one_of(st.just(""), st.from_regex(r"\A[a-zA-Z0-9_-]{1,12}\Z")) if hostile else st.from_regex(r"\A[a-z]{1,12}\Z"))
    return key, draw(value_for(spec, hostile))


@st.composite
def annotation_maps(draw, hostile: bool | None = None) -> dict[str, str]:
    """Up to five table keys; a pod is either hostile (any text) or clean (values that parse)."""
    hostile = draw(st.booleans()) if hostile is None else hostile
    out = dict(draw(st.lists(annotation_entry(hostile), max_size=5)))
    inject = draw(st.sampled_from(["true"] * 8 + ["false", "yes", "", None]) if hostile else st.just("true"))
    if inject is not None:
        out[P + "connect-inject"] = inject
    for key in draw(st.lists(st.sampled_from([P + "conect-inject", P + "kubernetes-service", P + "upstreams",
                                              "example.com/owner", "prometheus.io/scrape"]), max_size=2)):
        out[key] = draw(nasty_text)
    return out


# ---------------------------------------------------------------------------------------------
# Pods

DNS_LABEL = st.from_regex(r"\A[a-z]([a-z0-9-]{0,10}[a-z0-9])?\Z")
ENV_NAME = st.from_regex(r"\A[A-Za-z_][A-Za-z0-9_]{0,15}\Z")
PORT_NAMES = ["http", "metrics", "grpc", "admin"]


@st.composite
def probes(draw, port_names: list[str]) -> dict:
    kind = draw(st.sampled_from(["httpGet", "httpGet", "tcpSocket", "exec", "grpc"]))
    port: int | str = draw(st.one_of(st.integers(1, 65535), st.sampled_from(port_names))) if port_names else draw(st.integers(1, 65535))
    if kind == "httpGet":
        action = {"httpGet": {"port": port, "path": draw(st.sampled_from(["/", "/healthz", "/ready?x=1"]))}}
    elif kind == "tcpSocket":
        action = {"tcpSocket": {"port": port}}
    elif kind == "exec":
        action = {"exec": {"command": ["sh", "-c", draw(st.text(max_size=30))]}}
    else:
        action = {"grpc": {"port": draw(st.integers(1, 65535))}}
    return {**action, "periodSeconds": draw(st.integers(1, 30))}


@st.composite
def containers(draw, index: int, used_port_names: set[str], init: bool, sa_mount: bool) -> dict:
    c: dict = {"name": f"{'init' if init else 'app'}{index}", "image": draw(st.sampled_from(["busybox", "hashicorp/http-echo:latest"]))}
    ports = []
    for port in draw(st.lists(st.tuples(st.one_of(st.none(), st.sampled_from(PORT_NAMES)), st.integers(1, 65535)), max_size=3)):
        entry: dict = {"containerPort": port[1]}
        if port[0] and port[0] not in used_port_names:
            used_port_names.add(port[0])
            entry["name"] = port[0]
        ports.append(entry)
    if ports or draw(st.booleans()):
        c["ports"] = ports
    env = draw(st.sampled_from(["absent", "null", "empty", "some"]))
    if env == "null":
        c["env"] = None
    elif env == "empty":
        c["env"] = []
    elif env == "some":
        c["env"] = [{"name": n, "value": v} for n, v in draw(st.dictionaries(ENV_NAME, st.text(max_size=20), max_size=4)).items()]
    if not init:
        for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
            if draw(st.booleans()):
                c[probe] = draw(probes(sorted(used_port_names)))
    if draw(st.booleans()):
        c["securityContext"] = {"runAsUser": draw(st.sampled_from([0, 1000, 5995, 5996])), "runAsNonRoot": draw(st.booleans())}
    if sa_mount:
        c["volumeMounts"] = [{"name": "kube-api-access", "mountPath": SA_TOKEN_PATH, "readOnly": True}]
    elif draw(st.booleans()):
        c["volumeMounts"] = [{"name": "data", "mountPath": "/data"}]
    return c


@st.composite
def valid_pods(draw, sa_mount_likely: bool = False, hostile: bool | None = None) -> dict:
    """Pods that are valid Kubernetes 1.30 objects (checked), in many shapes."""
    used: set[str] = set()
    sa_mount = draw(st.booleans()) if not sa_mount_likely else draw(st.sampled_from([True, True, True, False]))
    n = draw(st.integers(1, 4))
    spec: dict = {"containers": [draw(containers(i, used, False, sa_mount and i == 0)) for i in range(n)]}
    inits = [draw(containers(i, used, True, False)) for i in range(draw(st.integers(0, 2)))]
    if inits or draw(st.booleans()):
        spec["initContainers"] = inits
    volumes = draw(st.sampled_from(["absent", "null", "some"]))
    if volumes == "null":
        spec["volumes"] = None
    elif volumes == "some":
        spec["volumes"] = [{"name": "data", "emptyDir": {}}]
    if draw(st.booleans()):
        spec["serviceAccountName"] = draw(DNS_LABEL)
    if draw(st.booleans()):
        spec["securityContext"] = draw(st.sampled_from([{}, {"runAsUser": 5995}, {"fsGroup": 1000}, {"runAsUser": 1000, "runAsNonRoot": True}]))
    annotations = draw(annotation_maps(hostile))
    metadata: dict = {"name": draw(DNS_LABEL)}
    if annotations:
        metadata["annotations"] = annotations
    elif draw(st.booleans()):
        metadata["annotations"] = None
    if draw(st.booleans()):
        metadata["labels"] = {"app": metadata["name"]}
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": spec}
    return pod


def _set(pod: dict, path: tuple, value) -> None:
    node = pod
    for part in path[:-1]:
        node = node[part]
    node[path[-1]] = value


C0 = ("spec", "containers", 0)
# Wrong types and missing pieces a buggy client (or a hand-written AdmissionReview) can send.
CORRUPTIONS = [
    ("no spec", lambda pod: pod.pop("spec")),
    ("spec null", lambda pod: _set(pod, ("spec",), None)),
    ("spec list", lambda pod: _set(pod, ("spec",), [])),
    ("metadata null", lambda pod: _set(pod, ("metadata",), None)),
    ("metadata string", lambda pod: _set(pod, ("metadata",), "web")),
    ("no metadata", lambda pod: pod.pop("metadata")),
    ("annotations list", lambda pod: _set(pod, ("metadata", "annotations"), [])),
    ("annotation bool", lambda pod: _set(pod, ("metadata", "annotations"), {P + "connect-inject": True})),
    ("annotation int", lambda pod: _set(pod, ("metadata", "annotations"), {P + "connect-inject": "true", P + "connect-service-port": 8080})),
    ("annotation null", lambda pod: _set(pod, ("metadata", "annotations"), {P + "connect-inject": None})),
    ("labels int", lambda pod: _set(pod, ("metadata", "labels"), {"app": 1})),
    ("kind Deployment", lambda pod: _set(pod, ("kind",), "Deployment")),
    ("kind int", lambda pod: _set(pod, ("kind",), 5)),
    ("containers null", lambda pod: _set(pod, ("spec", "containers"), None)),
    ("containers empty", lambda pod: _set(pod, ("spec", "containers"), [])),
    ("containers map", lambda pod: _set(pod, ("spec", "containers"), {"name": "web"})),
    ("containers [null]", lambda pod: _set(pod, ("spec", "containers"), [None])),
    ("containers [1]", lambda pod: _set(pod, ("spec", "containers"), [1])),
    ("container empty", lambda pod: _set(pod, C0, {})),
    ("container name null", lambda pod: _set(pod, (*C0, "name"), None)),
    ("env map", lambda pod: _set(pod, (*C0, "env"), {"A": "1"})),
    ("env string", lambda pod: _set(pod, (*C0, "env"), "A=1")),
    ("env [null]", lambda pod: _set(pod, (*C0, "env"), [None])),
    ("env [1]", lambda pod: _set(pod, (*C0, "env"), [1])),
    ("env name int", lambda pod: _set(pod, (*C0, "env"), [{"name": 1, "value": 2}])),
    ("ports string", lambda pod: _set(pod, (*C0, "ports"), "8080")),
    ("ports [null]", lambda pod: _set(pod, (*C0, "ports"), [None])),
    ("port number string", lambda pod: _set(pod, (*C0, "ports"), [{"containerPort": "8080"}])),
    ("port name int", lambda pod: _set(pod, (*C0, "ports"), [{"name": 5, "containerPort": 8080}])),
    ("port no number", lambda pod: _set(pod, (*C0, "ports"), [{"protocol": "TCP"}])),
    ("probe string", lambda pod: _set(pod, (*C0, "livenessProbe"), "GET /")),
    ("probe list", lambda pod: _set(pod, (*C0, "readinessProbe"), [])),
    ("httpGet string", lambda pod: _set(pod, (*C0, "livenessProbe"), {"httpGet": "/healthz"})),
    ("httpGet null", lambda pod: _set(pod, (*C0, "startupProbe"), {"httpGet": None})),
    ("httpGet port null", lambda pod: _set(pod, (*C0, "readinessProbe"), {"httpGet": {"port": None}})),
    ("securityContext string", lambda pod: _set(pod, (*C0, "securityContext"), "root")),
    ("runAsUser string", lambda pod: _set(pod, (*C0, "securityContext"), {"runAsUser": "5995"})),
    ("volumeMounts string", lambda pod: _set(pod, (*C0, "volumeMounts"), "/data")),
    ("volumeMount path int", lambda pod: _set(pod, (*C0, "volumeMounts"), [{"name": "x", "mountPath": 5}])),
    ("volumes map", lambda pod: _set(pod, ("spec", "volumes"), {"name": "data"})),
    ("volumes [null]", lambda pod: _set(pod, ("spec", "volumes"), [None])),
    ("initContainers string", lambda pod: _set(pod, ("spec", "initContainers"), "init")),
    ("initContainers [null]", lambda pod: _set(pod, ("spec", "initContainers"), [None])),
    ("serviceAccountName int", lambda pod: _set(pod, ("spec", "serviceAccountName"), 5)),
    ("serviceAccountName list", lambda pod: _set(pod, ("spec", "serviceAccountName"), ["a"])),
    ("pod runAsUser string", lambda pod: _set(pod, ("spec", "securityContext"), {"runAsUser": "x"})),
    ("pod securityContext string", lambda pod: _set(pod, ("spec", "securityContext"), "x")),
    ("named port number string", lambda pod: _set(pod, (*C0, "ports"), [{"name": "http", "containerPort": "8080"}])),
    ("named port no number", lambda pod: _set(pod, (*C0, "ports"), [{"name": "http"}])),
    ("named port 0", lambda pod: _set(pod, (*C0, "ports"), [{"name": "http", "containerPort": 0}])),
]


@st.composite
def malformed_pods(draw):
    """A valid pod with one to three corruptions; the first corruption that no longer applies ends it."""
    pod = draw(valid_pods(hostile=False))
    applied = []
    for label, corrupt in draw(st.lists(st.sampled_from(CORRUPTIONS), min_size=1, max_size=3)):
        try:
            corrupt(pod)
        except (KeyError, IndexError, TypeError):
            break
        applied.append(label)
    return applied, pod


namespaces = st.one_of(st.sampled_from(["default"] * 4 + ["kube-system", "kube-public"]), DNS_LABEL)
_label_values = st.sampled_from(["true", "false", "junk"])
namespace_labels = st.fixed_dictionaries({}, optional={P + "transparent-proxy": _label_values, P + "consul-dns": _label_values})


# ---------------------------------------------------------------------------------------------
# Properties

_ANNOTATION_NAMED = re.compile(r'annotation "([^"]*)"')


def check_answer(result, request: dict, namespace: str, config, labels: dict, *, valid_input: bool,
                 in_hypothesis: bool = True) -> dict | None:
    """Every property of one answer; returns the injected pod, if any."""
    response = result.review["response"]
    if in_hypothesis:
        note(f"outcome={result.outcome} reason={result.reason} status={response.get('status')}")
        event(f"{result.outcome}: {result.reason}")
    assert result.outcome in ("injected", "skipped", "denied"), f"engine fault for pod input: {response}"
    assert response["uid"] == request["request"]["uid"]
    pod = request["request"]["object"]
    if result.outcome == "denied":
        assert response["allowed"] is False and "patch" not in response
        code, message = response["status"]["code"], response["status"]["message"]
        assert code == 400, response
        assert message and (P in message or message.startswith("request.object") or "5995" in message
                            or SA_TOKEN_PATH in message), f"denial names no annotation key or field: {message!r}"
        for key in _ANNOTATION_NAMED.findall(message):
            assert key in ((pod.get("metadata") or {}).get("annotations") or {}) or key == P + "service-meta-", message
        return None
    assert response["allowed"] is True
    if result.outcome == "skipped":
        assert "patch" not in response and result.patch == ()
        return None
    ops = json.loads(base64.b64decode(response["patch"]))
    assert response["patchType"] == "JSONPatch" and ops == list(result.patch)
    injected = jsonpatch.apply_patch(pod, ops)  # raises JsonPatchConflict if an op does not apply
    names = [c.get("name") for c in injected["spec"]["containers"]]
    inits = [c.get("name") for c in injected["spec"]["initContainers"]]
    assert "envoy-sidecar" in names + inits  # a native sidecar is an init container
    assert "copy-consul-bin" in inits and inits[inits.index("copy-consul-bin") + 1] == "consul-connect-inject-init"
    assert injected["metadata"]["annotations"][P + "connect-inject-status"] == "injected"
    if valid_input:
        validate(injected, "injected pod")
    again = review(admission(copy.deepcopy(injected), namespace, uid="again"), config, lambda ns: labels)
    assert (again.outcome, again.reason, again.patch) == ("skipped", "already-injected", ()), again.review["response"]
    return injected


def validate(pod: dict, what: str) -> None:
    try:
        validate_k8s(pod)
    except Exception as exc:  # kubernetes-validate's message is pages long: keep the gist
        path = "/".join(str(p) for p in getattr(exc, "absolute_path", ()))
        raise AssertionError(f"{what} is not valid Kubernetes 1.30 at {path}: {getattr(exc, 'message', exc)}") from None


def answer(pod, namespace: str, config_name: str, labels: dict):
    config = config_for(config_name)
    request = admission(pod, namespace, uid="fuzz")
    before = copy.deepcopy(request)
    try:
        result = review(request, config, lambda ns: labels)
    except Exception as exc:  # the property under test: review() never raises for a pod
        pytest.fail(f"review() raised {type(exc).__name__}: {exc}")
    assert request == before, "review() modified the AdmissionReview it was answering"
    return request, config, result


@fuzz(120)
@given(data=st.data(), config_name=st.sampled_from(sorted(VALUE_SETS)), namespace=namespaces, labels=namespace_labels)
def test_valid_pods_any_annotations(data, config_name, namespace, labels):
    pod = data.draw(valid_pods(sa_mount_likely=config_name == "acls-mirroring"), label="pod")
    validate(pod, "generated input pod (test generator bug)")
    request, config, result = answer(pod, namespace, config_name, labels)
    check_answer(result, request, namespace, config, labels, valid_input=True)


@fuzz(150)
@given(case=malformed_pods(), config_name=st.sampled_from(sorted(VALUE_SETS)), namespace=namespaces)
def test_malformed_pods_are_answered_never_500(case, config_name, namespace):
    applied, pod = case
    note(f"corruptions: {applied}")
    request, config, result = answer(pod, namespace, config_name, {})
    check_answer(result, request, namespace, config, {}, valid_input=False)


@fuzz(60)
@given(obj=st.one_of(st.none(), st.integers(), st.text(max_size=10), st.lists(st.integers(), max_size=2),
                     st.dictionaries(st.sampled_from(["kind", "metadata", "spec", "apiVersion"]),
                                     st.one_of(st.none(), st.integers(), st.text(max_size=5), st.lists(st.none(), max_size=2),
                                               st.dictionaries(st.text(max_size=5), st.none(), max_size=2)), max_size=4)))
def test_arbitrary_json_objects_are_denied_or_skipped(obj):
    request, config, result = answer(obj, "default", "defaults", {})
    assert result.outcome in ("denied", "skipped"), result.review["response"]
    check_answer(result, request, "default", config, {}, valid_input=False)


@pytest.mark.parametrize("spec", [s for s in TABLE if s.key != "connect-inject-status"], ids=lambda s: s.key)
def test_every_annotation_key_with_any_value(spec):
    """Each key of the annotation table alone on the docs' pod, with plausible and hostile values."""

    @fuzz(8)
    @given(value=value_for(spec), config_name=st.sampled_from(sorted(VALUE_SETS)))
    def run(value, config_name):
        annotations = {P + "connect-inject": "true", spec.full + ("x" if spec.key == "service-meta-" else ""): value}
        pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web", "annotations": annotations},
               "spec": {"containers": [{"name": "web", "image": "hashicorp/http-echo:latest",
                                        "ports": [{"name": "http", "containerPort": 8080}],
                                        "volumeMounts": [{"name": "kube-api-access", "mountPath": SA_TOKEN_PATH}]}]}}
        request, config, result = answer(pod, "default", config_name, {})
        check_answer(result, request, "default", config, {}, valid_input=False)
        if spec.removed:
            assert (result.outcome, result.review["response"]["status"]["message"]) == ("denied", spec.removed)

    run()


# ---------------------------------------------------------------------------------------------
# Pods the fuzzing above first answered with a 500 (fixed in the engine); kept as fixed cases.

def _pod(**spec):
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "web", "annotations": {P + "connect-inject": "true", **spec.pop("annotations", {})}},
            "spec": {"containers": [{"name": "web", "image": "busybox", "ports": [{"name": "http", "containerPort": 8080}]}], **spec}}


def _first_port(port: dict) -> dict:
    pod = _pod()
    pod["spec"]["containers"][0]["ports"] = [port]
    return pod


FOUND_BY_FUZZING = [
    pytest.param(_pod(securityContext="x"), id="pod-securityContext-not-a-map"),
    pytest.param(_first_port({"name": "http", "containerPort": "8080"}), id="named-first-port-with-string-containerPort"),
    pytest.param(_first_port({"name": "http"}), id="named-first-port-without-containerPort"),
    pytest.param(_first_port({"name": "http", "containerPort": 0}), id="named-first-port-0"),
    pytest.param(_pod(annotations={P + "sidecar-proxy-cpu-limit": "1e999999999"}), id="quantity-exponent-overflow"),
    pytest.param(_pod(annotations={P + "connect-service-port": " "}), id="port-annotation-blank"),
    pytest.param(_pod(annotations={P + "connect-service-port": ""}), id="connect-service-port-empty"),
    pytest.param(_pod(annotations={P + "merged-metrics-port": "\r\n"}), id="merged-metrics-port-whitespace"),
    pytest.param(_pod(annotations={P + "connect-service-upstreams": "db: "}), id="upstream-blank-port"),
    pytest.param(_pod(annotations={P + "envoy-extra-args": "--x \x7f"}), id="envoy-arg-with-DEL"),
]


@pytest.mark.parametrize("pod", FOUND_BY_FUZZING)
def test_pods_that_once_got_500_are_answered(pod):
    request, config, result = answer(pod, "default", "defaults", {})
    check_answer(result, request, "default", config, {}, valid_input=False, in_hypothesis=False)
