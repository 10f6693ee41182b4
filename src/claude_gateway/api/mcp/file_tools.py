"""MCP tools over the caller's files: ``list_files``, ``read_file``, ``write_file`` and
``delete_file``."""

from __future__ import annotations

import base64
import binascii
import functools
import stat
from collections.abc import AsyncIterator
from typing import Annotated, Literal

import anyio
import mcp.types as types
from mcp.server.mcpserver import Context, MCPServer
from pydantic import BaseModel, Field

from claude_gateway.api.files import DirectoryOut, WrittenOut
from claude_gateway.api.mcp.common import (
    MAX_READ_BYTES,
    FilePath,
    principal_of,
    tool_errors,
)
from claude_gateway.errors import (
    BinaryFile,
    InvalidRequest,
    IsADirectory,
    NotADirectory,
    PayloadTooLarge,
)
from claude_gateway.services.files import FileService
from claude_gateway.settings import Settings
from claude_gateway.wire import file_entry_to_api


class ReadFileOut(BaseModel):
    path: str
    size: int
    encoding: Literal["text", "base64"]
    content: str


class DeletedOut(BaseModel):
    path: str
    deleted: bool




def register_file_tools(server: MCPServer, files: FileService, settings: Settings) -> None:
    async def mine(ctx: Context) -> FileService:
        """The file service confined to the caller's directory (made on first use)."""
        return await anyio.to_thread.run_sync(files.for_owner, principal_of(ctx))

    @server.tool(annotations=types.ToolAnnotations(read_only_hint=True))
    async def list_files(
        ctx: Context,
        path: Annotated[str, Field(
            max_length=4096, description="Directory relative to the workspace root; empty: "
            "the root, whose entries are the workspaces.")] = "",
    ) -> DirectoryOut:
        """List a directory under the workspace root: name, type (file|dir), size, modifiedAt."""
        files_ = await mine(ctx)
        with tool_errors():
            target, info = await anyio.to_thread.run_sync(files_.stat, path)
            if not stat.S_ISDIR(info.st_mode):
                raise NotADirectory(f"{path!r} is a file: read it with read_file",
                                    details={"path": path})
            entries = await anyio.to_thread.run_sync(files_.list_dir, target)
        return DirectoryOut.model_validate({"path": files_.relative(target),
                                            "entries": [file_entry_to_api(e) for e in entries]})

    @server.tool(annotations=types.ToolAnnotations(read_only_hint=True))
    async def read_file(
        ctx: Context,
        path: FilePath,
        encoding: Annotated[Literal["text", "base64"], Field(
            description="'text' for UTF-8 text; 'base64' for any file.")] = "text",
    ) -> ReadFileOut:
        """Read a file under the workspace root (at most 1 MiB).

        A file that is not UTF-8 text fails with BINARY_FILE unless read with
        encoding 'base64'; a larger one fails with PAYLOAD_TOO_LARGE.
        """
        files_ = await mine(ctx)
        with tool_errors():
            target, info = await anyio.to_thread.run_sync(files_.stat, path)
            if stat.S_ISDIR(info.st_mode):
                raise IsADirectory(f"{path!r} is a directory: use list_files",
                                   details={"path": path})
            if not stat.S_ISREG(info.st_mode):
                raise InvalidRequest(f"{path!r} is not a regular file", details={"path": path})
            if info.st_size > MAX_READ_BYTES:
                raise PayloadTooLarge(
                    f"{path!r} has {info.st_size} bytes; read_file returns at most "
                    f"{MAX_READ_BYTES} (use GET /v1/files/{{path}} for larger files)",
                    details={"path": path, "size": info.st_size})
            async with await anyio.open_file(target, "rb") as handle:
                data = await handle.read(MAX_READ_BYTES + 1)
            if len(data) > MAX_READ_BYTES:  # it grew after stat
                raise PayloadTooLarge(f"{path!r} is larger than {MAX_READ_BYTES} bytes",
                                      details={"path": path})
            if encoding == "base64":
                content = base64.b64encode(data).decode("ascii")
            else:
                try:
                    content = data.decode("utf-8")
                except UnicodeDecodeError:
                    raise BinaryFile(
                        f"{path!r} is not UTF-8 text: read it with encoding 'base64'",
                        details={"path": path}) from None
        return ReadFileOut(path=files_.relative(target), size=len(data), encoding=encoding,
                           content=content)

    @server.tool(annotations=types.ToolAnnotations(idempotent_hint=True))
    async def write_file(
        ctx: Context,
        path: FilePath,
        content: Annotated[str, Field(description="The file's new content.")],
        encoding: Annotated[Literal["text", "base64"], Field(
            description="How content is given: 'text' (written as UTF-8) or 'base64' "
            "(decoded to bytes).")] = "text",
    ) -> WrittenOut:
        """Create or replace a file under the workspace root (parent directories created)."""
        files_ = await mine(ctx)
        with tool_errors():
            if encoding == "base64":
                try:
                    data = base64.b64decode(content, validate=True)
                except (binascii.Error, ValueError):
                    raise InvalidRequest("content is not valid base64",
                                         details={"path": path}) from None
            else:
                data = content.encode("utf-8")

            async def chunks() -> AsyncIterator[bytes]:
                yield data

            written, size = await files_.write(path, chunks(), len(data))
        return WrittenOut(path=written, size=size)

    @server.tool(annotations=types.ToolAnnotations(destructive_hint=True))
    async def delete_file(
        ctx: Context,
        path: FilePath,
        recursive: Annotated[bool, Field(
            description="Needed to delete a directory with everything in it.")] = False,
    ) -> DeletedOut:
        """Delete a file, or a directory with recursive=true, under the workspace root."""
        files_ = await mine(ctx)
        with tool_errors():
            await anyio.to_thread.run_sync(functools.partial(files_.delete, path,
                                                             recursive=recursive))
        return DeletedOut(path=path, deleted=True)
