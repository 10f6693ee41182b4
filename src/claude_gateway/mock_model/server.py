"""The scripted model as an HTTP server speaking the Anthropic Messages API.

``MockModel`` holds the script and the record of requests; ``create_mock_app`` serves
it; ``MockModelServer`` runs that app on a loopback port in a background thread so a
test (or ``claude-gateway serve --mock-model``) can point real CLI processes at it.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from claude_gateway.mock_model.script import (
    PromptPosition,
    ScriptError,
    Step,
    human_text,
    locate_prompt,
    parse_directives,
)
from claude_gateway.mock_model.wire import (
    error_body,
    estimate_tokens,
    message_json,
    render_step,
    sse_frame,
    stream_events,
)
from claude_gateway.server_thread import ServerThread

DEFAULT_REPLY_HINT = (
    "Script me with directive lines in the prompt, e.g. '@reply Hello' or "
    "'@tool Write {\"file_path\": \"a.txt\", \"content\": \"hi\"}'."
)


@dataclass
class RecordedRequest:
    """One request the model received, kept for assertions."""

    path: str
    kind: str
    """``messages`` (an agent turn), ``side`` (e.g. a title request) or ``count_tokens``."""
    body: dict[str, Any]
    headers: dict[str, str]
    source: str = ""
    """What answered it: ``directive``, ``queue``, ``default``, ``side`` or ``error``."""
    status: int = 200
    received_at: float = field(default_factory=time.time)

    @property
    def model(self) -> str:
        return str(self.body.get("model", ""))

    @property
    def messages(self) -> list[dict[str, Any]]:
        return list(self.body.get("messages", []))

    @property
    def tool_names(self) -> list[str]:
        return [str(t.get("name")) for t in self.body.get("tools", []) or []]

    @property
    def system_text(self) -> str:
        system = self.body.get("system", "")
        if isinstance(system, str):
            return system
        return "\n".join(str(b.get("text", "")) for b in system if isinstance(b, dict))

    @property
    def prompt(self) -> str:
        """The latest human prompt in the conversation ("" when there is none)."""
        position = locate_prompt(self.messages)
        return position.text if position else ""

    def user_texts(self) -> list[str]:
        """Human text of every user message, oldest first (system reminders left out)."""
        texts = [human_text(m.get("content")) for m in self.messages if m.get("role") == "user"]
        return [t for t in texts if t.strip()]

    def tool_results(self) -> list[dict[str, Any]]:
        """Every tool_result block sent back to the model, oldest first."""
        return [
            block
            for m in self.messages
            if m.get("role") == "user" and isinstance(m.get("content"), list)
            for block in m["content"]
            if isinstance(block, dict) and block.get("type") == "tool_result"
        ]

    def to_json(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "kind": self.kind,
            "source": self.source,
            "status": self.status,
            "model": self.model,
            "prompt": self.prompt,
            "tools": self.tool_names,
            "body": self.body,
        }


class MockModel:
    """The script and the record; safe to use from a test thread while the server runs.

    In strict mode a request that no directive or queued step answers gets a 400 and
    is reported by :meth:`check`, as are queued steps that were never used.
    """

    def __init__(self, *, strict: bool = False, api_key: str | None = None) -> None:
        self.strict = strict
        self.api_key = api_key
        self._lock = threading.Lock()
        self._queue: deque[tuple[int, Step]] = deque()
        self._enqueued = 0
        self._fail_counts: dict[str, int] = {}
        self._requests: list[RecordedRequest] = []
        self._errors: list[str] = []
        self._received = threading.Condition(self._lock)

    # -- scripting -----------------------------------------------------------------
    def enqueue(self, *steps: Step | dict[str, Any]) -> None:
        """Queue responses for requests whose prompt carries no directives."""
        parsed = [s if isinstance(s, Step) else Step.from_dict(s) for s in steps]
        with self._lock:
            for step in parsed:
                self._enqueued += 1
                self._queue.append((self._enqueued, step))

    def reset(self) -> None:
        with self._lock:
            self._queue.clear()
            self._fail_counts.clear()
            self._requests.clear()
            self._errors.clear()

    @property
    def pending(self) -> int:
        with self._lock:
            return len(self._queue)

    # -- the record ----------------------------------------------------------------
    @property
    def requests(self) -> list[RecordedRequest]:
        """Agent-turn requests (``/v1/messages`` minus side requests), oldest first."""
        with self._lock:
            return [r for r in self._requests if r.kind == "messages"]

    @property
    def all_requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._requests)

    @property
    def errors(self) -> list[str]:
        with self._lock:
            return list(self._errors)

    def wait_for_requests(self, count: int, timeout: float = 10.0) -> list[RecordedRequest]:
        """Block until ``count`` agent-turn requests arrived; raise TimeoutError if not."""
        deadline = time.monotonic() + timeout
        with self._received:
            while True:
                found = [r for r in self._requests if r.kind == "messages"]
                if len(found) >= count:
                    return found
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"mock model got {len(found)} of {count} requests")
                self._received.wait(remaining)

    def check(self) -> None:
        """Raise AssertionError for unscripted requests or unused queued steps."""
        with self._lock:
            problems = list(self._errors)
            if self._queue:
                problems.append(f"{len(self._queue)} queued step(s) never used")
        if problems:
            raise AssertionError("mock model: " + "; ".join(problems))

    # -- answering -----------------------------------------------------------------
    def _record(self, request: RecordedRequest) -> None:
        with self._received:
            self._requests.append(request)
            self._received.notify_all()

    def _error(self, message: str) -> None:
        with self._lock:
            self._errors.append(message)

    def choose(self, body: dict[str, Any]) -> Decision:
        """Pick the answer to an agent-turn request."""
        position = locate_prompt(list(body.get("messages", [])))
        if position is not None:
            try:
                steps = parse_directives(position.text)
            except ScriptError as exc:
                return Decision("error", error=f"bad directive: {exc}")
            if steps:
                return self._directive_step(position, steps)
        with self._lock:
            if self._queue:
                number, step = self._queue[0]
                if self._should_fail(f"queue:{number}", step):
                    return Decision("queue", step, fail_status=step.fail_status)
                self._queue.popleft()
                return Decision("queue", step)
        if self.strict:
            prompt = position.text if position else "(no prompt)"
            return Decision(
                "error", error=f"unscripted request (strict mode), prompt: {prompt[:200]!r}"
            )
        text = position.text.strip() if position else ""
        reply = f"(mock model) You said: {text[:500]}\n\n{DEFAULT_REPLY_HINT}"
        return Decision("default", Step.reply(reply))

    def _directive_step(self, position: PromptPosition, steps: list[Step]) -> Decision:
        if position.step >= len(steps):
            if self.strict:
                return Decision("error", error=(
                    f"script exhausted: request {position.step + 1} for a prompt with "
                    f"{len(steps)} step(s): {position.text[:200]!r}"
                ))
            return Decision("directive", Step.reply("(mock model) script finished"))
        step = steps[position.step]
        with self._lock:
            failing = self._should_fail(f"{position.key}:{position.step}", step)
        return Decision("directive", step, fail_status=step.fail_status if failing else None)

    def _should_fail(self, key: str, step: Step) -> bool:
        """Count a failure for this step; True while it should still fail. Lock held."""
        if step.fail_status is None:
            return False
        used = self._fail_counts.get(key, 0)
        if step.fail_times is not None and used >= step.fail_times:
            return False
        self._fail_counts[key] = used + 1
        return True


@dataclass(frozen=True)
class Decision:
    """How one agent-turn request is answered."""

    source: str
    """``directive``, ``queue``, ``default`` or ``error`` (a strict-mode problem)."""
    step: Step | None = None
    error: str = ""
    fail_status: int | None = None
    """Set when this request is one of the step's scripted failures."""


def _is_side_request(body: dict[str, Any]) -> bool:
    """The CLI's own requests: session titles (a JSON schema) and model probes (1 token)."""
    if body.get("tools"):
        return False
    fmt = (body.get("output_config") or {}).get("format") or {}
    return fmt.get("type") == "json_schema" or body.get("max_tokens") == 1


def _side_answer(body: dict[str, Any]) -> Step:
    if body.get("max_tokens") == 1:
        return Step.reply("Hi")
    schema = ((body.get("output_config") or {}).get("format") or {}).get("schema") or {}
    properties = schema.get("properties") or {"title": {}}
    payload = dict.fromkeys(properties, "Mock session")
    return Step.reply(json.dumps(payload))


def create_mock_app(model: MockModel, *, control: bool = True) -> Starlette:
    """The Starlette app that serves ``model``; with ``control``, also the ``/_mock/*``
    routes that script it and read what it received (tests; never inside ``serve``)."""

    def authorised(request: Request) -> bool:
        if model.api_key is None:
            return True
        bearer = request.headers.get("authorization", "").removeprefix("Bearer ")
        return model.api_key in (request.headers.get("x-api-key"), bearer)

    async def messages(request: Request) -> Response:
        headers = {k: v for k, v in request.headers.items() if k.lower() not in
                   ("x-api-key", "authorization")}
        try:
            body = await request.json()
            if not isinstance(body, dict):
                raise ValueError("body must be an object")
        except ValueError as exc:
            return JSONResponse(error_body(400, f"invalid JSON: {exc}"), status_code=400)
        side = _is_side_request(body)
        record = RecordedRequest(
            path=request.url.path, kind="side" if side else "messages", body=body,
            headers=headers,
        )
        if not authorised(request):
            record.source, record.status = "error", 401
            model._record(record)
            return JSONResponse(error_body(401, "invalid x-api-key"), status_code=401)
        decision = Decision("side", _side_answer(body)) if side else model.choose(body)
        record.source = decision.source
        step = decision.step
        if step is None:
            record.status = 400
            model._record(record)
            model._error(decision.error)
            return JSONResponse(error_body(400, f"mock model: {decision.error}"), status_code=400)
        if step.delay:
            await asyncio.sleep(step.delay)
        if decision.fail_status is not None:
            record.status = decision.fail_status
            model._record(record)
            return JSONResponse(
                error_body(decision.fail_status, f"scripted failure {decision.fail_status}"),
                status_code=decision.fail_status,
            )
        model._record(record)
        name = str(body.get("model", "claude-mock"))
        rendered = render_step(step, name, body)
        if not body.get("stream"):
            return JSONResponse(message_json(rendered, name))

        async def stream() -> AsyncIterator[bytes]:
            events = stream_events(rendered, name)
            for index, (event, data) in enumerate(events):
                if step.chunk_delay and event == "content_block_delta" and index > 1:
                    await asyncio.sleep(step.chunk_delay)
                yield sse_frame(event, data)

        return StreamingResponse(stream(), media_type="text/event-stream")

    async def count_tokens(request: Request) -> Response:
        body = await request.json()
        model._record(RecordedRequest(path=request.url.path, kind="count_tokens", body=body,
                                      headers={}, source="count_tokens"))
        return JSONResponse({"input_tokens": estimate_tokens(body.get("messages", []))})

    async def admin_script(request: Request) -> Response:
        data = await request.json()
        try:
            model.enqueue(*[Step.from_dict(s) for s in data.get("steps", [])])
        except (ScriptError, KeyError, TypeError, ValueError) as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        if "strict" in data:
            model.strict = bool(data["strict"])
        return JSONResponse({"pending": model.pending})

    async def admin_requests(request: Request) -> Response:
        return JSONResponse({"requests": [r.to_json() for r in model.all_requests]})

    async def admin_state(request: Request) -> Response:
        return JSONResponse(
            {"pending": model.pending, "errors": model.errors, "strict": model.strict,
             "requests": len(model.all_requests)}
        )

    async def admin_reset(request: Request) -> Response:
        model.reset()
        return JSONResponse({"pending": 0})

    async def models(request: Request) -> Response:
        if not authorised(request):
            return JSONResponse(error_body(401, "invalid x-api-key"), status_code=401)
        names = ["claude-mock-sonnet", "claude-mock-haiku"]
        return JSONResponse({"data": [{"type": "model", "id": n, "display_name": n}
                                      for n in names], "has_more": False})

    async def hello(request: Request) -> Response:
        return JSONResponse({"ok": True})

    routes = [
        Route("/v1/messages", messages, methods=["POST"]),
        Route("/v1/messages/count_tokens", count_tokens, methods=["POST"]),
        Route("/v1/models", models, methods=["GET"]),
        Route("/", hello, methods=["GET", "HEAD"]),
        Route("/api/hello", hello, methods=["GET", "HEAD"]),
    ]
    if control:
        routes += [
            Route("/_mock/script", admin_script, methods=["POST"]),
            Route("/_mock/requests", admin_requests, methods=["GET"]),
            Route("/_mock/state", admin_state, methods=["GET"]),
            Route("/_mock/reset", admin_reset, methods=["POST"]),
        ]
    return Starlette(routes=routes)


class MockModelServer:
    """Runs a :class:`MockModel` on a loopback port in a background thread."""

    def __init__(self, model: MockModel | None = None, host: str = "127.0.0.1",
                 port: int = 0, *, control: bool = True) -> None:
        self.model = model or MockModel()
        self._thread = ServerThread(create_mock_app(self.model, control=control), host, port,
                                    lifespan="off", name="mock-model")

    @property
    def url(self) -> str:
        return self._thread.url

    @property
    def port(self) -> int:
        return self._thread.port

    def start(self) -> MockModelServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._thread.stop()

    def __enter__(self) -> MockModelServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def serve_forever(host: str, port: int, *, strict: bool = False,
                  steps: Iterable[Step] = ()) -> None:
    """Run the scripted model in the foreground (``claude-gateway mock-model``)."""
    model = MockModel(strict=strict)
    model.enqueue(*steps)
    uvicorn.run(create_mock_app(model), host=host, port=port, log_level="info")
