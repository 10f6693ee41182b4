"""Bounds on free-form JSON a client sends: how deeply it may nest."""

from __future__ import annotations

from typing import Any

MAX_JSON_DEPTH = 32


def json_depth(value: Any, depth: int = 0) -> int:
    """How deeply lists and objects nest in ``value`` (counting stops past the limit)."""
    if depth > MAX_JSON_DEPTH:
        return depth
    if isinstance(value, dict):
        return max((json_depth(v, depth + 1) for v in value.values()), default=depth + 1)
    if isinstance(value, list):
        return max((json_depth(v, depth + 1) for v in value), default=depth + 1)
    return depth


def shallow(value: Any) -> Any:
    """Refuse JSON nested deeper than MAX_JSON_DEPTH (it only serves to exhaust parsers)."""
    if json_depth(value) > MAX_JSON_DEPTH:
        raise ValueError(f"nested deeper than {MAX_JSON_DEPTH} levels")
    return value


def json_integer(value: Any) -> Any:
    """Let through what JSON Schema calls an integer: any number without a fraction (840.0
    too), never a boolean or a string. For fields that are otherwise lax, since pydantic's
    strict mode refuses 840.0 and its lax mode takes ``true`` as 1."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError("must be an integer")
    return value
