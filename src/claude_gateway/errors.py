"""The gateway's exceptions and error codes.

Every code a client can meet is an :class:`ErrorCode`, described once in
:data:`ERROR_CODES` (the README's table of codes is generated from it). An exception's
code is its class's: there is no per-instance override.

GatewayError                      INTERNAL_ERROR unless a subclass says otherwise
├── SettingsError                 INVALID_SETTINGS: a setting is unknown or bad (at start)
├── CliNotFoundError              CLI_NOT_FOUND: no usable `claude` binary (at start)
└── ApiError                      500 INTERNAL_ERROR: an error that becomes an HTTP body
    ├── InvalidRequest            400 INVALID_REQUEST
    │   ├── InvalidCursor         400 INVALID_CURSOR
    │   ├── InvalidPath           400 INVALID_PATH
    │   ├── PathOutsideWorkspace  400 PATH_OUTSIDE_WORKSPACE
    │   ├── EnvNotAllowed         400 ENV_NOT_ALLOWED
    │   ├── InvalidJsonSchema     400 INVALID_JSON_SCHEMA
    │   ├── ImageFetchFailed      400 IMAGE_FETCH_FAILED
    │   ├── NotADirectory         400 NOT_A_DIRECTORY
    │   ├── BinaryFile            400 BINARY_FILE
    │   └── WebhookUrlNotAllowed  400 WEBHOOK_URL_NOT_ALLOWED
    ├── Unauthorized              401 UNAUTHORIZED
    ├── PaymentRequired           402 BUDGET_EXCEEDED
    ├── Forbidden                 403 FORBIDDEN
    │   ├── PermissionModeNotAllowed  403 PERMISSION_MODE_NOT_ALLOWED
    │   └── ImageUrlsNotAllowed   403 IMAGE_URLS_NOT_ALLOWED
    ├── NotFound                  404 NOT_FOUND
    │   ├── SessionNotFound       404 SESSION_NOT_FOUND
    │   ├── PermissionNotFound    404 PERMISSION_NOT_FOUND
    │   ├── FileNotFound          404 FILE_NOT_FOUND
    │   ├── RunNotFound           404 RUN_NOT_FOUND
    │   ├── ModelNotFound         404 MODEL_NOT_FOUND
    │   ├── ConversationNotFound  404 CONVERSATION_NOT_FOUND
    │   ├── WebhookNotFound       404 WEBHOOK_NOT_FOUND
    │   └── DeliveryNotFound      404 DELIVERY_NOT_FOUND
    ├── RequestTimeout            408 REQUEST_TIMEOUT
    ├── Conflict                  409 CONFLICT
    │   ├── SessionEnded          409 SESSION_ENDED
    │   │   └── SessionExpired    409 SESSION_EXPIRED
    │   ├── PermissionAlreadyResolved  409 PERMISSION_ALREADY_RESOLVED
    │   ├── IsADirectory          409 IS_A_DIRECTORY
    │   ├── WorkspaceBusy         409 WORKSPACE_BUSY
    │   ├── LiveChangeRefused     409 LIVE_CHANGE_REFUSED
    │   ├── SessionOnAnotherNode  409 SESSION_ON_ANOTHER_NODE
    │   ├── ConversationNotStarted  409 CONVERSATION_NOT_STARTED
    │   └── WebhookDisabled       409 WEBHOOK_DISABLED
    ├── PayloadTooLarge           413 PAYLOAD_TOO_LARGE
    ├── InterruptFailed           502 INTERRUPT_FAILED
    ├── Unavailable               503 UNAVAILABLE
    └── TooManyRequests           429 RATE_LIMITED
        ├── MaxSessionsReached    429 MAX_SESSIONS_REACHED
        └── TooManyTurns          429 TOO_MANY_TURNS

(``DataDirInUse``, 'DATA_DIR_IN_USE', lives with the instance lock in ``runtime``.)
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any, ClassVar


class ErrorCode(StrEnum):
    """Every error code of the gateway (HTTP bodies, ``turn.failed`` events, start-up)."""

    INVALID_REQUEST = "INVALID_REQUEST"
    INVALID_CURSOR = "INVALID_CURSOR"
    INVALID_PATH = "INVALID_PATH"
    PATH_OUTSIDE_WORKSPACE = "PATH_OUTSIDE_WORKSPACE"
    ENV_NOT_ALLOWED = "ENV_NOT_ALLOWED"
    INVALID_JSON_SCHEMA = "INVALID_JSON_SCHEMA"
    IMAGE_FETCH_FAILED = "IMAGE_FETCH_FAILED"
    NOT_A_DIRECTORY = "NOT_A_DIRECTORY"
    BINARY_FILE = "BINARY_FILE"
    WEBHOOK_URL_NOT_ALLOWED = "WEBHOOK_URL_NOT_ALLOWED"
    UNAUTHORIZED = "UNAUTHORIZED"
    BUDGET_EXCEEDED = "BUDGET_EXCEEDED"
    FORBIDDEN = "FORBIDDEN"
    ORIGIN_NOT_ALLOWED = "ORIGIN_NOT_ALLOWED"
    PERMISSION_MODE_NOT_ALLOWED = "PERMISSION_MODE_NOT_ALLOWED"
    IMAGE_URLS_NOT_ALLOWED = "IMAGE_URLS_NOT_ALLOWED"
    NOT_FOUND = "NOT_FOUND"
    SESSION_NOT_FOUND = "SESSION_NOT_FOUND"
    PERMISSION_NOT_FOUND = "PERMISSION_NOT_FOUND"
    FILE_NOT_FOUND = "FILE_NOT_FOUND"
    RUN_NOT_FOUND = "RUN_NOT_FOUND"
    MODEL_NOT_FOUND = "MODEL_NOT_FOUND"
    CONVERSATION_NOT_FOUND = "CONVERSATION_NOT_FOUND"
    WEBHOOK_NOT_FOUND = "WEBHOOK_NOT_FOUND"
    DELIVERY_NOT_FOUND = "DELIVERY_NOT_FOUND"
    METHOD_NOT_ALLOWED = "METHOD_NOT_ALLOWED"
    NOT_ACCEPTABLE = "NOT_ACCEPTABLE"
    REQUEST_TIMEOUT = "REQUEST_TIMEOUT"
    CONFLICT = "CONFLICT"
    SESSION_ENDED = "SESSION_ENDED"
    SESSION_EXPIRED = "SESSION_EXPIRED"
    SESSION_ON_ANOTHER_NODE = "SESSION_ON_ANOTHER_NODE"
    PERMISSION_ALREADY_RESOLVED = "PERMISSION_ALREADY_RESOLVED"
    IS_A_DIRECTORY = "IS_A_DIRECTORY"
    WORKSPACE_BUSY = "WORKSPACE_BUSY"
    CONVERSATION_NOT_STARTED = "CONVERSATION_NOT_STARTED"
    WEBHOOK_DISABLED = "WEBHOOK_DISABLED"
    PAYLOAD_TOO_LARGE = "PAYLOAD_TOO_LARGE"
    UNSUPPORTED_MEDIA_TYPE = "UNSUPPORTED_MEDIA_TYPE"
    RANGE_NOT_SATISFIABLE = "RANGE_NOT_SATISFIABLE"
    HOST_NOT_ALLOWED = "HOST_NOT_ALLOWED"
    RATE_LIMITED = "RATE_LIMITED"
    MAX_SESSIONS_REACHED = "MAX_SESSIONS_REACHED"
    TOO_MANY_TURNS = "TOO_MANY_TURNS"
    INTERRUPT_FAILED = "INTERRUPT_FAILED"
    LIVE_CHANGE_REFUSED = "LIVE_CHANGE_REFUSED"
    HTTP_ERROR = "HTTP_ERROR"
    INTERNAL_ERROR = "INTERNAL_ERROR"
    UNAVAILABLE = "UNAVAILABLE"
    PROCESS_START_FAILED = "PROCESS_START_FAILED"
    PROCESS_EXITED = "PROCESS_EXITED"
    GATEWAY_SHUTDOWN = "GATEWAY_SHUTDOWN"
    GATEWAY_RESTARTED = "GATEWAY_RESTARTED"
    NODE_LOST = "NODE_LOST"
    MAX_TURNS_REACHED = "MAX_TURNS_REACHED"
    TURN_BUDGET_EXCEEDED = "TURN_BUDGET_EXCEEDED"
    UPSTREAM_ERROR = "UPSTREAM_ERROR"
    UPSTREAM_AUTH_FAILED = "UPSTREAM_AUTH_FAILED"
    TURN_FAILED = "TURN_FAILED"
    INVALID_SETTINGS = "INVALID_SETTINGS"
    CLI_NOT_FOUND = "CLI_NOT_FOUND"
    DATA_DIR_IN_USE = "DATA_DIR_IN_USE"


@dataclass(frozen=True)
class CodeInfo:
    status: int | None
    """The HTTP status it comes with (None: never an HTTP error)."""
    meaning: str
    turn: bool = False
    """Also the ``error.code`` of a ``turn.failed`` event."""
    at_start: bool = False
    """Stops the gateway from starting."""


E = ErrorCode
ERROR_CODES: dict[ErrorCode, CodeInfo] = {
    E.INVALID_REQUEST: CodeInfo(400, "The request is malformed or a field is invalid "
                                "(`details` names it).", turn=False),
    E.INVALID_CURSOR: CodeInfo(400, "A page cursor this server did not give out."),
    E.INVALID_PATH: CodeInfo(400, "A path that is absolute, has `..`, or is not valid."),
    E.PATH_OUTSIDE_WORKSPACE: CodeInfo(400, "A path or workspace that resolves (links "
                                       "included) outside the caller's own directory."),
    E.ENV_NOT_ALLOWED: CodeInfo(400, "An environment variable a client may not set (it "
                                "would choose the upstream, credentials or process "
                                "behaviour)."),
    E.INVALID_JSON_SCHEMA: CodeInfo(400, "A structured-output schema the CLI does not "
                                    "accept.", turn=True),
    E.IMAGE_FETCH_FAILED: CodeInfo(400, "An image URL could not be fetched."),
    E.NOT_A_DIRECTORY: CodeInfo(400, "MCP `list_files` on a file."),
    E.BINARY_FILE: CodeInfo(400, "MCP `read_file` as text of a file that is not UTF-8."),
    E.WEBHOOK_URL_NOT_ALLOWED: CodeInfo(400, "A webhook URL that is not http(s), or names "
                                        "a loopback, private, link-local or metadata "
                                        "address (see `CLAUDE_GATEWAY_WEBHOOK_ALLOW_"
                                        "PRIVATE`)."),
    E.UNAUTHORIZED: CodeInfo(401, "No API key, or not a valid one."),
    E.BUDGET_EXCEEDED: CodeInfo(402, "The key has spent its daily budget "
                                "(`CLAUDE_GATEWAY_DAILY_BUDGET_USD`)."),
    E.FORBIDDEN: CodeInfo(403, "The key may not do this (an admin-only call)."),
    E.ORIGIN_NOT_ALLOWED: CodeInfo(403, "A browser `Origin` the gateway does not allow."),
    E.PERMISSION_MODE_NOT_ALLOWED: CodeInfo(403, "`bypassPermissions` without the "
                                            "operator's consent."),
    E.IMAGE_URLS_NOT_ALLOWED: CodeInfo(403, "An image by URL while the gateway does not "
                                       "fetch images."),
    E.NOT_FOUND: CodeInfo(404, "No such route."),
    E.SESSION_NOT_FOUND: CodeInfo(404, "No session with this id, or another key's."),
    E.PERMISSION_NOT_FOUND: CodeInfo(404, "No pending permission request with this id."),
    E.FILE_NOT_FOUND: CodeInfo(404, "No such file in the caller's directory."),
    E.RUN_NOT_FOUND: CodeInfo(404, "No such run of the caller's (or, to cancel, not "
                              "running)."),
    E.MODEL_NOT_FOUND: CodeInfo(404, "A model name the gateway does not serve "
                                "(`model_not_found` to OpenAI clients)."),
    E.CONVERSATION_NOT_FOUND: CodeInfo(404, "A Claude conversation id that does not "
                                       "exist or is another key's."),
    E.WEBHOOK_NOT_FOUND: CodeInfo(404, "No webhook endpoint with this id, or another "
                                  "key's."),
    E.DELIVERY_NOT_FOUND: CodeInfo(404, "No delivery with this id for this webhook."),
    E.METHOD_NOT_ALLOWED: CodeInfo(405, "The route exists, the method does not."),
    E.NOT_ACCEPTABLE: CodeInfo(406, "The response type asked for is not offered."),
    E.REQUEST_TIMEOUT: CodeInfo(408, "The request body did not arrive in time."),
    E.CONFLICT: CodeInfo(409, "The request conflicts with the resource's state."),
    E.SESSION_ENDED: CodeInfo(409, "The session has ended (a turn: it ended while the "
                              "turn waited or ran).", turn=True),
    E.SESSION_EXPIRED: CodeInfo(409, "The session expired (its TTL passed)."),
    E.SESSION_ON_ANOTHER_NODE: CodeInfo(409, "Another gateway node took this session's CLI "
                                        "over while the request was on its way (rare: "
                                        "send it again, any node forwards it).",
                                        turn=True),
    E.PERMISSION_ALREADY_RESOLVED: CodeInfo(409, "The permission request was answered, "
                                            "timed out or was cancelled."),
    E.IS_A_DIRECTORY: CodeInfo(409, "A file operation on a directory."),
    E.WORKSPACE_BUSY: CodeInfo(409, "Another agent works in this workspace."),
    E.CONVERSATION_NOT_STARTED: CodeInfo(409, "The session has no conversation yet "
                                         "(nothing to fork)."),
    E.WEBHOOK_DISABLED: CodeInfo(409, "The webhook endpoint is disabled: enable it "
                                 "(`PATCH {\"enabled\": true}`) before retrying a delivery."),
    E.PAYLOAD_TOO_LARGE: CodeInfo(413, "A body, prompt, upload or image over its limit."),
    E.UNSUPPORTED_MEDIA_TYPE: CodeInfo(415, "A body that is not JSON where JSON is "
                                       "expected."),
    E.RANGE_NOT_SATISFIABLE: CodeInfo(416, "A byte range outside the file."),
    E.HOST_NOT_ALLOWED: CodeInfo(421, "A `Host` header the gateway does not serve."),
    E.RATE_LIMITED: CodeInfo(429, "Too many requests, or too many wrong keys (see "
                             "`Retry-After`)."),
    E.MAX_SESSIONS_REACHED: CodeInfo(429, "The gateway's or the key's session cap."),
    E.TOO_MANY_TURNS: CodeInfo(429, "The key's cap of turns running or queued."),
    E.INTERRUPT_FAILED: CodeInfo(502, "The CLI did not take the interrupt; the turn goes "
                                 "on (try again)."),
    E.LIVE_CHANGE_REFUSED: CodeInfo(409, "The running CLI refused a model or permission-"
                                    "mode change; nothing changed (try again when the "
                                    "turn has ended)."),
    E.HTTP_ERROR: CodeInfo(None, "Any other HTTP error (its status says which)."),
    E.INTERNAL_ERROR: CodeInfo(500, "A bug: the gateway logged it with the request id.",
                               turn=True),
    E.UNAVAILABLE: CodeInfo(503, "The gateway is starting or stopping (draining: it takes "
                            "no new prompts while its running turns finish)."),
    E.PROCESS_START_FAILED: CodeInfo(None, "The CLI could not start (`stderr` says why).",
                                     turn=True),
    E.PROCESS_EXITED: CodeInfo(None, "The CLI process died during the turn; it is "
                               "restarted for the next one.", turn=True),
    E.GATEWAY_SHUTDOWN: CodeInfo(None, "The gateway stopped during the turn.", turn=True),
    E.NODE_LOST: CodeInfo(None, "The node running the turn died or lost the session to "
                          "another node.", turn=True),
    E.GATEWAY_RESTARTED: CodeInfo(None, "The gateway restarted before the turn finished.",
                                  turn=True),
    E.MAX_TURNS_REACHED: CodeInfo(None, "The agent reached the session's `maxTurns`.",
                                  turn=True),
    E.TURN_BUDGET_EXCEEDED: CodeInfo(None, "The CLI's own cost limit for the turn "
                                     "(`error_max_budget_usd`).", turn=True),
    E.UPSTREAM_ERROR: CodeInfo(None, "The model's API answered with an error "
                               "(`apiErrorStatus`).", turn=True),
    E.UPSTREAM_AUTH_FAILED: CodeInfo(None, "The upstream refused the gateway's "
                                     "credentials, or there are none.", turn=True),
    E.TURN_FAILED: CodeInfo(None, "The CLI reported another error.", turn=True),
    E.INVALID_SETTINGS: CodeInfo(None, "A setting is unknown or has a bad value.",
                                 at_start=True),
    E.CLI_NOT_FOUND: CodeInfo(None, "No usable `claude` binary.", at_start=True),
    E.DATA_DIR_IN_USE: CodeInfo(None, "Another gateway runs on the same data directory.",
                                at_start=True),
}
del E


def error_codes_reference() -> str:
    """The README's table of error codes (Markdown)."""
    rows = ["| code | where | meaning |", "|---|---|---|"]
    for code, info in ERROR_CODES.items():
        where = [str(info.status)] if info.status is not None else []
        if info.turn:
            where.append("`turn.failed`")
        if info.at_start:
            where.append("at start")
        where = where or ["other 4xx"]
        rows.append(f"| `{code}` | {', '.join(where)} | {info.meaning} |")
    return "\n".join(rows) + "\n"


class GatewayError(Exception):
    """Root of every error the gateway raises on purpose."""

    code: ClassVar[ErrorCode] = ErrorCode.INTERNAL_ERROR
    status: ClassVar[int] = 500

    def __init__(self, message: str, *, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or {}


class SettingsError(GatewayError):
    """A setting is unknown or has a value that cannot be used."""

    code = ErrorCode.INVALID_SETTINGS


class CliNotFoundError(GatewayError):
    """The Claude Code CLI binary cannot be found or run."""

    code = ErrorCode.CLI_NOT_FOUND


class ApiError(GatewayError):
    """An error that the API turns into an HTTP error body."""


class InvalidRequest(ApiError):
    code = ErrorCode.INVALID_REQUEST
    status = 400


class Unauthorized(ApiError):
    code = ErrorCode.UNAUTHORIZED
    status = 401


class Forbidden(ApiError):
    code = ErrorCode.FORBIDDEN
    status = 403


class NotFound(ApiError):
    code = ErrorCode.NOT_FOUND
    status = 404


class Conflict(ApiError):
    code = ErrorCode.CONFLICT
    status = 409


class RequestTimeout(ApiError):
    code = ErrorCode.REQUEST_TIMEOUT
    status = 408


class PaymentRequired(ApiError):
    code = ErrorCode.BUDGET_EXCEEDED
    status = 402


class PayloadTooLarge(ApiError):
    code = ErrorCode.PAYLOAD_TOO_LARGE
    status = 413


class TooManyRequests(ApiError):
    code = ErrorCode.RATE_LIMITED
    status = 429


class SessionNotFound(NotFound):
    code = ErrorCode.SESSION_NOT_FOUND

    def __init__(self, session_id: str) -> None:
        super().__init__(f"Session {session_id} not found", details={"sessionId": session_id})


class SessionEnded(Conflict):
    code = ErrorCode.SESSION_ENDED

    def __init__(self, session_id: str, status: str) -> None:
        super().__init__(f"Session {session_id} is {status} and takes no more messages",
                         details={"sessionId": session_id, "status": status})

    @staticmethod
    def of(session_id: str, status: str) -> SessionEnded:
        """The error for a closed session: SESSION_EXPIRED if it expired."""
        if status == "expired":
            return SessionExpired(session_id, status)
        return SessionEnded(session_id, status)


class SessionExpired(SessionEnded):
    code = ErrorCode.SESSION_EXPIRED


class PermissionNotFound(NotFound):
    code = ErrorCode.PERMISSION_NOT_FOUND

    def __init__(self, request_id: str) -> None:
        super().__init__(f"Permission request {request_id} not found",
                         details={"requestId": request_id})


class PermissionAlreadyResolved(Conflict):
    code = ErrorCode.PERMISSION_ALREADY_RESOLVED

    def __init__(self, request_id: str, status: str) -> None:
        super().__init__(f"Permission request {request_id} is already {status}",
                         details={"requestId": request_id, "status": status})


class FileNotFound(NotFound):
    code = ErrorCode.FILE_NOT_FOUND


class IsADirectory(Conflict):
    code = ErrorCode.IS_A_DIRECTORY


class WorkspaceBusy(Conflict):
    code = ErrorCode.WORKSPACE_BUSY


class RunNotFound(NotFound):
    code = ErrorCode.RUN_NOT_FOUND


class WebhookUrlNotAllowed(InvalidRequest):
    code = ErrorCode.WEBHOOK_URL_NOT_ALLOWED


class WebhookNotFound(NotFound):
    code = ErrorCode.WEBHOOK_NOT_FOUND

    def __init__(self, webhook_id: str) -> None:
        super().__init__(f"Webhook {webhook_id} not found", details={"webhookId": webhook_id})


class DeliveryNotFound(NotFound):
    code = ErrorCode.DELIVERY_NOT_FOUND

    def __init__(self, delivery_id: str) -> None:
        super().__init__(f"Delivery {delivery_id} not found",
                         details={"deliveryId": delivery_id})


class WebhookDisabled(Conflict):
    code = ErrorCode.WEBHOOK_DISABLED


class PermissionModeNotAllowed(Forbidden):
    code = ErrorCode.PERMISSION_MODE_NOT_ALLOWED


class TooManyTurns(TooManyRequests):
    code = ErrorCode.TOO_MANY_TURNS


class MaxSessionsReached(TooManyRequests):
    code = ErrorCode.MAX_SESSIONS_REACHED


class InvalidCursor(InvalidRequest):
    code = ErrorCode.INVALID_CURSOR


class InvalidPath(InvalidRequest):
    code = ErrorCode.INVALID_PATH


class PathOutsideWorkspace(InvalidRequest):
    code = ErrorCode.PATH_OUTSIDE_WORKSPACE


class EnvNotAllowed(InvalidRequest):
    """An environment variable a client may not set (it would choose the upstream, the
    credentials, the CLI's config or how processes behave)."""

    code = ErrorCode.ENV_NOT_ALLOWED


class ConversationNotFound(NotFound):
    """A Claude conversation id that does not exist, or belongs to another key."""

    code = ErrorCode.CONVERSATION_NOT_FOUND

    def __init__(self, conversation_id: str) -> None:
        super().__init__(f"Conversation {conversation_id} not found",
                         details={"conversationId": conversation_id})


class ConversationNotStarted(Conflict):
    """The session exists but has no conversation yet (nothing to fork)."""

    code = ErrorCode.CONVERSATION_NOT_STARTED


class ImageUrlsNotAllowed(Forbidden):
    """The gateway is not allowed to fetch images from URLs."""

    code = ErrorCode.IMAGE_URLS_NOT_ALLOWED


class InvalidJsonSchema(InvalidRequest):
    """A structured-output schema that is not a JSON Schema the CLI accepts."""

    code = ErrorCode.INVALID_JSON_SCHEMA


class ModelNotFound(NotFound):
    """A model name the gateway does not serve (with strict model names)."""

    code = ErrorCode.MODEL_NOT_FOUND


class ImageFetchFailed(InvalidRequest):
    code = ErrorCode.IMAGE_FETCH_FAILED


class NotADirectory(InvalidRequest):
    code = ErrorCode.NOT_A_DIRECTORY


class BinaryFile(InvalidRequest):
    code = ErrorCode.BINARY_FILE



class LiveChangeRefused(Conflict):
    """The running CLI refused a live change (model, permission mode)."""

    code = ErrorCode.LIVE_CHANGE_REFUSED


class InterruptFailed(ApiError):
    """The CLI did not take an interrupt request."""

    code = ErrorCode.INTERRUPT_FAILED
    status = 502


class SessionOnAnotherNode(Conflict):
    """Another node holds the session's lease (its CLI runs there)."""

    code = ErrorCode.SESSION_ON_ANOTHER_NODE

    def __init__(self, session_id: str, node: str) -> None:
        super().__init__(f"Session {session_id} runs on gateway node {node}",
                         details={"sessionId": session_id, "node": node})


class Unavailable(ApiError):
    """The gateway is stopping (draining) and takes no new work."""

    code = ErrorCode.UNAVAILABLE
    status = 503

_undescribed = set(ErrorCode) - set(ERROR_CODES)
if _undescribed:
    raise RuntimeError(f"error codes without a description: {sorted(_undescribed)}")
