"""A values file cannot change the structure of what the chart renders (security review, finding 11).

Every string value that reaches a template is rendered once with a plain placeholder and once with
a hostile payload (a newline followed by YAML, quotes, YAML indicators, shell metacharacters, the
line breaks YAML knows besides \\n, strings YAML would read as a boolean or a number). Both renders
must parse to the same objects once the payload is read back as the placeholder: no extra key,
volume or container, and the payload verbatim as one string wherever the placeholder was (in a
name, a label, an image, one argument of a command, or inside the ConfigMap's JSON). Values the
values schema refuses never render; they are listed and checked to be refused.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from helmrender import RenderError, render

PLACEHOLDER = "zzplaceholderzz"
PAYLOADS = {
    "newline-key": "x\nextra: injected",
    "hostpath-volume": "x\n        - name: host\n          hostPath: {path: /}",
    "yaml-indicators": "- &a *a !!str | > % @ ` # {b: [c]} ? d",
    "quotes-shell": "x' \"$(id)\" `id`; \\\" id && $HOME #",
    "line-breaks": "a\r\nb\rc\u0085d\u2028e\u2029f\tg",
    "scalar-true": "true",
    "scalar-octal": "0123",
}

ENABLED = {"connectInject": {"enabled": True}}
AUTO_ENCRYPT = {"global": {"tls": {"enabled": True, "enableAutoEncrypt": True}}}
EXTERNAL = {**AUTO_ENCRYPT, "externalServers": {"enabled": True, "hosts": ["consul.example.com"],
                                                "tlsServerName": "server.dc1.consul", "httpsPort": 8501}}
CERT_MANAGER = {"connectInject": {"webhook": {"tls": {"mode": "certManager", "certManager": {
    "issuerRef": {"name": "issuer", "kind": "ClusterIssuer", "group": "cert-manager.io"}}}}}}
# A fixed certificate instead of a generated one: names with any characters render (a generated
# certificate must hold the names as ASCII DNS names), and no key is generated on each render.
EXISTING_SECRET = {"connectInject": {"webhook": {"tls": {"mode": "secret", "secretName": "webhook-cert",
                                                         "caBundle": "Zm9v"}}}}

# Value path -> values it needs around it to render. A path is dotted keys, [0] for a list item.
PATHS: dict[str, dict] = {
    # Names: every object name, label and reference built from the fullname or the name.
    "global.name": {},
    "fullnameOverride": {},
    "nameOverride": {},
    # The Consul CA Secret the webhook mounts (the finding: a newline added a hostPath volume).
    "global.tls.caCert.secretName": {"global": {"tls": {"enabled": True}}},
    "global.tls.caCert.secretKey": {"global": {"tls": {"enabled": True}}},
    "global.imageK8S": AUTO_ENCRYPT,
    "global.imagePullSecrets[0].name": {},
    # Arguments of the auto-encrypt init container.
    "externalServers.hosts[0]": EXTERNAL,
    "externalServers.httpsPort": EXTERNAL,
    "externalServers.tlsServerName": EXTERNAL,
    "connectInject.webhook.image": {},
    "connectInject.priorityClassName": {},
    "connectInject.webhook.tls.certManager.issuerRef.name": CERT_MANAGER,
    "connectInject.webhook.tls.certManager.issuerRef.kind": CERT_MANAGER,
    # Only in the ConfigMap's JSON (and NOTES.txt, which is text), as every engine setting.
    "global.image": {},
    "connectInject.k8sDenyNamespaces[0]": {},
}
CERT_MANAGER_PATHS = [p for p, around in PATHS.items() if around is CERT_MANAGER]
# Paths whose values reach the chart's names: also rendered with the chart-generated certificate
# (the Secret, its DNS-name annotation) for the payloads a certificate can hold.
NAME_PATHS = ("global.name", "fullnameOverride", "nameOverride")


def _set(values: dict, path: str, value: Any) -> dict:
    out = copy.deepcopy(values)
    node: Any = out
    keys = [int(k[1:-1]) if k.startswith("[") else k for k in path.replace("[", ".[").split(".")]
    for key, nxt in zip(keys, keys[1:]):
        if isinstance(key, int):
            while len(node) <= key:
                node.append({} if not isinstance(nxt, int) else [])
            node = node[key]
        else:
            node = node.setdefault(key, [] if isinstance(nxt, int) else {})
    if isinstance(keys[-1], int):
        while len(node) <= keys[-1]:
            node.append(None)
    node[keys[-1]] = value
    return out


def _normalise(objects: list[dict]) -> list[dict]:
    """Drop what differs on every render (generated keys, times, checksums); parse the ConfigMap's JSON."""
    out = copy.deepcopy(objects)
    for obj in out:
        if obj["kind"] == "ConfigMap":
            obj["data"] = {k: json.loads(v) for k, v in obj["data"].items()}
        if obj["kind"] == "Secret":
            obj.pop("data", None)
            obj["metadata"].get("annotations", {}).pop("consul.hashicorp.com/cert-not-after", None)
        for webhook in obj.get("webhooks", []):
            webhook["clientConfig"].pop("caBundle", None)
        if obj["kind"] == "Deployment":
            for key in ("consul.hashicorp.com/config-checksum", "consul.hashicorp.com/webhook-ca-checksum"):
                obj["spec"]["template"]["metadata"]["annotations"].pop(key, None)
    return out


def _replace(node: Any, old: str, new: str) -> Any:
    if isinstance(node, dict):
        return {_replace(k, old, new): _replace(v, old, new) for k, v in node.items()}
    if isinstance(node, list):
        return [_replace(v, old, new) for v in node]
    if isinstance(node, str):
        return node.replace(old, new)
    return node


def _count(node: Any, text: str) -> int:
    if isinstance(node, dict):
        return sum(_count(k, text) + _count(v, text) for k, v in node.items())
    if isinstance(node, list):
        return sum(_count(v, text) for v in node)
    return node.count(text) if isinstance(node, str) else 0


def _structure(path: str, value: str, around: dict, helm: str | None) -> list[dict]:
    return _normalise(render([ENABLED, around, _set({}, path, value)], helm=helm).objects)


_BASELINES: dict[tuple, list[dict]] = {}


def _check(path: str, payload: str, around: dict, helm: str | None) -> None:
    key = (path, json.dumps(around, sort_keys=True), helm)
    if key not in _BASELINES:
        _BASELINES[key] = _structure(path, PLACEHOLDER, around, helm)
    baseline = _BASELINES[key]
    hostile = _structure(path, payload, around, helm)
    assert _count(baseline, PLACEHOLDER) > 0, f"{path} does not reach any rendered object"
    # The payload is there verbatim, as often as the placeholder, and nothing else changed.
    assert _count(hostile, payload) == _count(baseline, PLACEHOLDER)
    assert _replace(hostile, payload, PLACEHOLDER) == baseline


@pytest.mark.parametrize("payload", sorted(PAYLOADS))
@pytest.mark.parametrize("path", sorted(PATHS))
def test_a_hostile_value_stays_one_string(path: str, payload: str, helm: str | None) -> None:
    around = PATHS[path] if path in CERT_MANAGER_PATHS else _merge(PATHS[path], EXISTING_SECRET)
    _check(path, PAYLOADS[payload], around, helm)


@pytest.mark.parametrize("payload", ["newline-key", "quotes-shell", "yaml-indicators", "scalar-true", "scalar-octal"])
@pytest.mark.parametrize("path", NAME_PATHS)
def test_a_hostile_name_stays_one_string_with_the_chart_generated_certificate(path: str, payload: str,
                                                                             helm: str | None) -> None:
    _check(path, PAYLOADS[payload], {}, helm)


def test_a_newline_in_the_consul_ca_secret_name_adds_no_volume(helm: str | None) -> None:
    """The review's example, spelled out: the Deployment keeps its four volumes, none a hostPath."""
    name = "consul-ca\n        - name: host\n          hostPath:\n            path: /"
    rendered = render([ENABLED, EXISTING_SECRET, {"global": {"tls": {"enabled": True, "caCert": {"secretName": name}}}}],
                      helm=helm)
    volumes = rendered.webhook()["spec"]["template"]["spec"]["volumes"]
    assert [v["name"] for v in volumes] == ["certs", "config", "tmp", "consul-ca-cert"]
    assert all("hostPath" not in v for v in volumes)
    assert volumes[3]["secret"]["secretName"] == name


def test_external_server_values_are_single_arguments(helm: str | None) -> None:
    """No shell runs them: each value is exactly one argument of the command, whatever it holds."""
    shell = PAYLOADS["quotes-shell"]
    rendered = render([ENABLED, EXTERNAL, {"externalServers": {
        "hosts": [f"consul.example.com {shell}"], "httpsPort": f"443 {shell}", "tlsServerName": f"server\n{shell}"}}],
        helm=helm)
    init = rendered.webhook()["spec"]["template"]["spec"]["initContainers"][0]
    assert init["command"] == [
        "consul-k8s-control-plane", "get-consul-client-ca", "-output-file=/consul/tls/client/ca/tls.crt",
        f"-server-addr=consul.example.com {shell}", f"-server-port=443 {shell}", f"-tls-server-name=server\n{shell}",
        "-ca-file=/consul/tls/ca/tls.crt"]
    assert "args" not in init


def test_control_characters_reach_the_configmap_verbatim(helm: str | None) -> None:
    """DEL and C1 controls (NEL is a line break to YAML): escaped in the ConfigMap's JSON. Helm 3
    refuses such values when it reads them; Helm 4 renders them."""
    value = "a\x7fb\x85    c: d\x9fe"
    if helm is not None:
        with pytest.raises(RenderError, match="control characters"):
            render([ENABLED, {"global": {"image": value}}], helm=helm)
        return
    config = render([ENABLED, {"global": {"image": value}}]).get("ConfigMap")["data"]
    assert list(config) == ["values.json"]
    assert json.loads(config["values.json"])["global"]["image"] == value


# String values the values schema constrains (enums, patterns): a hostile one never renders.
SCHEMA_GUARDED = [
    "global.logLevel",
    "connectInject.logLevel",
    "connectInject.failurePolicy",
    "connectInject.webhook.imagePullPolicy",
    "connectInject.webhook.reinvocationPolicy",
    "connectInject.webhook.tls.mode",
    "connectInject.webhook.tls.secretName",
    "connectInject.webhook.tls.caBundle",
    "connectInject.webhook.tls.certManager.duration",
    "connectInject.webhook.tls.certManager.renewBefore",
]


@pytest.mark.parametrize("path", SCHEMA_GUARDED)
def test_a_hostile_value_the_schema_constrains_is_refused(path: str, helm: str | None) -> None:
    with pytest.raises(RenderError, match=path.rsplit(".", 1)[1]):
        render([ENABLED, _set({}, path, PAYLOADS["newline-key"])], helm=helm)


def _merge(a: dict, b: dict) -> dict:
    out = copy.deepcopy(a)
    for k, v in b.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else copy.deepcopy(v)
    return out
