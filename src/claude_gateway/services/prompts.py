"""Prompt validation: a string, or a list of Anthropic content blocks (text, image)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

IMAGE_MEDIA_TYPES = ("image/png", "image/jpeg", "image/gif", "image/webp")


class TextBlockIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal["text"]
    text: str = Field(min_length=1)


class Base64Source(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal["base64"]
    media_type: Literal["image/png", "image/jpeg", "image/gif", "image/webp"]
    data: str = Field(min_length=1)


class ImageBlockIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal["image"]
    source: Base64Source


ContentBlockIn = Annotated[TextBlockIn | ImageBlockIn, Field(discriminator="type")]
Prompt = Annotated[str, Field(min_length=1)] | Annotated[list[ContentBlockIn],
                                                          Field(min_length=1)]


def prompt_blocks(prompt: str | list[Any]) -> list[dict[str, Any]]:
    """The prompt as content blocks, the form kept in the history."""
    if isinstance(prompt, str):
        return [{"type": "text", "text": prompt}]
    return [b.model_dump() if isinstance(b, BaseModel) else dict(b) for b in prompt]


def prompt_for_cli(prompt: str | list[Any]) -> str | list[dict[str, Any]]:
    """A plain string stays a string; blocks go to the CLI as a content list."""
    return prompt if isinstance(prompt, str) else prompt_blocks(prompt)
