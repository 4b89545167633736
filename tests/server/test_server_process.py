"""`connect-inject serve` as a process: flags, startup errors, health, metrics, SIGTERM."""

from __future__ import annotations

import asyncio
import json
import os
import resource
import signal
import socket
import sys
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from generator.tools.devcerts import CA

from .conftest import ROOT, admission_review, client_ssl, docs_pod, metric_value


def _env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("KUBECONFIG", "KUBERNETES_SERVICE_HOST")}
    env["HOME"] = str(tmp_path)  # no ~/.kube/config: no cluster, namespace labels empty
    return env


async def spawn(tmp_path: Path, *args: str, nofile: tuple[int, int] | None = None) -> asyncio.subprocess.Process:
    """`serve` with `args`; `nofile` sets its (soft, hard) open-files limit."""
    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, nofile)

    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "generator", "serve", *args, cwd=ROOT, env=_env(tmp_path),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, preexec_fn=limit if nofile else None)


async def run(tmp_path: Path, *args: str) -> tuple[int, list[str]]:
    """Run to completion (bounded); exit code and stderr lines."""
    proc = await spawn(tmp_path, *args)
    _, err = await asyncio.wait_for(proc.communicate(), 60)
    return proc.returncode, err.decode().splitlines()


class Served:
    """A running `serve` process with JSON logs, read line by line."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.webhook_port = self.health_port = 0

    async def line(self, msg: str, timeout: float = 30) -> dict[str, Any]:
        """The next log record whose msg is `msg` (bounded wait)."""
        async with asyncio.timeout(timeout):
            while True:
                raw = await self.proc.stderr.readline()
                assert raw, f"process ended before logging {msg!r}"
                record = json.loads(raw)
                if record["msg"] == msg:
                    return record


@pytest.fixture
async def served(tmp_path: Path, cert_dir: Path):
    proc = await spawn(tmp_path, "--listen", "127.0.0.1:0", "--health-listen", "127.0.0.1:0",
                       "--tls-cert-dir", str(cert_dir), "--log-json", "--shutdown-delay", "0")
    s = Served(proc)
    listening = await s.line("listening")
    s.webhook_port = int(listening["webhook"].rsplit(":", 1)[1].split("/")[0])
    s.health_port = int(listening["health"].rsplit(":", 1)[1].split("/")[0])
    assert listening["ready"] is True
    yield s
    if proc.returncode is None:
        proc.kill()
        await proc.wait()


async def test_sigterm_finishes_the_request_in_flight_refuses_new_ones_and_exits_0(served: Served, ca: CA) -> None:
    body = json.dumps(admission_review(docs_pod("static-client"), uid="in-flight")).encode()
    reader, writer = await asyncio.open_connection("127.0.0.1", served.webhook_port, ssl=client_ssl(ca))
    writer.write(b"POST /mutate HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                 b"Content-Length: %d\r\n\r\n" % len(body) + body[:100])
    await writer.drain()
    async with aiohttp.ClientSession() as http:  # wait until the server is inside the handler
        async with asyncio.timeout(10):
            while True:
                async with http.get(f"http://127.0.0.1:{served.health_port}/metrics") as r:
                    if metric_value(await r.text(), "connect_inject_admission_in_flight") == 1:
                        break

    served.proc.send_signal(signal.SIGTERM)
    assert (await served.line("stopped accepting connections; finishing requests in flight"))["in_flight"] == 1
    with pytest.raises(OSError):  # no longer accepting
        await asyncio.open_connection("127.0.0.1", served.webhook_port)

    writer.write(body[100:])
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    assert head.startswith(b"HTTP/1.1 200")
    length = int([h for h in head.split(b"\r\n") if h.lower().startswith(b"content-length")][0].split(b":")[1])
    answer = json.loads(await reader.readexactly(length))
    assert answer["response"]["uid"] == "in-flight" and answer["response"]["allowed"] is True
    writer.close()
    assert await asyncio.wait_for(served.proc.wait(), 30) == 0


async def test_shutdown_delay_keeps_serving_new_connections_while_readiness_fails(tmp_path: Path, cert_dir: Path, ca: CA) -> None:
    """During --shutdown-delay the API server may still open connections (endpoints not yet updated):
    they are served, while /readyz already says 503."""
    proc = await spawn(tmp_path, "--listen", "127.0.0.1:0", "--health-listen", "127.0.0.1:0",
                       "--tls-cert-dir", str(cert_dir), "--log-json", "--shutdown-delay", "30")
    served = Served(proc)
    listening = await served.line("listening")
    webhook_port = int(listening["webhook"].rsplit(":", 1)[1].split("/")[0])
    health_port = int(listening["health"].rsplit(":", 1)[1].split("/")[0])
    try:
        proc.send_signal(signal.SIGTERM)
        await served.line("still serving while endpoints are updated")
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=client_ssl(ca))) as http:
            async with http.get(f"http://127.0.0.1:{health_port}/readyz") as r:
                assert r.status == 503
            body = json.dumps(admission_review(docs_pod("static-server"), uid="late"))
            async with http.post(f"https://127.0.0.1:{webhook_port}/mutate", data=body,
                                 headers={"Content-Type": "application/json"}) as r:
                assert r.status == 200 and (await r.json())["response"]["uid"] == "late"
    finally:
        proc.kill()
        await proc.wait()


async def test_health_and_metrics_endpoints(served: Served, ca: CA) -> None:
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=client_ssl(ca))) as http:
        base = f"http://127.0.0.1:{served.health_port}"
        for path in ("/healthz", "/readyz", "/readyz/ready"):
            async with http.get(base + path) as r:
                assert r.status == 200, path
        async with http.post(f"https://127.0.0.1:{served.webhook_port}/mutate",
                             json=admission_review(docs_pod("static-server"))) as r:
            assert r.status == 200
        async with http.get(base + "/metrics") as r:
            text = await r.text()
    assert metric_value(text, "connect_inject_admission_requests_total", result="injected", reason="annotation-true") == 1
    assert metric_value(text, "connect_inject_admission_duration_seconds_bucket", le="0.0001") is not None
    assert metric_value(text, "connect_inject_admission_duration_seconds_bucket", le="10.0") == 1
    assert metric_value(text, "connect_inject_tls_certificate_expiry_timestamp_seconds") > 0
    assert metric_value(text, "connect_inject_namespace_cache_staleness_seconds") == float("inf")  # no cluster
    assert metric_value(text, "process_resident_memory_bytes") > 0


@pytest.mark.parametrize("args, needle", [
    (["--listen", "nope"], "--listen: missing port in address 'nope'"),
    (["--listen", ":99999"], "--listen: invalid port '99999'"),
    (["--health-listen", "x:y"], "--health-listen: invalid port 'y'"),
    (["--log-level", "loud"], "--log-level: invalid choice: 'loud'"),
    (["--bogus"], "unrecognized arguments: --bogus"),
    (["--review-timeout", "0"], "--review-timeout: must be more than 0, got '0'"),
    (["--max-connections", "many"], "--max-connections: invalid value 'many'"),
    (["--health-max-connections", "-1"], "--health-max-connections: must be more than 0, got '-1'"),
    (["--cert-expiry-warning-days", "-1"], "--cert-expiry-warning-days: must be at least 0, got '-1'"),
])
async def test_bad_flags_exit_2_with_a_clear_line(tmp_path: Path, cert_dir: Path, args, needle) -> None:
    code, err = await run(tmp_path, "--tls-cert-dir", str(cert_dir), *args)
    assert code == 2
    assert needle in err[-1], err


async def test_missing_cert_dir_exits_before_listening(tmp_path: Path) -> None:
    code, err = await run(tmp_path, "--tls-cert-dir", str(tmp_path / "nope"))
    assert code == 2 and err == [f"connect-inject serve: --tls-cert-dir {tmp_path / 'nope'}: not a directory"]


async def test_unreadable_or_invalid_values_exit_1_naming_the_problem(tmp_path: Path, cert_dir: Path) -> None:
    code, err = await run(tmp_path, "--tls-cert-dir", str(cert_dir), "--values", str(tmp_path / "missing.yaml"),
                          "--listen", "127.0.0.1:0", "--health-listen", "127.0.0.1:0")
    assert code == 1 and len(err) == 1 and "missing.yaml" in err[0]
    bad = tmp_path / "bad.yaml"
    bad.write_text("connectInject:\n  replicas: 0\n")
    code, err = await run(tmp_path, "--tls-cert-dir", str(cert_dir), "--values", str(bad),
                          "--listen", "127.0.0.1:0", "--health-listen", "127.0.0.1:0")
    assert code == 1 and any("connectInject.replicas" in line for line in err) and not any("listening" in l for l in err)


async def test_port_in_use_exits_1_naming_the_address(tmp_path: Path, cert_dir: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code, err = await run(tmp_path, "--tls-cert-dir", str(cert_dir), "--listen", f"127.0.0.1:{port}",
                              "--health-listen", "127.0.0.1:0", "--log-level", "error")
    assert code == 1
    assert err == [f"connect-inject serve: --listen 127.0.0.1:{port}: cannot listen: Address already in use"]


async def test_idle_health_connections_cannot_starve_mutate_at_nofile_128(tmp_path: Path, cert_dir: Path, ca: CA) -> None:
    """Issue 8 finding 9's reproducer: 140 idle connections to the health port of a process limited
    to 128 open files left none for /mutate. Now the health port keeps at most 64 of them."""
    proc = await spawn(tmp_path, "--listen", "127.0.0.1:0", "--health-listen", "127.0.0.1:0",
                       "--tls-cert-dir", str(cert_dir), "--log-json", "--shutdown-delay", "0", nofile=(128, 128))
    served = Served(proc)
    listening = await served.line("listening")
    webhook_port = int(listening["webhook"].rsplit(":", 1)[1].split("/")[0])
    health_port = int(listening["health"].rsplit(":", 1)[1].split("/")[0])
    idle = []
    try:
        async with asyncio.timeout(30):  # before the fix, connects hung once the backlog filled up
            for _ in range(140):
                idle.append(await asyncio.open_connection("127.0.0.1", health_port))
        await served.line("connection limit reached: closing new connections at once")
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=client_ssl(ca))) as http:
            body = json.dumps(admission_review(docs_pod("static-server"), uid="starved?"))
            async with asyncio.timeout(10):
                async with http.post(f"https://127.0.0.1:{webhook_port}/mutate", data=body,
                                     headers={"Content-Type": "application/json"}) as r:
                    assert r.status == 200 and (await r.json())["response"]["uid"] == "starved?"
    finally:
        for _, writer in idle:
            writer.close()
        proc.kill()
        await asyncio.wait_for(proc.communicate(), 30)  # drains stderr: wait() alone can hang on a full pipe


async def test_the_open_files_limit_is_raised_for_the_connection_limits(tmp_path: Path, cert_dir: Path) -> None:
    """A soft limit below what --max-connections needs is raised up to the hard limit."""
    proc = await spawn(tmp_path, "--listen", "127.0.0.1:0", "--health-listen", "127.0.0.1:0",
                       "--tls-cert-dir", str(cert_dir), "--log-json", "--shutdown-delay", "0", nofile=(128, 4096))
    try:
        await Served(proc).line("listening")
        limits = Path(f"/proc/{proc.pid}/limits").read_text()
        [line] = [l for l in limits.splitlines() if l.startswith("Max open files")]
        assert line.split()[3:5] == ["1192", "4096"]  # 1,000 + 64 + 128 reserved
    finally:
        proc.kill()
        await asyncio.wait_for(proc.communicate(), 30)
