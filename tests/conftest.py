"""Shared fixtures. The MQTT broker is a real Mosquitto on a free loopback port (tests/broker.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.broker import Mosquitto, MosquittoNotFoundError
from tests.broker import free_port as _free_port


def _mosquitto(workdir: Path) -> Mosquitto:
    try:
        return Mosquitto(workdir)
    except MosquittoNotFoundError as err:
        # Fail, never skip: CI installs mosquitto, and a silent skip would hide every MQTT test.
        pytest.fail(str(err), pytrace=False)


@pytest.fixture
def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    return _free_port()


@pytest.fixture
def mosquitto(tmp_path: Path) -> Iterator[Mosquitto]:
    """A Mosquitto of this test's own: stop, kill and restart it freely."""
    broker = _mosquitto(tmp_path / "mosquitto")
    with broker:
        yield broker


@pytest.fixture(scope="session")
def mosquitto_session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mosquitto]:
    """One Mosquitto for the whole run (faster); tests must not stop it, and should use unique topics."""
    broker = _mosquitto(tmp_path_factory.mktemp("mosquitto"))
    with broker:
        yield broker
