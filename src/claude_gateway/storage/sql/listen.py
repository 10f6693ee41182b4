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


class EventListener:
    def __init__(self, url: URL, channel: str, *, node_id: str, on_event: OnEvent,
                 on_gap: Callable[[], None], retry_seconds: float = 1.0) -> None:
        self.conninfo = url.set(drivername="postgresql").render_as_string(hide_password=False)
        self.channel = channel
        self.node_id = node_id
        self.on_event = on_event
        self.on_gap = on_gap
        self.retry_seconds = retry_seconds
        self.connected = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="event-listener")

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
                        application_name=f"cgw-listen-{self.node_id}"[:63]) as conn:
                    await conn.execute(f'LISTEN "{self.channel}"')
                    self.connected.set()
                    self.on_gap()  # whatever came while not listening
                    async for notification in conn.notifies():
                        self._dispatch(notification.payload)
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.warning("lost the event notifications connection; reconnecting "
                               "(streams poll meanwhile)", exc_info=True)
            self.connected.clear()
            await asyncio.sleep(self.retry_seconds)

    def _dispatch(self, payload: str) -> None:
        try:
            node, session_id, first, last = payload.split(" ")
            self.on_event(node, session_id, int(first), int(last))
        except ValueError:
            logger.warning("an event notification that is not ours: %r", payload[:200])
