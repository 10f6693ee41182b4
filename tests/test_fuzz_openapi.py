"""Schemathesis against the gateway's own OpenAPI schema: every check, every phase.

The run is the command-line tool's, as an operator or an attacker would run it: the
examples, coverage, fuzzing and stateful (linked calls) phases, and all of its checks
(server errors, status codes, content types, headers, response schemas, schema-valid data
accepted and schema-invalid data refused, Allow headers, authentication, use after
delete, ...). Two checks are replaced by versions with one documented exception each
(``tests/helpers/fuzz_checks.py``). Bounded by examples and time, so it fits the suite.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from claude_gateway.mock_model import MockModel, MockModelServer
from tests.helpers.gateway import Gateway

KEY = "fuzz-key-0123456789abcdef"
ROOT = Path(__file__).resolve().parents[1]
ST = Path(sys.executable).parent / "st"


@pytest.fixture
def mock_model() -> Iterator[MockModelServer]:
    """A lenient model: fuzzed prompts are not scripted, it echoes them."""
    with MockModelServer(MockModel(strict=False)) as server:
        yield server


@pytest.mark.cli
@pytest.mark.timeout(900)
def test_schemathesis_finds_nothing_with_every_check_and_phase(start_gateway: Any,
                                                               tmp_path: Path) -> None:
    gateway: Gateway = start_gateway(
        api_keys=[{"name": "fuzz", "key": KEY, "admin": True}], rate_limit="100000/minute",
        auth_failure_rate_limit="100000/minute", max_processes=2)
    env = {**os.environ, "SCHEMATHESIS_HOOKS": "tests.helpers.fuzz_checks",
           "FUZZ_GATEWAY_URL": gateway.url, "FUZZ_GATEWAY_KEY": KEY,
           "PYTHONPATH": str(ROOT)}
    command = [
        str(ST), "run", f"{gateway.url}/openapi.json", "--checks", "all",
        "--exclude-checks", "positive_data_acceptance,use_after_free",
        "--phases", "examples,coverage,fuzzing,stateful",
        "-H", f"Authorization: Bearer {KEY}", "--max-examples", "8", "--seed", "20261122",
        # One worker: hypothesis inspects lambdas with `ast`, which CPython 3.11 does not
        # guard against two threads at once ("AST constructor recursion depth mismatch").
        "--workers", "1", "--request-timeout", "60", "--no-color",
        "--suppress-health-check", "all", "--output-truncate", "false",
    ]
    result = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True,
                            timeout=800, check=False)
    output = result.stdout + result.stderr
    (tmp_path / "schemathesis.txt").write_text(output)
    assert result.returncode == 0, output[-30_000:]
    for phase in ("Coverage", "Fuzzing", "Stateful"):
        assert f"✅  {phase}" in output, output[-5_000:]
