"""What a key may name, unit by unit: workspaces, added directories, file paths and
environment variables, each with the same table of hostile names."""

from __future__ import annotations

from pathlib import Path

import pytest

from claude_gateway.errors import GatewayError
from claude_gateway.services.env_policy import check_env
from claude_gateway.services.files import FileService
from claude_gateway.services.workspaces import (
    Placement,
    added_dirs,
    name_from,
    place_workspace,
    resolve_inside,
    workspace_dir,
)
from tests.helpers.hostile import (
    FRIENDLY_NAMES,
    HOSTILE_NAMES,
    WORKSPACE_ONLY,
    HostileTree,
    hostile_tree,
)


@pytest.fixture
def tree(tmp_path: Path) -> HostileTree:
    return hostile_tree(tmp_path)


def refused(code: str, action: object) -> None:
    with pytest.raises(GatewayError) as caught:
        action()  # type: ignore[operator]
    assert caught.value.code == code


@pytest.mark.parametrize(("name", "code"), HOSTILE_NAMES, ids=[n[:30] for n, _ in HOSTILE_NAMES])
def test_a_hostile_name_is_refused_everywhere_a_key_names_a_path(
    tree: HostileTree, name: str, code: str
) -> None:
    before = tree.snapshot()
    home = tree.root / tree.home
    refused(code, lambda: resolve_inside(home, name))
    refused(code, lambda: place_workspace(tree.root, tree.home, name))
    refused(code, lambda: added_dirs(tree.root, tree.home, [name]))
    files = FileService(tree.root, max_upload_bytes=1024).for_owner(tree.home)
    refused(code, lambda: files.resolve(name))
    refused(code, lambda: files.delete(name, recursive=True))
    assert tree.snapshot() == before
    assert sorted(p.name for p in tree.root.iterdir()) == ["alice", "bob", "bob2"]


@pytest.mark.parametrize(("name", "code"), WORKSPACE_ONLY)
def test_dot_dot_is_never_part_of_a_workspace_name(tree: HostileTree, name: str,
                                                   code: str) -> None:
    refused(code, lambda: place_workspace(tree.root, tree.home, name))
    refused(code, lambda: added_dirs(tree.root, tree.home, [name]))


@pytest.mark.parametrize("name", FRIENDLY_NAMES)
def test_odd_but_harmless_names_stay_in_the_home(tree: HostileTree, name: str) -> None:
    placement = place_workspace(tree.root, tree.home, name)
    directory = workspace_dir(tree.root, placement)
    home = (tree.root / tree.home).resolve()
    assert home in directory.parents and directory.is_dir()
    assert placement.path == f"bob/{placement.name}"
    assert added_dirs(tree.root, tree.home, [name]) == [placement.name]


def test_an_admin_home_is_the_root_and_another_key_is_one_name_away(tree: HostileTree) -> None:
    placement = place_workspace(tree.root, "", "alice")
    assert placement.path == "alice"
    assert workspace_dir(tree.root, placement) == (tree.root / "alice").resolve()
    assert added_dirs(tree.root, "", ["bob2"]) == ["bob2"]
    refused("PATH_OUTSIDE_WORKSPACE", lambda: place_workspace(tree.root, "", ".."))
    refused("PATH_OUTSIDE_WORKSPACE", lambda: place_workspace(tree.root, "", "bob/link-out"))
    assert name_from("", "alice/proj") == "alice/proj"
    assert name_from("bob", "bob/proj") == "proj"
    assert name_from("bob", "bob2/proj") is None and name_from("bob", "alice/x") is None


def test_a_workspace_replaced_by_a_link_is_refused_when_a_process_starts(
    tree: HostileTree,
) -> None:
    placement = place_workspace(tree.root, tree.home, "proj")
    workspace_dir(tree.root, placement)
    directory = tree.root / "bob" / "proj"
    directory.rmdir()
    directory.symlink_to(tree.root / "alice")  # what bob's agent could do with `ln -s`
    refused("PATH_OUTSIDE_WORKSPACE", lambda: workspace_dir(tree.root, placement))
    refused("PATH_OUTSIDE_WORKSPACE", lambda: workspace_dir(tree.root, Placement("bob",
                                                                                 "proj/x")))


def test_an_added_directory_must_exist() -> None:
    refused("INVALID_PATH", lambda: added_dirs(Path("/nonexistent-root"), "bob", ["nope"]))


# -- environment variables ---------------------------------------------------------------

RESERVED = [
    "ANTHROPIC_BASE_URL", "ANTHROPIC_API_KEY", "anthropic_auth_token", "CLAUDE_CONFIG_DIR",
    "CLAUDE_CODE_USE_BEDROCK", "HTTPS_PROXY", "http_proxy", "ALL_PROXY", "NO_PROXY",
    "NODE_OPTIONS", "NODE_EXTRA_CA_CERTS", "LD_PRELOAD", "LD_LIBRARY_PATH",
    "DYLD_INSERT_LIBRARIES", "PATH", "HOME", "SHELL", "BASH_ENV", "ENV", "PYTHONPATH",
    "PYTHONSTARTUP", "AWS_ACCESS_KEY_ID", "GOOGLE_APPLICATION_CREDENTIALS",
    "SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "GIT_SSH_COMMAND", "GIT_DIR", "SSH_AUTH_SOCK",
    "XDG_CONFIG_HOME", "TMPDIR", "IS_SANDBOX", "DISABLE_AUTOUPDATER", "OTEL_EXPORTER_OTLP_ENDPOINT",
    "BUN_INSTALL", "PERL5OPT", "JAVA_TOOL_OPTIONS", "MCP_TIMEOUT",
]


@pytest.mark.parametrize("name", RESERVED)
def test_variables_that_reach_the_operator_are_refused(name: str) -> None:
    with pytest.raises(GatewayError) as caught:
        check_env({"FINE": "1", name: "http://attacker.example"})
    assert caught.value.code == "ENV_NOT_ALLOWED"
    assert caught.value.details["name"] == name
    assert name in caught.value.message


def test_ordinary_variables_pass_and_the_allowlist_narrows_them() -> None:
    env = {"MY_APP_MODE": "test", "GIT_AUTHOR_NAME": "Bob", "LANG": "C.UTF-8"}
    assert check_env(env) == env
    assert check_env({"MY_APP_MODE": "x"}, ["MY_APP_*"]) == {"MY_APP_MODE": "x"}
    refused("ENV_NOT_ALLOWED", lambda: check_env({"LANG": "C"}, ["MY_APP_*"]))
    # The allowlist cannot open what is reserved.
    refused("ENV_NOT_ALLOWED", lambda: check_env({"ANTHROPIC_BASE_URL": "x"}, ["*"]))
    for bad in ["1ABC", "A-B", "A B", "", "A=B"]:
        refused("ENV_NOT_ALLOWED", lambda bad=bad: check_env({bad: "x"}))
    refused("INVALID_REQUEST", lambda: check_env({"A": "x\x00y"}))
    refused("INVALID_REQUEST", lambda: check_env({f"V{i}": "x" for i in range(65)}))
