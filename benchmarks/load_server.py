"""Load benchmark of `connect-inject serve` over HTTPS on 127.0.0.1 (run by `make bench`).

Starts the real server (`python -m generator serve`, info logging to a file, as deployed) and
two constant-answer baselines (a bare asyncio TLS server, and aiohttp with the same settings
as ours), then drives each with an asyncio keep-alive client and prints throughput and
p50/p99 latency:

- steady: an open-loop schedule of N requests/s over a pool of connections; a request does not
  wait for the previous answer, and time spent waiting for a free connection is counted, so
  queueing behind a slow answer shows in the latency (no coordinated omission);
- max: C connections sending back to back;
- beside costly: the steady typical-pod schedule while near-3 MiB pods arrive at 2/s (refused by
  the engine, but decoding and checking one takes a while): with the review off the event loop,
  typical pods no longer queue behind each costly one for its whole review.

Every phase is bounded in time and count and talks only to 127.0.0.1. Targets (design.md):
>= 1,000 admissions/s with zero errors; at 200/s p50 <= 1.5 ms and p99 <= 5 ms; pods with
1,000 env vars or a 64 KB spec p99 <= 50 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import json
import os
import ssl
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from generator.tools.devcerts import CA, write_secret  # noqa: E402

P = "consul.hashicorp.com/"
STARTUP_SECONDS = 30


# ---- workloads ---------------------------------------------------------------------------

def typical_pod() -> dict[str, Any]:
    """The docs' static-server with upstreams, transparent proxy (default on) and metrics on."""
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"generateName": "static-server-5d8f7c9b6-", "namespace": "default",
                     "labels": {"app": "static-server"},
                     "annotations": {P + "connect-inject": "true",
                                     P + "connect-service-upstreams": "static-client:1234,db:5432:dc2",
                                     P + "enable-metrics": "true", P + "enable-metrics-merging": "true"}},
        "spec": {
            "serviceAccountName": "static-server",
            "containers": [{
                "name": "static-server", "image": "hashicorp/http-echo:latest",
                "args": ['-text="hello world"', "-listen=:8080"],
                "ports": [{"name": "http", "containerPort": 8080}],
                "livenessProbe": {"httpGet": {"path": "/", "port": 8080}},
                "volumeMounts": [{"name": "kube-api-access-x", "readOnly": True,
                                  "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount"}],
            }],
        },
    }


def env_pod(n: int = 1000) -> dict[str, Any]:
    pod = typical_pod()
    pod["spec"]["containers"][0]["env"] = [{"name": f"VAR_{i}", "value": f"value-{i}"} for i in range(n)]
    return pod


def big_pod(size: int = 64 * 1024) -> dict[str, Any]:
    """A pod whose JSON is about `size` bytes, spread over several containers and env vars."""
    pod = typical_pod()
    base = pod["spec"]["containers"][0]
    containers = []
    i = 0
    while len(json.dumps(containers)) < size:
        c = copy.deepcopy(base)
        c["name"] = f"app-{i}"
        c["ports"] = [{"name": f"p{i}", "containerPort": 9000 + i}]
        c["env"] = [{"name": f"K{j}", "value": "v" * 40} for j in range(20)]
        containers.append(c)
        i += 1
    pod["spec"]["containers"] = containers
    return pod


def review_bytes(pod: dict[str, Any], uid: str = "bench") -> bytes:
    review = {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
              "request": {"uid": uid, "kind": {"group": "", "version": "v1", "kind": "Pod"},
                          "resource": {"group": "", "version": "v1", "resource": "pods"},
                          "namespace": "default", "operation": "CREATE", "object": pod}}
    body = json.dumps(review).encode()
    return (b"POST /mutate HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n" % len(body)) + body


# ---- client ------------------------------------------------------------------------------

@dataclass
class Result:
    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    first_error: str = ""
    elapsed: float = 0.0

    def error(self, what: str) -> None:
        self.errors += 1
        self.first_error = self.first_error or what

    def row(self, name: str) -> str:
        lat = sorted(self.latencies)
        if not lat:
            return f"{name:<44} no answers; errors {self.errors} {self.first_error}"
        p50 = lat[len(lat) // 2] * 1000
        p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))] * 1000
        rate = len(lat) / self.elapsed if self.elapsed else 0.0
        err = f"  errors {self.errors}" + (f" ({self.first_error})" if self.errors else "")
        return f"{name:<44} {rate:>8.0f}/s  p50 {p50:7.2f} ms  p99 {p99:7.2f} ms  n={len(lat)}{err}"


class Conn:
    """One keep-alive HTTPS connection speaking just enough HTTP/1.1 for this benchmark."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, port: int, ctx: ssl.SSLContext) -> "Conn":
        return cls(*await asyncio.open_connection("127.0.0.1", port, ssl=ctx))

    async def call(self, request: bytes, expect: bytes) -> str | None:
        """Send one request; None when the answer is 200 and contains `expect`, else why not."""
        self.writer.write(request)
        head = await self.reader.readuntil(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n"):
            if line[:15].lower() == b"content-length:":
                length = int(line[15:])
        body = await self.reader.readexactly(length)
        if not head.startswith(b"HTTP/1.1 200"):
            return head.split(b"\r\n", 1)[0].decode()
        if expect not in body:
            return f"answer lacks {expect.decode()!r}"
        return None

    def close(self) -> None:
        self.writer.close()


async def max_rate(port: int, ctx: ssl.SSLContext, request: bytes, expect: bytes,
                   connections: int, seconds: float, limit: int) -> Result:
    result = Result()
    conns = [await Conn.open(port, ctx) for _ in range(connections)]
    deadline = time.perf_counter() + seconds

    async def loop(conn: Conn) -> None:
        while time.perf_counter() < deadline and len(result.latencies) + result.errors < limit:
            t = time.perf_counter()
            try:
                problem = await conn.call(request, expect)
            except (OSError, asyncio.IncompleteReadError, ssl.SSLError) as e:
                result.error(repr(e))
                return
            if problem:
                result.error(problem)
            else:
                result.latencies.append(time.perf_counter() - t)

    start = time.perf_counter()
    await asyncio.gather(*(loop(c) for c in conns))
    result.elapsed = time.perf_counter() - start
    for c in conns:
        c.close()
    return result


async def steady(port: int, ctx: ssl.SSLContext, request: bytes, expect: bytes,
                 rate: float, seconds: float, connections: int = 16) -> Result:
    result = Result()
    pool: asyncio.Queue[Conn] = asyncio.Queue()
    for _ in range(connections):
        pool.put_nowait(await Conn.open(port, ctx))
    count = int(rate * seconds)

    async def one(ready: float) -> None:
        conn = await pool.get()  # waiting for a free connection counts: that is queueing
        try:
            problem = await conn.call(request, expect)
        except (OSError, asyncio.IncompleteReadError, ssl.SSLError) as e:
            result.error(repr(e))
            conn = await Conn.open(port, ctx)
        else:
            if problem:
                result.error(problem)
            else:
                result.latencies.append(time.perf_counter() - ready)
        pool.put_nowait(conn)

    tasks = []
    start = time.perf_counter()
    for i in range(count):
        scheduled = start + i / rate
        delay = scheduled - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        # Latency counts from when the client is ready to send, not from the scheduled instant:
        # asyncio wakes up to 1 ms late (millisecond epoll timeouts), which is the client's slack.
        tasks.append(asyncio.create_task(one(time.perf_counter())))
    await asyncio.wait_for(asyncio.gather(*tasks), 30)
    result.elapsed = time.perf_counter() - start
    while not pool.empty():
        pool.get_nowait().close()
    return result


async def beside_costly(port: int, ctx: ssl.SSLContext, request: bytes, expect: bytes, rate: float,
                        seconds: float, costly: bytes, costly_expect: bytes,
                        costly_rate: float) -> tuple[Result, Result]:
    """`steady` for `request` and, at the same time, for `costly` at `costly_rate`."""
    both = await asyncio.gather(steady(port, ctx, request, expect, rate, seconds),
                                steady(port, ctx, costly, costly_expect, costly_rate, seconds, connections=2))
    return both[0], both[1]


# ---- servers -----------------------------------------------------------------------------

def constant_answer() -> bytes:
    return json.dumps({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
                       "response": {"uid": "bench", "allowed": True}}).encode()


def server_context(cert_dir: str) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(f"{cert_dir}/tls.crt", f"{cert_dir}/tls.key")
    return ctx


async def serve_asyncio_constant(cert_dir: str) -> None:
    """The floor of Python TLS serving: a bare asyncio protocol answering a constant."""
    body = constant_answer()
    answer = (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body)) + body

    class Constant(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            self.transport, self.buf = transport, b""

        def data_received(self, data: bytes) -> None:
            self.buf += data
            while True:
                end = self.buf.find(b"\r\n\r\n")
                if end < 0:
                    return
                length = 0
                for line in self.buf[:end].split(b"\r\n"):
                    if line[:15].lower() == b"content-length:":
                        length = int(line[15:])
                if len(self.buf) < end + 4 + length:
                    return
                self.buf = self.buf[end + 4 + length:]
                self.transport.write(answer)

    server = await asyncio.get_running_loop().create_server(Constant, "127.0.0.1", 0, ssl=server_context(cert_dir))
    print(server.sockets[0].getsockname()[1], flush=True)
    await server.serve_forever()


async def serve_aiohttp_constant(cert_dir: str) -> None:
    """aiohttp with our server's settings, answering a constant: the framework's own cost."""
    from aiohttp import web

    body = constant_answer()

    async def mutate(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(body=body, content_type="application/json")

    app = web.Application(client_max_size=3 * 1024 * 1024)
    app.router.add_post("/mutate", mutate)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0, ssl_context=server_context(cert_dir)).start()
    print(runner.addresses[0][1], flush=True)
    await asyncio.Event().wait()


def start_baseline(kind: str, cert_dir: str) -> tuple[subprocess.Popen, int]:
    proc = subprocess.Popen([sys.executable, __file__, "--baseline", kind, cert_dir],
                            stdout=subprocess.PIPE, text=True)
    return proc, int(proc.stdout.readline())


def start_ours(cert_dir: str, log_path: Path) -> tuple[subprocess.Popen, int]:
    env = {k: v for k, v in os.environ.items() if k not in ("KUBECONFIG", "KUBERNETES_SERVICE_HOST")}
    log = open(log_path, "w")
    proc = subprocess.Popen([sys.executable, "-m", "generator", "serve", "--listen", "127.0.0.1:0",
                             "--health-listen", "127.0.0.1:0", "--tls-cert-dir", cert_dir, "--log-json",
                             "--shutdown-delay", "0"],
                            cwd=ROOT, env=env, stderr=log, stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline and proc.poll() is None:
        for line in log_path.read_text().splitlines():
            record = json.loads(line)
            if record.get("msg") == "listening":
                return proc, int(record["webhook"].rsplit(":", 1)[1].split("/")[0])
        time.sleep(0.05)
    proc.kill()
    raise SystemExit(f"the server did not start; its log:\n{log_path.read_text()}")


# ---- main --------------------------------------------------------------------------------

async def bench(args: argparse.Namespace) -> int:
    tmp = Path(tempfile.mkdtemp(prefix="bench-"))
    ca = CA()
    write_secret(tmp / "certs", ca.issue())
    cert_dir = str(tmp / "certs")
    ctx = ssl.create_default_context(cadata=ca.cert_pem.decode())
    s, c, limit = args.seconds, args.connections, args.limit
    typical = review_bytes(typical_pod())
    cases = [("typical pod", typical), ("pod with 1,000 env vars", review_bytes(env_pod())),
             ("pod with a 64 KB spec", review_bytes(big_pod()))]
    print(f"load on 127.0.0.1, {os.cpu_count()} cores, Python {sys.version.split()[0]}, "
          f"{s:g} s per phase, {c} connections for max rate; "
          f"load average before start {os.getloadavg()[0]:.2f} (other processes skew the figures)")
    print("  request sizes: " + ", ".join(f"{n} {len(b) / 1024:.1f} KB" for n, b in cases))
    rows = []
    procs = []
    try:
        ours, port = start_ours(cert_dir, tmp / "server.log")
        procs.append(ours)
        await max_rate(port, ctx, typical, b'"patch"', 2, 1.0, 500)  # warm-up
        for i, (name, request) in enumerate(cases):
            rate = args.rate if i == 0 else args.big_rate
            rows.append(("connect-inject serve", f"{name}, steady {rate:g}/s",
                         await steady(port, ctx, request, b'"patch"', rate, s)))
            rows.append(("connect-inject serve", f"{name}, max rate",
                         await max_rate(port, ctx, request, b'"patch"', c, s, limit)))
        costly = review_bytes(env_pod(66_000))  # about 2.9 MiB
        typical_row, costly_row = await beside_costly(port, ctx, typical, b'"patch"', args.rate, s,
                                                      costly, b'"allowed"', 2.0)
        rows.append(("connect-inject serve", f"typical pod, steady {args.rate:g}/s, beside costly pods", typical_row))
        rows.append(("connect-inject serve", f"{len(costly) / 2**20:.1f} MiB pods, steady 2/s", costly_row))
        for kind, label in (("aiohttp", "baseline: aiohttp constant answer"),
                            ("asyncio", "baseline: bare asyncio TLS constant answer")):
            proc, port = start_baseline(kind, cert_dir)
            procs.append(proc)
            await max_rate(port, ctx, typical, b'"allowed"', 2, 0.5, 500)
            rows.append((label, f"typical request, steady {args.rate:g}/s",
                         await steady(port, ctx, typical, b'"allowed"', args.rate, s)))
            rows.append((label, "typical request, max rate",
                         await max_rate(port, ctx, typical, b'"allowed"', c, s, limit)))
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(10)
    current = None
    for server, phase, result in rows:
        if server != current:
            print(f"\n{server}")
            current = server
        print("  " + result.row(phase))
    return 1 if any(r.errors for _, _, r in rows) else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="length of each phase (default 5)")
    parser.add_argument("--rate", type=float, default=200.0, help="steady request rate (default 200/s)")
    parser.add_argument("--big-rate", type=float, default=50.0,
                        help="steady rate for the 1,000-env-var and 64 KB pods (default 50/s)")
    parser.add_argument("--connections", type=int, default=8, help="connections at max rate (default 8)")
    parser.add_argument("--limit", type=int, default=50_000, help="most requests in one phase")
    parser.add_argument("--baseline", nargs=2, metavar=("KIND", "CERT_DIR"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.baseline:
        kind, cert_dir = args.baseline
        asyncio.run(serve_asyncio_constant(cert_dir) if kind == "asyncio" else serve_aiohttp_constant(cert_dir))
        return 0
    return asyncio.run(bench(args))


if __name__ == "__main__":
    sys.exit(main())
