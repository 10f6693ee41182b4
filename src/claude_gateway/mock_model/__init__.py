"""A scripted Anthropic Messages API server that the real Claude Code CLI can talk to.

See :mod:`claude_gateway.mock_model.script` for the prompt directives.
"""

from claude_gateway.mock_model.script import (
    Block,
    ScriptError,
    Step,
    ToolCall,
    locate_prompt,
    parse_directives,
)
from claude_gateway.mock_model.server import (
    MockModel,
    MockModelServer,
    RecordedRequest,
    create_mock_app,
    serve_forever,
)

__all__ = [
    "Block",
    "MockModel",
    "MockModelServer",
    "RecordedRequest",
    "ScriptError",
    "Step",
    "ToolCall",
    "create_mock_app",
    "locate_prompt",
    "parse_directives",
    "serve_forever",
]
