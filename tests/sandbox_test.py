from __future__ import annotations

import pytest

from toolrun.errors import UsageError
from toolrun.sandbox import check_relative_arg, check_remote_env, inherited_env, step_env


def test_only_the_allow_list_is_inherited() -> None:
    parent = {"PATH": "/bin", "LC_ALL": "C", "AWS_SECRET": "x", "LD_PRELOAD": "evil.so"}
    assert inherited_env(parent) == {"PATH": "/bin", "LC_ALL": "C"}
    assert step_env({"A": "1"}, {"A": "2", "B": "3"}) == {"A": "2", "B": "3"}


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
def test_remote_callers_cannot_set_dangerous_names(name: str) -> None:
    with pytest.raises(UsageError):
        check_remote_env([name])


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
    ],
)
def test_remote_args_stay_inside_the_workspace(arg: str) -> None:
    with pytest.raises(UsageError):
        check_relative_arg(arg)


@pytest.mark.parametrize("arg", ["./exp", "exp/../out", "push", "--json", "a=b", "x/./y"])
def test_relative_args_are_fine(arg: str) -> None:
    check_relative_arg(arg)
    check_remote_env(["LOG_LEVEL", "foo"])
