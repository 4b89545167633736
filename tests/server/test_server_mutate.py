"""POST /mutate over real HTTPS on 127.0.0.1, as the API server calls it."""

from __future__ import annotations

import asyncio
import base64
import json
import ssl

import pytest

from .conftest import P, Webhook, admission_review, client_ssl, docs_pod, make_pod, metric_value, patched


@pytest.mark.parametrize("version", ["v1", "v1beta1"])
async def test_injects_docs_pod_and_answers_in_the_request_version(webhook: Webhook, version: str) -> None:
    pod = docs_pod("static-server")
    answer = await webhook.review(pod, version=version)
    assert answer["apiVersion"] == f"admission.k8s.io/{version}"
    assert answer["kind"] == "AdmissionReview"
    response = answer["response"]
    assert response["allowed"] is True
    injected = patched(pod, response)
    names = [c["name"] for c in injected["spec"]["containers"]]
    assert names == ["static-server", "envoy-sidecar"]
    assert [c["name"] for c in injected["spec"]["initContainers"]] == ["copy-consul-bin", "consul-connect-inject-init"]
    assert injected["metadata"]["annotations"][P + "connect-inject-status"] == "injected"


async def test_skip_is_allowed_without_patch(webhook: Webhook) -> None:
    pod = make_pod()  # no connect-inject annotation, connectInject.default is false
    response = (await webhook.review(pod))["response"]
    assert response["allowed"] is True
    assert "patch" not in response and "patchType" not in response
    assert metric_value(await webhook.metrics(), "connect_inject_admission_requests_total",
                        result="skipped", reason="default-off") == 1


async def test_bad_annotation_is_denied_with_400_naming_it(webhook: Webhook) -> None:
    pod = make_pod({P + "connect-inject": "true", P + "connect-service-upstreams": "foo"})
    response = (await webhook.review(pod))["response"]
    assert response["allowed"] is False
    assert response["status"]["code"] == 400
    assert P + "connect-service-upstreams" in response["status"]["message"]
    assert "foo" in response["status"]["message"]
    assert metric_value(await webhook.metrics(), "connect_inject_admission_requests_total",
                        result="denied", reason="bad-annotation") == 1


async def test_unknown_annotation_warning_reaches_the_api_server(webhook: Webhook) -> None:
    pod = make_pod({P + "connect-inject": "true", P + "connect-service-upstream": "db:1234"})
    response = (await webhook.review(pod))["response"]
    assert response["allowed"] is True
    assert any(P + "connect-service-upstream" in w and "connect-service-upstreams" in w
               for w in response["warnings"]), response.get("warnings")


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", ""])
async def test_wrong_content_type_is_400(webhook: Webhook, content_type: str) -> None:
    status, body = await webhook.post(admission_review(make_pod()), content_type=content_type)
    assert status == 400
    assert body["kind"] == "Status" and "expected application/json" in body["message"]
    assert metric_value(await webhook.metrics(), "connect_inject_admission_requests_total",
                        result="invalid", reason="bad-content-type") == 1


@pytest.mark.parametrize("raw, needle", [
    (b"{not json", "not JSON"),
    (b"\xff\xfe\x00garbage", "not JSON"),
    (b"[1, 2]", "AdmissionReview"),
    (json.dumps({"apiVersion": "v1", "kind": "Pod"}).encode(), "AdmissionReview"),
    (json.dumps({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview"}).encode(), "no request"),
    (b"", "empty"),
    (b"[" * 100_000 + b"]" * 100_000, "not JSON"),
    (b'{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"u","object":'
     + b"[" * 50_000 + b"]" * 50_000 + b"}}", "not JSON"),
])
async def test_unusable_body_is_400_with_reason_and_no_traceback(webhook: Webhook, raw: bytes, needle: str) -> None:
    status, body = await webhook.post(raw)
    assert status == 400
    assert needle in body["message"]
    assert "Traceback" not in json.dumps(body)
    assert metric_value(await webhook.metrics(), "connect_inject_admission_requests_total",
                        result="invalid", reason="bad-review") == 1


async def test_body_over_3_mib_is_413(webhook: Webhook) -> None:
    pod = make_pod({P + "connect-inject": "true", "big": "x" * (3 * 1024 * 1024)})
    status, body = await webhook.post(admission_review(pod))
    assert status == 413 and body["reason"] == "RequestEntityTooLarge"
    assert metric_value(await webhook.metrics(), "connect_inject_admission_requests_total",
                        result="invalid", reason="too-large") == 1


async def test_chunked_body_over_3_mib_is_413(webhook: Webhook) -> None:
    """Without Content-Length the limit is enforced while reading."""
    async def chunks():
        for _ in range(4):
            yield b" " * (1024 * 1024)

    status, body = await webhook.post(chunks())
    assert status == 413


async def test_body_just_under_the_limit_is_answered(webhook: Webhook) -> None:
    pod = make_pod({"filler": "x" * (3 * 1024 * 1024 - 4096)})
    assert (await webhook.review(pod))["response"]["allowed"] is True


async def test_only_post_mutate_exists(webhook: Webhook) -> None:
    async with webhook.session.get(webhook.url) as r:
        assert r.status == 405
    async with webhook.session.post(webhook.url.replace("/mutate", "/other"), json={}) as r:
        assert r.status == 404


async def test_concurrent_requests_each_get_their_own_answer(webhook: Webhook) -> None:
    pods = [make_pod({P + "connect-inject": "true"} if i % 2 else {}, name=f"pod-{i}") for i in range(60)]
    answers = await asyncio.gather(*(webhook.review(p, uid=f"uid-{i}") for i, p in enumerate(pods)))
    for i, answer in enumerate(answers):
        assert answer["response"]["uid"] == f"uid-{i}"
        assert ("patch" in answer["response"]) == bool(i % 2)
    text = await webhook.metrics()
    assert metric_value(text, "connect_inject_admission_duration_seconds_count") == 60
    assert metric_value(text, "connect_inject_admission_in_flight") == 0


@pytest.mark.filterwarnings("ignore:ssl.TLSVersion.TLSv1:DeprecationWarning")
async def test_tls_below_1_2_is_refused(webhook: Webhook, ca) -> None:
    ctx = client_ssl(ca, minimum_version=ssl.TLSVersion.TLSv1, maximum_version=ssl.TLSVersion.TLSv1_1)
    ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
    with pytest.raises((ssl.SSLError, ConnectionResetError)):
        reader, writer = await asyncio.open_connection("127.0.0.1", webhook.server.webhook_port, ssl=ctx)
        writer.close()
    ok = client_ssl(ca, maximum_version=ssl.TLSVersion.TLSv1_2)
    reader, writer = await asyncio.open_connection("127.0.0.1", webhook.server.webhook_port, ssl=ok)
    assert writer.get_extra_info("ssl_object").version() == "TLSv1.2"
    writer.close()


async def test_partial_request_does_not_block_others_and_is_closed(start_server, https, ca) -> None:
    """Slowloris: a connection that never finishes its headers, one that stalls in its body."""
    server = await start_server(keepalive_timeout=0.5, body_timeout=0.5)
    webhook = Webhook(server, https)
    port = server.webhook_port
    headers_reader, stuck_headers = await asyncio.open_connection("127.0.0.1", port, ssl=client_ssl(ca))
    stuck_headers.write(b"POST /mutate HTTP/1.1\r\nHost: x\r\nContent-Type: appl")
    body_reader, stuck_body = await asyncio.open_connection("127.0.0.1", port, ssl=client_ssl(ca))
    stuck_body.write(b"POST /mutate HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"Content-Length: 1000\r\n\r\n{\"apiVersion\":")
    await stuck_body.drain()

    # Others are served meanwhile.
    answers = await asyncio.gather(*(webhook.review(make_pod(name=f"p{i}")) for i in range(10)))
    assert all(a["response"]["allowed"] for a in answers)

    # The stalled body gets 408 once its time is up; both connections are closed by the server.
    head = await asyncio.wait_for(body_reader.read(), 10)
    assert head.startswith(b"HTTP/1.1 408")
    assert await asyncio.wait_for(headers_reader.read(), 10) == b""
    for w in (stuck_headers, stuck_body):
        w.close()


async def test_admission_log_line_has_the_fields_and_no_pod_body(webhook: Webhook, caplog) -> None:
    caplog.set_level("INFO", logger="connect-inject")
    pod = docs_pod("static-server")
    await webhook.review(pod, uid="uid-log", namespace="apps")
    [record] = [r for r in caplog.records if r.getMessage() == "admission"]
    assert record.fields["uid"] == "uid-log"
    assert record.fields["namespace"] == "apps"
    assert record.fields["pod"] == "static-server-5d8f7c9b6-"
    assert record.fields["decision"] == "injected"
    assert record.fields["reason"] == "annotation-true"
    assert record.fields["duration_ms"] > 0
    assert "hashicorp/http-echo" not in str(record.fields)


def _cold_cache(webhook: Webhook, monkeypatch) -> None:
    """As with an API server whose namespaces are not cached yet: every lookup needs resolve()."""
    monkeypatch.setattr(webhook.server.namespaces, "needs_get", lambda name: True)
    monkeypatch.setattr(webhook.server.namespaces, "cached", lambda name: None)


async def test_our_own_fault_is_a_500_status_without_traceback(webhook: Webhook, monkeypatch) -> None:
    async def broken(_name):
        raise RuntimeError("cache bug")

    _cold_cache(webhook, monkeypatch)
    monkeypatch.setattr(webhook.server.namespaces, "resolve", broken)
    status, body = await webhook.post(admission_review(make_pod({"consul.hashicorp.com/connect-inject": "true"})))
    assert status == 500 and body["kind"] == "Status"
    assert "cache bug" not in json.dumps(body) and "Traceback" not in json.dumps(body)
    assert metric_value(await webhook.metrics(), "connect_inject_admission_requests_total",
                        result="error", reason="internal-error") == 1


async def test_pods_that_are_not_injected_never_wait_for_namespace_labels(webhook: Webhook, monkeypatch) -> None:
    """Labels are fetched only when the engine asks for them: an opted-out pod or one in
    kube-system is answered even while its namespace cannot be read."""
    from generator.kube.nscache import NamespaceUnavailable

    async def unreadable(name):
        raise NamespaceUnavailable(f"namespace {name!r} cannot be read")

    _cold_cache(webhook, monkeypatch)
    monkeypatch.setattr(webhook.server.namespaces, "resolve", unreadable)
    for pod, namespace in ((make_pod({"consul.hashicorp.com/connect-inject": "false"}), "new-ns"), (make_pod(), "kube-system")):
        status, body = await webhook.post(admission_review(pod, namespace=namespace))
        assert status == 200 and body["response"]["allowed"] is True and "patch" not in body["response"]
    status, body = await webhook.post(admission_review(make_pod({"consul.hashicorp.com/connect-inject": "true"}), namespace="new-ns"))
    assert status == 500 and "new-ns" in body["message"]


async def test_not_ready_without_configuration(start_server, https) -> None:
    server = await start_server(config=None)
    status, text = await Webhook(server, https).get("/readyz")
    assert status == 503 and "configuration not loaded" in text


def _mutations(seed: int, count: int):
    """Seeded structural mutations of a valid review: a node replaced by a value of another type."""
    import random

    rng = random.Random(seed)
    odd = [None, 0, -1, 2**70, 1.5, "", "x" * 300, "\u0000\ud7ff\u2028", [], [None], {}, {"": None}, True]
    base = admission_review(docs_pod("static-client"), uid="fuzz")
    for _ in range(count):
        review = json.loads(json.dumps(base))
        for _ in range(rng.randint(1, 3)):
            node, path = review, []
            while isinstance(node, (dict, list)) and node and rng.random() < 0.8:
                key = rng.choice(list(node)) if isinstance(node, dict) else rng.randrange(len(node))
                path.append(key)
                parent, node = node, node[key]
            if path:
                parent[path[-1]] = json.loads(json.dumps(rng.choice(odd)))
        yield review


async def test_malformed_reviews_never_get_a_500_nor_kill_the_server(webhook: Webhook) -> None:
    statuses = []
    for review in _mutations(seed=3, count=300):
        status, body = await webhook.post(review)
        statuses.append(status)
        assert status in (200, 400), body
        if status == 200:
            assert body["response"]["uid"] == review["request"]["uid"]
            assert body["response"].get("status", {}).get("code", 200) != 500, body
    assert 200 in statuses and 400 in statuses  # both paths were exercised
    assert (await webhook.review(docs_pod("static-server")))["response"]["allowed"] is True


async def test_a_non_string_namespace_is_a_400(webhook: Webhook) -> None:
    review = admission_review(make_pod(), uid="ns")
    review["request"]["namespace"] = {"": None}
    status, body = await webhook.post(review)
    assert (status, body.get("response", {}).get("status", {}).get("code")) in ((400, None), (200, 400)), body


async def test_a_namespace_cache_miss_costs_one_review(webhook: Webhook, monkeypatch) -> None:
    """Issue 10: the server once reviewed a pod twice on a miss (first without labels, then with).
    Now review() runs once, in a worker that waits for the one GET."""
    from generator.webhook import server as server_mod

    calls = []
    real = server_mod.review

    def counting(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    async def fetched(name):
        return {"consul.hashicorp.com/transparent-proxy": "false"}

    _cold_cache(webhook, monkeypatch)
    monkeypatch.setattr(webhook.server.namespaces, "resolve", fetched)
    monkeypatch.setattr(server_mod, "review", counting)
    status, body = await webhook.post(admission_review(make_pod({"consul.hashicorp.com/connect-inject": "true"}), namespace="fresh"))
    assert status == 200 and body["response"]["allowed"] is True
    assert "redirect-traffic" not in json.dumps(body) and "redirect-traffic" not in base64.b64decode(body["response"]["patch"]).decode()
    assert len(calls) == 1
