"""Test support shipped with the package, for anyone building on the gateway:

- :mod:`claude_gateway.testing.fake_agent`: an in-memory ``AgentProcess`` (no CLI);
- :mod:`claude_gateway.testing.store_conformance`: ``run_store_conformance(make_store)``,
  the contracts every ``Store`` implementation must keep.

(The scripted model, ``claude_gateway.mock_model``, is a product feature:
``serve --mock-model``.)
"""

from claude_gateway.testing.store_conformance import run_store_conformance

__all__ = ["run_store_conformance"]
