"""Chat completions as the gateway runs them: a one-shot run, or a turn on the caller's
session named by ``X-Session-Id``; the OpenAI messages become a gateway prompt (images
fetched, if the operator allows it)."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any

import httpx
from pydantic import ValidationError

from claude_gateway.errors import (
    ImageFetchFailed,
    ImageUrlsNotAllowed,
    InvalidRequest,
    PayloadTooLarge,
)
from claude_gateway.runtime.options import AgentOptions
from claude_gateway.services import openai_compat as oa
from claude_gateway.services.auth import Principal
from claude_gateway.services.prompts import ImageBlockIn, TextBlockIn
from claude_gateway.services.runs import RunRequest, RunService
from claude_gateway.services.sessions import PendingTurn, SessionCreate, SessionManager
from claude_gateway.settings import Settings

CONTINUE = "Continue."
"""The prompt when a conversation ends with the assistant's own message."""


@dataclass
class ChatTurn:
    """A chat completion under way."""

    session_id: str
    pending: PendingTurn
    model: str
    """The model asked for (after aliases)."""
    structured: bool
    """The answer is JSON for a ``response_format`` schema."""
    run_id: str | None
    """A stateless completion's run (None: a turn on a named session, which goes on when
    its client goes away, since the session keeps the answer)."""


class ChatService:
    def __init__(self, settings: Settings, sessions: SessionManager, runs: RunService
                 ) -> None:
        self.settings = settings
        self.sessions = sessions
        self.runs = runs

    async def start(self, body: oa.ChatRequest, caller: Principal, *,
                    session_name: str | None, workspace: str | None) -> ChatTurn:
        settings = self.settings
        model = oa.resolve_model(
            body.model, known=settings.openai_models, aliases=settings.openai_model_aliases,
            default=settings.default_model or settings.openai_models[0],
            strict=settings.openai_strict_models)
        system, history, new = oa.split_conversation(body.messages)
        schema, instruction = oa.schema_of(body.response_format)
        append = "\n\n".join(p for p in (system, instruction) if p) or None
        effort = oa.effort_of(body.reasoning_effort)
        agent = AgentOptions(append_system_prompt=append, effort=effort, json_schema=schema)
        owner = caller.owner_filter
        if session_name:
            if len(session_name) > 256:
                raise InvalidRequest("X-Session-Id is too long",
                                     details={"param": "X-Session-Id"})
            record = await self.sessions.session_named(caller, session_name, SessionCreate(
                model=model, workspace=workspace, agent=agent, non_interactive=True,
                permission_mode=settings.non_interactive_permission_mode))
            if record.model != model:
                record = await self.sessions.patch(record.id, owner, model=model)
            prompt = await self.prompt_of(new, "")
            pending = await self.sessions.send_message(record.id, owner, prompt)
            return ChatTurn(record.id, pending, model, schema is not None, None)
        prompt = await self.prompt_of(new, oa.context_preamble(history))
        record, pending = await self.runs.start(RunRequest(prompt=prompt, session=SessionCreate(
            workspace=workspace or settings.openai_workspace, model=model, agent=agent,
            permission_mode=settings.non_interactive_permission_mode,
            # Stateless chats in the shared default workspace must not queue behind each
            # other.
            share_workspace=workspace is None, non_interactive=True)), caller)
        return ChatTurn(record.id, pending, model, schema is not None, record.id)

    async def fetch_image(self, url: str) -> ImageBlockIn:
        settings = self.settings
        if not settings.openai_fetch_image_urls:
            raise ImageUrlsNotAllowed("This gateway does not fetch images from URLs; send a "
                                      "data: URL (CLAUDE_GATEWAY_OPENAI_FETCH_IMAGE_URLS)",
                                      details={"param": "messages"})
        limit = settings.max_image_bytes
        try:
            async with httpx.AsyncClient(timeout=10, follow_redirects=True) as client, \
                    client.stream("GET", url) as response:
                response.raise_for_status()
                media_type = response.headers.get("content-type", "").split(";")[0].strip()
                data = bytearray()
                async for piece in response.aiter_bytes():
                    data.extend(piece)
                    if len(data) > limit:
                        raise PayloadTooLarge(f"An image may be at most {limit} bytes",
                                              details={"maxImageBytes": limit})
        except httpx.HTTPError as exc:
            raise ImageFetchFailed(f"Could not fetch the image: {exc.__class__.__name__}",
                                   details={"param": "messages"}) from None
        encoded = base64.b64encode(bytes(data)).decode()
        return ImageBlockIn.model_validate({"type": "image", "source": {
            "type": "url", "url": f"data:{media_type};base64,{encoded}"}})

    async def prompt_of(self, messages: list[oa.DialogueMessage], preamble: str
                        ) -> str | list[Any]:
        """The new messages as a gateway prompt: text, image blocks for images, and tool
        results labelled as such."""
        if len(messages) == 1 and isinstance(messages[0], oa.UserMessage) and isinstance(
                messages[0].content, str):
            return preamble + messages[0].content
        blocks: list[Any] = [TextBlockIn(type="text", text=preamble)] if preamble else []
        for message in messages:
            if isinstance(message, oa.ToolMessage):
                call = f" {message.tool_call_id}" if message.tool_call_id else ""
                blocks.append(TextBlockIn(type="text", text=f"Result of tool call{call}:\n"
                                          f"{oa.text_of(message.content) or '(empty)'}"))
            elif isinstance(message.content, str):
                blocks.append(TextBlockIn(type="text", text=message.content or " "))
            else:
                for part in message.content or []:
                    blocks.append(await self.block_of(part))
        if not messages:
            blocks.append(TextBlockIn(type="text", text=CONTINUE))
        return blocks

    async def block_of(self, part: oa.TextPart | oa.ImagePart) -> TextBlockIn | ImageBlockIn:
        if isinstance(part, oa.TextPart):
            return TextBlockIn(type="text", text=part.text or " ")
        url = part.image_url.url
        if url.startswith("data:"):
            try:
                return ImageBlockIn.model_validate({"type": "image", "source": {
                    "type": "url", "url": url}})
            except ValidationError:
                raise InvalidRequest("image_url is not a base64 data: URL of a PNG, JPEG, GIF "
                                     "or WebP image", details={"param": "messages"}) from None
        if url.startswith(("http://", "https://")):
            return await self.fetch_image(url)
        raise InvalidRequest("image_url must be a data: or http(s) URL",
                             details={"param": "messages"})
