"""On upgrade the chart reuses its webhook certificate (Helm `lookup`), so caBundle and key stay in step.

`lookup` needs an API server. A minimal one (discovery plus GET of Secrets) runs here on 127.0.0.1
in a thread, holding the Secret a previous install made; Helm 4 (in process, `Config.render`)
and the Helm 3 binary (`helm template --dry-run=server`) render against it.
"""

from __future__ import annotations

import json
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

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


def render_upgrade(api: FakeApiServer, helm: str | None, tmp_path) -> dict[str, dict]:
    """Render against the fake API server; returns {kind: object} of the certificate-related objects."""
    import yaml

    if helm is None:
        from helm_python import Chart, Config

        with Chart.load(CHART) as chart, Config(kube_apiserver=api.url, namespace="consul") as cfg:
            files = cfg.render(chart, ENABLED, name="consul", namespace="consul", is_upgrade=True, revision=2)
        text = "\n---\n".join(t for name, t in files.items() if not name.endswith("NOTES.txt"))
    else:
        values = tmp_path / "values.json"
        values.write_text(json.dumps(ENABLED))
        env = {**helm_env(), "KUBECONFIG": _kubeconfig(tmp_path, api.url)}
        proc = subprocess.run([helm, "template", "consul", str(CHART), "-n", "consul", "-f", str(values),
                               "--dry-run=server", "--is-upgrade"], capture_output=True, text=True, env=env, timeout=120)
        assert proc.returncode == 0, proc.stderr
        text = proc.stdout
    docs = [d for d in yaml.safe_load_all(text) if d]
    return {d["kind"]: d for d in docs if d["kind"] in ("Secret", "MutatingWebhookConfiguration", "ValidatingWebhookConfiguration", "Deployment")}


def test_upgrade_reuses_the_existing_certificate(api: FakeApiServer, helm: str | None, tmp_path) -> None:
    previous = render(ENABLED).get("Secret")  # what the first install created
    api.secrets[("consul", SECRET)] = previous
    objs = render_upgrade(api, helm, tmp_path)
    assert api.gets == [f"/api/v1/namespaces/consul/secrets/{SECRET}"]
    assert objs["Secret"]["data"] == previous["data"]
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
    assert again == first.get("Deployment")["spec"]["template"]["metadata"]["annotations"][key]
