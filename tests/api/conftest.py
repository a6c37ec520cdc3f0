"""Fixtures for the API tests: one harness (provider, lifecycle processor, exporter) per test."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.conftest import Harness


@pytest.fixture
def harness(make_harness: Callable[..., Harness]) -> Harness:
    return make_harness()
