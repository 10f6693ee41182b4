"""The gateway's settings: one object, read from ``CLAUDE_GATEWAY_*`` variables and ``.env``.

Every field has a safe default and a help text; ``claude-gateway settings --markdown``
prints the reference table that the README carries.
"""

from __future__ import annotations

import difflib
import json
import os
import secrets
import socket
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

from claude_gateway.errors import SettingsError

ENV_PREFIX = "CLAUDE_GATEWAY_"
MIN_KEY_LENGTH = 16
"""Shortest key accepted in CLAUDE_GATEWAY_API_KEYS (a guessable key is no key)."""


class ConfiguredKey(BaseModel):
    """An API key given in the settings rather than made with ``keys create``."""

    model_config = ConfigDict(populate_by_name=True, extra="forbid")
    name: str = Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.@-]*$")
    key: SecretStr
    admin: bool = False
    rate_limit: str | None = Field(None, alias="rateLimit")

    @model_validator(mode="after")
    def _long_enough(self) -> ConfiguredKey:
        length = len(self.key.get_secret_value())
        if length < MIN_KEY_LENGTH:
            raise ValueError(f"the key named {self.name!r} has {length} characters; a key "
                             f"needs at least {MIN_KEY_LENGTH} (`claude-gateway keys create` "
                             "makes one of 47)")
        return self


class Settings(BaseSettings):
    """Everything an operator can configure."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_file=".env",
        env_file_encoding="utf-8",
        extra="forbid",
        validate_default=True,
    )

    host: str = Field(
        "127.0.0.1",
        description="Address to listen on. Loopback by default; another address exposes "
        "an agent that runs commands to the network.",
    )
    port: int = Field(8080, ge=0, le=65535, description="TCP port to listen on.")
    data_dir: Path = Field(
        Path("./data"),
        description="Directory for the gateway's own state: the database and the CLI's "
        "config dir unless those are set.",
    )
    workspace_root: Path = Field(
        Path("./workspaces"),
        description="Every session and run works in a directory under this root.",
    )
    database_url: str = Field(
        "",
        description="The store's database: `sqlite:///path.db`, or "
        "`postgresql://user@host:port/db` for several nodes on one database. Empty: a "
        "SQLite file `gateway.db` in the data dir.",
    )
    database_pool_size: int = Field(
        5, ge=2, le=200, description="Database connections each node keeps open: writers "
        "and readers (SQLite: one writer, the rest readers; PostgreSQL: half each).",
    )
    database_max_overflow: int = Field(
        5, ge=0, le=200, description="Database connections a node may open beyond the pool "
        "at busy times.",
    )
    cli_path: Path | None = Field(
        None,
        description="Path of the `claude` binary. Empty: the binary bundled with "
        "claude-agent-sdk, then `claude` on PATH.",
    )
    claude_config_dir: Path | None = Field(
        None,
        description="`CLAUDE_CONFIG_DIR` of the CLI processes (their own state and "
        "transcripts). Empty: `claude` in the data dir.",
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = Field(
        "INFO", description="Lowest level of log records written."
    )
    log_format: Literal["json", "text"] = Field(
        "json", description="`json`: one JSON object a line; `text`: for people."
    )
    upstream_base_url: str | None = Field(
        None,
        description="Anthropic-compatible endpoint for the CLI (`ANTHROPIC_BASE_URL`): "
        "a proxy or a local model server. Empty: the CLI's default or the inherited "
        "variable.",
    )
    upstream_api_key: SecretStr | None = Field(
        None,
        description="`ANTHROPIC_API_KEY` given to the CLI processes. Empty: inherited.",
    )
    upstream_auth_token: SecretStr | None = Field(
        None,
        description="`ANTHROPIC_AUTH_TOKEN` (sent as a bearer token) given to the CLI "
        "processes. Empty: inherited.",
    )
    upstream_oauth_token: SecretStr | None = Field(
        None,
        description="`CLAUDE_CODE_OAUTH_TOKEN` given to the CLI processes: a Claude "
        "subscription's long-lived token, printed by `claude setup-token`. Empty: inherited.",
    )
    cli_max_retries: int | None = Field(
        None,
        ge=0,
        description="`CLAUDE_CODE_MAX_RETRIES` for the CLI: how often an upstream error "
        "is retried (the CLI's default retries for minutes). Empty: the CLI's default.",
    )
    cli_disable_nonessential_traffic: bool = Field(
        True,
        description="Stop the CLI's auto-updater, telemetry and side requests such as "
        "title generation.",
    )
    default_model: str | None = Field(
        None, description="Model of sessions that name none. Empty: the CLI's default."
    )
    max_sessions: int = Field(
        100, ge=1, description="Sessions that may exist at once (ended and expired ones "
        "do not count); more are refused with 429 MAX_SESSIONS_REACHED."
    )
    node_id: str = Field(
        default_factory=lambda: f"{socket.gethostname()}-{secrets.token_hex(3)}",
        min_length=1, max_length=128, pattern=r"^[A-Za-z0-9._-]+$",
        json_schema_extra={"shown_default": "host name + random suffix"},
        description="This gateway's name among the nodes on one database (default: the "
        "host name and a random suffix, new at each start).",
    )
    lease_ttl_seconds: float = Field(
        15, gt=0, le=3600, description="How long a node's hold on a session's CLI lasts "
        "unless renewed (every third of it): after a node dies, another takes its sessions "
        "over within this time. A node also polls the database every fifth of it (at most "
        "every 2 s) for what a lost notification would have said.",
    )
    drain_timeout_seconds: float = Field(
        30, ge=0, le=24 * 3600, description="On a polite stop (SIGTERM) the gateway takes "
        "no new prompts (503 UNAVAILABLE) and lets running and queued turns finish for up "
        "to this long before it stops their CLIs (GATEWAY_SHUTDOWN).",
    )
    max_processes: int = Field(
        8, ge=1, description="Live CLI processes at once (each takes about 250 MB). At the "
        "cap the least recently used idle process is stopped; its session resumes later.",
    )
    idle_timeout_seconds: float = Field(
        900, ge=0, description="Stop a session's CLI process after this long without a "
        "turn; the session stays and resumes on its next message. 0 disables.",
    )
    session_ttl_seconds: float = Field(
        7 * 24 * 3600, ge=0, description="A session expires this long after its last "
        "activity (status `expired`; history stays readable). 0 disables.",
    )
    reaper_interval_seconds: float = Field(
        5, gt=0, description="How often idle processes and expired sessions are looked for."
    )
    spawn_timeout_seconds: float = Field(
        60, gt=0, description="How long a CLI process may take to start."
    )
    message_timeout_seconds: float = Field(
        300, gt=0, description="How long `POST .../messages` without `stream` waits for the "
        "turn before answering 202 (a request's `timeoutMs` overrides it).",
    )
    sse_ping_seconds: float = Field(
        15, gt=0, description="Keep-alive comment interval on SSE streams."
    )
    subscriber_queue_size: int = Field(
        1000, ge=10, description="Events buffered per live stream; a client further behind "
        "is disconnected and replays from its last event id.",
    )
    permission_timeout_seconds: float = Field(
        900, ge=0, description="How long a tool call waits for a client to answer its "
        "permission request before it is denied. 0 waits forever.",
    )
    allow_bypass_permissions: bool = Field(
        False, description="Let sessions use permission mode `bypassPermissions` (every "
        "tool runs unasked). Refused with 403 unless set. As root the CLI then runs with "
        "`IS_SANDBOX=1`: only enable it inside a sandbox.",
    )
    max_image_bytes: int = Field(
        5 * 1024 * 1024, ge=1, description="Largest image (decoded) a prompt may carry; "
        "larger ones get 413.",
    )
    max_upload_bytes: int = Field(
        100 * 1024 * 1024, ge=1, description="Largest file `PUT /v1/files/...` accepts "
        "(413 beyond it); uploads are streamed to disk, never held in memory.",
    )
    default_run_workspace: str = Field(
        "default", description="Workspace of runs that name none (and of the spare "
        "processes).",
    )
    spare_processes: int = Field(
        1, ge=0, description="CLI processes kept started per spare profile (a workspace and "
        "the options fixed when a CLI starts), so that a run does not wait for one to start. "
        "The default run workspace and the OpenAI workspace have one from the start; every "
        "other profile a run or a stateless chat uses (each key's own default workspace, an "
        "app's system prompt) gets one after its first use. 0 disables.",
    )
    max_spare_processes: int = Field(
        4, ge=0, description="Spare CLI processes kept in all (each takes about 200 MB; they "
        "come on top of MAX_PROCESSES). Profiles learned from use are dropped least recently "
        "used first.",
    )
    spare_workspaces: list[str] = Field(
        default_factory=list, description="More workspaces to keep spare processes for from "
        "the start (a JSON list of names under the workspace root).",
    )
    openai_models: list[str] = Field(
        default_factory=lambda: ["sonnet", "opus", "haiku"],
        description="Models `GET /v1/models` lists (aliases or full names; a JSON list). "
        "Requests may prefix them with `claude-gateway/`.",
    )
    openai_model_aliases: dict[str, str] = Field(
        default_factory=dict, description="Model names OpenAI clients send, mapped to Claude "
        'models (a JSON object; keys may be glob patterns): `{"gpt-4o": "sonnet", '
        '"gpt-4o-mini": "haiku", "o*": "opus"}`. Names neither mapped nor Claude models '
        "(`gpt-4o`, what frameworks send by default) run on the default model.",
    )
    openai_strict_models: bool = Field(
        False, description="Refuse model names that are neither Claude models nor aliases "
        "with OpenAI's `model_not_found` (404), instead of running them on the default model.",
    )
    openai_workspace: str = Field(
        "openai", description="Workspace of OpenAI-compatible requests without an "
        "`X-Workspace` header.",
    )
    non_interactive_permission_mode: Literal["default", "acceptEdits", "plan", "dontAsk"] = Field(
        "acceptEdits", description="Permission mode of sessions and runs started through the "
        "OpenAI and MCP surfaces (unless the MCP call names one). Their clients cannot "
        "answer permission prompts, so any tool call the mode would ask about is denied.",
    )
    openai_fetch_image_urls: bool = Field(
        False, description="Let OpenAI `image_url` parts name http(s) URLs, fetched by the "
        "gateway (within the image size limit and a 10 s timeout). `data:` URLs always work.",
    )
    mcp_allowed_hosts: list[str] | None = Field(
        None, description="Deprecated: use `CLAUDE_GATEWAY_ALLOWED_HOSTS`, which covers "
        "`/mcp` too (values given here are added to it, with a warning at start).",
    )
    mcp_allowed_origins: list[str] | None = Field(
        None, description="Deprecated: use `CLAUDE_GATEWAY_ALLOWED_ORIGINS`, which covers "
        "`/mcp` too (values given here are added to it, with a warning at start).",
    )
    api_keys: list[ConfiguredKey] = Field(
        default_factory=list,
        description="API keys given in the environment (for containers), a JSON list of "
        '`{"name": ..., "key": ..., "admin": false, "rateLimit": "60/minute"}`; each key at '
        "least 16 characters. Keys made with `claude-gateway keys create` live hashed in the "
        "database. Once any key "
        "exists, every endpoint but `GET /health` needs `Authorization: Bearer <key>`.",
    )
    session_env_allowlist: list[str] = Field(
        default_factory=list, description="Environment variables sessions may set in "
        "`env` (a JSON list of names or glob patterns such as `MY_APP_*`). Empty: any "
        "variable that is not reserved. Reserved either way: whatever chooses the upstream, "
        "its credentials, Claude Code's own configuration or how processes behave "
        "(`ANTHROPIC_*`, `CLAUDE_*`, `*_PROXY`, `NODE_*`, `LD_*`, `PATH`, `HOME`, ...).",
    )
    auth_failure_rate_limit: str = Field(
        "30/minute", description="Failed authentications (a wrong or missing key, on HTTP, "
        "WebSocket and MCP alike) allowed per client address, in the `limits` notation; "
        "beyond it the address gets 429 until the window passes.",
    )
    allow_query_token: bool = Field(
        False, description="Also accept the key as `?access_token=` (for clients that "
        "cannot set headers). Off: URLs end up in logs and browser history.",
    )
    rate_limit: str = Field(
        "600/minute", description="Requests per principal (per client address when no key "
        "is used), in the `limits` notation (`100/minute;5/second`). A key's own "
        "`rateLimit` overrides it.",
    )
    max_sessions_per_principal: int = Field(
        0, ge=0, description="Sessions one key may have at once. 0: only the global cap.",
    )
    max_turns_per_principal: int = Field(
        0, ge=0, description="Turns (session turns and runs) one key may have running or "
        "queued at once. 0: no limit.",
    )
    daily_budget_usd: float = Field(
        0, ge=0, description="USD one key's turns may cost per UTC day (from the usage the "
        "CLI reports); new turns past it get 402 BUDGET_EXCEEDED. 0: no limit.",
    )
    allowed_hosts: list[str] = Field(
        default_factory=lambda: ["127.0.0.1", "localhost", "[::1]"],
        description="`Host` names the gateway answers on every surface, REST, WebSocket "
        "and `/mcp` (DNS-rebinding protection; a JSON list, `*` allows any). Add the name "
        "clients use when you bind elsewhere.",
    )
    allowed_origins: list[str] = Field(
        default_factory=list, description="Browser origins, besides the gateway's own, "
        "that may call it on every surface (a JSON list; `*` as the port wildcard, e.g. "
        "`http://localhost:*`). Any other `Origin` gets 403 ORIGIN_NOT_ALLOWED.",
    )
    cors_origins: list[str] = Field(
        default_factory=list, description="Origins whose pages may read the API's answers "
        "(CORS; a JSON list); they are allowed origins too. Empty: CORS is off.",
    )
    max_body_bytes: int = Field(
        16 * 1024 * 1024, ge=1024, description="Largest request body outside file uploads "
        "(413 beyond it).",
    )
    body_timeout_seconds: float = Field(
        60, gt=0, description="How long the gateway waits for the next piece of a request "
        "body while it arrives (a client that stalls gets 408). It never applies once the "
        "body is in: streamed answers last as long as their turn.",
    )
    webhook_allow_private: bool = Field(
        False, description="Let webhook URLs reach loopback, private, link-local and "
        "metadata addresses (self-hosted receivers). Off: such URLs get 400, and a name "
        "that resolves to one is refused at connect time, never contacted.",
    )
    webhook_retry_schedule: list[float] = Field(
        default_factory=lambda: [5.0, 300.0, 1800.0, 7200.0, 18000.0, 36000.0, 36000.0],
        description="Delays in seconds before each retry of a failed webhook delivery "
        "(a JSON list; each gets +-10% jitter). The default retries 7 times over about "
        "a day; once spent, the delivery is `failed`.",
    )
    webhook_timeout_seconds: float = Field(
        15, gt=0, description="How long one webhook delivery attempt may take, connect "
        "to answer; longer is a failed attempt.",
    )
    webhook_concurrency: int = Field(
        16, ge=1, description="Webhook delivery attempts one node makes at once.",
    )
    webhook_disable_after_seconds: float = Field(
        5 * 86400, ge=0, description="An endpoint whose deliveries all fail for this "
        "long is disabled (and its owner's `webhook.disabled` subscribers told). 0: "
        "never (a 410 answer still disables at once).",
    )
    webhook_retention_seconds: float = Field(
        30 * 86400, gt=0, description="How long finished webhook deliveries stay in the "
        "deliveries log.",
    )
    metrics_token: SecretStr | None = Field(
        None, description="A bearer token that may read `GET /metrics` (for a scraper "
        "that should hold no API key). Admin keys may always read it.",
    )
    metrics_per_key: bool = Field(
        False, description="Label turn, token and cost metrics by API key name (one "
        "series per key: mind the cardinality).",
    )
    mock_model: bool = Field(
        False,
        description="Start the scripted mock model on a free loopback port and point "
        "the CLI processes at it: try the gateway with no credentials.",
    )

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_level(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    @field_validator("log_format", mode="before")
    @classmethod
    def _lower_format(cls, value: Any) -> Any:
        return value.lower() if isinstance(value, str) else value

    @field_validator("cli_path", "claude_config_dir", "upstream_base_url", mode="before")
    @classmethod
    def _empty_is_none(cls, value: Any) -> Any:
        return None if value == "" else value

    @field_validator("webhook_retry_schedule")
    @classmethod
    def _delays(cls, value: list[float]) -> list[float]:
        if any(delay < 0 for delay in value):
            raise ValueError("every delay must be 0 or more seconds")
        return value

    @field_validator("metrics_token", mode="before")
    @classmethod
    def _no_empty_token(cls, value: Any) -> Any:
        return None if value == "" else value

    @field_validator("rate_limit", "auth_failure_rate_limit")
    @classmethod
    def _rate(cls, value: str) -> str:
        from limits import parse_many

        try:
            if parse_many(value):
                return value
        except ValueError:
            pass
        raise ValueError("must be a rate in the limits notation, e.g. '60/minute;5/second'")

    @field_validator("upstream_base_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL")
        return value.rstrip("/") if value else value

    @model_validator(mode="after")
    def _derived_paths(self) -> Settings:
        # CLI processes run in their workspace, so every path they see must be absolute.
        self.data_dir = self.data_dir.expanduser().absolute()
        self.workspace_root = self.workspace_root.expanduser().absolute()
        if self.cli_path is not None:
            self.cli_path = self.cli_path.expanduser().absolute()
        if self.claude_config_dir is not None:
            self.claude_config_dir = self.claude_config_dir.expanduser().absolute()
        if not self.database_url:
            self.database_url = f"sqlite:///{self.data_dir / 'gateway.db'}"
        if self.claude_config_dir is None:
            self.claude_config_dir = self.data_dir / "claude"
        return self

    @model_validator(mode="after")
    def _fold_deprecated_aliases(self) -> Settings:
        """The MCP-only Host and Origin settings of earlier versions join the pair that
        serves every surface."""
        for host in self.mcp_allowed_hosts or []:
            name = host.removesuffix(":*")
            if name not in self.allowed_hosts:
                self.allowed_hosts.append(name)
        for origin in self.mcp_allowed_origins or []:
            if origin not in self.allowed_origins:
                self.allowed_origins.append(origin)
        return self

    def deprecations(self) -> list[str]:
        """What the operator should change (logged at start, shown by ``doctor``)."""
        found = []
        for field, instead in (("mcp_allowed_hosts", "allowed_hosts"),
                               ("mcp_allowed_origins", "allowed_origins")):
            if getattr(self, field) is not None:
                found.append(f"{env_name(field)} is deprecated: its values were added to "
                             f"{env_name(instead)}, which covers /mcp too")
        return found

    @property
    def single_node(self) -> bool:
        """SQLite: one gateway per database (the data-dir lock); PostgreSQL: several."""
        return not self.database_url.startswith("postgresql")

    @property
    def poll_seconds(self) -> float:
        """With several nodes, how often a node looks in the store for what a lost
        notification would have said (events, commands, answers)."""
        return min(2.0, self.lease_ttl_seconds / 5)

    @property
    def cli_config_dir(self) -> Path:
        """The CLI's config dir (always set after validation)."""
        return self.claude_config_dir or self.data_dir / "claude"


def env_name(field: str) -> str:
    return f"{ENV_PREFIX}{field.upper()}"


def _unknown_settings(environ: Mapping[str, str]) -> list[str]:
    known = {env_name(name) for name in Settings.model_fields}
    problems = []
    for key in sorted(environ):
        if key.upper().startswith(ENV_PREFIX) and key.upper() not in known:
            close = difflib.get_close_matches(key.upper(), sorted(known), n=1)
            hint = f" (did you mean {close[0]}?)" if close else ""
            problems.append(f"{key} is not a known setting{hint}")
    return problems


def describe_validation_error(exc: ValidationError) -> str:
    """One line per problem, each naming the environment variable to fix."""
    lines = []
    for error in exc.errors():
        field = str(error["loc"][0]) if error["loc"] else "settings"
        name = env_name(field) if field in Settings.model_fields else field
        if error["type"] == "extra_forbidden":
            lines.append(f"{name.upper()} is not a known setting")
            continue
        value = error.get("input")
        shown = "" if field.startswith(("upstream_", "api_keys", "metrics_token")) else (
            f" (got {value!r})")
        message = str(error['msg']).removeprefix('Value error, ')
        lines.append(f"{name}: {message}{shown}")
    return "\n".join(lines)


def load_settings(**overrides: Any) -> Settings:
    """Build the settings from the environment, ``.env`` and explicit overrides.

    Overrides that are None are left to the other sources. Raises
    :class:`SettingsError` with a message naming each bad setting, including a
    ``CLAUDE_GATEWAY_*`` variable that is not a setting (a typo would otherwise be
    silently ignored).
    """
    unknown = _unknown_settings(os.environ)
    if unknown:
        raise SettingsError("\n".join(unknown))
    try:
        return Settings(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as exc:
        raise SettingsError(describe_validation_error(exc)) from None


def settings_reference() -> str:
    """The Markdown table of every setting, its default and its help text."""
    rows = ["| Variable | Default | Description |", "|---|---|---|"]
    for name, field in Settings.model_fields.items():
        default = field.get_default(call_default_factory=True)
        if isinstance(default, Path) and not default.is_absolute():
            default = f"./{default}"
        if isinstance(default, list):
            default = json.dumps(default) if default else ""
        shown = "" if default is None or default == "" else f"`{default}`"
        if isinstance(field.json_schema_extra, dict) and "shown_default" in (
                field.json_schema_extra):
            shown = str(field.json_schema_extra["shown_default"])
        help_text = (field.description or "").replace("|", "\\|")
        rows.append(f"| `{env_name(name)}` | {shown} | {help_text} |")
    return "\n".join(rows)
