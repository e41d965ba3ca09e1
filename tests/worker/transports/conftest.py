"""Fixtures shared by the transports' tests."""

import pytest

from worker.transports.http import HttpClient


@pytest.fixture(scope="module")
def http():
    """Our own HTTP client, as the transports use it, for calling the stand-ins directly."""
    client = HttpClient()
    yield client
    client.close()
