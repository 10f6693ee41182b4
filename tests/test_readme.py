"""The README's examples run as written against ``serve --mock-model``.

Every ``sh`` and ``python`` block is run, in the README's order, against one gateway
started the way the Quick start starts it (on a free port instead of 8080); a block is
left out only where the README marks it ``<!-- example: not run (reason) -->``. Every
``curl`` must get a 2xx answer, unless its comment names the 4xx it documents.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import anyio
import pytest

from tests.helpers.gateway import free_port, wait_healthy

ROOT = Path(__file__).resolve().parents[1]
FENCE = re.compile(r"(?:<!-- example: not run \((?P<why>[^)]+)\) -->\n)?"
                   r"```(?P<lang>[a-z]*)\n(?P<body>.*?)```", re.S)
# The 4xx a command's comment says it answers: "... # 404 RUN_NOT_FOUND once it is done"
DOCUMENTED_STATUS = re.compile(r"^(?P<command>\s*curl .*?)(?=\s+#\s*(?P<status>4\d\d)\b)", re.M)

# Every curl answers with a status that is 2xx, or the one its comment documents. A
# stream that follows the log forever is read for a moment and then closed.
PRELUDE = r"""
set -euo pipefail
curl() {
  local body status args=("$@") limit=60
  [[ " $* " == *" -sN "* && " $* " == *"/events"* ]] && limit=2
  body=$(command curl --max-time "$limit" -sS -w '\n%{http_code}' "${args[@]}") || {
    local code=$?
    [[ $code == 28 && $limit == 2 ]] || { echo "curl $*: exit $code" >&2; return 1; }
  }
  status=${body##*$'\n'}
  printf '%s\n' "${body%$'\n'*}"
  if [[ $limit == 60 && $status != 2* && $status != "${EXPECT:-}" ]]; then
    echo "curl $* answered HTTP $status" >&2
    return 1
  fi
}
"""


@dataclass
class Example:
    lang: str
    body: str
    skipped_because: str | None


def examples() -> list[Example]:
    text = (ROOT / "README.md").read_text()
    return [Example(m["lang"], m["body"], m["why"]) for m in FENCE.finditer(text)
            if m["lang"] in ("sh", "python")]


@pytest.fixture
async def mock_gateway(tmp_path: Path) -> AsyncIterator[str]:
    port = free_port()
    env = {**os.environ, "CLAUDE_GATEWAY_DATA_DIR": str(tmp_path / "data"),
           "CLAUDE_GATEWAY_WORKSPACE_ROOT": str(tmp_path / "workspaces"),
           "CLAUDE_GATEWAY_PORT": str(port)}
    log = (tmp_path / "gateway.log").open("wb")
    process = await anyio.open_process(
        [str(ROOT / "scripts" / "gateway"), "serve", "--mock-model"], env=env, cwd=tmp_path,
        stdout=log, stderr=log)
    url = f"http://127.0.0.1:{port}"
    try:
        await wait_healthy(url)
        yield url
    finally:
        process.terminate()
        with anyio.fail_after(30):
            await process.wait()
        await process.aclose()
        log.close()


def for_port(code: str, port: int) -> str:
    return code.replace("localhost:8080", f"localhost:{port}").replace(
        "127.0.0.1:8080", f"127.0.0.1:{port}")


@pytest.mark.cli
@pytest.mark.anyio
async def test_every_readme_example_runs_as_written(mock_gateway: str, tmp_path: Path) -> None:
    port = int(mock_gateway.rsplit(":", 1)[1])
    found = examples()
    skipped = [e.skipped_because for e in found if e.skipped_because]
    assert len(skipped) <= 3, skipped  # the Quick start, serving with credentials, bench
    env = {**os.environ, "CLAUDE_GATEWAY_DATA_DIR": str(tmp_path / "data"),
           "CLAUDE_GATEWAY_WORKSPACE_ROOT": str(tmp_path / "workspaces"),
           "PATH": f"{ROOT / 'scripts'}:{Path(sys.executable).parent}:{os.environ['PATH']}"}
    shell = [PRELUDE]
    ran = 0
    for example in found:
        if example.skipped_because:
            continue
        code = for_port(example.body, port)
        if example.lang == "python":
            # Each Python example runs where it appears, between the shell blocks.
            shell.append(f"python - <<'PYTHON'\n{code}\nPYTHON\n")
        else:
            code = DOCUMENTED_STATUS.sub(r"EXPECT=\g<status> \g<command>", code)
            shell.append(code.replace("scripts/gateway", str(ROOT / "scripts" / "gateway")))
        ran += 1
    assert ran >= 8
    result = await anyio.run_process(["bash", "-c", "\n".join(shell)], cwd=tmp_path,
                                     env=env, check=False)
    assert result.returncode == 0, (result.stderr.decode()[-5000:],
                                    result.stdout.decode()[-5000:])
