from __future__ import annotations

import pytest

from toolrun.errors import UsageError
from toolrun.policy import (
    AcceptedEnv,
    check_relative_arg,
    check_remote_env,
    env_accepted,
    env_pattern_problem,
    inherited_env,
    step_env,
)


def test_only_the_allow_list_is_inherited() -> None:
    parent = {"PATH": "/bin", "LC_ALL": "C", "AWS_SECRET": "x", "LD_PRELOAD": "evil.so"}
    assert inherited_env(parent) == {"PATH": "/bin", "LC_ALL": "C"}
    assert step_env({"A": "1"}, {"A": "2", "B": "3"}) == {"A": "2", "B": "3"}


ACCEPTING = AcceptedEnv(
    config=("STUDIO_*",),
    toolchain=("GAME_MODE",),
    toolchain_name="export-job",
    tools=(("uexp 0.1.0", ("UEXP_*", "SHARED")), ("game-meta 1.0.0", ("SHARED",))),
)


@pytest.mark.parametrize(
    "name",
    [
        "PATH",
        "LD_PRELOAD",
        "DYLD_INSERT_LIBRARIES",
        "PYTHONPATH",
        "TOOLRUN_OUTPUT",
        "bad name",
        "NODE_OPTIONS",
    ],
)
def test_remote_callers_can_never_set_loader_names(name: str) -> None:
    forced = AcceptedEnv(config=(name, name.split()[0][:2] + "*"))  # accepted, and still not
    with pytest.raises(UsageError):
        check_remote_env([name], forced)


@pytest.mark.parametrize(
    "name", ["OPENSSL_CONF", "GIT_SSH_COMMAND", "PAGER", "http_proxy", "UEXP_MODE"]
)
def test_a_name_nobody_accepted_is_refused_and_the_message_says_where_to_accept_it(
    name: str,
) -> None:
    with pytest.raises(UsageError) as caught:
        check_remote_env([name], ACCEPTING)
    message = caught.value.message
    assert caught.value.field == f"env.{name}"
    assert "accept_env" in message and "'export-job'" in message and "config.toml" in message
    assert "game-meta 1.0.0" in message  # the tool that does not accept it


def test_names_are_accepted_by_config_toolchain_or_every_tool() -> None:
    check_remote_env(["STUDIO_X", "studio_y", "GAME_MODE", "SHARED"], ACCEPTING)
    alone = AcceptedEnv(tools=(("probe 1.0.0", ("GREETING",)),))
    check_remote_env(["GREETING"], alone)
    with pytest.raises(UsageError):
        check_remote_env(["OTHER"], alone)


def test_accept_env_patterns() -> None:
    assert env_accepted("UEXP_MODE", ["UEXP_*"]) and not env_accepted("UEXPMODE", ["UEXP_*"])
    assert env_pattern_problem("A_*") is None and env_pattern_problem("NAME") is None
    for bad in ("*", "", "A*B", "1X", "A B"):
        assert env_pattern_problem(bad), bad


@pytest.mark.parametrize(
    "arg",
    [
        "/etc/passwd",
        "..",
        "../x",
        "a/../../x",
        "C:\\Windows",
        "\\\\server\\share",
        "--out=/tmp/x",
        "D:relative",
        "-o/etc/passwd",
        "-I../include",
        "--meta:/etc/passwd",
        "-o:/etc/passwd",
        "@/etc/passwd",
        "@../secret",
        "a,/etc/passwd",
        "a;/etc/passwd",
        "file:///etc/passwd",
        "FILE:/etc/passwd",
        "file://localhost/etc/passwd",
        "file:../x",
        "--cfg=file:///etc/x",
        "x:/etc/passwd",
        "lib:../../x",
        "~/.ssh/id_rsa",
        "~root",
        "k=v=../x",
        "exp/../out",
        "file:x",
    ],
)
def test_remote_args_stay_inside_the_workspace(arg: str) -> None:
    with pytest.raises(UsageError):
        check_relative_arg(arg)


@pytest.mark.parametrize(
    "arg",
    [
        "./exp",
        "exp/..x/out",
        "push",
        "--json",
        "a=b",
        "x/./y",
        "-ofile",
        "-5.5",
        "--meta:out/x",
        "@args.txt",
        "https://example.com/a/b",
        "key:value",
        "12:30",
        "Level 1 / Boss",
    ],
)
def test_relative_args_are_fine(arg: str) -> None:
    check_relative_arg(arg)


def test_the_argument_rule_is_one_pattern_the_openapi_document_quotes() -> None:
    import re

    from toolrun.daemon.openapi import document
    from toolrun.policy import FORBIDDEN_ARG_PATTERN

    text = str(document())
    assert re.escape(FORBIDDEN_ARG_PATTERN)[:20] or FORBIDDEN_ARG_PATTERN in text
