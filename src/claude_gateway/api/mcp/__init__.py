"""``/mcp``: the gateway's runs, sessions and workspace files as MCP tools.

========================  ==========================================================
``server``                the MCP server, its ``/mcp`` endpoint and its lifespan
``session_tools``         ``claude_run``, ``create_session``, ``send_message``,
                          ``get_messages``
``file_tools``            ``list_files``, ``read_file``, ``write_file``,
                          ``delete_file``
``common``                the caller, errors as tool errors, waiting for a turn
========================  ==========================================================
"""

from claude_gateway.api.mcp.common import PATH
from claude_gateway.api.mcp.server import build_server, mount, serving

__all__ = ["PATH", "build_server", "mount", "serving"]
