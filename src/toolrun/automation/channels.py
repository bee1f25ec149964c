"""Where notifications go and which runs send them: config.toml's ``[[channels]]`` (a DingTalk,
Feishu or WeCom robot, or any webhook) and ``[[notify]]`` rules (which toolchains, which
endings, whom to mention)."""

from __future__ import annotations

from pathlib import Path

from ..config import Config, shown_url, url_problem
from ..errors import ConfigError
from ..records import field, record
from ..tools.versions import is_tool_name

# `typing` costs milliseconds at start-up; annotations alone never need it at run time.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

KINDS = ("dingtalk", "feishu", "wecom", "webhook")
EVENTS = ("failed", "timed_out", "succeeded", "recovered", "cancelled")
LANGUAGES = ("en", "zh_CN")
CHANNEL_KEYS = ("name", "kind", "url", "secret_file", "mention", "mention_all", "language")
RULE_KEYS = ("channels", "on", "toolchains", "mention")
DEFAULT_ON = ("failed", "timed_out", "recovered")


@record(frozen=True)
class Channel:
    name: str
    kind: str
    url: str
    secret: bytes = b""  # dingtalk and feishu sign with it; webhook signs its body with it
    mention: tuple[str, ...] = ()  # DingTalk: phone numbers or user ids; WeCom: user ids
    mention_all: bool = False
    language: str = "en"

    @property
    def shown(self) -> str:
        """The URL as messages show it: DingTalk's and WeCom's hold their access token."""
        base, _, query = shown_url(self.url).partition("?")
        return f"{base}?…" if query else base


@record(frozen=True)
class Rule:
    """``[[notify]]``: runs of these toolchains (all when empty) that end so tell these."""

    channels: tuple[str, ...]
    on: tuple[str, ...] = DEFAULT_ON
    toolchains: tuple[str, ...] = ()
    mention: tuple[str, ...] | None = None  # instead of the channel's own

    def matches(self, toolchain: str, event: str, *, adhoc: bool = False) -> bool:
        """``adhoc``: one tool run by itself (``exec``, ``/cmd``), told only when named."""
        if self.toolchains and toolchain not in self.toolchains:
            return False
        if adhoc and not self.toolchains:
            return False
        return event in self.on or (event == "recovered" and "succeeded" in self.on)


@record(frozen=True)
class Notifications:
    channels: dict[str, Channel] = field(default_factory=dict)
    rules: tuple[Rule, ...] = ()

    def targets(
        self, toolchain: str, event: str, *, adhoc: bool = False
    ) -> list[tuple[Channel, tuple[str, ...]]]:
        """The channels a run's ending goes to, each once, with whom to mention there."""
        found: dict[str, tuple[Channel, tuple[str, ...]]] = {}
        for rule in self.rules:
            if not rule.matches(toolchain, event, adhoc=adhoc):
                continue
            for name in rule.channels:
                channel = self.channels[name]
                found.setdefault(name, (channel, rule.mention or channel.mention))
        return list(found.values())


def notifications_from_config(config: Config) -> Notifications:
    """``[[channels]]`` and ``[[notify]]``; ConfigError names the table and field at fault."""
    channels: dict[str, Channel] = {}
    for index, raw in enumerate(config.tables.get("channels", [])):
        where = f"{config.path}: channels[{index}]"
        channel = _channel(raw, where, config.path.parent)
        if channel.name in channels:
            raise ConfigError(f"{where}: a second channel named {channel.name!r}")
        channels[channel.name] = channel
    rules = tuple(
        _rule(raw, f"{config.path}: notify[{index}]", channels)
        for index, raw in enumerate(config.tables.get("notify", []))
    )
    return Notifications(channels, rules)


def _strings(value: Any, where: str) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{where} must be a list of strings")
    return tuple(value)


def _channel(raw: dict[str, Any], where: str, base: Path) -> Channel:
    unknown = sorted(set(raw) - set(CHANNEL_KEYS))
    if unknown:
        raise ConfigError(f"{where}: unknown key {unknown[0]!r} (known: {', '.join(CHANNEL_KEYS)})")
    name, kind, url = raw.get("name"), raw.get("kind"), raw.get("url")
    if not isinstance(name, str) or not is_tool_name(name):
        raise ConfigError(f"{where}.name must be a simple name (letters, digits, '.', '_', '-')")
    if kind not in KINDS:
        raise ConfigError(f"{where}.kind must be one of {', '.join(KINDS)}")
    if not isinstance(url, str) or url_problem(url, credentials=True):
        problem = url_problem(url, credentials=True) if isinstance(url, str) else "is missing"
        raise ConfigError(f"{where}.url {problem} (the robot's webhook address)")
    secret = b""
    if "secret_file" in raw:
        path = Path(str(raw["secret_file"])).expanduser()
        path = path if path.is_absolute() else base / path
        try:
            secret = path.read_bytes().strip()
        except OSError as exc:
            raise ConfigError(f"{where}.secret_file: cannot read {path}: {exc.strerror}") from None
    elif kind == "webhook":
        raise ConfigError(f"{where}: a webhook channel needs secret_file, to sign what it sends")
    language = raw.get("language", "en")
    if language not in LANGUAGES:
        raise ConfigError(f"{where}.language must be one of {', '.join(LANGUAGES)}")
    mention_all = raw.get("mention_all", False)
    if not isinstance(mention_all, bool):
        raise ConfigError(f"{where}.mention_all must be true or false")
    mention = _strings(raw.get("mention", []), f"{where}.mention")
    return Channel(name, kind, url, secret, mention, mention_all, language)


def _rule(raw: dict[str, Any], where: str, channels: dict[str, Channel]) -> Rule:
    unknown = sorted(set(raw) - set(RULE_KEYS))
    if unknown:
        raise ConfigError(f"{where}: unknown key {unknown[0]!r} (known: {', '.join(RULE_KEYS)})")
    names = _strings(raw.get("channels", []), f"{where}.channels")
    if not names:
        raise ConfigError(f"{where}.channels must name at least one channel")
    for name in names:
        if name not in channels:
            known = ", ".join(channels) or "none: add [[channels]]"
            raise ConfigError(f"{where}.channels: no channel named {name!r} (known: {known})")
    on = _strings(raw.get("on", list(DEFAULT_ON)), f"{where}.on")
    for event in on:
        if event not in EVENTS:
            raise ConfigError(f"{where}.on: {event!r} is not one of {', '.join(EVENTS)}")
    toolchains = _strings(raw.get("toolchains", []), f"{where}.toolchains")
    mention = _strings(raw["mention"], f"{where}.mention") if "mention" in raw else None
    return Rule(names, on, toolchains, mention)
