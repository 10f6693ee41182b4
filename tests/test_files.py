"""The workspace file API: reads, writes, deletes, and a table of hostile paths."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import Gateway
from tests.test_session_lifecycle import assert_error

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


# (request path as sent on the wire, expected error code)
HOSTILE = [
    ("%2e%2e/outside/secret.txt", "PATH_OUTSIDE_WORKSPACE"),
    ("..%2foutside%2fsecret.txt", "PATH_OUTSIDE_WORKSPACE"),
    ("%2e%2e%2f%2e%2e%2f%2e%2e%2fetc%2fpasswd", "PATH_OUTSIDE_WORKSPACE"),
    ("a/%2e%2e/%2e%2e/outside/secret.txt", "PATH_OUTSIDE_WORKSPACE"),
    ("a/b/%2e%2e/%2e%2e/%2e%2e/outside/secret.txt", "PATH_OUTSIDE_WORKSPACE"),
    ("%2fetc%2fpasswd", "PATH_OUTSIDE_WORKSPACE"),
    ("/etc/passwd", "PATH_OUTSIDE_WORKSPACE"),
    ("%2F%2Fetc%2Fpasswd", "PATH_OUTSIDE_WORKSPACE"),
    ("%2e%2e/workspaces2/sibling.txt", "PATH_OUTSIDE_WORKSPACE"),
    ("%2e%2e/workspaces2", "PATH_OUTSIDE_WORKSPACE"),
    ("%2e%2e", "PATH_OUTSIDE_WORKSPACE"),
    ("a/%2e%2e/%2e%2e", "PATH_OUTSIDE_WORKSPACE"),
    ("link-out/secret.txt", "PATH_OUTSIDE_WORKSPACE"),
    ("link-out", "PATH_OUTSIDE_WORKSPACE"),
    ("file-link", "PATH_OUTSIDE_WORKSPACE"),
    ("a/parent-link/secret.txt", "PATH_OUTSIDE_WORKSPACE"),
    ("a/parent-link/new.txt", "PATH_OUTSIDE_WORKSPACE"),
    ("loop-link/x", "INVALID_PATH"),
    ("~root/.bashrc", "PATH_OUTSIDE_WORKSPACE"),
    ("a%00.txt", "INVALID_PATH"),
    ("a/%00/%2e%2e/%2e%2e/outside/secret.txt", "INVALID_PATH"),
    ("x" * 300, "INVALID_PATH"),
    ("/".join(["abcdefgh"] * 150), "INVALID_PATH"),
    ("%252e%252e/not-a-traversal/%2e%2e/%2e%2e/%2e%2e/outside/secret.txt",
     "PATH_OUTSIDE_WORKSPACE"),
]


@pytest.fixture
def hostile_tree(files_gateway: Gateway, tmp_path: Path) -> dict[str, Path]:
    root = files_gateway.settings.workspace_root
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("top secret")
    sibling = tmp_path / "workspaces2"
    sibling.mkdir()
    (sibling / "sibling.txt").write_text("sibling secret")
    (root / "a" / "b").mkdir(parents=True)
    os.symlink(outside, root / "link-out")
    os.symlink(outside / "secret.txt", root / "file-link")
    os.symlink(outside, root / "a" / "parent-link")
    os.symlink(root / "loop-link", root / "loop-link")
    return {"secret": outside / "secret.txt", "sibling": sibling / "sibling.txt",
            "outside": outside}


def snapshot(directory: Path) -> dict[str, bytes]:
    return {str(p.relative_to(directory)): p.read_bytes()
            for p in sorted(directory.rglob("*")) if p.is_file()}


@pytest.mark.parametrize(("path", "code"), HOSTILE, ids=[p[:40] for p, _ in HOSTILE])
async def test_hostile_paths_are_refused_for_every_method(
    files_gateway: Gateway, hostile_tree: dict[str, Path], tmp_path: Path, path: str, code: str
) -> None:
    before = {"outside": snapshot(hostile_tree["outside"]),
              "sibling": snapshot(hostile_tree["sibling"].parent)}
    url = f"{files_gateway.url}/v1/files/{path}"
    async with httpx.AsyncClient(timeout=30) as client:
        for method in ("GET", "PUT", "DELETE"):
            response = await client.request(method, httpx.URL(url), content=b"overwritten"
                                            if method == "PUT" else None)
            assert response.status_code == 400, (method, path, response.text)
            assert response.json()["error"]["code"] == code, (method, path, response.text)
            assert "secret" not in response.text.replace("secret.txt", "")
            assert str(tmp_path) not in response.text, "no internal paths in errors"
    assert snapshot(hostile_tree["outside"]) == before["outside"]
    assert snapshot(hostile_tree["sibling"].parent) == before["sibling"]
    assert hostile_tree["secret"].read_text() == "top secret"


async def test_links_inside_the_root_work_and_a_link_is_deleted_not_its_target(
    files_gateway: Gateway, hostile_tree: dict[str, Path]
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
