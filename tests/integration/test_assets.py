"""The console's front-end libraries come from meterpay itself, never from a CDN.

``make assets`` copies htmx and ECharts from ``node_modules`` (pinned in package.json and
package-lock.json) into ``web/console/static/vendor/``; the app serves them from there.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

ROOT = Path(__file__).resolve().parents[2]
WEB = ROOT / "src" / "meterpay" / "web"
TEMPLATES = (WEB / "console" / "templates", WEB / "portal" / "templates")
VENDORED = {"htmx.min.js": "htmx.org", "echarts.min.js": "echarts"}
REMOTE_LOAD = re.compile(
    r"<(?:script|link|img|iframe|source)\b[^>]*?\b(?:src|href)\s*=\s*[\"']?(?:https?:)?//",
    re.IGNORECASE,
)


def _pinned(package: str) -> str:
    found: str = json.loads((ROOT / "package.json").read_text())["dependencies"][package]
    return found


@pytest.mark.parametrize("name", sorted(VENDORED))
def test_a_vendored_library_is_served_as_javascript_in_its_pinned_version(
    api: TestClient, name: str
) -> None:
    """The file is served by meterpay and is the version package.json pins."""
    response = api.get(f"/console/static/vendor/{name}")
    assert response.status_code == 200, f"{name} is missing: run `make assets`"
    content_type = response.headers["content-type"]
    assert content_type.startswith(("text/javascript", "application/javascript"))
    assert f'"{_pinned(VENDORED[name])}"' in response.text, f"{name} is stale: `make assets`"


def test_no_console_template_loads_anything_from_another_host() -> None:
    """Scripts, styles and images are meterpay's own: a page works with no internet."""
    templates = sorted(page for folder in TEMPLATES for page in folder.glob("**/*.html"))
    assert templates
    remote = [
        f"{path.relative_to(ROOT)}: {match.group(0)}"
        for path in templates
        for match in REMOTE_LOAD.finditer(path.read_text(encoding="utf-8"))
    ]
    assert remote == []
