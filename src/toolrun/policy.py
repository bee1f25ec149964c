"""What a step may see: a clean environment, and (for remote callers) paths kept inside.

Pure functions: the engine and the daemon apply them; tests check them without a process.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

from .errors import UsageError
from .records import record

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
ENV_NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"
_NAME_RE = re.compile(ENV_NAME_PATTERN)


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


def env_pattern_problem(pattern: str) -> str | None:
    """What is wrong with an ``accept_env`` entry (``NAME`` or ``PREFIX_*``), or None."""
    body = pattern[:-1] if pattern.endswith("*") else pattern
    if not body or not _NAME_RE.match(body):
        return f"{pattern!r} is neither a variable name nor a PREFIX_* pattern"
    return None


def env_accepted(name: str, patterns: Iterable[str]) -> bool:
    """Whether ``accept_env`` patterns admit ``name`` (compared ignoring case, as Windows
    does; on POSIX that admits no name the pattern's author did not mean)."""
    upper = name.upper()
    for pattern in patterns:
        pattern = pattern.upper()
        if upper == pattern or (pattern.endswith("*") and upper.startswith(pattern[:-1])):
            return True
    return False


@record(frozen=True)
class AcceptedEnv:
    """Who accepts which env names from remote callers: the daemon's config and the
    toolchain for every step, each tool's manifest for its own steps."""

    config: tuple[str, ...] = ()
    toolchain: tuple[str, ...] = ()
    toolchain_name: str = ""
    tools: tuple[tuple[str, tuple[str, ...]], ...] = ()  # ("uexp 0.1.0", its accept_env)

    def refusal(self, name: str) -> str | None:
        """Why a remote caller may not set ``name``, or None when it may."""
        upper = name.upper()
        if not _NAME_RE.match(name):
            return f"{name!r} is not a valid variable name"
        if upper in FORBIDDEN_REMOTE or upper.startswith(FORBIDDEN_REMOTE_PREFIXES):
            return f"{name!r} may never be set by a remote caller"
        if env_accepted(name, self.config) or env_accepted(name, self.toolchain):
            return None
        refusing = [tool for tool, patterns in self.tools if not env_accepted(name, patterns)]
        if self.tools and not refusing:
            return None
        places = [f"the daemon's config.toml (toolrun config set accept_env {name})"]
        if self.toolchain_name:
            places.insert(0, f"the toolchain {self.toolchain_name!r} (accept_env: [{name}])")
        places.insert(0, "tool.toml of " + ", ".join(refusing or ["the tool"]))
        return (
            f"{name!r} is not accepted from remote callers; accept it with accept_env in "
            + ", or in ".join(places)
        )


def check_remote_env(names: Iterable[str], accepted: AcceptedEnv) -> None:
    """Refuse env names a remote caller may not set (UsageError naming the first)."""
    for name in names:
        why = accepted.refusal(name)
        if why is not None:
            raise UsageError(f"env: {why}", field=f"env.{name}")


_ABSOLUTE = r"(?:/|\\|~|[A-Za-z]:)"  # /x, \\host\x, ~/x, C:\x
_CLIMB = r"(?:^|[/\\=,;:@])\.\.(?:$|[/\\=,;:])"
# One rule for remote arguments, as one pattern: the daemon applies it and its OpenAPI quotes
# it. An argument is refused when any part a tool may take for a path is absolute or is
# "..": the argument itself, what follows = , ; or :, an option's value glued to its name
# (-o/x), a response file (@/x), any file: URL. A URL of another scheme (https://host/x)
# names no path here.
FORBIDDEN_ARG_PATTERN = "|".join(
    [
        rf"^@*{_ABSOLUTE}",
        rf"[=,;]@*{_ABSOLUTE}",
        rf"^-[A-Za-z0-9]:?@*{_ABSOLUTE}",
        r":@*(?:/(?!/)|\\|~|[A-Za-z]:)",
        r"[Ff][Ii][Ll][Ee]:",
        _CLIMB,
        r"^-[A-Za-z0-9]\.\.(?:$|[/\\])",
    ]
)
_CLIMB_PATTERN = rf"{_CLIMB}|^-[A-Za-z0-9]\.\.(?:$|[/\\])"


def check_relative_arg(arg: str) -> None:
    """Refuse an argument that names an absolute path, or a ``..``, in any part a tool may
    read as a path (see ``FORBIDDEN_ARG_PATTERN``).

    The seed's rule for remote runs: "use ``.``, not absolute paths". Both POSIX and Windows
    forms are checked whatever the OS, since the caller's and the worker's may differ.
    """
    # re compiles the patterns on first use: only remote runs pay for them
    if re.search(FORBIDDEN_ARG_PATTERN, arg) is None:
        return
    if re.search(_CLIMB_PATTERN, arg):
        raise UsageError(f"argument {arg!r} climbs with '..'; stay inside the workspace, '.'")
    raise UsageError(f"argument {arg!r} names an absolute path; use paths relative to '.'")
