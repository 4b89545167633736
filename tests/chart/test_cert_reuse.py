"""On upgrade the chart reuses its webhook certificate (Helm `lookup`), so caBundle and key stay in step.

An upgrade reuses the Secret only while its annotations say the certificate is good for more than
30 more days and holds the Service's DNS names; otherwise it makes a new one, and the webhook
configurations trust the previous CA too until the next upgrade (replicas still serving the old
certificate keep answering during the rollout).

`lookup` needs an API server. A minimal one (discovery plus GET of Secrets) runs here on 127.0.0.1
in a thread, holding the Secret a previous install made; Helm 4 (in process, `Config.render`)
and the Helm 3 binary (`helm template --dry-run=server`) render against it.
"""

from __future__ import annotations

import base64
import json
import subprocess
import threading
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from cryptography import x509

from helmrender import CHART, helm_env, render

ENABLED = {"connectInject": {"enabled": True}}
SECRET = "consul-consul-connect-inject-webhook-cert"


class FakeApiServer(ThreadingHTTPServer):
    """Answers what Helm's lookup asks: /version, discovery, GET /api/v1/namespaces/NS/secrets/NAME."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.secrets: dict[tuple[str, str], dict] = {}
        self.gets: list[str] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _Handler(BaseHTTPRequestHandler):
    server: FakeApiServer

    def log_message(self, *args) -> None:  # quiet
        pass

    def _send(self, code: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:  # noqa: N802
        path = self.path.split("?")[0]
        parts = path.strip("/").split("/")
        if path == "/version":
            return self._send(200, {"major": "1", "minor": "29", "gitVersion": "v1.29.0", "platform": "linux/amd64"})
        if path == "/api":
            return self._send(200, {"kind": "APIVersions", "versions": ["v1"],
                                    "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1"}]})
        if path == "/apis":
            return self._send(200, {"kind": "APIGroupList", "apiVersion": "v1", "groups": []})
        if path == "/api/v1":
            return self._send(200, {"kind": "APIResourceList", "groupVersion": "v1", "resources": [
                {"name": "secrets", "singularName": "secret", "namespaced": True, "kind": "Secret",
                 "verbs": ["get", "list"]}]})
        if len(parts) == 6 and parts[:3] == ["api", "v1", "namespaces"] and parts[4] == "secrets":
            self.server.gets.append(path)
            secret = self.server.secrets.get((parts[3], parts[5]))
            if secret:
                return self._send(200, secret)
            return self._send(404, {"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound",
                                    "message": f'secrets "{parts[5]}" not found', "code": 404})
        return self._send(404, {"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound",
                                "message": f"{path} not found", "code": 404})


@pytest.fixture
def api():
    server = FakeApiServer()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def _kubeconfig(tmp_path, url: str) -> str:
    path = tmp_path / "kubeconfig"
    path.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": "fake",
        "clusters": [{"name": "fake", "cluster": {"server": url}}],
        "contexts": [{"name": "fake", "context": {"cluster": "fake", "namespace": "consul"}}],
        "users": [{"name": "fake", "user": {"token": "t"}}]}))
    return str(path)


def render_upgrade(api: FakeApiServer, helm: str | None, tmp_path, values: dict = ENABLED) -> dict[str, dict]:
    """Render against the fake API server; returns {kind: object} of the certificate-related objects."""
    import yaml

    if helm is None:
        from helm_python import Chart, Config

        with Chart.load(CHART) as chart, Config(kube_apiserver=api.url, namespace="consul") as cfg:
            files = cfg.render(chart, values, name="consul", namespace="consul", is_upgrade=True, revision=2)
        text = "\n---\n".join(t for name, t in files.items() if not name.endswith("NOTES.txt"))
    else:
        values_file = tmp_path / "values.json"
        values_file.write_text(json.dumps(values))
        env = {**helm_env(), "KUBECONFIG": _kubeconfig(tmp_path, api.url)}
        proc = subprocess.run([helm, "template", "consul", str(CHART), "-n", "consul", "-f", str(values_file),
                               "--dry-run=server", "--is-upgrade"], capture_output=True, text=True, env=env, timeout=120)
        assert proc.returncode == 0, proc.stderr
        text = proc.stdout
    docs = [d for d in yaml.safe_load_all(text) if d]
    webhook = [d for d in docs if d["kind"] == "Deployment" and d["metadata"]["labels"]["component"] == "connect-injector"]
    return {d["kind"]: d for d in docs if d["kind"] in ("Secret", "MutatingWebhookConfiguration", "ValidatingWebhookConfiguration")
            } | {"Deployment": webhook[0]}


def test_upgrade_reuses_the_existing_certificate(api: FakeApiServer, helm: str | None, tmp_path) -> None:
    previous = render(ENABLED).get("Secret")  # what the first install created
    api.secrets[("consul", SECRET)] = previous
    objs = render_upgrade(api, helm, tmp_path)
    assert api.gets == [f"/api/v1/namespaces/consul/secrets/{SECRET}"]
    assert objs["Secret"]["data"] == previous["data"]
    assert objs["Secret"]["metadata"]["annotations"] == previous["metadata"]["annotations"]
    assert objs["MutatingWebhookConfiguration"]["webhooks"][0]["clientConfig"]["caBundle"] == previous["data"]["ca.crt"]


def test_a_missing_or_incomplete_secret_gets_a_new_certificate(api: FakeApiServer, helm: str | None, tmp_path) -> None:
    previous = render(ENABLED).get("Secret")
    api.secrets[("consul", SECRET)] = {**previous, "data": {"tls.crt": previous["data"]["tls.crt"]}}  # no key, no CA
    objs = render_upgrade(api, helm, tmp_path)
    assert objs["Secret"]["data"]["tls.crt"] != previous["data"]["tls.crt"]
    assert objs["MutatingWebhookConfiguration"]["webhooks"][0]["clientConfig"]["caBundle"] == objs["Secret"]["data"]["ca.crt"]
    assert objs["ValidatingWebhookConfiguration"]["webhooks"][0]["clientConfig"]["caBundle"] == objs["Secret"]["data"]["ca.crt"]


def test_the_ca_checksum_is_stable_across_upgrades(api: FakeApiServer, helm: str | None, tmp_path) -> None:
    """Pods roll only when the CA changes: an upgrade that reuses the certificate keeps the checksum."""
    first = render(ENABLED)
    api.secrets[("consul", SECRET)] = first.get("Secret")
    key = "consul.hashicorp.com/webhook-ca-checksum"
    again = render_upgrade(api, helm, tmp_path)["Deployment"]["spec"]["template"]["metadata"]["annotations"][key]
    assert again == first.webhook()["spec"]["template"]["metadata"]["annotations"][key]


NOT_AFTER = "consul.hashicorp.com/cert-not-after"
DNS_NAMES = "consul.hashicorp.com/cert-dns-names"


def _validity(days: int) -> dict:
    return {"connectInject": {"enabled": True, "webhook": {"tls": {"validityDays": days}}}}


def _pems(b64: str) -> list[x509.Certificate]:
    return x509.load_pem_x509_certificates(base64.b64decode(b64))


def _bundles(objs: dict[str, dict]) -> list[list[x509.Certificate]]:
    return [_pems(objs[kind]["webhooks"][0]["clientConfig"]["caBundle"])
            for kind in ("MutatingWebhookConfiguration", "ValidatingWebhookConfiguration")]


def test_the_secret_records_the_real_expiry_and_names_of_its_certificate() -> None:
    secret = render(ENABLED, namespace="infra").get("Secret")
    notes = secret["metadata"]["annotations"]
    recorded = datetime.fromisoformat(notes[NOT_AFTER])
    for cert in (_pems(secret["data"]["tls.crt"])[0], _pems(secret["data"]["ca.crt"])[0]):
        # Never later than the certificate's own date (so the 30-day margin is never short), and close to it.
        assert timedelta(0) <= cert.not_valid_after_utc - recorded < timedelta(seconds=30)
    names = _pems(secret["data"]["tls.crt"])[0].extensions.get_extension_for_class(
        x509.SubjectAlternativeName).value.get_values_for_type(x509.DNSName)
    assert notes[DNS_NAMES].split(",") == names


def test_a_certificate_valid_for_more_than_30_days_is_reused(api: FakeApiServer, helm: str | None, tmp_path) -> None:
    previous = render(_validity(45)).get("Secret")  # a short-lived certificate, 45 days left
    api.secrets[("consul", SECRET)] = previous
    objs = render_upgrade(api, helm, tmp_path)  # default validityDays: only a new certificate would change
    assert objs["Secret"]["data"] == previous["data"]
    assert objs["Secret"]["metadata"]["annotations"] == previous["metadata"]["annotations"]
    assert [b for b in _bundles(objs)] == [_pems(previous["data"]["ca.crt"])] * 2


def test_a_certificate_expiring_within_30_days_is_replaced(api: FakeApiServer, helm: str | None, tmp_path) -> None:
    previous = render(_validity(10)).get("Secret")  # expires in 10 days
    api.secrets[("consul", SECRET)] = previous
    objs = render_upgrade(api, helm, tmp_path)
    secret = objs["Secret"]
    assert secret["data"]["tls.crt"] != previous["data"]["tls.crt"]
    assert secret["data"]["tls.key"] != previous["data"]["tls.key"]
    new_ca, new_cert = _pems(secret["data"]["ca.crt"])[0], _pems(secret["data"]["tls.crt"])[0]
    new_cert.verify_directly_issued_by(new_ca)
    assert new_cert.not_valid_after_utc - datetime.now(timezone.utc) > timedelta(days=3640)  # validityDays 3650
    recorded = datetime.fromisoformat(secret["metadata"]["annotations"][NOT_AFTER])
    assert timedelta(0) <= new_cert.not_valid_after_utc - recorded < timedelta(seconds=30)
    # Both webhooks trust the new CA, and the previous one while old replicas still serve its certificate.
    old_ca = _pems(previous["data"]["ca.crt"])[0]
    assert _bundles(objs) == [[new_ca, old_ca]] * 2
    # The pods roll (new serving CA).
    key = "consul.hashicorp.com/webhook-ca-checksum"
    annotations = objs["Deployment"]["spec"]["template"]["metadata"]["annotations"]
    assert annotations[key] != render(_validity(10)).webhook()["spec"]["template"]["metadata"]["annotations"][key]

    # The next upgrade reuses the new certificate and trusts only its CA; the pods do not roll again.
    api.secrets[("consul", SECRET)] = secret
    again = render_upgrade(api, helm, tmp_path)
    assert again["Secret"]["data"] == secret["data"]
    assert _bundles(again) == [[new_ca]] * 2
    assert again["Deployment"]["spec"]["template"]["metadata"]["annotations"][key] == annotations[key]


def test_a_certificate_for_other_dns_names_is_replaced(api: FakeApiServer, helm: str | None, tmp_path) -> None:
    """A Secret of the same name made for another namespace (restored or copied there) names other hosts."""
    previous = render(ENABLED, namespace="other").get("Secret")
    assert previous["metadata"]["name"] == SECRET
    api.secrets[("consul", SECRET)] = previous
    secret = render_upgrade(api, helm, tmp_path)["Secret"]
    assert secret["data"]["tls.crt"] != previous["data"]["tls.crt"]
    names = _pems(secret["data"]["tls.crt"])[0].extensions.get_extension_for_class(
        x509.SubjectAlternativeName).value.get_values_for_type(x509.DNSName)
    svc = "consul-consul-connect-injector-svc"
    assert names == [svc, f"{svc}.consul", f"{svc}.consul.svc", f"{svc}.consul.svc.cluster.local"]
    assert secret["metadata"]["annotations"][DNS_NAMES] == ",".join(names)


@pytest.mark.parametrize("annotations", [
    None,  # made by a release before the annotations existed
    {DNS_NAMES: "as rendered"},  # no expiry recorded
    {NOT_AFTER: "2999-01-01T00:00:00Z"},  # no DNS names recorded
    {NOT_AFTER: "next year", DNS_NAMES: "as rendered"},  # not RFC 3339
], ids=["no-annotations", "no-not-after", "no-dns-names", "unparsable-not-after"])
def test_a_secret_without_usable_annotations_is_replaced(api: FakeApiServer, helm: str | None, tmp_path, annotations) -> None:
    previous = render(ENABLED).get("Secret")
    recorded = previous["metadata"].pop("annotations")
    if annotations is not None:
        previous["metadata"]["annotations"] = {k: recorded[k] if v == "as rendered" else v for k, v in annotations.items()}
    api.secrets[("consul", SECRET)] = previous
    objs = render_upgrade(api, helm, tmp_path)
    assert objs["Secret"]["data"]["tls.crt"] != previous["data"]["tls.crt"]
    assert set(objs["Secret"]["metadata"]["annotations"]) == {NOT_AFTER, DNS_NAMES}
    assert _bundles(objs)[0][0] == _pems(objs["Secret"]["data"]["ca.crt"])[0]
