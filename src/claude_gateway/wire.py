"""The wire shapes of the HTTP API (API.md), made in one place.

Services and storage deal in records and dataclasses; everything a client reads (a
response body, an event's ``data``, an MCP tool's structured result) is shaped here.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from claude_gateway.runtime.options import AgentOptions
from claude_gateway.storage.records import (
    DeliveryRecord,
    EventRecord,
    MessageRecord,
    PermissionRecord,
    SessionRecord,
    Usage,
    WebhookRecord,
)

if TYPE_CHECKING:
    from claude_gateway.services.files import Entry
    from claude_gateway.services.permissions import Decision
    from claude_gateway.services.sessions.state import TurnOutcome


def rfc3339(moment: datetime) -> str:
    return str(moment.isoformat(timespec="milliseconds").replace("+00:00", "Z"))


def rfc3339_or_none(moment: datetime | None) -> str | None:
    return rfc3339(moment) if moment is not None else None


def envelope(event: EventRecord) -> dict[str, Any]:
    """The event envelope: ``{seq, sessionId, turnId, type, ts, data}``."""
    return {"seq": event.seq, "sessionId": event.session_id, "turnId": event.turn_id,
            "type": event.type, "ts": rfc3339(event.ts), "data": event.data}


def message_page_to_api(page: list[MessageRecord], total: int, *, limit: int, offset: int
                        ) -> dict[str, Any]:
    """A page of a session's messages, with where it stands in the whole history."""
    return {
        "messages": [{"id": m.id, "role": m.role, "content": m.content, "turnId": m.turn_id,
                      "createdAt": rfc3339(m.created_at)} for m in page],
        "pagination": {"limit": limit, "offset": offset, "total": total,
                       "hasMore": offset + len(page) < total},
    }


def usage_to_api(usage: Usage) -> dict[str, Any]:
    return {
        "inputTokens": usage.input_tokens,
        "outputTokens": usage.output_tokens,
        "cacheReadInputTokens": usage.cache_read_input_tokens,
        "cacheCreationInputTokens": usage.cache_creation_input_tokens,
        "totalCostUsd": usage.total_cost_usd,
    }


def session_to_api(record: SessionRecord, *, queue_depth: int = 0,
                   waiting: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """The session object."""
    agent = AgentOptions.from_json(record.options)  # env and jsonSchema stay private
    window, used = record.context_window, record.context_tokens
    return {
        "id": record.id,
        "kind": record.kind,
        "status": str(record.status),
        "model": record.model,
        "workspace": record.workspace,
        "permissionMode": record.permission_mode,
        "claudeSessionId": record.claude_session_id,
        "node": record.node,
        "createdAt": rfc3339(record.created_at),
        "lastActivityAt": rfc3339(record.last_activity_at),
        "expiresAt": rfc3339_or_none(record.expires_at),
        "endedAt": rfc3339_or_none(record.ended_at),
        "metadata": record.metadata,
        "usage": usage_to_api(record.usage),
        "tokenBudget": {
            "inputTokens": record.usage.input_tokens,
            "outputTokens": record.usage.output_tokens,
            "cacheReadInputTokens": record.usage.cache_read_input_tokens,
            "contextWindow": window,
            "contextTokens": used,
            "contextRemaining": window - used if window and used is not None else None,
        },
        "messageCount": record.message_count,
        "lastSeq": record.last_seq,
        "queueDepth": queue_depth,
        "waitingForPermission": waiting or [],
        "systemPrompt": agent.system_prompt,
        "appendSystemPrompt": agent.append_system_prompt,
        "allowedTools": agent.allowed_tools,
        "disallowedTools": agent.disallowed_tools,
        "maxTurns": agent.max_turns,
        "effort": agent.effort,
        "addDirs": agent.add_dirs,
    }


def turn_result_to_api(outcome: TurnOutcome) -> dict[str, Any]:
    """The turn result: ``{turnId, status, result, usage, totalCostUsd, error...}``."""
    return {"turnId": outcome.turn_id, "status": str(outcome.status), **outcome.data}


def permission_to_api(record: PermissionRecord) -> dict[str, Any]:
    """A permission request (the pending list and ``permission.requested``)."""
    return {
        "id": record.id,
        "requestId": record.id,
        "turnId": record.turn_id,
        "toolName": record.tool_name,
        "input": record.input,
        "status": record.status,
        **record.details,
        "createdAt": rfc3339(record.created_at),
        "expiresAt": rfc3339_or_none(record.expires_at),
        "resolution": record.resolution,
    }


def waiting_to_api(record: PermissionRecord) -> dict[str, Any]:
    """A pending request in short, with where to answer it."""
    return {"requestId": record.id, "turnId": record.turn_id, "toolName": record.tool_name,
            "expiresAt": rfc3339_or_none(record.expires_at),
            "answerUrl": f"/v1/sessions/{record.session_id}/permissions/{record.id}"}


def decision_to_api(decision: Decision) -> dict[str, Any]:
    """How a permission request was resolved (its ``resolution``)."""
    data: dict[str, Any] = {
        "decision": "allow" if decision.status == "allowed" else "deny",
        "status": decision.status, "by": decision.by,
    }
    if decision.updated_input is not None:
        data["updatedInput"] = decision.updated_input
    if decision.message:
        data["message"] = decision.message
    if decision.interrupt:
        data["interrupt"] = True
    if decision.apply_suggestions:
        data["applySuggestions"] = True
    return data


def file_entry_to_api(entry: Entry) -> dict[str, Any]:
    return {"name": entry.name, "type": entry.type, "size": entry.size,
            "modifiedAt": rfc3339(entry.modified_at)}


def run_to_api(record: SessionRecord, outcome: TurnOutcome | None) -> dict[str, Any]:
    """A run: its state and, once its turn has ended, the turn's result (``queued``
    before its turn exists)."""
    turn: dict[str, Any] = (turn_result_to_api(outcome) if outcome is not None
                            else {"status": "queued"})
    return {
        "runId": record.id,
        "sessionId": record.id,
        "claudeSessionId": turn.get("claudeSessionId") or record.claude_session_id,
        "workspace": record.workspace,
        **{k: v for k, v in turn.items() if k != "claudeSessionId"},
    }


def webhook_to_api(webhook: WebhookRecord, *, secret: bool = False) -> dict[str, Any]:
    """A webhook endpoint; its ``secret`` only in the answer that created it."""
    shown: dict[str, Any] = {
        "id": webhook.id, "url": webhook.url, "description": webhook.description,
        "events": webhook.events, "enabled": webhook.enabled,
        "disabledAt": rfc3339_or_none(webhook.disabled_at),
        "disabledReason": webhook.disabled_reason,
        "failingSince": rfc3339_or_none(webhook.failing_since),
        "createdAt": rfc3339(webhook.created_at), "updatedAt": rfc3339(webhook.updated_at)}
    if secret:
        shown["secret"] = webhook.secret
    return shown


def delivery_to_api(delivery: DeliveryRecord) -> dict[str, Any]:
    in_flight = delivery.status == "pending" and delivery.claimed_by is not None
    return {
        "id": delivery.id, "webhookId": delivery.webhook_id, "type": delivery.event_type,
        "sessionId": delivery.session_id, "turnId": delivery.turn_id, "seq": delivery.seq,
        "status": delivery.status, "sending": in_flight, "attempts": delivery.attempts,
        "responseCode": delivery.last_status_code, "error": delivery.last_error,
        "latencyMs": delivery.last_latency_ms,
        "lastAttemptAt": rfc3339_or_none(delivery.last_attempt_at),
        "nextAttemptAt": rfc3339_or_none(delivery.next_attempt_at)
        if delivery.status == "pending" else None,
        "createdAt": rfc3339(delivery.created_at)}
