"""The web console in a real Chromium, as a user would use it: sign in, create a
session, send a prompt and see the streamed reply once, answer a permission prompt,
approve across sessions; with the key kept in sessionStorage only and nothing run that
a model or a file name says."""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser, ConsoleMessage, Page, async_playwright, expect

from claude_gateway.mock_model import MockModelServer
from tests.helpers.api import auth
from tests.helpers.gateway import Gateway, free_port, wait_healthy, wait_until
from tests.helpers.gateway_process import start_gateway_process
from tests.helpers.sse import collect

pytestmark = pytest.mark.anyio

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
ALICE = "alice-console-key-0123456789"
BOB = "bob-console-key-0123456789ab"
KEYS = [{"name": "alice", "key": ALICE}, {"name": "bob", "key": BOB}]
SHOTS = Path(__file__).parent.parent / "test-screenshots"
WRITE = '@tool Write {"file_path": "hello.txt", "content": "hi from the console"}'


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            yield launched
        finally:
            await launched.close()


async def open_console(browser: Browser, gateway: Gateway, *, width: int = 1200,
                       height: int = 900) -> tuple[Page, list[str], list[str]]:
    page = await browser.new_page(viewport={"width": width, "height": height})
    problems: list[str] = []
    urls: list[str] = []

    def on_console(message: ConsoleMessage) -> None:
        # A refused key is a 401 the browser reports as a failed load: expected.
        if message.type == "error" and "status of 401" not in message.text:
            problems.append(message.text)

    page.on("console", on_console)
    page.on("request", lambda request: urls.append(request.url))
    return page, problems, urls


async def sign_in(page: Page, key: str) -> None:
    await page.get_by_label("API key").fill(key)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.get_by_role("button", name="New session")).to_be_visible()


async def shot(page: Page, name: str) -> None:
    SHOTS.mkdir(exist_ok=True)
    await page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


async def test_sign_in_create_a_session_send_and_allow_a_tool(
    start_gateway: Any, browser: Browser, mock_model: MockModelServer
) -> None:
    gateway: Gateway = start_gateway(api_keys=KEYS)
    page, problems, urls = await open_console(browser, gateway)
    response = await page.goto(f"{gateway.url}/")
    assert response is not None and response.status == 200  # public page, private API
    assert response.headers["content-type"].startswith("text/html")
    policy = response.headers["content-security-policy"]
    scripts = policy.split("script-src ", 1)[1].split(";", 1)[0].split()
    assert scripts == ["'self'"]

    # A wrong key: the API's own message, and the field stays.
    await page.get_by_label("API key").fill("not-a-key-at-all-0000")
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.get_by_role("alert")).to_contain_text("API key")
    await expect(page.get_by_label("API key")).to_be_visible()
    await shot(page, "sign-in")
    await sign_in(page, ALICE)

    await page.get_by_role("button", name="New session").click()
    dialog = page.get_by_role("dialog")
    await expect(dialog.get_by_label("Permission mode")).to_have_value("default")
    await dialog.get_by_role("button", name="Create session").click()
    await expect(page.get_by_label("Prompt", exact=True)).to_be_visible()
    session_id = (await page.evaluate("() => location.hash")).rsplit("/", 1)[1]
    async with gateway.client(headers=auth(ALICE)) as client:
        listed = (await client.get("/v1/sessions")).json()["sessions"]
        assert [s["id"] for s in listed] == [session_id]  # exactly one made

    # A prompt whose agent wants to write a file: the banner names the tool and path.
    await page.get_by_label("Prompt", exact=True).fill(
        f"Write it.\n{WRITE}\n@reply Written, all done.")
    await page.get_by_role("button", name="Send").click()
    banner = page.get_by_role("group", name="Permission: Write")
    await expect(banner).to_contain_text("hello.txt")
    await expect(page.get_by_role("button", name="Always allow")).to_be_visible()
    await shot(page, "permission")
    await banner.get_by_role("button", name="Allow", exact=True).click()
    await expect(banner).to_have_count(0)
    log = page.get_by_role("log")
    await expect(log).to_have_count(1)
    await expect(log).to_contain_text("Written, all done.")
    await expect(log).to_contain_text("Turn completed")
    await expect(log.get_by_text("Written, all done.", exact=True)).to_have_count(1)  # once
    await expect(log).to_contain_text("Turn completed")
    await expect(page.get_by_text("tokens of context")).to_contain_text("$0.0")  # budget, cost
    await shot(page, "session")
    workspace = gateway.settings.workspace_root / "alice" / session_id
    assert (workspace / "hello.txt").read_text() == "hi from the console"

    # A streamed reply shows as it arrives, then once; interrupt ends a long turn.
    await page.get_by_label("Prompt", exact=True).fill("@slow 0.3\n@reply " + "word " * 40)
    await page.get_by_role("button", name="Send").click()
    await expect(log).to_contain_text("word word")
    await page.get_by_role("button", name="Interrupt").click()
    await expect(log).to_contain_text("Turn interrupted")

    # The key: in sessionStorage only, never in a URL, a cookie or localStorage.
    stored = await page.evaluate("() => [sessionStorage.getItem('claude-gateway.key'),"
                                 " localStorage.length, document.cookie]")
    assert stored == [ALICE, 0, ""]
    assert not [url for url in urls if ALICE in url]
    assert not [url for url in urls if not url.startswith(gateway.url)]
    assert not problems, problems


async def test_approvals_across_sessions_on_a_phone_and_nothing_of_another_key(
    start_gateway: Any, browser: Browser, mock_model: MockModelServer
) -> None:
    gateway: Gateway = start_gateway(api_keys=KEYS)
    asked: list[str] = []
    async with gateway.client(headers=auth(ALICE)) as alice:
        for _ in range(2):
            session_id = (await alice.post("/v1/sessions", json={})).json()["id"]
            await alice.post(f"/v1/sessions/{session_id}/messages", json={
                "prompt": f"{WRITE}\n@reply ok", "timeoutMs": 0})
            events = await collect(alice, "GET", f"/v1/sessions/{session_id}/events",
                                   until=lambda e: e["type"] == "permission.requested")
            asked.append(events[-1]["data"]["requestId"])
    page, problems, _ = await open_console(browser, gateway, width=390, height=844)
    await page.goto(f"{gateway.url}/")
    await sign_in(page, ALICE)
    await page.get_by_role("link", name="Approvals").click()
    allow = page.get_by_role("button", name="Allow", exact=True)
    await expect(allow).to_have_count(2)
    wide = await page.evaluate("() => document.documentElement.scrollWidth > innerWidth")
    assert not wide  # no sideways scrolling on a phone
    await shot(page, "approvals-phone")
    await allow.first.click()
    await expect(allow).to_have_count(1)
    async with gateway.client(headers=auth(ALICE)) as alice:
        left = (await alice.get("/v1/permissions")).json()["permissions"]
    assert [p["requestId"] for p in left] == [asked[1]]  # exactly the first was answered

    # Bob, signed in on another page, sees none of alice's sessions or requests.
    other, _, _ = await open_console(browser, gateway)
    await other.goto(f"{gateway.url}/")
    await sign_in(other, BOB)
    await expect(other.get_by_text("No sessions.")).to_be_visible()
    await other.get_by_role("link", name="Approvals").click()
    await expect(other.get_by_text("Nothing is waiting")).to_be_visible()
    assert not problems, problems


async def test_what_a_model_says_is_shown_as_text_and_never_runs(
    start_gateway: Any, browser: Browser, mock_model: MockModelServer
) -> None:
    gateway: Gateway = start_gateway()  # no keys: the console opens directly
    attack = "<img src=x onerror=\"window.__owned=1\"><script>window.__owned=2</script>"
    page, problems, _ = await open_console(browser, gateway)
    await page.goto(f"{gateway.url}/")
    await page.get_by_role("button", name="New session").click()
    await page.get_by_role("dialog").get_by_label("Workspace").fill("x<b>y")
    await page.get_by_role("dialog").get_by_role("button", name="Create session").click()
    await page.get_by_label("Prompt", exact=True).fill(f"{attack}\n@reply {attack}")
    await page.get_by_role("button", name="Send").click()
    log = page.get_by_role("log")
    await shot(page, "xss-before")
    await expect(log).to_contain_text("Turn completed", timeout=20_000)
    assert await page.evaluate("() => window.__owned") is None
    assert await log.locator("img").count() == 0
    assert (await log.get_by_text(attack).count()) == 2  # the prompt and the reply, as text
    await page.get_by_role("link", name="Sessions").click()
    await expect(page.get_by_role("link", name="x<b>y")).to_be_visible()
    assert await page.evaluate("() => window.__owned") is None
    assert not problems, problems


async def test_the_session_view_reconnects_after_a_restart_with_nothing_lost_or_twice(
    browser: Browser, mock_model: MockModelServer, tmp_path: Path
) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    gateway = start_gateway_process(tmp_path, mock_model.url, port)
    again: subprocess.Popen[bytes] | None = None
    try:
        await wait_healthy(url)
        page = await browser.new_page()
        await page.goto(f"{url}/")
        await page.get_by_role("button", name="New session").click()
        await page.get_by_role("dialog").get_by_role("button", name="Create session").click()
        await page.get_by_label("Prompt", exact=True).fill("@reply before the restart")
        await page.get_by_role("button", name="Send").click()
        log = page.get_by_role("log")
        await expect(log).to_contain_text("before the restart")
        await expect(log).to_contain_text("Turn completed")

        gateway.send_signal(signal.SIGTERM)
        gateway.wait(timeout=30)
        await expect(page.get_by_text("Reconnecting")).to_be_visible(timeout=20_000)
        again = start_gateway_process(tmp_path, mock_model.url, port)
        await wait_healthy(url)
        await expect(page.get_by_text("Reconnecting")).to_have_count(0, timeout=20_000)
        await page.get_by_label("Prompt", exact=True).fill("@reply after the restart")
        await page.get_by_role("button", name="Send").click()
        await expect(log).to_contain_text("after the restart")
        await expect(log.get_by_text("Turn completed")).to_have_count(2)
        await expect(log.get_by_text("before the restart", exact=True)).to_have_count(1)
        await expect(log.get_by_text("after the restart", exact=True)).to_have_count(1)
        await shot(page, "reconnected")
    finally:
        for process in (gateway, again):
            if process is not None and process.poll() is None:
                process.send_signal(signal.SIGTERM)
                process.wait(timeout=30)


async def test_files_of_a_session_upload_view_and_delete(
    start_gateway: Any, browser: Browser, tmp_path: Path
) -> None:
    gateway: Gateway = start_gateway(api_keys=KEYS)
    async with gateway.client(headers=auth(ALICE)) as alice:
        session_id = (await alice.post("/v1/sessions", json={"workspace": "proj"})).json()["id"]
        await alice.put("/v1/files/proj/src/main.py", content=b"print('hello')\n")
        await alice.put("/v1/files/proj/src/dot.png", content=base64.b64decode(PNG_1X1))
    hostile = '<img src=x onerror="window.__owned=3">.txt'
    upload = tmp_path / "upload"
    upload.mkdir()
    (upload / hostile).write_text("uploaded through the console")
    page, problems, urls = await open_console(browser, gateway)
    page.on("dialog", lambda dialog: dialog.accept())
    await page.goto(f"{gateway.url}/")
    await sign_in(page, ALICE)
    await page.get_by_role("link", name="proj").click()
    await page.get_by_role("link", name="Files").click()
    await page.get_by_role("link", name="src/").click()
    await page.get_by_role("button", name="main.py", exact=True).click()
    await expect(page.get_by_text("print('hello')")).to_be_visible()
    async with page.expect_download() as downloading:
        await page.get_by_role("button", name="Download main.py").click()
    saved = tmp_path / "downloaded.py"
    await (await downloading.value).save_as(saved)
    assert saved.read_bytes() == b"print('hello')\n"
    await page.get_by_role("button", name="dot.png", exact=True).click()
    shown = page.get_by_role("img", name="dot.png")
    await expect(shown).to_be_visible()
    assert await shown.evaluate("(img) => img.decode().then(() => img.naturalWidth)") == 1
    await page.get_by_role("link", name="proj").first.click()  # back up, by the crumbs
    await page.get_by_role("link", name="Files").click()
    await page.get_by_label("Upload").set_input_files(str(upload / hostile))
    await expect(page.get_by_role("button", name=hostile, exact=True)).to_be_visible()
    await shot(page, "files")
    home = gateway.settings.workspace_root / "alice" / "proj"
    assert (home / hostile).read_text() == "uploaded through the console"
    await page.get_by_role("button", name=f"Delete {hostile}").click()
    await expect(page.get_by_role("button", name=hostile, exact=True)).to_have_count(0)
    assert not (home / hostile).exists()
    assert await page.evaluate("() => window.__owned") is None
    assert not [url for url in urls if ALICE in url]
    # The raw event log, from any seq.
    await page.goto(f"{gateway.url}/#/events/{session_id}")
    rows = page.locator("tr.event")
    await expect(rows.first).to_contain_text("session.created")
    await page.get_by_label("From seq").fill("2")
    await page.get_by_label("From seq").press("Enter")
    await expect(rows.first.locator("td").first).to_have_text("2")
    await shot(page, "events")
    assert not problems, problems


async def test_an_admin_makes_and_revokes_a_key_and_others_see_no_admin_page(
    start_gateway: Any, browser: Browser
) -> None:
    root = "root-console-key-0123456789"
    gateway: Gateway = start_gateway(api_keys=[*KEYS, {"name": "root", "key": root,
                                                        "admin": True}])
    page, problems, _ = await open_console(browser, gateway)
    page.on("dialog", lambda dialog: dialog.accept())
    await page.goto(f"{gateway.url}/")
    await sign_in(page, root)
    await page.get_by_role("link", name="Admin").click()
    await expect(page.get_by_text("CLI processes")).to_be_visible()
    await page.get_by_label("Name").fill("carol")
    await page.get_by_role("button", name="Create key").click()
    made = await page.locator("code.new-key").text_content()
    assert made
    await shot(page, "admin")
    async with gateway.client(headers=auth(made)) as carol:
        assert (await carol.get("/v1/sessions")).status_code == 200
        await page.get_by_role("button", name="Revoke carol").click()
        await expect(page.get_by_role("button", name="Revoke carol")).to_have_count(0)
        assert (await carol.get("/v1/sessions")).status_code == 401
    async with gateway.client(headers=auth(ALICE)) as alice:
        refused = await alice.get("/v1/admin/keys")
        assert refused.status_code == 403
        assert refused.json()["error"]["code"] == "FORBIDDEN"
    other, _, _ = await open_console(browser, gateway)
    await other.goto(f"{gateway.url}/")
    await sign_in(other, ALICE)
    await expect(other.get_by_role("link", name="Admin")).to_be_hidden()
    assert not problems, problems


PNG_1X1 = ("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAA"
           "AABJRU5ErkJggg==")


async def test_deny_with_a_message_the_model_reads_and_an_attached_image(
    start_gateway: Any, browser: Browser, mock_model: MockModelServer, tmp_path: Path
) -> None:
    gateway: Gateway = start_gateway()
    page, problems, _ = await open_console(browser, gateway)
    await page.goto(f"{gateway.url}/")
    await page.get_by_role("button", name="New session").click()
    await page.get_by_role("dialog").get_by_role("button", name="Create session").click()
    await page.get_by_label("Prompt", exact=True).fill(f"Write it.\n{WRITE}\n@reply Denied, ok.")
    await page.get_by_role("button", name="Send").click()
    banner = page.get_by_role("group", name="Permission: Write")
    await banner.get_by_label("Deny message").fill("Not in this directory, please")
    await banner.get_by_role("button", name="Deny").click()
    await expect(banner).to_have_count(0)
    log = page.get_by_role("log")
    await expect(log.get_by_text("Turn completed")).to_have_count(1)
    await expect(log.get_by_text("Denied, ok.", exact=True)).to_have_count(1)
    denied = [r for request in mock_model.model.requests for r in request.tool_results()]
    assert "Not in this directory, please" in json.dumps(denied)  # the model read it
    session_id = (await page.evaluate("() => location.hash")).rsplit("/", 1)[1]
    assert not (gateway.settings.workspace_root / session_id / "hello.txt").exists()

    # An image attached to the next prompt reaches the model as an image block.
    picture = tmp_path / "dot.png"
    picture.write_bytes(base64.b64decode(PNG_1X1))
    await page.get_by_label("Attach image").set_input_files(str(picture))
    await expect(page.get_by_role("img", name="attached dot.png")).to_be_visible()
    await page.get_by_label("Prompt", exact=True).fill("What is this?\n@reply A dot.")
    await page.get_by_role("button", name="Send").click()
    await expect(log.get_by_text("Turn completed")).to_have_count(2)
    await expect(log.get_by_text("A dot.", exact=True)).to_have_count(1)
    await expect(log.get_by_role("img")).to_have_count(1)  # shown in the transcript
    images = [b for m in mock_model.model.requests[-1].messages if m["role"] == "user"
              and isinstance(m["content"], list) for b in m["content"] if b["type"] == "image"]
    assert [i["source"]["data"] for i in images] == [PNG_1X1]
    assert not problems, problems


async def test_list_filters_live_switches_thinking_and_the_queue_on_a_phone(
    start_gateway: Any, browser: Browser, mock_model: MockModelServer
) -> None:
    gateway: Gateway = start_gateway(api_keys=KEYS)
    async with gateway.client(headers=auth(ALICE)) as alice:
        kept = (await alice.post("/v1/sessions", json={"workspace": "kept"})).json()["id"]
        ended = (await alice.post("/v1/sessions", json={"workspace": "gone"})).json()["id"]
        assert (await alice.delete(f"/v1/sessions/{ended}")).status_code == 204
    page, problems, _ = await open_console(browser, gateway, width=390, height=844)
    await page.goto(f"{gateway.url}/")
    await sign_in(page, ALICE)
    await expect(page.get_by_role("link", name="gone")).to_be_visible()
    await page.get_by_label("Status").select_option("ended")
    await expect(page.get_by_role("link", name="kept")).to_have_count(0)
    await expect(page.get_by_role("link", name="gone")).to_be_visible()
    await page.get_by_label("Status").select_option("")
    await page.get_by_label("Search").fill("kep")
    await expect(page.get_by_role("link", name="gone")).to_have_count(0)
    await page.get_by_role("link", name="kept").click()

    # Thinking is folded; a prompt sent while a turn waits (here on a permission answer)
    # waits in the queue, shown until it starts.
    await page.get_by_label("Prompt", exact=True).fill(
        f"@thinking Considering the options.\n{WRITE}\n@reply written")
    await page.get_by_role("button", name="Send").click()
    banner = page.get_by_role("group", name="Permission: Write")
    await expect(banner).to_be_visible()
    await page.get_by_label("Prompt", exact=True).fill("@reply queued one")
    await page.get_by_role("button", name="Send").click()
    queue = page.get_by_role("list", name="Waiting to run")
    await expect(queue).to_contain_text("queued one")
    await banner.get_by_role("button", name="Allow", exact=True).click()
    log = page.get_by_role("log")
    await expect(log.get_by_text("Turn completed")).to_have_count(2, timeout=30_000)
    await expect(queue.get_by_role("listitem")).to_have_count(0)
    thinking = log.locator("details")
    await expect(thinking).to_have_count(1)
    await expect(thinking.get_by_text("Considering the options.")).to_be_hidden()
    await thinking.locator("summary").click()
    await expect(thinking.get_by_text("Considering the options.")).to_be_visible()

    # The switches act on the live process (and the session says so).
    await page.get_by_label("Permission mode").select_option("acceptEdits")
    await page.get_by_label("Model").fill("claude-haiku-4-5")
    await page.get_by_label("Model").press("Enter")
    async with gateway.client(headers=auth(ALICE)) as alice:
        async def changed() -> bool:
            session = (await alice.get(f"/v1/sessions/{kept}")).json()
            return (session["permissionMode"], session["model"]) == (
                "acceptEdits", "claude-haiku-4-5")
        await wait_until(changed)
    wide = await page.evaluate("() => document.documentElement.scrollWidth > innerWidth")
    assert not wide  # the session view fits a phone
    await page.get_by_label("Prompt", exact=True).fill("@reply on haiku")
    await page.get_by_role("button", name="Send").click()
    await expect(log.get_by_text("Turn completed")).to_have_count(3, timeout=30_000)
    assert mock_model.model.requests[-1].body["model"] == "claude-haiku-4-5"
    assert not problems, problems
