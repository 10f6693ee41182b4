"""A gateway whose agents are fakes (no CLI, no model), for the soak benchmark.

Everything but the CLI process is the real gateway: HTTP, the session core, the event
log and the store. Its memory is what a long-lived server keeps per run.
Usage: python bench/fake_gateway.py PORT (settings from CLAUDE_GATEWAY_* variables).
"""

from __future__ import annotations

import sys

import uvicorn

from claude_gateway.app import create_app
from claude_gateway.settings import load_settings
from claude_gateway.testing.fake_agent import FakeAgents

if __name__ == "__main__":
    settings = load_settings(port=int(sys.argv[1]))
    uvicorn.run(create_app(settings, agent_factory=FakeAgents(remember=False)), host="127.0.0.1",
                port=settings.port, log_config=None, access_log=False)
