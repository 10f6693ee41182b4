"""``/v1/webhooks``: a key's webhook endpoints, their deliveries, retries and test pings.

Each key sees and manages its own endpoints only (another key's are 404); an endpoint is
told of the events of its owner's sessions only. The signing secret is in the answer
that creates the endpoint and nowhere else.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Response
from pydantic import BaseModel, Field

from claude_gateway.api.deps import Caller, Webhooks
from claude_gateway.api.models import ApiModel, ErrorOut, error_responses
from claude_gateway.events.announce import WEBHOOK_EVENT_TYPES
from claude_gateway.services.sessions import CURSOR_PATTERN, decode_cursor, encode_cursor
from claude_gateway.wire import delivery_to_api, webhook_to_api

EventName = Literal["*", *WEBHOOK_EVENT_TYPES]  # type: ignore[valid-type]
URL_PATTERN = r"^https?://([^/?#\s:@\[\]]+|\[[0-9A-Fa-f:.]+\])(:[0-9]{1,5})?([/?#]\S*)?$"
"""An http(s) URL with a host (a name or an address), no user info."""

router = APIRouter(prefix="/v1/webhooks", tags=["webhooks"],
                   responses=error_responses(ErrorOut))


class WebhookBody(ApiModel):
    url: str = Field(max_length=2048, pattern=URL_PATTERN,
                     examples=["https://ci.example.com/hooks/claude"],
                     description="Where to POST deliveries (http or https). It must "
                     "reach a public address unless the operator allows private ones.")
    events: list[EventName] = Field(min_length=1, max_length=len(WEBHOOK_EVENT_TYPES) + 1,
                                    examples=[["turn.completed", "permission.requested"]],
                                    description="Event types to deliver, or `*`: all.")
    description: str = Field("", max_length=512)


class WebhookPatch(ApiModel):
    url: str | None = Field(None, max_length=2048, pattern=URL_PATTERN)
    events: list[EventName] | None = Field(None, min_length=1,
                                           max_length=len(WEBHOOK_EVENT_TYPES) + 1)
    description: str | None = Field(None, max_length=512)
    enabled: bool | None = Field(None, description="`true` enables a disabled endpoint "
                                 "again: its pending deliveries are sent.")


class WebhookOut(BaseModel):
    id: str
    url: str
    description: str
    events: list[str]
    enabled: bool
    disabledAt: str | None
    disabledReason: str | None
    failingSince: str | None
    createdAt: str
    updatedAt: str


class WebhookCreatedOut(WebhookOut):
    secret: str = Field(description="`whsec_` + base64: verify signatures with it. Shown "
                        "only in this answer.")


class WebhookListOut(BaseModel):
    webhooks: list[WebhookOut]


class DeliveryOut(BaseModel):
    id: str = Field(description="The `webhook-id` header of every attempt.")
    webhookId: str
    type: str
    sessionId: str | None
    turnId: str | None
    seq: int | None
    status: Literal["pending", "succeeded", "failed"]
    sending: bool = Field(description="An attempt is under way.")
    attempts: int
    responseCode: int | None = Field(description="The last attempt's HTTP status.")
    error: str | None
    latencyMs: int | None
    lastAttemptAt: str | None
    nextAttemptAt: str | None
    createdAt: str


class DeliveryListOut(BaseModel):
    deliveries: list[DeliveryOut]
    nextCursor: str | None


_NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorOut, "description": "`WEBHOOK_NOT_FOUND`"}}


@router.post("", status_code=201, response_model=WebhookCreatedOut, responses={
    400: {"model": ErrorOut, "description": "`WEBHOOK_URL_NOT_ALLOWED`, "
          "`INVALID_REQUEST`"}})
async def create_webhook(webhooks: Webhooks, caller: Caller, body: WebhookBody
                         ) -> dict[str, Any]:
    """Add an endpoint. The answer holds its signing secret, the only time it is shown.
    The URL is not contacted now (`POST .../test` does)."""
    record = await webhooks.create(caller, body.url, list(body.events), body.description)
    return webhook_to_api(record, secret=True)


@router.get("", response_model=WebhookListOut)
async def list_webhooks(webhooks: Webhooks, caller: Caller) -> dict[str, Any]:
    """The caller's endpoints, oldest first."""
    return {"webhooks": [webhook_to_api(r) for r in await webhooks.list_for(caller)]}


@router.get("/{webhook_id}", response_model=WebhookOut, responses=_NOT_FOUND)
async def get_webhook(webhooks: Webhooks, caller: Caller, webhook_id: str) -> dict[str, Any]:
    return webhook_to_api(await webhooks.get(caller, webhook_id))


@router.patch("/{webhook_id}", response_model=WebhookOut, responses={
    **_NOT_FOUND, 400: {"model": ErrorOut, "description": "`WEBHOOK_URL_NOT_ALLOWED`"}})
async def update_webhook(webhooks: Webhooks, caller: Caller, webhook_id: str,
                         body: WebhookPatch) -> dict[str, Any]:
    """Change the URL, events or description, or enable or disable the endpoint."""
    changes = body.model_dump(exclude_none=True)
    return webhook_to_api(await webhooks.update(caller, webhook_id, changes))


@router.delete("/{webhook_id}", status_code=204, responses=_NOT_FOUND)
async def delete_webhook(webhooks: Webhooks, caller: Caller, webhook_id: str) -> Response:
    """Remove the endpoint and its deliveries (pending ones are not sent)."""
    await webhooks.delete(caller, webhook_id)
    return Response(status_code=204)


@router.get("/{webhook_id}/deliveries", response_model=DeliveryListOut, responses=_NOT_FOUND)
async def list_deliveries(
    webhooks: Webhooks, caller: Caller, webhook_id: str,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(pattern=CURSOR_PATTERN,
                                        description="`nextCursor` of the previous page")
                      ] = None,
    status: Literal["pending", "succeeded", "failed"] | None = None,
) -> dict[str, Any]:
    """The endpoint's deliveries, newest first: status, attempts, last response code and
    latency, next attempt."""
    page = await webhooks.deliveries(
        caller, webhook_id, limit=limit, before=decode_cursor(cursor) if cursor else None,
        status=status)
    next_cursor = (encode_cursor(page[-1].created_at, page[-1].id)
                   if len(page) == limit else None)
    return {"deliveries": [delivery_to_api(d) for d in page], "nextCursor": next_cursor}


@router.get("/{webhook_id}/deliveries/{delivery_id}", response_model=DeliveryOut,
            responses={404: {"model": ErrorOut, "description":
                             "`WEBHOOK_NOT_FOUND`, `DELIVERY_NOT_FOUND`"}})
async def get_delivery(webhooks: Webhooks, caller: Caller, webhook_id: str,
                       delivery_id: str) -> dict[str, Any]:
    return delivery_to_api(await webhooks.delivery(caller, webhook_id, delivery_id))


@router.post("/{webhook_id}/deliveries/{delivery_id}/retry", status_code=202,
             response_model=DeliveryOut, responses={
                 404: {"model": ErrorOut,
                       "description": "`WEBHOOK_NOT_FOUND`, `DELIVERY_NOT_FOUND`"},
                 409: {"model": ErrorOut, "description": "`WEBHOOK_DISABLED`"}})
async def retry_delivery(webhooks: Webhooks, caller: Caller, webhook_id: str,
                         delivery_id: str) -> dict[str, Any]:
    """Send a delivery again now, whatever its status (same `webhook-id`, the next
    attempt number)."""
    return delivery_to_api(await webhooks.retry(caller, webhook_id, delivery_id))


@router.post("/{webhook_id}/test", response_model=DeliveryOut, responses=_NOT_FOUND)
async def test_webhook(webhooks: Webhooks, caller: Caller, webhook_id: str) -> dict[str, Any]:
    """Send a signed `webhook.test` ping now; the answer says how its first attempt went
    (a failed one is retried like any delivery)."""
    return delivery_to_api(await webhooks.test(caller, webhook_id))
