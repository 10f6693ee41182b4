"""Small steps through the public HTTP API that many tests take."""

from __future__ import annotations

from typing import Any

import anyio
import httpx


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def assert_error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    """The error body's ``error``, once its status and code are the ones expected."""
    assert response.status_code == status, response.text
    assert response.json()["error"]["code"] == code, response.text
    return dict(response.json()["error"])


async def new_session(client: httpx.AsyncClient, **body: Any) -> str:
    response = await client.post("/v1/sessions", json=body)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


async def events_of(client: httpx.AsyncClient, session_id: str) -> list[dict[str, Any]]:
    page = await client.get(f"/v1/sessions/{session_id}/events", params={"follow": "false"})
    assert page.status_code == 200
    return list(page.json()["events"])


async def wait_for_status(client: httpx.AsyncClient, session_id: str, status: str,
                          within: float = 30) -> dict[str, Any]:
    """Poll a session until it reaches ``status`` (it moves on its own, with its process)."""
    with anyio.fail_after(within):
        while True:
            session = (await client.get(f"/v1/sessions/{session_id}")).json()
            if session["status"] == status:
                return dict(session)
            await anyio.sleep(0.05)
