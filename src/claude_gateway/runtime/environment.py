"""The environment every CLI process gets on top of the gateway's own."""

from __future__ import annotations

from claude_gateway.settings import Settings


def cli_environment(settings: Settings) -> dict[str, str]:
    """Variables passed as ``ClaudeAgentOptions.env`` (they override inherited ones)."""
    env = {"CLAUDE_CONFIG_DIR": str(settings.cli_config_dir)}
    if settings.upstream_base_url:
        env["ANTHROPIC_BASE_URL"] = settings.upstream_base_url
    if settings.upstream_api_key is not None:
        env["ANTHROPIC_API_KEY"] = settings.upstream_api_key.get_secret_value()
    if settings.upstream_auth_token is not None:
        env["ANTHROPIC_AUTH_TOKEN"] = settings.upstream_auth_token.get_secret_value()
    if settings.upstream_oauth_token is not None:
        env["CLAUDE_CODE_OAUTH_TOKEN"] = settings.upstream_oauth_token.get_secret_value()
    if settings.cli_max_retries is not None:
        env["CLAUDE_CODE_MAX_RETRIES"] = str(settings.cli_max_retries)
    if settings.cli_disable_nonessential_traffic:
        env["CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC"] = "1"
        env["DISABLE_AUTOUPDATER"] = "1"
    return env
