"""Refusals that protect the injected containers and the webhook (security review, issue 8).

Each test is built from the review's reproducer: a pod author tampering with the shared volume,
or a small request asking for a huge injection.
"""

from __future__ import annotations

import base64
import gzip
import json

import pytest

from engine_helpers import P, admission, denial, inject, load_config, make_pod, run
from generator.inject.annotations import MAX_ENVOY_ARGS, MAX_ENVOY_ARGS_CHARS, MAX_LIST_ITEMS, MAX_UNKNOWN_WARNINGS, MAX_UPSTREAMS
from generator.inject.guards import MAX_ANNOTATION_BYTES, MAX_POD_BYTES
from generator.inject.review import review

VOLUME = "consul-connect-inject-data"


def _pod(containers=None, init=(), volumes=(), annotations=None):
    app = {"name": "web", "image": "w", "ports": [{"name": "http", "containerPort": 8080}]}
    spec = {"initContainers": list(init)} if init else {}
    if volumes:
        spec["volumes"] = list(volumes)
    return make_pod(annotations, containers=containers or [app], **spec)


# --- the shared volume ------------------------------------------------------------------------

@pytest.mark.parametrize("field,mount", [
    ("initContainers", {"name": VOLUME, "mountPath": "/data"}),
    ("initContainers", {"name": "other", "mountPath": "/consul/connect-inject"}),
    ("initContainers", {"name": "other", "mountPath": "/consul/connect-inject/"}),
    ("initContainers", {"name": "other", "mountPath": "/consul/connect-inject/consul"}),
    ("initContainers", {"name": "other", "mountPath": "/consul//connect-inject"}),
    ("initContainers", {"name": "other", "mountPath": "/consul/./connect-inject"}),
    ("initContainers", {"name": "other", "mountPath": "/consul/x/../connect-inject/bin"}),
    ("initContainers", {"name": "other", "mountPath": "/consul/connect-inject "}),
    ("containers", {"name": VOLUME, "mountPath": "/x", "readOnly": True}),
])
def test_a_pod_container_that_mounts_the_injected_volume_is_refused_naming_it(field, mount):
    """Reproducer: the author's init container runs before the injected ones and could plant a
    symlink at envoy-bootstrap.yaml; a native sidecar could swap the copied consul binary."""
    planter = {"name": "planter", "image": "busybox", "volumeMounts": [mount]}
    if field == "initContainers":
        pod = _pod(init=[planter])
    else:
        pod = _pod(containers=[{"name": "web", "image": "w"}, planter])
    code, message = denial(run(pod))
    index = 0 if field == "initContainers" else 1
    assert code == 400
    assert message.startswith(f'spec.{field}[{index}].volumeMounts[0]: container "planter" cannot mount the injected volume '
                              f'"{VOLUME}" or anything at /consul/connect-inject'), message


def test_a_native_sidecar_of_the_author_cannot_mount_it_either():
    sidecar = {"name": "swapper", "image": "busybox", "restartPolicy": "Always", "volumeMounts": [{"name": VOLUME, "mountPath": "/v"}]}
    code, message = denial(run(_pod(init=[sidecar])))
    assert code == 400 and 'container "swapper" cannot mount the injected volume' in message


def test_a_pod_volume_named_like_the_injected_one_is_refused():
    pod = _pod(volumes=[{"name": VOLUME, "hostPath": {"path": "/etc"}}])
    code, message = denial(run(pod))
    assert code == 400 and message.startswith(f'spec.volumes[0]: a pod cannot declare a volume named "{VOLUME}"'), message


def test_other_mounts_and_volumes_are_fine():
    pod = _pod(containers=[{"name": "web", "image": "w", "volumeMounts": [{"name": "data", "mountPath": "/consul/connect-injected"}]}],
               volumes=[{"name": "data", "emptyDir": {}}])
    out = inject(pod)
    assert [v["name"] for v in out["spec"]["volumes"]] == ["data", VOLUME]


# --- bounded work and output ------------------------------------------------------------------

def _upstreams(count: int) -> str:
    return ",".join(f"s{i}:{1000 + i}" for i in range(count))


def test_upstreams_times_containers_that_the_api_server_cannot_store_are_refused_before_building():
    """Reproducer: a 0.11 MiB review with 10,000 upstreams and 100 containers produced a 141 MiB
    response. Now 1,000 upstreams (the cap) and 100 containers are refused with the figures."""
    containers = [{"name": f"c{i}", "image": "w"} for i in range(100)]
    pod = _pod(containers=containers, annotations={P + "connect-service-upstreams": _upstreams(MAX_UPSTREAMS)})
    body = json.dumps(admission(pod)).encode()
    assert len(body) < 64 * 1024
    result = run(pod)
    code, message = denial(result)
    assert code == 400
    assert message.startswith(("the injected pod would be about ", "the patch that injects it would be about "))
    assert f"more than the {MAX_POD_BYTES} the API server stores" in message
    assert f"{MAX_UPSTREAMS} upstreams add " in message and "each of 100 containers" in message
    assert len(json.dumps(result.review)) < 2 * len(body)  # the answer stays the size of the question


def test_more_upstreams_than_the_cap_are_refused():
    code, message = denial(run(_pod(annotations={P + "connect-service-upstreams": _upstreams(MAX_UPSTREAMS + 1)})))
    assert code == 400 and f"more than {MAX_UPSTREAMS} upstreams" in message
    assert len(message) < 600  # the value is shown cut short, with its length


def test_a_small_request_cannot_ask_for_a_patch_much_larger_than_the_pod():
    """Reviewer's find: each env var is an operation of its own, so the patch outgrew the pod
    estimate (10 KB request, 13 containers x 1,000 upstreams: a 3.8 MB answer)."""
    containers = [{"name": f"c{i}", "image": "w"} for i in range(13)]
    pod = _pod(containers=containers, annotations={P + "connect-service-upstreams": _upstreams(MAX_UPSTREAMS)})
    result = run(pod)
    code, message = denial(result)
    assert code == 400 and message.startswith("the patch that injects it would be about ")
    assert len(json.dumps(result.review)) < 1000


def test_many_upstreams_on_a_small_pod_still_inject():
    out = inject(_pod(annotations={P + "connect-service-upstreams": _upstreams(200)}))
    assert len(out["spec"]["containers"][0]["env"]) == 400


def test_envoy_extra_args_beyond_the_cap_are_refused():
    """Reproducer: envoy-extra-args with 500k tokens took 358 MiB (now refused by size first)."""
    code, message = denial(run(_pod(annotations={P + "envoy-extra-args": "-l " * 500_000})))
    assert code == 400 and message.startswith("the injected pod's annotations would be ")
    code, message = denial(run(_pod(annotations={P + "envoy-extra-args": "-l " * (MAX_ENVOY_ARGS + 1)})))
    assert code == 400 and f"more than {MAX_ENVOY_ARGS} arguments" in message
    code, message = denial(run(_pod(annotations={P + "envoy-extra-args": "--x=" + "a" * MAX_ENVOY_ARGS_CHARS})))
    assert code == 400 and f"longer than {MAX_ENVOY_ARGS_CHARS} characters" in message
    out = inject(_pod(annotations={P + "envoy-extra-args": "--concurrency 2 " * 10}))
    assert out["spec"]["containers"][1]["command"][3:5] == ["--concurrency", "2"]


def test_exclusion_lists_beyond_the_cap_are_refused():
    ports = ",".join(str(1 + i % 65535) for i in range(MAX_LIST_ITEMS + 1))
    code, message = denial(run(_pod(annotations={P + "transparent-proxy-exclude-inbound-ports": ports})))
    assert code == 400 and f"more than {MAX_LIST_ITEMS} items" in message


def test_extra_template_named_many_times_is_refused():
    """Reproducer: the same extra template named 500k times took 6 s and 377 MiB."""
    config = load_config("connectInject.templates.log-shipper=containers: [{name: logs, image: l}]")
    code, message = denial(run(_pod(annotations={P + "extra-templates": ",".join(["log-shipper"] * 500_000)}), config))
    assert code == 400 and message.startswith("the injected pod's annotations would be ")
    code, message = denial(run(_pod(annotations={P + "extra-templates": ",".join(["log-shipper"] * 33)}), config))
    assert code == 400 and "more than 32 template names" in message
    code, message = denial(run(_pod(annotations={P + "extra-templates": "log-shipper,log-shipper"}), config))
    assert code == 400 and "names log-shipper more than once" in message


def test_a_pod_too_big_for_its_original_pod_annotation_is_refused_with_the_figures():
    big = [{"name": f"V{i}", "value": "x" * 1000} for i in range(300)]
    pod = _pod(containers=[{"name": "web", "image": "w", "env": big}])
    code, message = denial(run(pod))
    assert code == 400 and message.startswith("the injected pod's annotations would be ")
    assert f"more than the {MAX_ANNOTATION_BYTES} Kubernetes stores" in message and "original-pod" in message


def test_gzip_bomb_sized_request_is_bounded():
    """Reproducer: a 45 KB gzip body asked for 1.1 GiB. The same shape, at the caps, is refused
    with an answer no bigger than the request."""
    containers = [{"name": f"c{i}", "image": "w"} for i in range(1000)]
    pod = _pod(containers=containers, annotations={P + "connect-service-upstreams": _upstreams(MAX_UPSTREAMS)})
    raw = json.dumps(admission(pod)).encode()
    assert len(gzip.compress(raw)) < 64 * 1024
    result = review(json.loads(raw), load_config())
    assert result.outcome == "denied" and len(json.dumps(result.review)) < len(raw)


def test_unknown_annotation_flood_gets_bounded_warnings():
    """Reproducer: 60,000 unknown keys took 27.6 s in the did-you-mean search, even when skipped."""
    flood = {f"{P}connect-servic{i}": "x" for i in range(60_000)}
    result = run(make_pod({**flood, P + "connect-inject": "false"}))
    assert result.outcome == "skipped"
    assert len(result.warnings) == MAX_UNKNOWN_WARNINGS + 1
    assert result.warnings[0] == f'unknown annotation "{P}connect-servic0" has no effect; did you mean "{P}connect-service"?'
    assert result.warnings[-1] == f"{60_000 - MAX_UNKNOWN_WARNINGS} more unknown {P} annotations have no effect"


def test_a_long_unknown_key_is_shown_cut_short_without_a_hint():
    key = P + "connect-service" + "x" * 5000
    (warning,) = run(make_pod({key: "1"})).warnings
    assert warning.startswith(f'unknown annotation "{P}connect-servicexxx') and "(5036 characters)" in warning
    assert "did you mean" not in warning and len(warning) < 400


def test_patch_of_an_ordinary_pod_is_unchanged_by_the_bounds():
    result = run(_pod(annotations={P + "connect-service-upstreams": "db:5432,cache:6379"}))
    ops = json.loads(base64.b64decode(result.review["response"]["patch"]))
    assert [op["path"] for op in ops][:3] == ["/spec/volumes", "/spec/containers/0/env", "/spec/initContainers"]


def test_template_parse_cache_holds_no_large_pod_data():
    """Reproducer: 30 pods with different 240 KB envoy-extra-args grew RSS by 220 MiB, never freed
    (the parse cache was keyed by rendered text). Large rendered texts are no longer kept."""
    from generator.inject import render

    config = load_config()
    inject(_pod())
    before = render._parse_cached.cache_info().currsize
    for n in range(30):
        inject(_pod(annotations={P + "envoy-extra-args": f"--x{n} " + "a" * 12_000}), config)
    grown = render._parse_cached.cache_info().currsize - before
    assert grown == 0  # only the envoy-sidecar text differs per pod, and it is above the bound
    for n in range(30):
        inject(_pod(annotations={P + "envoy-extra-args": f"--x{n}"}), config)
    assert render._parse_cached.cache_info().currsize - before == 30  # small texts are still cached


def test_the_root_init_container_mounts_the_token_volume_read_only():
    """Reviewer's find: with ACLs the init container copies the pod's mount at the token path; the
    pod chooses that volume, so the root container gets it read-only whatever the pod wrote."""
    mount = {"name": "my-token", "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount", "readOnly": False, "subPath": "x"}
    pod = _pod(containers=[{"name": "web", "image": "w", "volumeMounts": [mount]}],
               volumes=[{"name": "my-token", "emptyDir": {}}])
    out = inject(pod, load_config("global.acls.manageSystemACLs=true"))
    init = next(c for c in out["spec"]["initContainers"] if c["name"] == "consul-connect-inject-init")
    assert init["volumeMounts"][-1] == {"name": "my-token", "readOnly": True, "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount"}
