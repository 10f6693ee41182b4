"""``/docs``: the API reference (Swagger UI), served from the gateway itself.

FastAPI's own page loads Swagger UI from a CDN and runs an inline script, which
the strict Content-Security-Policy sent on every response forbids (and a gateway may have
no internet). These pages load the same assets from the gateway (the ``fastapi-offline``
package ships them) and carry a policy of their own: scripts from the gateway and the
page's one inline script, by its hash; nothing from anywhere else.
"""

from __future__ import annotations

import base64
import hashlib
import re
from pathlib import Path

import fastapi_offline
from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.staticfiles import StaticFiles
from starlette.responses import HTMLResponse

ASSETS = "/docs/assets"
PUBLIC = ("/docs", "/openapi.json")
"""Readable without a key: what the API looks like is no secret, and a browser opening the
page cannot send one. Trying an operation out needs a key ("Authorize")."""
_INLINE_SCRIPT = re.compile(r"<script>(.*?)</script>", re.S)


def is_public(path: str) -> bool:
    return path in PUBLIC or path.startswith(ASSETS + "/")


def page_policy(html: str) -> str:
    """A CSP allowing the gateway's own assets and exactly the page's inline scripts."""
    hashes = " ".join(
        "'sha256-" + base64.b64encode(hashlib.sha256(script.encode()).digest()).decode() + "'"
        for script in _INLINE_SCRIPT.findall(html))
    return ("default-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'; "
            f"script-src 'self' {hashes}; worker-src 'self' blob:; "
            "style-src 'self' 'unsafe-inline'; img-src 'self' data:; font-src 'self' data:; "
            "connect-src 'self'")


def _page(html: str) -> HTMLResponse:
    return HTMLResponse(html, headers={"Content-Security-Policy": page_policy(html)})


def mount(app: FastAPI) -> None:
    """Serve the reference page and its assets (the app is made with docs_url=None)."""
    static = Path(fastapi_offline.__file__).parent / "static"
    app.mount(ASSETS, StaticFiles(directory=static), name="docs-assets")
    title = app.title

    @app.get("/docs", include_in_schema=False)
    async def swagger(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        response = get_swagger_ui_html(
            openapi_url=f"{root}/openapi.json", title=f"{title} - API reference",
            swagger_js_url=f"{root}{ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{root}{ASSETS}/favicon.png")
        return _page(bytes(response.body).decode())
