"""Screenshots of every console screen with realistic data, desktop and phone sizes,
written to docs/screenshots/ (the README shows some). Run with scripts/screenshots.

It starts the scripted mock model and a gateway on loopback ports, fills them through
the public API, and drives Debian's Chromium with Playwright.
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
from pathlib import Path

import httpx
from playwright.async_api import Page, async_playwright

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from tests.helpers.gateway import Gateway, make_settings  # noqa: E402

from claude_gateway.mock_model import MockModel, MockModelServer  # noqa: E402

OUT = ROOT / "docs" / "screenshots"
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
ARGS = ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"]
OPS = "ops-admin-key-0123456789abcdef"
MARIA = "maria-key-0123456789abcdef"
SIZES = {"desktop": (1280, 860), "phone": (390, 844)}


async def fill(url: str) -> dict[str, str]:
    """Sessions a team might have: one with work done, one waiting for an approval."""
    made: dict[str, str] = {}
    async with httpx.AsyncClient(base_url=url, timeout=120,
                                 headers={"Authorization": f"Bearer {MARIA}"}) as maria:
        await maria.put("/v1/files/billing-service/src/invoice.py",
                        content=b"def parse(line):\n    return line.split(',')\n")
        await maria.put("/v1/files/billing-service/README.md",
                        content=b"# Billing service\n\nParses and totals invoices.\n")
        billing = (await maria.post("/v1/sessions", json={
            "workspace": "billing-service", "permissionMode": "acceptEdits"})).json()["id"]
        made["billing"] = billing
        await maria.post(f"/v1/sessions/{billing}/messages", json={"prompt": (
            "Add input validation to the invoice parser.\n"
            "@thinking The parser splits blindly; empty lines and missing amounts crash "
            "the totals. I will validate the field count and the amount.\n"
            '@tool Write {"file_path": "src/invoice.py", "content": "def parse(line):\\n'
            "    fields = line.strip().split(',')\\n    if len(fields) != 3:\\n"
            "        raise ValueError(f'expected 3 fields, got {len(fields)}')\\n"
            '    return fields\\n"}\n'
            "@reply I added validation to `parse`: a line must have exactly three fields "
            "(id, customer, amount), otherwise it raises a `ValueError` naming how many it "
            "found. Empty lines are rejected the same way.")})
        docs = (await maria.post("/v1/sessions", json={"workspace": "docs-site"})).json()["id"]
        made["docs"] = docs
        await maria.post(f"/v1/sessions/{docs}/messages", json={"timeoutMs": 0, "prompt": (
            "Write a getting-started page.\n"
            '@tool Write {"file_path": "getting-started.md", "content": "# Getting started'
            '\\n\\nInstall with pip, then run the server.\\n"}\n@reply Done.')})
        await maria.post("/v1/sessions", json={"workspace": "data-pipeline"})
    async with httpx.AsyncClient(base_url=url, timeout=120,
                                 headers={"Authorization": f"Bearer {MARIA}"}) as maria:
        for _ in range(100):
            if (await maria.get("/v1/permissions")).json()["permissions"]:
                break
            await asyncio.sleep(0.1)
    return made


async def sign_in(page: Page, url: str, key: str) -> None:
    await page.goto(f"{url}/")
    await page.get_by_label("API key").fill(key)
    await page.get_by_role("button", name="Sign in").click()
    await page.get_by_role("button", name="New session").wait_for()


async def capture(url: str, made: dict[str, str]) -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            for size, (width, height) in SIZES.items():
                page = await browser.new_page(viewport={"width": width, "height": height})
                await page.goto(f"{url}/")
                await page.screenshot(path=str(OUT / f"sign-in-{size}.png"))
                await sign_in(page, url, MARIA)
                await page.get_by_text("billing-service").wait_for()
                await page.screenshot(path=str(OUT / f"sessions-{size}.png"), full_page=True)
                await page.goto(f"{url}/#/session/{made['billing']}")
                await page.get_by_text("Turn completed").wait_for()
                await page.screenshot(path=str(OUT / f"session-{size}.png"), full_page=True)
                await page.goto(f"{url}/#/session/{made['docs']}")
                await page.get_by_role("button", name="Always allow").wait_for()
                await page.screenshot(path=str(OUT / f"permission-{size}.png"), full_page=True)
                await page.goto(f"{url}/#/approvals")
                await page.get_by_role("button", name="Allow", exact=True).first.wait_for()
                await page.screenshot(path=str(OUT / f"approvals-{size}.png"), full_page=True)
                await page.goto(f"{url}/#/files/{made['billing']}")
                await page.get_by_role("button", name="README.md", exact=True).click()
                await page.get_by_text("Parses and totals").wait_for()
                await page.screenshot(path=str(OUT / f"files-{size}.png"), full_page=True)
                await page.goto(f"{url}/#/events/{made['billing']}")
                await page.get_by_text("session.created").wait_for()
                await page.screenshot(path=str(OUT / f"events-{size}.png"))
                await page.close()
                admin = await browser.new_page(viewport={"width": width, "height": height})
                await sign_in(admin, url, OPS)
                await admin.goto(f"{url}/#/admin")
                await admin.get_by_text("CLI processes").wait_for()
                await admin.screenshot(path=str(OUT / f"admin-{size}.png"), full_page=True)
                await admin.close()
        finally:
            await browser.close()


def main() -> None:
    for name in list(os.environ):
        if name.startswith(("ANTHROPIC_", "CLAUDE_")):
            del os.environ[name]
    scratch = Path(tempfile.mkdtemp(prefix="claude-gateway-screens-"))
    os.environ["HOME"] = str(scratch)
    mock = MockModelServer(MockModel()).start()
    gateway = Gateway(make_settings(scratch, upstream_base_url=mock.url,
                                    upstream_api_key="screens", api_keys=[
                                        {"name": "ops", "key": OPS, "admin": True},
                                        {"name": "maria", "key": MARIA}]), mock)
    gateway.start()
    try:
        made = asyncio.run(fill(gateway.url))
        asyncio.run(capture(gateway.url, made))
    finally:
        gateway.stop()
        mock.stop()
    print(f"screenshots written to {OUT}")


if __name__ == "__main__":
    main()
