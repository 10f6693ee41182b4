"""The gateway's exceptions.

GatewayError                      any failure with an API error code
├── SettingsError                 a setting is unknown or has a bad value (at start)
├── CliNotFoundError              no usable `claude` binary
└── ApiError                      an error that becomes an HTTP error body
    ├── InvalidRequest            400 INVALID_REQUEST
    │   ├── InvalidCursor         400 INVALID_CURSOR
    │   ├── InvalidPath           400 INVALID_PATH
    │   ├── PathOutsideWorkspace  400 PATH_OUTSIDE_WORKSPACE
    │   ├── EnvNotAllowed         400 ENV_NOT_ALLOWED
    │   └── InvalidJsonSchema     400 INVALID_JSON_SCHEMA
    ├── Unauthorized              401 UNAUTHORIZED
    ├── Forbidden                 403 FORBIDDEN
    │   ├── PermissionModeNotAllowed 403 PERMISSION_MODE_NOT_ALLOWED
    │   └── ImageUrlsNotAllowed   403 IMAGE_URLS_NOT_ALLOWED
    ├── NotFound                  404 *_NOT_FOUND
    │   ├── SessionNotFound       404 SESSION_NOT_FOUND
    │   ├── PermissionNotFound    404 PERMISSION_NOT_FOUND
    │   ├── FileNotFound          404 FILE_NOT_FOUND
    │   ├── RunNotFound           404 RUN_NOT_FOUND
    │   ├── ModelNotFound         404 MODEL_NOT_FOUND (model_not_found to OpenAI clients)
    │   └── ConversationNotFound  404 CONVERSATION_NOT_FOUND
    ├── Conflict                  409
    │   ├── SessionEnded          409 SESSION_ENDED / SESSION_EXPIRED
    │   ├── PermissionAlreadyResolved 409 PERMISSION_ALREADY_RESOLVED
    │   ├── IsADirectory          409 IS_A_DIRECTORY
    │   ├── WorkspaceBusy         409 WORKSPACE_BUSY
    │   └── ConversationNotStarted 409 CONVERSATION_NOT_STARTED
    ├── RequestTimeout            408 REQUEST_TIMEOUT
    ├── PaymentRequired           402 BUDGET_EXCEEDED
    ├── PayloadTooLarge           413 PAYLOAD_TOO_LARGE
    └── TooManyRequests           429 RATE_LIMITED
        ├── MaxSessionsReached    429 MAX_SESSIONS_REACHED
        └── TooManyTurns          429 TOO_MANY_TURNS
"""

from __future__ import annotations

from typing import Any, ClassVar


class GatewayError(Exception):
    """Root of every error the gateway raises on purpose."""

    code: ClassVar[str] = "INTERNAL_ERROR"
    status: ClassVar[int] = 500

    def __init__(self, message: str, *, code: str | None = None,
                 details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code  # type: ignore[misc]
        self.details = details or {}


class SettingsError(GatewayError):
    """A setting is unknown or has a value that cannot be used."""

    code = "INVALID_SETTINGS"


class CliNotFoundError(GatewayError):
    """The Claude Code CLI binary cannot be found or run."""

    code = "CLI_NOT_FOUND"


class ApiError(GatewayError):
    """An error that the API turns into an HTTP error body."""


class InvalidRequest(ApiError):
    code = "INVALID_REQUEST"
    status = 400


class Unauthorized(ApiError):
    code = "UNAUTHORIZED"
    status = 401


class Forbidden(ApiError):
    code = "FORBIDDEN"
    status = 403


class NotFound(ApiError):
    code = "NOT_FOUND"
    status = 404


class Conflict(ApiError):
    code = "CONFLICT"
    status = 409


class RequestTimeout(ApiError):
    code = "REQUEST_TIMEOUT"
    status = 408


class PaymentRequired(ApiError):
    code = "BUDGET_EXCEEDED"
    status = 402


class PayloadTooLarge(ApiError):
    code = "PAYLOAD_TOO_LARGE"
    status = 413


class TooManyRequests(ApiError):
    code = "RATE_LIMITED"
    status = 429


class SessionNotFound(NotFound):
    code = "SESSION_NOT_FOUND"

    def __init__(self, session_id: str) -> None:
        super().__init__(f"Session {session_id} not found", details={"sessionId": session_id})


class SessionEnded(Conflict):
    code = "SESSION_ENDED"

    def __init__(self, session_id: str, status: str) -> None:
        super().__init__(f"Session {session_id} is {status} and takes no more messages",
                         details={"sessionId": session_id, "status": status})
        if status == "expired":
            self.code = "SESSION_EXPIRED"  # type: ignore[misc]


class PermissionNotFound(NotFound):
    code = "PERMISSION_NOT_FOUND"

    def __init__(self, request_id: str) -> None:
        super().__init__(f"Permission request {request_id} not found",
                         details={"requestId": request_id})


class PermissionAlreadyResolved(Conflict):
    code = "PERMISSION_ALREADY_RESOLVED"

    def __init__(self, request_id: str, status: str) -> None:
        super().__init__(f"Permission request {request_id} is already {status}",
                         details={"requestId": request_id, "status": status})


class FileNotFound(NotFound):
    code = "FILE_NOT_FOUND"


class IsADirectory(Conflict):
    code = "IS_A_DIRECTORY"


class WorkspaceBusy(Conflict):
    code = "WORKSPACE_BUSY"


class RunNotFound(NotFound):
    code = "RUN_NOT_FOUND"


class PermissionModeNotAllowed(Forbidden):
    code = "PERMISSION_MODE_NOT_ALLOWED"


class TooManyTurns(TooManyRequests):
    code = "TOO_MANY_TURNS"


class MaxSessionsReached(TooManyRequests):
    code = "MAX_SESSIONS_REACHED"


class InvalidCursor(InvalidRequest):
    code = "INVALID_CURSOR"


class InvalidPath(InvalidRequest):
    code = "INVALID_PATH"


class PathOutsideWorkspace(InvalidRequest):
    code = "PATH_OUTSIDE_WORKSPACE"


class EnvNotAllowed(InvalidRequest):
    """An environment variable a client may not set (it would choose the upstream, the
    credentials, the CLI's config or how processes behave)."""

    code = "ENV_NOT_ALLOWED"


class ConversationNotFound(NotFound):
    """A Claude conversation id that does not exist, or belongs to another key."""

    code = "CONVERSATION_NOT_FOUND"

    def __init__(self, conversation_id: str) -> None:
        super().__init__(f"Conversation {conversation_id} not found",
                         details={"conversationId": conversation_id})


class ConversationNotStarted(Conflict):
    """The session exists but has no conversation yet (nothing to fork)."""

    code = "CONVERSATION_NOT_STARTED"


class ImageUrlsNotAllowed(Forbidden):
    """The gateway is not allowed to fetch images from URLs."""

    code = "IMAGE_URLS_NOT_ALLOWED"


class InvalidJsonSchema(InvalidRequest):
    """A structured-output schema that is not a JSON Schema the CLI accepts."""

    code = "INVALID_JSON_SCHEMA"


class ModelNotFound(NotFound):
    """A model name the gateway does not serve (with strict model names)."""

    code = "MODEL_NOT_FOUND"
