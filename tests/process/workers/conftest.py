"""Fixtures for the worker tests: the receiver, a real redis-server, a producer, an app starter."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from celery import Celery

from tests.receiver import OtlpReceiver

from ._harness import Worker, launch, start_redis, stop

StartApp = Callable[[Sequence[str], dict[str, str]], Worker]
"""``start_app(command, env)`` -> a started app (not waited for)."""


@pytest.fixture(scope="session")
def receiver() -> Iterator[OtlpReceiver]:
    with OtlpReceiver() as running:
        yield running


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The URL of a real ``redis-server`` on 127.0.0.1, stopped after the session."""
    process, url = start_redis(tmp_path_factory.mktemp("redis"))
    yield url
    stop(process)


@pytest.fixture(scope="session")
def producer(broker: str) -> Iterator[Any]:
    """A Celery app that only sends tasks (by name) and control commands to the broker."""
    app = Celery("producer", broker=broker)
    app.conf.broker_connection_retry_on_startup = True
    yield app
    app.close()


_queues = itertools.count(1)


@pytest.fixture
def queue() -> str:
    """A queue of its own for each test: nothing a previous test left reaches its worker."""
    return f"workers-test-{next(_queues)}"


@pytest.fixture
def start_app(receiver: OtlpReceiver, tmp_path: Path) -> Iterator[StartApp]:
    """``start_app(command, env)``: the app started; its process group is killed after."""
    started: list[Worker] = []

    def start(command: Sequence[str], env: dict[str, str]) -> Worker:
        worker = launch(receiver, tmp_path / f"app-{len(started)}", command, env)
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.kill()
