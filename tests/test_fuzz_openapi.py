"""Schemathesis against the gateway's own OpenAPI schema, with authentication.

Every operation gets generated requests, valid and invalid; none may answer 5xx, and
every answer must match the schema (status code, content type, body).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.generation import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from claude_gateway.app import create_app
from claude_gateway.testing.mock_model import MockModel, MockModelServer
from tests.conftest import Gateway, make_settings

KEY = "fuzz-key-0123456789abcdef"
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_schema_conformance]
# Operations that start an agent get fewer examples: each one is a CLI turn.
EXAMPLES = {"POST /v1/runs": 4, "POST /v1/chat/completions": 4,
            "POST /v1/sessions/{session_id}/messages": 4}


def _schema() -> Any:
    app = create_app(make_settings(Path("/nonexistent")))
    return schemathesis.openapi.from_dict(app.openapi())


SCHEMA = _schema()
OPERATIONS = [result.ok() for result in SCHEMA.get_all_operations()]


@pytest.fixture
def mock_model() -> Iterator[MockModelServer]:
    """A lenient model: fuzzed prompts are not scripted, it echoes them."""
    with MockModelServer(MockModel(strict=False)) as server:
        yield server


@pytest.mark.cli
@pytest.mark.parametrize("operation", OPERATIONS, ids=[op.label for op in OPERATIONS])
def test_no_server_errors_and_the_schema_holds(start_gateway: Any, operation: Any) -> None:
    gateway: Gateway = start_gateway(api_keys=[{"name": "fuzz", "key": KEY, "admin": True}],
                                     rate_limit="100000/minute", max_processes=2)
    headers = {"Authorization": f"Bearer {KEY}"}
    examples = EXAMPLES.get(operation.label, 25)

    @settings(max_examples=examples, deadline=None, database=None, derandomize=True,
              phases=[Phase.explicit, Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(case=operation.as_strategy(GenerationMode.POSITIVE)
           | operation.as_strategy(GenerationMode.NEGATIVE))
    def exercise(case: Any) -> None:
        response = case.call(base_url=gateway.url, headers=headers, timeout=60)
        case.validate_response(response, checks=CHECKS)

    exercise()
