"""Fixtures for the HTTP tests: the API app on the test's database, called with an
all-powerful integrator token (the authorization tests use narrower callers)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from meterpay.runtime import Runtime
from tests.integration.signed import api_client


@pytest.fixture
def api(rt: Runtime) -> Iterator[TestClient]:
    with api_client(rt) as client:
        yield client
