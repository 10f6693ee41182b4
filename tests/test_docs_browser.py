"""The API reference page renders in a real browser, under their Content-Security-Policy,
with nothing loaded from outside the gateway."""

from __future__ import annotations

import os
from typing import Any

import pytest
from playwright.async_api import ConsoleMessage, Request, async_playwright

from tests.helpers.gateway import Gateway

pytestmark = pytest.mark.anyio

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
KEY = "docs-key-0123456789abcdef"
# What the machine kind's own probe runs Chromium with: no sandbox (root), and no
# background traffic to a network that is closed here.
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]


async def test_the_reference_renders_in_a_browser(start_gateway: Any) -> None:
    gateway: Gateway = start_gateway(api_keys=[{"name": "k", "key": KEY}])
    problems: list[str] = []
    outside: list[str] = []

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error":
            problems.append(message.text)

    def on_request(request: Request) -> None:
        if not request.url.startswith((gateway.url, "data:", "blob:")):
            outside.append(request.url)

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            page = await browser.new_page()
            page.on("console", on_console)
            page.on("request", on_request)
            response = await page.goto(f"{gateway.url}/docs")
            assert response is not None and response.status == 200  # no key needed to read
            policy = response.headers["content-security-policy"]
            scripts = policy.split("script-src ", 1)[1].split(";", 1)[0]
            assert scripts.startswith("'self'") and "unsafe" not in scripts
            await page.wait_for_selector(".swagger-ui .opblock-summary-path", timeout=30_000)
            await page.click(".swagger-ui .authorize")  # the key goes in here
            await page.wait_for_selector(".swagger-ui .modal-ux", timeout=10_000)
            text = await page.inner_text("body")
        finally:
            await browser.close()
    assert "/v1/sessions" in text and "/v1/runs" in text
    assert not problems, problems  # a CSP violation is reported as a console error
    assert not outside, outside


async def test_the_schema_is_public_but_the_api_is_not(start_gateway: Any) -> None:
    gateway: Gateway = start_gateway(api_keys=[{"name": "k", "key": KEY}])
    async with gateway.client() as client:
        schema = await client.get("/openapi.json")
        assert schema.status_code == 200
        assert schema.json()["components"]["securitySchemes"]["apiKey"]["scheme"] == "bearer"
        asset = await client.get("/docs/assets/swagger-ui-bundle.js")
        assert asset.status_code == 200 and "javascript" in asset.headers["content-type"]
        assert (await client.get("/v1/sessions")).status_code == 401
        assert (await client.post("/docs")).status_code == 401  # only reading is public
