"""Fixtures for the Consul client tests: fake agents (tests/fakes/consul_agent.py) and a client
configured from the environment the way the controllers build it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from fakes.consul_agent import FakeConsul
from generator.consul import Consul, ConsulConfig


@pytest.fixture
async def make_fake() -> AsyncIterator[Callable[..., Awaitable[FakeConsul]]]:
    """`await make_fake(2, enterprise=True)`: started fakes, stopped at teardown."""
    started: list[FakeConsul] = []

    async def make(agents: int = 2, **kwargs: Any) -> FakeConsul:
        fake = FakeConsul(agents, **kwargs)
        await fake.start()
        started.append(fake)
        return fake

    yield make
    for fake in started:
        await fake.stop()


@pytest.fixture
async def fake(make_fake: Callable[..., Awaitable[FakeConsul]]) -> FakeConsul:
    """Two OSS agents, no ACLs: 127.0.0.2 and 127.0.0.3 on one port."""
    return await make_fake(2)


@pytest.fixture
async def make_consul() -> AsyncIterator[Callable[..., Consul]]:
    """`make_consul({"CONSUL_HTTP_ADDR": ...}, timeout=1)`: a Consul session from an environment."""
    made: list[Consul] = []

    def make(env: dict[str, str], **overrides: Any) -> Consul:
        overrides.setdefault("timeout", 3.0)
        overrides.setdefault("connect_timeout", 1.0)
        consul = Consul(ConsulConfig.from_env(env, **overrides))
        made.append(consul)
        return consul

    yield make
    for consul in made:
        await consul.close()


@pytest.fixture
def consul(fake: FakeConsul, make_consul: Callable[..., Consul]) -> Consul:
    """A session whose CONSUL_HTTP_ADDR is the first fake agent."""
    return make_consul({"CONSUL_HTTP_ADDR": fake.address})
