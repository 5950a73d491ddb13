"""Shared fixtures: the asyncio backend (Pipecat runs on asyncio) and settings for tests."""

from __future__ import annotations

import pytest

from tests.support import base_env


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def server_env(tmp_path) -> dict[str, str]:
    """Development settings for a server on a free loopback port, outbox in tmp_path."""
    return base_env(tmp_path)
