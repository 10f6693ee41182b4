"""Structured logging: JSON lines (or text) with the request id, secrets redacted."""

from __future__ import annotations

import contextvars
import json
import logging
import re
import sys
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any, TextIO

request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "request_id", default=None
)

REDACTED = "[REDACTED]"
_SECRET_PATTERNS = [
    re.compile(r"sk-ant-[A-Za-z0-9_\-]+"),
    re.compile(r"cgw_[A-Za-z0-9_\-]+"),
    re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=\-]+"),
    re.compile(r"(?i)((?:x-api-key|api[_-]?key|auth[_-]?token|access[_-]?token|token|secret|"
               r"password|authorization)\\?[\"']?\s*[:=]\s*\\?[\"']?)[^\s\"',}\\]+"),
]
_FRAME = re.compile(r"^([<>] (?:TEXT|BINARY|CONT) ).*?( \[\d+ bytes\])$", re.S)
"""A WebSocket frame as the websockets library logs it at DEBUG: its content (an auth
frame's key, a prompt) is never written."""
_FRAGMENT = 8
"""A run of this many characters of a known secret counts as the secret (a log line may
carry a secret cut short, like a truncated frame)."""
_STANDARD_ATTRS = set(vars(logging.makeLogRecord({}))) | {
    "message", "asctime", "taskName", "color_message",
}


class SecretFragments:
    """Every run of ``_FRAGMENT`` characters of the given secrets, to find them in text
    even when a secret is cut short or only partly quoted."""

    def __init__(self, secrets: Iterable[str]) -> None:
        self.grams = {s[i:i + _FRAGMENT] for s in secrets if len(s) >= _FRAGMENT
                      for i in range(len(s) - _FRAGMENT + 1)}

    def redact(self, text: str) -> str:
        if not self.grams or len(text) < _FRAGMENT:
            return text
        hidden = bytearray(len(text))
        for i in range(len(text) - _FRAGMENT + 1):
            if text[i:i + _FRAGMENT] in self.grams:
                hidden[i:i + _FRAGMENT] = b"\x01" * _FRAGMENT
        if not any(hidden):
            return text
        out, i = [], 0
        while i < len(text):
            if hidden[i]:
                while i < len(text) and hidden[i]:
                    i += 1
                out.append(REDACTED)
            else:
                out.append(text[i])
                i += 1
        return "".join(out)


def redact(text: str, secrets: Iterable[str] | SecretFragments = ()) -> str:
    """Replace known secret shapes and the given secrets (whole or in part)."""
    fragments = secrets if isinstance(secrets, SecretFragments) else SecretFragments(secrets)
    text = _FRAME.sub(r"\1[frame content not logged]\2", text)
    text = fragments.redact(text)
    for pattern in _SECRET_PATTERNS:
        text = pattern.sub(
            lambda m: (m.group(1) if m.re.groups else "") + REDACTED, text
        )
    return text


class RedactingFilter(logging.Filter):
    """Rewrites each record's message so no secret reaches a handler."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self.secrets = SecretFragments(s for s in secrets if s)

    def filter(self, record: logging.LogRecord) -> bool:
        message = redact(record.getMessage(), self.secrets)
        record.msg, record.args = message, None
        for key, value in list(vars(record).items()):
            if key not in _STANDARD_ATTRS and isinstance(value, str):
                setattr(record, key, redact(value, self.secrets))
        return True


class RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = request_id_var.get()
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object a line: ts, level, logger, message, request_id and extras."""

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD_ATTRS and value is not None:
                data[key] = value
        if record.exc_info:
            data["exception"] = self.formatException(record.exc_info)
        return json.dumps(data, default=str)


_CONTROL = re.compile(r"[\x00-\x1f\x7f\u2028\u2029]")


def one_line(text: str) -> str:
    """Control characters escaped: whatever a client sent, a record stays one line."""
    return _CONTROL.sub(lambda m: m.group().encode("unicode_escape").decode("ascii")
                        if m.group() != "\x7f" else "\\x7f", text)


class TextFormatter(logging.Formatter):
    """For people: one line a record, control characters (even a traceback's newlines)
    escaped so that no value can forge a record of its own."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s [%(request_id)s] %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        return one_line(super().format(record))


def build_handler(fmt: str = "json", secrets: Iterable[str] = (),
                  stream: TextIO | None = None) -> logging.Handler:
    """A handler that adds the request id, redacts secrets and formats the record."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    handler.addFilter(RequestIdFilter())
    handler.addFilter(RedactingFilter(secrets))
    return handler


def configure_logging(level: str = "INFO", fmt: str = "json",
                      secrets: Iterable[str] = ()) -> None:
    """Route the gateway's and uvicorn's loggers through one redacting handler."""
    handler = build_handler(fmt, secrets)
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    # Python warnings (the SDK warns about tool lists, for one) would otherwise be
    # printed to stderr raw, client-given text and all.
    logging.captureWarnings(True)
    for name in ("uvicorn", "uvicorn.error"):
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True
    # Our request middleware logs each request with its id; uvicorn's access log
    # would repeat it without the id and with raw query strings.
    logging.getLogger("uvicorn.access").disabled = True
