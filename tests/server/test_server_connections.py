"""Connection limits and idle timeouts (issue 8 finding 9): 140 idle connections to the health
port used up a 128-descriptor limit and starved /mutate. Raw sockets to 127.0.0.1 only."""

from __future__ import annotations

import asyncio
import time

from prometheus_client import generate_latest

from .conftest import Webhook, make_pod, metric_value


async def until(predicate, timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.01)


async def closed_by_server(reader: asyncio.StreamReader, timeout: float = 5.0) -> bool:
    """True when the server closes the connection within `timeout` (EOF or reset)."""
    try:
        return await asyncio.wait_for(reader.read(), timeout) == b""
    except ConnectionResetError:
        return True


def scrape(server) -> str:
    return generate_latest(server.metrics.registry).decode()


async def test_idle_health_connections_over_the_limit_are_closed_and_mutate_still_answers(start_server, https) -> None:
    server = await start_server(health_max_connections=4, health_idle_timeout=60)
    webhook = Webhook(server, https)
    idle = [await asyncio.open_connection("127.0.0.1", server.health_port) for _ in range(4)]
    await until(lambda: server.health_limit.open == 4)
    over = [await asyncio.open_connection("127.0.0.1", server.health_port) for _ in range(10)]

    closed = await asyncio.gather(*(closed_by_server(reader) for reader, _ in over))
    assert all(closed), closed
    assert server.health_limit.open == 4  # the first four are kept, idle
    text = scrape(server)
    assert metric_value(text, "connect_inject_connections_rejected_total", listener="health") == 10
    assert metric_value(text, "connect_inject_open_connections", listener="health") == 4

    # The webhook port is not affected.
    assert (await webhook.review(make_pod()))["response"]["allowed"] is True

    for _, writer in idle + over:
        writer.close()
    await until(lambda: server.health_limit.open == 0)
    assert (await webhook.get("/readyz"))[0] == 200  # room again once they are gone


async def test_webhook_connections_over_the_limit_are_closed_before_the_tls_handshake(start_server, https) -> None:
    server = await start_server(max_connections=3)
    webhook = Webhook(server, https)
    held = [await asyncio.open_connection("127.0.0.1", server.webhook_port) for _ in range(3)]  # no handshake
    await until(lambda: server.webhook_limit.open == 3)

    reader, writer = await asyncio.open_connection("127.0.0.1", server.webhook_port)
    started = time.perf_counter()
    assert await closed_by_server(reader)
    assert time.perf_counter() - started < 2.0  # at once, not after a handshake timeout
    writer.close()
    assert metric_value(scrape(server), "connect_inject_connections_rejected_total", listener="webhook") == 1

    held[0][1].close()
    await until(lambda: server.webhook_limit.open == 2)
    assert (await webhook.review(make_pod()))["response"]["allowed"] is True
    for _, w in held[1:]:
        w.close()


async def test_idle_health_connections_are_closed_after_the_idle_timeout(start_server) -> None:
    server = await start_server(health_idle_timeout=0.3)

    # A connection that never sends a request.
    reader, writer = await asyncio.open_connection("127.0.0.1", server.health_port)
    started = time.perf_counter()
    assert await closed_by_server(reader)
    assert 0.25 <= time.perf_counter() - started < 3.0
    writer.close()

    # A keep-alive connection after one request.
    reader, writer = await asyncio.open_connection("127.0.0.1", server.health_port)
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    head = await asyncio.wait_for(reader.readuntil(b"ok\n"), 5)
    assert head.startswith(b"HTTP/1.1 200")
    started = time.perf_counter()
    assert await closed_by_server(reader)
    assert 0.25 <= time.perf_counter() - started < 3.0
    writer.close()
    await until(lambda: server.health_limit.open == 0)
