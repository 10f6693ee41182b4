"""Wake-ups for other nodes' events: PostgreSQL's LISTEN, re-established when lost.

A notification only says "session S has events up to N" (payload: ``node session first
last``); readers always read the events themselves from the table by ``seq``. A lost
connection is reconnected, and ``on_gap`` then tells the reader to look for anything
it missed meanwhile (it also polls, so nothing depends on a notification arriving).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import psycopg
from sqlalchemy.engine import URL

logger = logging.getLogger("claude_gateway.store")

OnEvent = Callable[[str, str, int, int], None]
"""``(node, session_id, first_seq, last_seq)`` of events another node appended."""


def event_payloads(on_event: OnEvent) -> Callable[[str], None]:
    """Read the payloads of ``cgw_events`` notifications."""
    def dispatch(payload: str) -> None:
        try:
            node, session_id, first, last = payload.split(" ")
            on_event(node, session_id, int(first), int(last))
        except ValueError:
            logger.warning("an event notification that is not ours: %r", payload[:200])
    return dispatch


class EventListener:
    """One LISTEN connection on one channel (``name`` shows in ``pg_stat_activity``
    as ``cgw-<name>-<node>``)."""

    def __init__(self, url: URL, channel: str, *, node_id: str,
                 on_payload: Callable[[str], None], on_gap: Callable[[], None],
                 name: str = "listen", retry_seconds: float = 1.0) -> None:
        self.conninfo = url.set(drivername="postgresql").render_as_string(hide_password=False)
        self.channel = channel
        self.node_id = node_id
        self.name = name
        self.on_payload = on_payload
        self.on_gap = on_gap
        self.retry_seconds = retry_seconds
        self.connected = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"{self.name}-listener")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.wait({self._task})
            self._task = None

    async def _run(self) -> None:
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(
                        self.conninfo, autocommit=True,
                        application_name=f"cgw-{self.name}-{self.node_id}"[:63]) as conn:
                    await conn.execute(f'LISTEN "{self.channel}"')
                    self.connected.set()
                    self.on_gap()  # whatever came while not listening
                    async for notification in conn.notifies():
                        self.on_payload(notification.payload)
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.warning("lost the %s notifications connection; reconnecting "
                               "(polling meanwhile)", self.name, exc_info=True)
            self.connected.clear()
            await asyncio.sleep(self.retry_seconds)
