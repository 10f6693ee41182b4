"""``/``: the web console, a single page that is a client of the public API only.

The page and its assets (``/console/...``, shipped in the package: plain browser
modules, no build step) are public, like ``/docs``: a browser cannot send a key to load
them, and they hold nothing secret. Everything they show comes from the API, with the
key the user typed (kept in ``sessionStorage``). They carry a strict policy of their
own: scripts, styles and connections to the gateway's own origin only, no inline script.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from starlette.responses import FileResponse, Response
from starlette.types import Message, Receive, Scope, Send

STATIC = Path(__file__).resolve().parent.parent / "console"
ASSETS = "/console"
POLICY = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
          "font-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'self'; "
          "frame-ancestors 'none'; manifest-src 'self'")


def is_public(path: str) -> bool:
    return path == "/" or path.startswith(ASSETS + "/")


class ConsoleAssets(StaticFiles):
    """The console's files, each with the console's policy."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def with_policy(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []),
                                      (b"content-security-policy", POLICY.encode())]
            await send(message)

        await super().__call__(scope, receive, with_policy)


def mount(app: FastAPI) -> None:
    app.mount(ASSETS, ConsoleAssets(directory=STATIC), name="console")

    @app.get("/", include_in_schema=False)
    async def console() -> Response:
        return FileResponse(STATIC / "index.html", media_type="text/html",
                            headers={"Content-Security-Policy": POLICY,
                                     "Cache-Control": "no-cache"})
