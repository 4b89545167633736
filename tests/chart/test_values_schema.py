"""values-schema.yaml (yamale) and chart/values.schema.json (Helm) accept and refuse the same values.

The JSON schema is generated from the yamale one (`make schema`); a test fails when the file on
disk is stale. Every file in bad-values/ names, in its first line, the key it must be refused at:
`connect-inject check-values` (yamale) and Helm's schema check must both refuse it and name that key.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from helmrender import CHART, ROOT, RenderError, render

BAD = sorted((Path(__file__).parent / "bad-values").glob("*.yaml"))
GOOD = {"chart defaults": CHART / "values.yaml", "kitchen sink": CHART / "ci" / "kitchen-sink-values.yaml"}


def rejected_at(path: Path) -> str:
    first = path.read_text().splitlines()[0]
    m = re.fullmatch(r"# rejected at: (\S+)", first)
    assert m, f"{path.name}: first line must be '# rejected at: <key path>'"
    return m.group(1)


def names_key(message: str, key: str) -> bool:
    """The message names `key`: as a.b.c (yamale, Helm 3), /a/b/c (Helm 4), or parent + 'leaf'."""
    dotted = re.sub(r"'/([^']*)'", lambda m: m.group(1).replace("/", "."), message)
    parent, _, leaf = key.rpartition(".")
    if re.search(rf"(^|[\s'\"]){re.escape(key)}([:\s'\"]|$)", dotted, re.M):
        return True
    # An unknown key is reported at its parent: "connectInject: Additional property replica ...".
    parent_ok = not parent or re.search(rf"(^|[\s'\"]){re.escape(parent)}([:\s'\"]|$)", dotted, re.M)
    return bool(parent_ok) and re.search(rf"\b{re.escape(leaf)}\b", dotted) is not None


def check_values(*files: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "generator", "check-values", *(a for f in files for a in ("--values", str(f)))],
                          capture_output=True, text=True, cwd=ROOT, env=env, timeout=60)


def test_values_schema_json_is_generated_from_values_schema_yaml() -> None:
    from generator.tools import schema_json

    assert (CHART / "values.schema.json").read_text() == schema_json.render(), \
        "chart/values.schema.json is stale: run `make schema`"


def test_schema_generator_check_mode() -> None:
    proc = subprocess.run([sys.executable, "-m", "generator.tools.schema_json", "--check"], capture_output=True, text=True,
                          cwd=ROOT, timeout=60)
    assert proc.returncode == 0, proc.stderr


def test_bad_values_corpus_covers_the_issue_cases() -> None:
    names = {p.stem for p in BAD}
    assert {"replicas-zero", "failure-policy-enum", "unknown-connect-inject-key", "replicas-string"} <= names


@pytest.mark.parametrize("path", BAD, ids=[p.stem for p in BAD])
def test_yamale_check_values_refuses_and_names_the_key(path: Path) -> None:
    proc = check_values(path)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert names_key(proc.stderr, rejected_at(path)), proc.stderr


@pytest.mark.parametrize("path", BAD, ids=[p.stem for p in BAD])
def test_helm_schema_refuses_and_names_the_key(path: Path, helm: str | None) -> None:
    with pytest.raises(RenderError) as exc:
        render([{"connectInject": {"enabled": True}}, path], helm=helm)
    message = str(exc.value)
    assert "schema" in message, message
    assert names_key(message, rejected_at(path)), message


@pytest.mark.parametrize("name", sorted(GOOD))
def test_good_values_pass_both(name: str, helm: str | None, tmp_path) -> None:
    path = GOOD[name]
    render(path, helm=helm)  # no schema error
    ca = tmp_path / "consul-ca.pem"
    ca.write_text(_self_signed_pem())
    proc = check_values(path, env={"CONSUL_CACERT": str(ca), "PATH": "/usr/bin:/bin"})
    assert proc.returncode == 0, proc.stderr


def test_a_values_file_written_for_the_consul_chart_passes_the_schema() -> None:
    consul_chart_values = {
        "global": {"name": "consul", "datacenter": "dc1", "gossipEncryption": {"secretName": "g", "secretKey": "k"},
                   "tls": {"enabled": False, "verify": True}},
        "server": {"replicas": 3, "bootstrapExpect": 3},
        "client": {"enabled": True, "grpc": True},
        "ui": {"enabled": True, "service": {"type": "LoadBalancer"}},
        "connectInject": {"enabled": True, "default": True},
        "syncCatalog": {"enabled": False},
    }
    assert render(consul_chart_values).webhook()


def test_names_key_is_strict() -> None:
    assert names_key("connectInject.replicas: 0 is less than 1", "connectInject.replicas")
    assert names_key("- at '/connectInject/replicas': minimum: got 0, want 1", "connectInject.replicas")
    assert names_key("- connectInject: Additional property replica is not allowed", "connectInject.replica")
    assert not names_key("connectInject.replicasX: bad", "connectInject.replicas")
    assert not names_key("global.replicas: bad", "connectInject.replicas")


def _self_signed_pem() -> str:
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Consul CA")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    return cert.public_bytes(serialization.Encoding.PEM).decode()
