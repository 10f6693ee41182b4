"""Durable sessions, each with at most one warm CLI process.

========================  ==========================================================
``manager``               ``SessionManager``: the facade (create, change, close, accept
                          prompts, stop politely)
``reads``                 its read side: sessions, messages, events, turns, activity
``leases``                this node's leases on the sessions whose CLI it runs
``options``               ``SessionCreate``: what a client asks of a new session
``admission``             caps, a key's turn cap and budget, the permission-mode policy
``runner``                each live session's FIFO of turns and how a turn runs
``supervisor``            CLI processes: spawn, adopt spares, evict, exits, stop
``launcher``              a CLI process for a session, every client-named value confined
``spare_supply``          spare processes: started ahead, adopted by a matching session
``creation``              a new session's record: checked, confined, reserved, stored
``reaper``                idle processes and expired sessions, on a timer or on demand
``recovery``              what a previous gateway left running
``activity``              what runs now, as one caller may see it (``/v1/status``)
``state``                 in-memory state of live sessions; statuses; turn outcomes
``cursor``                page cursors of the session list
========================  ==========================================================
"""

from claude_gateway.services.sessions.activity import Activity
from claude_gateway.services.sessions.cursor import CURSOR_PATTERN, decode_cursor, encode_cursor
from claude_gateway.services.sessions.manager import SessionManager
from claude_gateway.services.sessions.options import SessionCreate
from claude_gateway.services.sessions.state import (
    CLOSED_STATUSES,
    DuplicateClientId,
    LiveSession,
    PendingTurn,
    SessionStatus,
    TurnOutcome,
    TurnStatus,
)

__all__ = [
    "CLOSED_STATUSES",
    "CURSOR_PATTERN",
    "Activity",
    "DuplicateClientId",
    "LiveSession",
    "PendingTurn",
    "SessionCreate",
    "SessionManager",
    "SessionStatus",
    "TurnOutcome",
    "TurnStatus",
    "decode_cursor",
    "encode_cursor",
]
