"""The error registry: every code described once, the exception tree drawn as it is,
and the README's table of codes generated from the registry."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from claude_gateway import errors
from claude_gateway.errors import ERROR_CODES, ErrorCode, GatewayError, error_codes_reference

README = Path(__file__).resolve().parent.parent / "README.md"


def exception_classes() -> dict[str, type[GatewayError]]:
    return {name: value for name, value in vars(errors).items()
            if isinstance(value, type) and issubclass(value, GatewayError)}


def drawn_tree() -> list[tuple[int, str, str]]:
    """(depth, class name, the rest of its line) for each line of the docstring's tree."""
    assert errors.__doc__ is not None
    rows = []
    for line in errors.__doc__.splitlines():
        match = re.match(r"^((?:[│ ]   )*)(?:[├└]── )?([A-Z][A-Za-z]+)\s+(.*)$", line)
        if match and (match.group(2) in exception_classes()):
            indent = len(match.group(1)) // 4 + (1 if "──" in line else 0)
            rows.append((indent, match.group(2), match.group(3)))
    return rows


def test_the_docstring_draws_every_exception_under_its_real_parent() -> None:
    classes = exception_classes()
    rows = drawn_tree()
    assert {name for _, name, _ in rows} == set(classes), "drawn and defined classes differ"
    parents: dict[int, str] = {}
    for depth, name, rest in rows:
        parents[depth] = name
        cls = classes[name]
        if depth > 0:
            assert cls.__bases__[0].__name__ == parents[depth - 1], name
        assert str(cls.code) in rest, f"{name}: its line does not name {cls.code}"
        if issubclass(cls, errors.ApiError) and cls is not errors.ApiError:
            assert rest.startswith(f"{cls.status} "), f"{name}: its line does not say {cls.status}"


def test_every_code_is_described_and_every_exception_agrees_with_the_registry() -> None:
    assert set(ERROR_CODES) == set(ErrorCode)
    for name, cls in exception_classes().items():
        info = ERROR_CODES[cls.code]
        if issubclass(cls, errors.ApiError) and cls is not errors.ApiError:
            assert info.status == cls.status, name


def test_an_instance_cannot_choose_its_own_code() -> None:
    with pytest.raises(TypeError):
        errors.InvalidRequest("no", code="SOMETHING_ELSE")  # type: ignore[call-arg]
    assert errors.SessionEnded.of("ses_1", "expired").code == ErrorCode.SESSION_EXPIRED
    assert errors.SessionEnded.of("ses_1", "ended").code == ErrorCode.SESSION_ENDED


def test_budget_exceeded_means_one_thing() -> None:
    """402 BUDGET_EXCEEDED is the key's daily budget; the CLI's own per-turn cost limit
    is TURN_BUDGET_EXCEEDED, a turn failure."""
    assert ERROR_CODES[ErrorCode.BUDGET_EXCEEDED].status == 402
    assert not ERROR_CODES[ErrorCode.BUDGET_EXCEEDED].turn
    assert ERROR_CODES[ErrorCode.TURN_BUDGET_EXCEEDED].turn


def test_readme_lists_every_error_code() -> None:
    readme = README.read_text()
    match = re.search(r"<!-- error-codes:start -->\n(.*?)\n<!-- error-codes:end -->",
                      readme, re.S)
    assert match, "README has no generated table of error codes"
    assert match.group(1).strip() == error_codes_reference().strip(), (
        "README's table of error codes is stale: regenerate with scripts/update-readme")
