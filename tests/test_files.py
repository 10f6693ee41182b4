"""The workspace file API: reads, writes, deletes, and a table of hostile paths."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from tests.helpers.api import assert_error
from tests.helpers.gateway import Gateway
from tests.helpers.hostile import HOSTILE_NAMES, hostile_tree

pytestmark = pytest.mark.anyio


@pytest.fixture
def files_gateway(start_gateway: Any) -> Gateway:
    gateway: Gateway = start_gateway(max_upload_bytes=4096)
    return gateway


async def test_write_read_list_and_delete(files_gateway: Gateway) -> None:
    root = files_gateway.settings.workspace_root
    async with files_gateway.client() as client:
        put = await client.put("/v1/files/project/src/notes.md", content=b"# Notes\nhello\n")
        assert put.status_code == 201
        assert put.json() == {"path": "project/src/notes.md", "size": 14}
        assert (root / "project/src/notes.md").read_bytes() == b"# Notes\nhello\n"
        read = await client.get("/v1/files/project/src/notes.md")
        assert read.content == b"# Notes\nhello\n"
        assert read.headers["content-type"].startswith("text/markdown")
        partial = await client.get("/v1/files/project/src/notes.md",
                                   headers={"Range": "bytes=2-6"})
        assert partial.status_code == 206 and partial.content == b"Notes"
        await client.put("/v1/files/project/data.bin", content=b"\0\1")
        listing = (await client.get("/v1/files/project")).json()
        assert listing["path"] == "project"
        assert [(e["name"], e["type"], e["size"]) for e in listing["entries"]] == [
            ("data.bin", "file", 2), ("src", "dir", 0)]
        assert listing["entries"][0]["modifiedAt"].endswith("Z")
        root_listing = (await client.get("/v1/files")).json()
        assert "project" in [e["name"] for e in root_listing["entries"]]
        # Replace: atomic, no temporary file left behind.
        await client.put("/v1/files/project/data.bin", content=b"new")
        assert (root / "project/data.bin").read_bytes() == b"new"
        assert not [p for p in (root / "project").iterdir() if p.name.startswith(".upload-")]

        assert_error(await client.get("/v1/files/project/missing.txt"), 404, "FILE_NOT_FOUND")
        assert_error(await client.delete("/v1/files/project"), 409, "IS_A_DIRECTORY")
        assert_error(await client.put("/v1/files/project", content=b"x"), 409,
                     "IS_A_DIRECTORY")
        assert (await client.delete("/v1/files/project/data.bin")).status_code == 204
        assert not (root / "project/data.bin").exists()
        assert (await client.delete("/v1/files/project",
                                    params={"recursive": "true"})).status_code == 204
        assert not (root / "project").exists()
        assert_error(await client.delete("/v1/files/project"), 404, "FILE_NOT_FOUND")


async def test_uploads_over_the_limit_are_refused_and_leave_nothing(
    files_gateway: Gateway,
) -> None:
    root = files_gateway.settings.workspace_root
    async with files_gateway.client() as client:
        await client.put("/v1/files/keep.txt", content=b"original")
        assert_error(await client.put("/v1/files/keep.txt", content=b"x" * 5000), 413,
                     "PAYLOAD_TOO_LARGE")

        async def chunked() -> AsyncIterator[bytes]:  # no Content-Length: caught mid-stream
            for _ in range(10):
                yield b"y" * 1000

        assert_error(await client.put("/v1/files/keep.txt", content=chunked()), 413,
                     "PAYLOAD_TOO_LARGE")
    assert (root / "keep.txt").read_bytes() == b"original"
    assert sorted(p.name for p in root.iterdir()) == ["keep.txt"]


# Tricks that exist only on the wire (how a path is encoded in the URL), sent as they are;
# every other hostile name comes from the shared table, URL-encoded.
WIRE_TRICKS = [
    ("..%2f..%2falice%2fsecret.txt", "PATH_OUTSIDE_WORKSPACE"),
    ("%2e%2e/%2e%2e/alice/secret.txt", "PATH_OUTSIDE_WORKSPACE"),
    ("%2F%2Fetc%2Fpasswd", "PATH_OUTSIDE_WORKSPACE"),
    ("a/%00/%2e%2e/%2e%2e/outside/secret.txt", "INVALID_PATH"),
    ("%252e%252e/x/%2e%2e/%2e%2e/%2e%2e/alice/secret.txt", "PATH_OUTSIDE_WORKSPACE"),
]
BOB = "bob-key-0123456789abcdef"


async def test_hostile_paths_are_refused_for_every_method(
    start_gateway: Any, tmp_path: Path
) -> None:
    gateway: Gateway = start_gateway(api_keys=[{"name": "bob", "key": BOB}])
    tree = hostile_tree(tmp_path)
    before = tree.snapshot()
    # Dots encoded too: a client would otherwise resolve '..' itself before sending.
    cases = [(quote(name, safe="/").replace(".", "%2E"), code)
             for name, code in HOSTILE_NAMES] + WIRE_TRICKS
    async with httpx.AsyncClient(timeout=30, headers={"Authorization": f"Bearer {BOB}"}
                                 ) as client:
        for path, code in cases:
            url = httpx.URL(f"{gateway.url}/v1/files/{path}")
            for method in ("GET", "PUT", "DELETE"):
                response = await client.request(method, url, content=b"overwritten"
                                                if method == "PUT" else None)
                assert response.status_code == 400, (method, path, response.text)
                assert response.json()["error"]["code"] == code, (method, path, response.text)
                assert "secret" not in response.text.replace("secret.txt", "")
                assert str(tmp_path) not in response.text, "no internal paths in errors"
    assert tree.snapshot() == before
    assert sorted(p.name for p in tree.root.iterdir()) == ["alice", "bob", "bob2"]


@pytest.fixture
def hostile_links(files_gateway: Gateway, tmp_path: Path) -> Path:
    root = files_gateway.settings.workspace_root
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("top secret")
    os.symlink(outside, root / "link-out")
    os.symlink(outside / "secret.txt", root / "file-link")
    return root


async def test_links_inside_the_root_work_and_a_link_is_deleted_not_its_target(
    files_gateway: Gateway, hostile_links: Path
) -> None:
    root = files_gateway.settings.workspace_root
    (root / "real.txt").write_text("inside")
    os.symlink(root / "real.txt", root / "inner-link")
    async with files_gateway.client() as client:
        assert (await client.get("/v1/files/inner-link")).content == b"inside"
        listing = (await client.get("/v1/files")).json()["entries"]
        names = [e["name"] for e in listing]
        assert "inner-link" in names and "link-out" not in names and "file-link" not in names
        assert (await client.delete("/v1/files/inner-link")).status_code == 204
    assert not (root / "inner-link").exists() and (root / "real.txt").exists()
