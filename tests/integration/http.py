"""Reading API answers in tests: status checks, JSON bodies, the error shape."""

from __future__ import annotations

from typing import Any

import httpx

API = "/api/v1"
Json = dict[str, Any]


def created(response: httpx.Response) -> Json:
    assert response.status_code == 201, response.text
    body: Json = response.json()
    return body


def ok(response: httpx.Response) -> Json:
    assert response.status_code == 200, response.text
    body: Json = response.json()
    return body


def error(response: httpx.Response, status: int, code: str) -> Json:
    """The error body, after checking its status, shape and stable code."""
    assert response.status_code == status, response.text
    body = response.json()
    assert list(body) == ["error"]
    assert body["error"]["code"] == code
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    found: Json = body["error"]
    return found
