"""The golden cases again, this time through the real webhook: `connect-inject serve` started as a
process on 127.0.0.1 with the case's values, each pod POSTed over HTTPS (certificate verified
against a CA made here) as the API server would, and the workloads reassembled by the same
`inject_stream` the CLI uses. The bytes must equal the golden files."""

from __future__ import annotations

import json
import os
import selectors
import ssl
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from generator.tools.devcerts import CA, write_secret
from golden_cases import ROOT, cases, in_process

CASES = cases()


class Served:
    """`connect-inject serve` in a child process, bounded in time."""

    def __init__(self, case, cert_dir: Path, home: Path):
        args = [sys.executable, "-m", "generator", "serve", "--listen", "127.0.0.1:0", "--health-listen", "127.0.0.1:0",
                "--tls-cert-dir", str(cert_dir), "--log-json"]
        for expr in case.sets:
            args += ["--set", expr]
        env = {k: v for k, v in os.environ.items() if k not in ("KUBECONFIG", "KUBERNETES_SERVICE_HOST", "CONSUL_CACERT") and not k.endswith("_DNS_SERVICE_HOST")}
        self.proc = subprocess.Popen(args, cwd=ROOT, env={**env, **case.env, "HOME": str(home)}, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self.port = self._port()

    def _port(self, timeout: float = 30) -> int:
        deadline, buffer = time.monotonic() + timeout, b""
        with selectors.DefaultSelector() as sel:
            sel.register(self.proc.stderr, selectors.EVENT_READ)
            while time.monotonic() < deadline:
                if not sel.select(deadline - time.monotonic()):
                    break
                chunk = os.read(self.proc.stderr.fileno(), 65536)
                if not chunk:
                    break
                buffer += chunk
                for line in buffer.splitlines():
                    record = json.loads(line) if line.startswith(b"{") else {}
                    if record.get("msg") == "listening":
                        return int(record["webhook"].rsplit(":", 1)[1].split("/")[0])
        self.stop()
        raise AssertionError(f"serve did not start: {buffer.decode(errors='replace')}")

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait(10)


@pytest.fixture(scope="module")
def ca() -> CA:
    return CA()


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_webhook_over_https_matches_golden(case, ca, tmp_path):
    cert_dir = tmp_path / "certs"
    write_secret(cert_dir, ca.issue())
    context = ssl.create_default_context(cadata=ca.cert_pem.decode())
    served = Served(case, cert_dir, tmp_path)
    try:
        def reviewer(request: dict) -> dict:
            post = urllib.request.Request(f"https://127.0.0.1:{served.port}/mutate", data=json.dumps(request).encode(),
                                          headers={"Content-Type": "application/json"}, method="POST")
            with urllib.request.urlopen(post, context=context, timeout=10) as answer:
                return json.loads(answer.read())

        assert in_process(case, reviewer) == case.expected_path.read_text()
    finally:
        served.stop()
