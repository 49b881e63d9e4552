"""Fixtures for the HTTP tests: the API app on the test's database."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from meterpay.runtime import Runtime
from meterpay.web.app import create_app


@pytest.fixture
def api(rt: Runtime) -> Iterator[TestClient]:
    with TestClient(create_app(rt)) as client:
        yield client
