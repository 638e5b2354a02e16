"""/docs and /redoc render in a real headless Chromium with no internet (their assets are served locally).

FastAPI's default pages load swagger-ui and redoc from a CDN and stay blank offline; the browser of
these tests resolves no host but the loopback, so a page that reaches out renders nothing and fails.
"""

from __future__ import annotations

import pytest

from stylenorm import __version__
from tests.server.conftest import BROWSER_MISSING, LiveServer, wait_for

pytestmark = pytest.mark.skipif(bool(BROWSER_MISSING), reason=BROWSER_MISSING)


def _fetched_elsewhere(driver: object, local: str) -> list[str]:
    """Resources the page loaded from anywhere but the server (an attempt the content policy blocked,
    such as redoc's footer logo, has no response and does not count)."""
    entries = driver.execute_script(
        "return performance.getEntriesByType('resource')"
        ".map(e => [e.name, e.initiatorType, e.responseStatus || 0])"
    )
    return [f"{name} ({kind})" for name, kind, status in entries if not name.startswith(local) and status]


def test_swagger_ui_renders_offline(browser: object, server: LiveServer) -> None:
    from selenium.webdriver.common.by import By

    browser.get(server.url + "/docs")
    title = wait_for(browser, lambda d: d.find_elements(By.CSS_SELECTOR, ".swagger-ui .info .title"))[0]
    assert "stylenorm" in title.text and __version__ in title.text
    # the operations are listed, from /openapi.json
    ops = wait_for(browser, lambda d: d.find_elements(By.CSS_SELECTOR, ".opblock-summary-path"))
    assert "/v1/stylize" in {op.text.strip() for op in ops}
    assert not _fetched_elsewhere(browser, server.url)


def test_redoc_renders_offline(browser: object, server: LiveServer) -> None:
    from selenium.webdriver.common.by import By

    browser.get(server.url + "/redoc")
    heading = wait_for(
        browser, lambda d: [h for h in d.find_elements(By.CSS_SELECTOR, "h1") if "stylenorm" in h.text]
    )[0]
    assert __version__ in heading.text
    assert wait_for(browser, lambda d: "/v1/stylize" in d.find_element(By.TAG_NAME, "body").text)
    assert not _fetched_elsewhere(browser, server.url)


def test_docs_assets_are_local(server: LiveServer) -> None:
    page = server.client.get("/docs").text
    assert "cdn" not in page.lower() and "/static-offline-docs/swagger-ui-bundle.js" in page
    assert server.client.get("/static-offline-docs/swagger-ui-bundle.js").status_code == 200
    policy = server.client.get("/redoc").headers["content-security-policy"]
    assert "img-src 'self' data:;" in policy and "default-src 'self'" in policy
    assert "/static-offline-docs/redoc.standalone.js" in server.client.get("/redoc").text
