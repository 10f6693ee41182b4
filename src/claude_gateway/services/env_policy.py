"""Which environment variables a client may give its agent (a session's ``env``).

The CLI inherits the gateway's environment, including the operator's upstream
credentials. A variable that chooses the upstream, the credentials, the CLI's own
configuration, or how the CLI and the programs it starts behave would let one key
redirect or read what belongs to the operator and to other keys, so those are refused
with ``400 ENV_NOT_ALLOWED``. The operator can narrow what is left further with
``CLAUDE_GATEWAY_SESSION_ENV_ALLOWLIST``.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable, Mapping

from claude_gateway.errors import EnvNotAllowed, InvalidRequest

NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
MAX_VARIABLES = 64
MAX_VALUE_CHARS = 16 * 1024

DENIED: tuple[tuple[str, str], ...] = (
    # the upstream, its credentials and the CLI's own configuration
    ("ANTHROPIC_*", "chooses the upstream or its credentials"),
    ("CLAUDE_*", "configures Claude Code itself"),
    ("DISABLE_*", "configures Claude Code itself"),
    ("IS_SANDBOX", "configures Claude Code itself"),
    ("MCP_*", "configures Claude Code itself"),
    ("AWS_*", "chooses cloud credentials (Bedrock)"),
    ("GOOGLE_*", "chooses cloud credentials (Vertex)"),
    ("GCLOUD_*", "chooses cloud credentials (Vertex)"),
    ("CLOUDSDK_*", "chooses cloud credentials (Vertex)"),
    ("VERTEX_*", "chooses cloud credentials (Vertex)"),
    ("AZURE_*", "chooses cloud credentials"),
    ("OTEL_*", "sends telemetry somewhere"),
    # where traffic goes and whom TLS trusts
    ("*_PROXY", "routes the process's traffic"),
    ("SSL_*", "changes which TLS certificates are trusted"),
    ("*_CA_BUNDLE", "changes which TLS certificates are trusted"),
    ("*_CA_CERTS", "changes which TLS certificates are trusted"),
    # how the CLI's runtime and the programs it starts behave
    ("NODE_*", "changes how the CLI's runtime behaves"),
    ("BUN_*", "changes how the CLI's runtime behaves"),
    ("NPM_CONFIG_*", "changes how package managers behave"),
    ("LD_*", "changes which code processes load"),
    ("DYLD_*", "changes which code processes load"),
    ("GCONV_PATH", "changes which code processes load"),
    ("PYTHON*", "changes which code Python loads"),
    ("PERL5*", "changes which code Perl loads"),
    ("RUBYOPT", "changes which code Ruby loads"),
    ("RUBYLIB", "changes which code Ruby loads"),
    ("JAVA_TOOL_OPTIONS", "changes which code Java loads"),
    ("_JAVA_OPTIONS", "changes which code Java loads"),
    ("JDK_JAVA_OPTIONS", "changes which code Java loads"),
    ("PATH", "changes which programs run"),
    ("HOME", "changes where programs keep their configuration"),
    ("XDG_*", "changes where programs keep their configuration"),
    ("TMPDIR", "changes where programs write temporary files"),
    ("TMP", "changes where programs write temporary files"),
    ("TEMP", "changes where programs write temporary files"),
    ("SHELL", "changes the shell that runs commands"),
    ("BASH_*", "changes how the shell behaves"),
    ("ENV", "makes the shell run a file at start"),
    ("SHELLOPTS", "changes how the shell behaves"),
    ("BASHOPTS", "changes how the shell behaves"),
    ("IFS", "changes how the shell behaves"),
    ("PS4", "changes how the shell behaves"),
    ("PROMPT_COMMAND", "changes how the shell behaves"),
    ("CDPATH", "changes how the shell behaves"),
    ("GLOBIGNORE", "changes how the shell behaves"),
    ("PWD", "changes how the shell behaves"),
    ("OLDPWD", "changes how the shell behaves"),
    ("USER", "changes who programs think they run as"),
    ("LOGNAME", "changes who programs think they run as"),
    ("SUDO_*", "changes who programs think they run as"),
    ("SSH_*", "reaches the operator's SSH agent or keys"),
    ("GNUPGHOME", "reaches the operator's keys"),
    ("GIT_*", "points git at other repositories or programs"),
    ("KUBECONFIG", "reaches the operator's clusters"),
    ("DOCKER_*", "reaches the operator's container engine"),
)
"""Glob patterns (matched case-insensitively) of variables no client may set."""

ALLOWED_DESPITE: tuple[str, ...] = ("GIT_AUTHOR_*", "GIT_COMMITTER_*")
"""Names inside a denied pattern that only label work (who made a commit)."""


def denied_reason(name: str) -> str | None:
    """Why ``name`` may not be set by a client, or None."""
    upper = name.upper()
    if any(fnmatch.fnmatchcase(upper, p) for p in ALLOWED_DESPITE):
        return None
    for pattern, reason in DENIED:
        if fnmatch.fnmatchcase(upper, pattern):
            return f"{name} {reason} ({pattern} is reserved for the operator)"
    return None


def check_env(env: Mapping[str, str], allowlist: Iterable[str] = ()) -> dict[str, str]:
    """``env`` if every variable may be set; EnvNotAllowed names the first that may not.

    ``allowlist`` (the operator's setting) narrows further: when it is not empty, a name
    must match one of its glob patterns as well.
    """
    if len(env) > MAX_VARIABLES:
        raise InvalidRequest(f"env may have at most {MAX_VARIABLES} variables",
                             details={"maxVariables": MAX_VARIABLES})
    allowed = [p.upper() for p in allowlist]
    for name, value in env.items():
        if not NAME.match(name):
            raise EnvNotAllowed(f"{name[:64]!r} is not a variable name (letters, digits and "
                                "'_', not starting with a digit)", details={"name": name[:64]})
        reason = denied_reason(name)
        if reason is not None:
            raise EnvNotAllowed(f"env: {reason}", details={"name": name})
        if allowed and not any(fnmatch.fnmatchcase(name.upper(), p) for p in allowed):
            raise EnvNotAllowed(f"env: {name} is not in this gateway's allowlist "
                                "(CLAUDE_GATEWAY_SESSION_ENV_ALLOWLIST)", details={"name": name})
        if "\x00" in value or len(value) > MAX_VALUE_CHARS:
            raise InvalidRequest(f"env: the value of {name} has a NUL byte or is longer than "
                                 f"{MAX_VALUE_CHARS} characters", details={"name": name})
    return dict(env)
