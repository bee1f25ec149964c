"""``config.toml``: read fast with tomllib, edited with tomlkit so a user's comments survive.

It stays whole: ``SETTINGS`` is the one table of keys that both the reader and the editor
check a value against, so what ``toolrun config set`` accepts is what a run reads back.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from .errors import ConfigError, NotFoundError, StorageError, UsageError
from .records import field, record
from .tools.versions import is_tool_name
from .units import parse_duration, parse_size

# `typing` costs milliseconds at start-up; annotations alone never need it at run time.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

DEFAULT_REGISTRY_TIMEOUT = 10.0
# As npm does with package metadata: a run needs no round trip to the registry, and a version
# published since shows up within minutes (at once when a run asks for it by its number).
DEFAULT_REGISTRY_CACHE = 300.0

_NEW_FILE_HEADER = """\
# toolrun configuration: edit by hand, or with `toolrun config set KEY VALUE`
# and `toolrun registry add NAME LOCATION`. Comments you write here are kept.
"""


@record(frozen=True)
class RegistryRef:
    """A registry named in config.toml."""

    name: str
    location: str  # a folder path or an http(s) URL

    @property
    def is_http(self) -> bool:
        return self.location.startswith(("http://", "https://"))


def url_problem(url: str, *, credentials: bool = False) -> str | None:
    """What is wrong with an http(s) URL, or None when it can be asked.

    A registry's URL may not hold a user name or password: urllib, which fetches from
    registries, would take them for part of the host name, and every message naming the
    registry would show the password. (``--remote`` passes ``credentials``: httpx sends them.)
    """
    from urllib.parse import urlsplit

    if any(char.isspace() or ord(char) < 32 for char in url):
        return "holds a space or a control character (encode it as %20)"
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - reading it checks it
    except ValueError as exc:
        return f"is not a URL: {exc}"
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "needs http:// or https:// and a host"
    if not credentials and (parts.username or parts.password):
        return "holds a user name or password, which toolrun does not send to registries"
    return None


def shown_url(url: str) -> str:
    """``url`` as messages may show it: without the password it may hold."""
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(url)
        if parts.password is None:
            return url
    except ValueError:
        return url
    host = parts.netloc.rpartition("@")[2]
    return parts._replace(netloc=f"{parts.username}:***@{host}").geturl()


@record(frozen=True)
class TokenRef:
    """A daemon token as config.toml keeps it: its name, scope and only a hash of its secret."""

    name: str
    sha256: str
    scope: str = "run"  # read | run | admin
    allow: tuple[str, ...] = ()  # toolchains (and tools) it may run; empty: any
    created: str = ""


TOKEN_SCOPES = ("read", "run", "admin")
AUTOMATION_TABLES = ("schedules", "hooks", "channels", "notify")


@record(frozen=True)
class Setting:
    """A scalar key ``config get/set`` knows, with its parser and default."""

    parse: Callable[[Any], Any]
    default: Any
    help: str


def _seconds(text: str) -> float:
    """A duration of 0 or more: 0 turns the wait off."""
    return parse_duration(text, zero=True)


def _positive_seconds(text: str) -> float:
    return parse_duration(text)


def _boolean(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("true", "yes", "1", "on"):
        return True
    if lowered in ("false", "no", "0", "off"):
        return False
    raise ValueError("true or false")


def _text_list(value: Any) -> tuple[str, ...]:
    """A list from config.toml, or ``a,b`` from ``config set``."""
    if isinstance(value, str):
        value = [part.strip() for part in value.split(",") if part.strip()]
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
        raise ValueError("a list of strings")
    return tuple(value)


def _host_list(value: Any) -> tuple[str, ...]:
    hosts = _text_list(value)
    for host in hosts:
        if not host or any(ch.isspace() or ch in "/@?#" for ch in host):
            raise ValueError(f"a list of host names (such as build01.example.com), not {host!r}")
    return hosts


def _env_patterns(value: Any) -> tuple[str, ...]:
    from .policy import env_pattern_problem

    patterns = _text_list(value)
    for pattern in patterns:
        problem = env_pattern_problem(pattern)
        if problem:
            raise ValueError(f"a list of variable names or PREFIX_* patterns: {problem}")
    return patterns


def _public_url(text: str) -> str:
    text = str(text).strip().rstrip("/")
    if text and url_problem(text):
        raise ValueError(f"an http(s) URL: it {url_problem(text)}")
    return text


def _log_format(text: str) -> str:
    if text not in ("json", "text", "both"):
        raise ValueError("json, text or both")
    return text


def _auto_update(text: str) -> str:
    if text not in ("off", "notify", "install"):
        raise ValueError("off, notify or install")
    return text


def _update_policy(text: str) -> str:
    if text not in ("patch", "minor", "major"):
        raise ValueError("patch, minor or major")
    return text


SETTINGS: dict[str, Setting] = {
    "registry_timeout": Setting(
        _positive_seconds, DEFAULT_REGISTRY_TIMEOUT, "seconds to wait for an HTTP registry"
    ),
    "registry_cache": Setting(
        _seconds,
        DEFAULT_REGISTRY_CACHE,
        "seconds a run reuses an HTTP registry's index before asking again (0: every run asks)",
    ),
    "cwd_registry": Setting(_boolean, True, "also use ./registry in the current directory"),
    "offline": Setting(_boolean, False, "never contact HTTP registries"),
    "auto_update": Setting(
        _auto_update,
        "off",
        "after a run, once a day: notify (a one-line notice of newer tool versions) or install "
        "(install them beside the old ones); off",
    ),
    "update_policy": Setting(
        _update_policy,
        "minor",
        "which newer versions count for tool outdated and auto_update: patch (same X.Y), "
        "minor (same X) or major (any)",
    ),
    "locked": Setting(
        _boolean, False, "runs use exactly their TOOLCHAIN.lock, as with run --locked"
    ),
    "output_cap": Setting(parse_size, 1024**3, "bytes of output stored per run (e.g. 100MB)"),
    "log_format": Setting(
        _log_format, "json", "json (events.jsonl), or text/both to add a plain output.log"
    ),
    "default_timeout": Setting(
        _seconds, 0.0, "seconds a run may take when its toolchain sets no timeout (0: no limit)"
    ),
    "default_step_timeout": Setting(
        _seconds, 0.0, "seconds a step may take when it sets no timeout (0: no limit)"
    ),
    "kill_grace": Setting(
        _positive_seconds, 5.0, "seconds between asking a tool to stop and forcing it"
    ),
    "max_unpacked": Setting(
        parse_size,
        2 * 1024**3,
        "bytes a tool's archive may unpack to (an index's own figure is held to as well)",
    ),
    "cluster_workspace_cap": Setting(
        parse_size,
        512 * 1024**2,
        "the daemon with a cluster: bytes of a run's workspace carried between workers and "
        "fetched back for its artifacts",
    ),
    "public_url": Setting(
        _public_url,
        "",
        "the daemon's address as people reach it (https://toolrun.example.com), for the "
        "links in notifications; default: the address it listens on",
    ),
    "notify_retry": Setting(
        _positive_seconds, 10.0, "seconds before a failed notification is sent again (doubling)"
    ),
    "notify_give_up": Setting(
        _positive_seconds, 3600.0, "seconds a notification is retried before it is marked failed"
    ),
    "notify_timeout": Setting(
        _positive_seconds, 10.0, "seconds to wait for a notification channel to answer"
    ),
    "pause_limit": Setting(
        _positive_seconds, 86400.0, "seconds a run may stay paused before it is cancelled"
    ),
    "allow_hosts": Setting(
        _host_list,
        (),
        "the daemon: more names it answers to beside loopback (.example.com: a domain; *: any)",
    ),
    "accept_env": Setting(
        _env_patterns,
        (),
        "the daemon: env names remote callers may set for every tool (NAME or PREFIX_*)",
    ),
}


@record(frozen=True)
class Config:
    """config.toml, read."""

    path: Path
    registries: tuple[RegistryRef, ...] = ()
    values: dict[str, Any] = field(default_factory=dict)
    tokens: tuple[TokenRef, ...] = ()
    # [[schedules]], [[hooks]], [[channels]], [[notify]]: read by automation/, which says
    # where a bad one is wrong when the daemon (or `toolrun schedule`...) reads them.
    tables: dict[str, Any] = field(default_factory=dict)

    def get(self, key: str) -> Any:
        setting = _setting(key)
        return self.values.get(key, setting.default)

    @property
    def registry_timeout(self) -> float:
        return float(self.get("registry_timeout"))


def load_config(path: Path, *, cache_dir: Path | None = None) -> Config:
    """The config at ``path``; a missing file is an empty config. With ``cache_dir``, the
    file's reading is kept there (see ``_read_toml``)."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return Config(path)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    return _config_from_dict(path, _read_toml(path, raw, cache_dir))


def _read_toml(path: Path, raw: bytes, cache_dir: Path | None) -> dict[str, Any]:
    """tomllib's reading of ``raw``, reused from ``cache_dir`` while the file's bytes are the
    same: importing tomllib (and the typing module it needs) takes longer than everything else
    a typical command does with its config."""
    from .cache_files import read_json, write_json
    from .digests import sha256_hex

    digest = sha256_hex(raw)
    kept = cache_dir / "config.json" if cache_dir is not None else None
    saved = read_json(kept) if kept is not None else None
    if isinstance(saved, dict) and saved.get("path") == str(path) and saved.get("sha256") == digest:
        return dict(saved["data"])
    import tomllib

    try:
        data = tomllib.loads(_decoded(path, raw))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    if kept is not None:
        write_json(kept, {"path": str(path), "sha256": digest, "data": data})
    return data


def _decoded(path: Path, raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise ConfigError(f"{path}:{line}: not UTF-8 text (byte 0x{raw[exc.start]:02x})") from None


def _config_from_dict(path: Path, data: dict[str, Any]) -> Config:
    values: dict[str, Any] = {}
    tables: dict[str, Any] = {}
    for key, value in data.items():
        if key in ("registries", "tokens"):
            continue
        if key in AUTOMATION_TABLES:
            if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
                raise ConfigError(f"{path}: {key!r} must be an array of tables ([[{key}]])")
            tables[key] = value
            continue
        setting = SETTINGS.get(key)
        if setting is None:
            raise ConfigError(f"{path}: unknown key {key!r}{_suggest(key, SETTINGS)}")
        try:
            values[key] = setting.parse(str(value).lower() if isinstance(value, bool) else value)
        except (ValueError, TypeError) as exc:
            raise ConfigError(f"{path}: key {key!r} must be {exc}") from None
    registries: list[RegistryRef] = []
    raw = data.get("registries", [])
    if not isinstance(raw, list):
        raise ConfigError(f"{path}: 'registries' must be an array of tables ([[registries]])")
    for index, entry in enumerate(raw):
        where = f"{path}: registries[{index}]"
        if not isinstance(entry, dict):
            raise ConfigError(f"{where} must be a table with name and location")
        name, location = entry.get("name"), entry.get("location")
        if not isinstance(name, str) or not is_tool_name(name):
            raise ConfigError(f"{where}: 'name' must be a simple name")
        if not isinstance(location, str) or not location:
            raise ConfigError(f"{where}: 'location' must be a folder path or an http(s) URL")
        ref = RegistryRef(name, location)
        problem = url_problem(location) if ref.is_http else None
        if problem:
            raise ConfigError(
                f"{where}: 'location' {shown_url(location)!r} {problem}",
                hint=f"fix it: toolrun registry remove {name}, then registry add",
            )
        registries.append(ref)
    tokens = _tokens_from(path, data.get("tokens", []))
    return Config(path, tuple(registries), values, tokens, tables)


def _tokens_from(path: Path, raw: Any) -> tuple[TokenRef, ...]:
    if not isinstance(raw, list):
        raise ConfigError(f"{path}: 'tokens' must be an array of tables ([[tokens]])")
    tokens: list[TokenRef] = []
    for index, entry in enumerate(raw):
        where = f"{path}: tokens[{index}]"
        if not isinstance(entry, dict):
            raise ConfigError(f"{where} must be a table with name, sha256 and scope")
        name, digest = entry.get("name"), entry.get("sha256")
        scope, allow = entry.get("scope", "run"), entry.get("allow", [])
        if not isinstance(name, str) or not is_tool_name(name):
            raise ConfigError(f"{where}: 'name' must be a simple name")
        if not isinstance(digest, str) or len(digest) != 64:
            raise ConfigError(f"{where}: 'sha256' must be 64 hex digits")
        if scope not in TOKEN_SCOPES:
            raise ConfigError(f"{where}: 'scope' must be one of {', '.join(TOKEN_SCOPES)}")
        if not isinstance(allow, list) or not all(isinstance(a, str) for a in allow):
            raise ConfigError(f"{where}: 'allow' must be a list of toolchain names")
        tokens.append(TokenRef(name, digest, scope, tuple(allow), str(entry.get("created", ""))))
    return tuple(tokens)


def _setting(key: str) -> Setting:
    setting = SETTINGS.get(key)
    if setting is None:
        raise UsageError(f"unknown config key {key!r}{_suggest(key, SETTINGS)}")
    return setting


def _suggest(word: str, choices: Any) -> str:
    import difflib

    close = difflib.get_close_matches(word, list(choices), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


class ConfigEditor:
    """Edits config.toml in place through tomlkit, keeping comments and layout."""

    def __init__(self, path: Path) -> None:
        import tomlkit

        self.path = path
        self._tomlkit = tomlkit
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            raw = _NEW_FILE_HEADER.encode()
        except OSError as exc:
            raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
        text = _decoded(path, raw)
        try:
            self.document = tomlkit.parse(text)
        except Exception as exc:  # tomlkit raises its own ParseError family
            raise ConfigError(f"{path}: not valid TOML: {exc}") from None

    def set(self, key: str, raw_value: str) -> Any:
        setting = _setting(key)
        try:
            value = setting.parse(raw_value)
        except ValueError as exc:
            raise UsageError(f"config key {key!r} must be {exc}, not {raw_value!r}") from None
        # tomlkit places a new scalar above the first table, where TOML needs it.
        self.document[key] = list(value) if isinstance(value, tuple) else value
        return value

    def unset(self, key: str) -> None:
        _setting(key)
        if key in self.document:
            del self.document[key]

    def add_registry(self, name: str, location: str) -> None:
        if not is_tool_name(name):
            raise UsageError(f"registry name {name!r} must be letters, digits, '.', '_' or '-'")
        registries = self._tables("registries")
        if registries is None:
            registries = self._tomlkit.aot()
            self.document.append("registries", registries)
        if any(entry.get("name") == name for entry in registries):
            raise UsageError(f"a registry named {name!r} is already configured")
        table = self._tomlkit.table()
        table.add("name", name)
        table.add("location", location)
        registries.append(table)

    def remove_registry(self, name: str) -> None:
        registries = self._tables("registries") or []
        names = [entry.get("name") for entry in registries]
        if name not in names:
            raise NotFoundError(f"no registry named {name!r}{_suggest(name, names)}")
        del registries[names.index(name)]
        if not registries:
            del self.document["registries"]

    def add_token(self, token: TokenRef) -> None:
        tokens = self._tables("tokens")
        if tokens is None:
            tokens = self._tomlkit.aot()
            self.document.append("tokens", tokens)
        if any(entry.get("name") == token.name for entry in tokens):
            raise UsageError(f"a token named {token.name!r} exists; revoke it first")
        table = self._tomlkit.table()
        table.add("name", token.name)
        table.add("sha256", token.sha256)
        table.add("scope", token.scope)
        table.add("allow", list(token.allow))
        table.add("created", token.created)
        tokens.append(table)

    def remove_token(self, name: str) -> None:
        tokens = self._tables("tokens") or []
        names = [entry.get("name") for entry in tokens]
        if name not in names:
            raise NotFoundError(f"no token named {name!r}{_suggest(name, names)}")
        del tokens[names.index(name)]
        if not tokens:
            del self.document["tokens"]

    def add_named(self, key: str, entry: dict[str, Any]) -> None:
        """A ``[[key]]`` table (hooks, channels, ...) whose ``name`` no other one has."""
        tables = self._tables(key)
        if tables is None:
            tables = self._tomlkit.aot()
            self.document.append(key, tables)
        if any(existing.get("name") == entry["name"] for existing in tables):
            raise UsageError(f"config.toml has a {key[:-1]} named {entry['name']!r} already")
        table = self._tomlkit.table()
        for name, value in entry.items():
            table.add(name, value)
        tables.append(table)

    def remove_named(self, key: str, name: str) -> None:
        tables = self._tables(key) or []
        names = [entry.get("name") for entry in tables]
        if name not in names:
            raise NotFoundError(f"no {key[:-1]} named {name!r}{_suggest(name, names)}")
        del tables[names.index(name)]
        if not tables:
            del self.document[key]

    def _tables(self, key: str) -> Any:
        """The ``[[key]]`` tables, None if there are none; a ConfigError if ``key`` holds
        something else, which only an edit by hand can fix."""
        value = self.document.get(key)
        if value is None:
            return None
        if not isinstance(value, list) or not all(isinstance(entry, dict) for entry in value):
            raise ConfigError(
                f"{self.path}: {key!r} must be an array of tables ([[{key}]]); fix it by hand"
            )
        return value

    def save(self) -> None:
        text = self._tomlkit.dumps(self.document)
        # A config that would not load again is never written.
        import tomllib

        _config_from_dict(self.path, tomllib.loads(text))
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            temporary = self.path.with_suffix(".toml.tmp")
            temporary.write_text(text, encoding="utf-8")
            temporary.replace(self.path)
        except OSError as exc:
            raise StorageError(f"cannot write {self.path}: {exc.strerror}") from None
