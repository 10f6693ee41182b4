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
_SIGNATURES: dict[str, tuple[bytes, ...]] = {
    "image/png": (b"\x89PNG\r\n\x1a\n",),
    "image/jpeg": (b"\xff\xd8\xff",),
    "image/gif": (b"GIF87a", b"GIF89a"),
    "image/webp": (b"RIFF",),
}
# Base64 that starts with one of those signatures, in whole quartets: the schema says
# what the gateway accepts, so a client (or a fuzzer) can tell before sending.
_B64 = "[A-Za-z0-9+/]"
IMAGE_BASE64 = (rf"(?:iVBORw0KGg[o-r]{_B64}|/9j/|R0lGOD[dl]h|UklGR[g-v]{_B64}{{2}})"
                rf"(?:{_B64}{{4}})*(?:{_B64}{{2}}==|{_B64}{{3}}=)?")
_DATA_URL_PREFIX = r"data:image/(?:png|jpeg|gif|webp)(?:;[A-Za-z0-9_-]+=[^;,]*)*;base64,"
_DATA_URL = re.compile(rf"^{_DATA_URL_PREFIX}(?P<data>.*)$", re.S)
DATA_URL = _DATA_URL_PREFIX + IMAGE_BASE64
"""A data: URL of an image the gateway accepts (a regular expression)."""


class TextBlockIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    type: Literal["text"]
    text: str = Field(min_length=1)


class Base64Source(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    type: Literal["base64"]
    media_type: ImageMediaType = Field(
        description="What the client says the image is; the gateway goes by its bytes.")
    data: str = Field(min_length=4, pattern=f"^{IMAGE_BASE64}$",
                      description="A PNG, JPEG, GIF or WebP image, base64-encoded.")


class DataUrlSource(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    type: Literal["url"]
    url: str = Field(min_length=1, pattern=f"^{DATA_URL}$",
                     description="A base64 data: URL of a PNG, JPEG, GIF or WebP image.")


class ImageBlockIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    type: Literal["image"]
    source: Annotated[Base64Source | DataUrlSource, Field(discriminator="type")]


ContentBlockIn = Annotated[TextBlockIn | ImageBlockIn, Field(discriminator="type")]
Prompt = Annotated[str, Field(min_length=1)] | Annotated[list[ContentBlockIn],
                                                          Field(min_length=1)]


def _image_block(source: Base64Source | DataUrlSource, max_bytes: int) -> dict[str, Any]:
    if isinstance(source, DataUrlSource):
        match = _DATA_URL.match(source.url)
        if match is None:
            raise InvalidRequest("An image URL must be a base64 data: URL of a PNG, JPEG, "
                                 "GIF or WebP image (data:image/png;base64,...)",
                                 details={"allowed": list(IMAGE_MEDIA_TYPES)})
        data = match["data"]
    else:
        data = source.data
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
    media_type = sniff_image(raw)
    if media_type is None:
        raise InvalidRequest("Image data is not a PNG, JPEG, GIF or WebP image",
                             details={"allowed": list(IMAGE_MEDIA_TYPES)})
    return {"type": "image",
            "source": {"type": "base64", "media_type": media_type, "data": data}}


def sniff_image(raw: bytes) -> str | None:
    """The media type the image's first bytes say it is (a mislabelled image is common,
    and the model's API refuses a type that does not match the bytes)."""
    for media_type, signatures in _SIGNATURES.items():
        if raw.startswith(signatures):
            return media_type
    return None


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
