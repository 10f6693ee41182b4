"""Schemathesis hooks for the suite's fuzz run (loaded by ``st run`` through
``SCHEMATHESIS_HOOKS``): two built-in checks, each with one exception the API's contract
documents and a schema cannot express. Everything else those checks catch still fails.

- ``positive_data_acceptance``: a well-formed request may still be refused because of
  state no schema describes: a cursor beyond the session's last event, a name that
  resolves through a symlink or does not exist on disk, an environment variable the
  operator reserves, a structured-output schema the engine's JSON Schema validator
  refuses (OpenAPI cannot say what a valid JSON Schema is), a webhook URL whose address
  the operator's policy refuses (loopback, private, link-local). Those refusals carry their
  own codes; a generic validation error (``INVALID_REQUEST``) on schema-valid data is
  still a failure.
- ``use_after_free``: ``DELETE /v1/sessions/{id}`` without ``purge`` *ends* a session and
  keeps its history readable (the contract); after a purge it must be gone (404), and
  that is still checked.
"""

from __future__ import annotations

import os
from typing import Any

import httpx
import schemathesis
from schemathesis.openapi.checks import RejectedPositiveData, UseAfterFree
from schemathesis.specs.openapi.checks import positive_data_acceptance, use_after_free

STATE_DEPENDENT = {"INVALID_CURSOR", "PATH_OUTSIDE_WORKSPACE", "INVALID_PATH",
                   "ENV_NOT_ALLOWED", "INVALID_JSON_SCHEMA", "WEBHOOK_URL_NOT_ALLOWED"}


def _error_code(response: Any) -> str | None:
    try:
        body = response.json()
    except ValueError:
        return None
    error = body.get("error") if isinstance(body, dict) else None
    return error.get("code") if isinstance(error, dict) else None


@schemathesis.check
def schema_valid_requests_are_accepted(ctx: Any, response: Any, case: Any) -> bool | None:
    """positive_data_acceptance, but for the state-dependent refusals above."""
    try:
        return positive_data_acceptance(ctx, response, case)
    except RejectedPositiveData:
        if response.status_code == 400 and _error_code(response) in STATE_DEPENDENT:
            return None
        raise


@schemathesis.check
def deleted_resources_are_gone(ctx: Any, response: Any, case: Any) -> bool | None:
    """use_after_free, but for a session that was ended rather than purged."""
    try:
        return use_after_free(ctx, response, case)
    except UseAfterFree as failure:
        method, _, path = failure.free.partition(" ")
        if method != "DELETE" or not path.startswith("/v1/sessions/"):
            raise
        session = httpx.get(os.environ["FUZZ_GATEWAY_URL"] + path, timeout=30, headers={
            "Authorization": f"Bearer {os.environ['FUZZ_GATEWAY_KEY']}"})
        if session.status_code == 200 and session.json().get("status") == "ended":
            return None  # ended, not purged: its history stays readable by contract
        raise


@schemathesis.hook
def before_call(ctx: Any, case: Any, **kwargs: Any) -> None:
    """An event stream that follows the log never ends by itself: read it as a page (the
    same validation runs before either answer)."""
    if case.operation.label == "GET /v1/sessions/{session_id}/events":
        case.query = {**(case.query or {}), "follow": "false"}
