"""Issue 5's pod features through the real HTTPS webhook: native sidecars, extra templates and
per-pod overrides arrive in the patch the API server applies; their bad input is a 400 inside a 200."""

from __future__ import annotations

import yaml

from generator.inject import engine

from .conftest import Webhook, docs_pod, patched

P = "consul.hashicorp.com/"
LOG_SHIPPER = "containers:\n  - name: log-shipper\n    image: fluent/fluent-bit:3.0\n"


def _config(tmp_path):
    values = tmp_path / "values.yaml"
    values.write_text(yaml.safe_dump({"connectInject": {"templates": {"log-shipper": LOG_SHIPPER}}}))
    return engine.load([str(values)], environ={})


async def test_native_sidecar_extra_template_and_override(start_server, https, tmp_path) -> None:
    webhook = Webhook(await start_server(config=_config(tmp_path)), https)
    pod = docs_pod("static-server")
    pod["metadata"]["annotations"].update({P + "native-sidecar": "true", P + "extra-templates": "log-shipper"})
    pod["spec"]["initContainers"] = [{"name": "envoy-sidecar", "image": "", "resources": {"limits": {"memory": "256Mi"}}}]
    out = patched(pod, (await webhook.review(pod))["response"])
    init = {c["name"]: c for c in out["spec"]["initContainers"]}
    assert list(init) == ["copy-consul-bin", "consul-connect-inject-init", "envoy-sidecar"]
    assert init["envoy-sidecar"]["restartPolicy"] == "Always"
    assert init["envoy-sidecar"]["resources"] == {"limits": {"memory": "256Mi"}}
    assert [c["name"] for c in out["spec"]["containers"]] == ["static-server", "log-shipper"]


async def test_unknown_extra_template_is_a_400_with_the_known_names(start_server, https, tmp_path) -> None:
    webhook = Webhook(await start_server(config=_config(tmp_path)), https)
    pod = docs_pod("static-server")
    pod["metadata"]["annotations"][P + "extra-templates"] = "nope"
    response = (await webhook.review(pod))["response"]
    assert response["allowed"] is False and response["status"]["code"] == 400
    assert "known extra templates: log-shipper" in response["status"]["message"]
