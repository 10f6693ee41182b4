"""Prompts: a string, or a list of Anthropic content blocks (text, image).

An image comes as a base64 ``source`` or a ``data:`` URL (``{"type": "url", "url":
"data:image/png;base64,..."}``); either way it reaches the CLI as a base64 image
block through streaming input, with no temporary file.
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from claude_gateway.errors import InvalidRequest, PayloadTooLarge

IMAGE_MEDIA_TYPES = ("image/png", "image/jpeg", "image/gif", "image/webp")
ImageMediaType = Literal["image/png", "image/jpeg", "image/gif", "image/webp"]
_DATA_URL = re.compile(r"^data:(?P<media>[\w.+-]+/[\w.+-]+)(?P<params>(;[\w-]+=[^;,]*)*)"
                       r";base64,(?P<data>.*)$", re.S)
_SIGNATURES: dict[str, tuple[bytes, ...]] = {
    "image/png": (b"\x89PNG\r\n\x1a\n",),
    "image/jpeg": (b"\xff\xd8\xff",),
    "image/gif": (b"GIF87a", b"GIF89a"),
    "image/webp": (b"RIFF",),
}


class TextBlockIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal["text"]
    text: str = Field(min_length=1)


class Base64Source(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal["base64"]
    media_type: ImageMediaType
    data: str = Field(min_length=1)


class DataUrlSource(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal["url"]
    url: str = Field(min_length=1, pattern=r"^data:")


class ImageBlockIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal["image"]
    source: Annotated[Base64Source | DataUrlSource, Field(discriminator="type")]


ContentBlockIn = Annotated[TextBlockIn | ImageBlockIn, Field(discriminator="type")]
Prompt = Annotated[str, Field(min_length=1)] | Annotated[list[ContentBlockIn],
                                                          Field(min_length=1)]


def _image_block(source: Base64Source | DataUrlSource, max_bytes: int) -> dict[str, Any]:
    if isinstance(source, DataUrlSource):
        match = _DATA_URL.match(source.url)
        if match is None:
            raise InvalidRequest("An image URL must be a base64 data: URL "
                                 "(data:image/png;base64,...)")
        media_type, data = match["media"].lower(), match["data"]
        if media_type not in IMAGE_MEDIA_TYPES:
            raise InvalidRequest(f"Unsupported image type {media_type!r}",
                                 details={"allowed": list(IMAGE_MEDIA_TYPES)})
    else:
        media_type, data = source.media_type, source.data
    # Checked before decoding, so an oversized image is refused without holding it twice.
    if len(data) * 3 // 4 > max_bytes + 3:
        raise PayloadTooLarge(f"An image may be at most {max_bytes} bytes",
                              details={"maxImageBytes": max_bytes})
    try:
        raw = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidRequest("Image data is not valid base64") from None
    if len(raw) > max_bytes:
        raise PayloadTooLarge(f"An image may be at most {max_bytes} bytes",
                              details={"maxImageBytes": max_bytes, "size": len(raw)})
    if not raw.startswith(_SIGNATURES[media_type]) or (
            media_type == "image/webp" and raw[8:12] != b"WEBP"):
        raise InvalidRequest(f"Image data is not {media_type}",
                             details={"mediaType": media_type})
    return {"type": "image",
            "source": {"type": "base64", "media_type": media_type, "data": data}}


def prompt_blocks(prompt: str | list[Any], max_image_bytes: int | None = None
                  ) -> list[dict[str, Any]]:
    """The prompt as content blocks (the form kept in the history), images checked."""
    if isinstance(prompt, str):
        return [{"type": "text", "text": prompt}]
    blocks: list[dict[str, Any]] = []
    for block in prompt:
        if isinstance(block, ImageBlockIn):
            blocks.append(_image_block(block.source, max_image_bytes or 5 * 1024 * 1024))
        elif isinstance(block, BaseModel):
            blocks.append(block.model_dump())
        else:
            blocks.append(dict(block))
    return blocks
