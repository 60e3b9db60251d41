"""Shared fixtures: real services on free loopback ports, stopped when the test ends."""

from __future__ import annotations

import pytest

from careguard.services import Mosquitto, postgres, victoria_metrics


@pytest.fixture
def mosquitto(tmp_path):
    """A fresh anonymous Mosquitto for one test (restartable with `.restart()`)."""
    broker = Mosquitto(workdir=str(tmp_path / "mosq"))
    (tmp_path / "mosq").mkdir()
    broker.start()
    yield broker
    broker.close()


@pytest.fixture(scope="session")
def pg_url():
    with postgres() as url:
        yield url


@pytest.fixture(scope="session")
def vm_url():
    with victoria_metrics() as url:
        yield url
