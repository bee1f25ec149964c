"""What a step may see: a clean environment, and (for remote callers) paths kept inside.

Pure functions: the engine and the daemon apply them; tests check them without a process.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from pathlib import PurePosixPath, PureWindowsPath

from .errors import UsageError

# Passed through from toolrun's own environment: what programs need to find things and to
# speak the user's language on every OS, nothing that changes how they load code.
INHERITED = frozenset(
    {
        "PATH",
        "HOME",
        "USER",
        "LOGNAME",
        "SHELL",
        "LANG",
        "LANGUAGE",
        "TZ",
        "TERM",
        "TMPDIR",
        "TEMP",
        "TMP",
        "SYSTEMROOT",
        "SYSTEMDRIVE",
        "WINDIR",
        "COMSPEC",
        "PATHEXT",
        "USERPROFILE",
        "USERNAME",
        "APPDATA",
        "LOCALAPPDATA",
        "PROGRAMDATA",
        "PROGRAMFILES",
        "PROGRAMFILES(X86)",
        "COMMONPROGRAMFILES",
        "NUMBER_OF_PROCESSORS",
        "PROCESSOR_ARCHITECTURE",
        "OS",
    }
)
INHERITED_PREFIXES = ("LC_",)

# Names a remote caller may never set: they decide which code a process loads or where it
# finds programs, so setting them is running code of the caller's choice.
FORBIDDEN_REMOTE = frozenset(
    {
        "PATH",
        "PATHEXT",
        "LD_PRELOAD",
        "LD_LIBRARY_PATH",
        "LD_AUDIT",
        "PYTHONPATH",
        "PYTHONHOME",
        "PYTHONSTARTUP",
        "PYTHONUSERBASE",
        "PERL5LIB",
        "PERL5OPT",
        "RUBYLIB",
        "RUBYOPT",
        "NODE_OPTIONS",
        "NODE_PATH",
        "JAVA_TOOL_OPTIONS",
        "_JAVA_OPTIONS",
        "BASH_ENV",
        "ENV",
        "SHELLOPTS",  # with PS4 and xtrace, bash runs what PS4 holds
        "BASHOPTS",
        "PS4",
        "IFS",
        "GCONV_PATH",  # glibc loads character-set converters from here
        "GLIBC_TUNABLES",
        "PERLLIB",
        "PERL5DB",
        "CLASSPATH",
        "JDK_JAVA_OPTIONS",
        "DOTNET_STARTUP_HOOKS",
        "COMSPEC",
        "SYSTEMROOT",
        "HOME",
        "TMPDIR",
        "TEMP",
        "TMP",
    }
)
# PYTHON*: PYTHONWARNINGS, PYTHONBREAKPOINT, PYTHONINSPECT and others make Python import or
# run code; BASH_FUNC_*: exported bash functions.
FORBIDDEN_REMOTE_PREFIXES = ("LD_", "DYLD_", "TOOLRUN_", "PYTHON", "BASH_FUNC_")
_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def inherited_env(parent: Mapping[str, str]) -> dict[str, str]:
    """The part of toolrun's own environment a step starts with."""
    return {
        name: value
        for name, value in parent.items()
        if name.upper() in INHERITED or name.upper().startswith(INHERITED_PREFIXES)
    }


def step_env(*layers: Mapping[str, str]) -> dict[str, str]:
    """Later layers win: inherited, tool, toolchain, step, caller, toolrun's own."""
    env: dict[str, str] = {}
    for layer in layers:
        env.update(layer)
    return env


def check_remote_env(names: Iterable[str]) -> None:
    """Refuse env names a remote caller may not set (UsageError naming them)."""
    bad = []
    for name in names:
        upper = name.upper()
        if not _NAME_RE.match(name):
            bad.append(f"{name!r} is not a valid variable name")
        elif upper in FORBIDDEN_REMOTE or upper.startswith(FORBIDDEN_REMOTE_PREFIXES):
            bad.append(f"{name!r} may not be set by a remote caller")
    if bad:
        raise UsageError("env: " + "; ".join(bad))


def check_relative_arg(arg: str) -> None:
    """Refuse an argument that names an absolute path or climbs out of the workspace with ``..``.

    The seed's rule for remote runs: "use ``.``, not absolute paths". Both POSIX and Windows
    forms are checked whatever the OS, since the caller's and the worker's may differ.
    """
    candidates = [arg]
    if "=" in arg:
        candidates.append(arg.split("=", 1)[1])  # --out=/etc/x
    for text in candidates:
        posix = PurePosixPath(text)
        windows = PureWindowsPath(text)
        if posix.is_absolute() or windows.is_absolute() or windows.drive or text.startswith("\\"):
            raise UsageError(f"argument {arg!r} is an absolute path; use paths relative to '.'")
        parts = text.replace("\\", "/").split("/")
        depth = 0
        for part in parts:
            if part == "..":
                depth -= 1
                if depth < 0:
                    raise UsageError(f"argument {arg!r} climbs out of the workspace with '..'")
            elif part not in ("", "."):
                depth += 1
