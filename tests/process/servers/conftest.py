"""Fixtures for the server tests: the embedded OTLP receiver and a server starter."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from tests.receiver import OtlpReceiver

from ._harness import Server, StartServer, launch, wait_ready


@pytest.fixture(scope="session")
def receiver() -> Iterator[OtlpReceiver]:
    with OtlpReceiver() as running:
        yield running


@pytest.fixture
def start_server(receiver: OtlpReceiver, tmp_path: Path) -> Iterator[StartServer]:
    """``start_server(command, configurator)``: a ready server, its process group killed after."""
    started: list[Server] = []

    def start(command: Sequence[str], configurator: str) -> Server:
        server = launch(receiver, tmp_path / f"server-{len(started)}", command, configurator)
        started.append(server)
        return wait_ready(server)

    yield start
    for server in started:
        server.kill()
