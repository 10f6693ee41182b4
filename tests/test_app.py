"""The application skeleton: health, request ids, the error body, logs."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import BaseModel

from claude_gateway import __version__
from claude_gateway.app import create_app
from claude_gateway.errors import CliNotFoundError, WorkspaceBusy
from claude_gateway.logs import build_handler
from tests.helpers.gateway import make_settings


class Probe(BaseModel):
    count: int


def add_probe_routes(app: FastAPI) -> None:
    @app.post("/probe")
    async def probe(body: Probe) -> dict[str, int]:
        return {"count": body.count}

    @app.get("/probe/conflict")
    async def conflict() -> None:
        raise WorkspaceBusy("busy", details={"workspace": "w"})

    @app.get("/probe/crash")
    async def crash() -> None:
        raise RuntimeError("/secret/internal/path exploded")


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    app = create_app(make_settings(tmp_path))
    add_probe_routes(app)
    with TestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client


def assert_error(response: Any, status: int, code: str) -> dict[str, object]:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error"]["code"] == code
    assert body["requestId"] == response.headers["x-request-id"]
    assert body["timestamp"].endswith("Z")
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    return dict(body["error"])


def test_health(client: TestClient) -> None:
    response = client.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "version": __version__}
    assert len(response.headers["x-request-id"]) == 32


def test_request_id_is_echoed_or_replaced(client: TestClient) -> None:
    assert client.get("/health", headers={"X-Request-ID": "abc-123"}).headers[
        "x-request-id"] == "abc-123"
    odd = client.get("/health", headers={"X-Request-ID": "bad id\twith spaces"})
    assert odd.headers["x-request-id"] != "bad id\twith spaces"


def test_unknown_route_and_method(client: TestClient) -> None:
    assert_error(client.get("/v1/nothing-here"), 404, "NOT_FOUND")
    error = assert_error(client.delete("/health"), 405, "METHOD_NOT_ALLOWED")
    assert "DELETE" in str(error["message"])


def test_validation_errors_become_invalid_request(client: TestClient) -> None:
    error = assert_error(client.post("/probe", json={"count": "many"}), 400, "INVALID_REQUEST")
    details = error["details"]
    assert isinstance(details, dict)
    assert details["errors"][0]["loc"] == ["body", "count"]
    assert_error(client.post("/probe", content=b"{not json",
                             headers={"content-type": "application/json"}),
                 400, "INVALID_REQUEST")


def test_gateway_errors_carry_code_and_details(client: TestClient) -> None:
    error = assert_error(client.get("/probe/conflict"), 409, "WORKSPACE_BUSY")
    assert error["details"] == {"workspace": "w"}


def test_unexpected_errors_hide_internals(client: TestClient) -> None:
    response = client.get("/probe/crash")
    assert_error(response, 500, "INTERNAL_ERROR")
    assert "/secret/internal/path" not in response.text
    assert "Traceback" not in response.text


def test_json_logs_carry_request_id_and_hide_secrets(client: TestClient) -> None:
    stream = io.StringIO()
    handler = build_handler("json", secrets=["top-secret-upstream-key"], stream=stream)
    logger = logging.getLogger("claude_gateway")
    logger.addHandler(handler)
    old_level = logger.level
    logger.setLevel(logging.INFO)
    try:
        client.get("/health", headers={"X-Request-ID": "req-42",
                                       "Authorization": "Bearer sk-ant-abcdef"})
        logger.info("upstream key is top-secret-upstream-key, header Bearer abc.def")
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)
    records = [json.loads(line) for line in stream.getvalue().splitlines()]
    access = next(r for r in records if r["logger"] == "claude_gateway.access")
    assert access["request_id"] == "req-42"
    assert access["status"] == 200 and access["path"] == "/health"
    assert all(k in access for k in ("ts", "level", "message", "duration_ms"))
    text = stream.getvalue()
    assert "top-secret-upstream-key" not in text
    assert "abc.def" not in text and "[REDACTED]" in text


def test_start_fails_clearly_without_a_cli(tmp_path: Path) -> None:
    app = create_app(make_settings(tmp_path, cli_path=tmp_path / "no-such-claude"))
    with pytest.raises(CliNotFoundError, match="CLAUDE_GATEWAY_CLI_PATH"), TestClient(app):
        pass
