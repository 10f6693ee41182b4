"""``/v1/files/{path}``: list, read, write and delete files under the workspace root."""

from __future__ import annotations

import mimetypes
import stat
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import FileResponse
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from claude_gateway.api.deps import Files
from claude_gateway.api.models import ErrorOut, error_responses
from claude_gateway.errors import InvalidRequest
from claude_gateway.wire import file_entry_to_api

router = APIRouter(prefix="/v1/files", tags=["files"],
                   responses=error_responses(ErrorOut))

ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"description": "`PATH_OUTSIDE_WORKSPACE`, `INVALID_PATH`"},
    404: {"description": "`FILE_NOT_FOUND`"},
}


class FileEntryOut(BaseModel):
    name: str
    type: str
    size: int
    modifiedAt: str


class DirectoryOut(BaseModel):
    path: str
    entries: list[FileEntryOut]


class WrittenOut(BaseModel):
    path: str
    size: int


@router.get("", response_model=DirectoryOut, responses=ERRORS)
async def read_root(service: Files) -> Any:
    """The entries of your workspace directory (an admin's: the workspace root)."""
    target, _ = await run_in_threadpool(service.stat, "")
    entries = await run_in_threadpool(service.list_dir, target)
    return {"path": "", "entries": [file_entry_to_api(e) for e in entries]}


@router.get("/{path:path}", response_model=DirectoryOut, responses={
    **ERRORS, 200: {"description": "A directory listing (JSON), or the file's bytes",
                    "content": {"*/*": {}}},
    206: {"description": "The requested range of the file", "content": {"*/*": {}}},
    416: {"model": ErrorOut, "description": "`RANGE_NOT_SATISFIABLE`"}})
async def read(service: Files, path: str) -> Any:
    """A directory's entries, or a file's bytes (with its content type; Range supported)."""
    target, info = await run_in_threadpool(service.stat, path)
    if stat.S_ISDIR(info.st_mode):
        entries = await run_in_threadpool(service.list_dir, target)
        return {"path": service.relative(target),
                "entries": [file_entry_to_api(e) for e in entries]}
    media_type = mimetypes.guess_type(target.name)[0] or "application/octet-stream"
    return FileResponse(target, media_type=media_type, stat_result=info,
                        content_disposition_type="inline", filename=target.name)


@router.put("/{path:path}", status_code=201, response_model=WrittenOut, responses={
    **ERRORS, 409: {"description": "`IS_A_DIRECTORY`"},
    413: {"description": "`PAYLOAD_TOO_LARGE`"}})
async def write(request: Request, service: Files, path: str) -> dict[str, Any]:
    """Write the raw request body to ``path`` (parents created, replaced atomically)."""
    declared = request.headers.get("content-length")
    if declared is not None and not declared.isdigit():
        raise InvalidRequest("Content-Length must be a number")
    written, size = await service.write(
        path, request.stream(), int(declared) if declared is not None else None)
    return {"path": written, "size": size}


@router.delete("/{path:path}", status_code=204, responses={
    **ERRORS, 409: {"description": "`IS_A_DIRECTORY` (use recursive=true)"}})
async def delete(service: Files, path: str,
                 recursive: Annotated[bool, Query()] = False) -> Response:
    """Delete a file, or a directory with ``recursive=true``."""
    await run_in_threadpool(service.delete, path, recursive=recursive)
    return Response(status_code=204)
