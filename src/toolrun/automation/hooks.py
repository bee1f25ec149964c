"""Hooks: other systems (a git or SVN server, a chat bot) start a toolchain with
``POST /hooks/NAME``, signed, so the signature is the caller's authentication.

Three schemes, each checked in constant time:

- ``github``: ``X-Hub-Signature-256: sha256=HEX``, HMAC-SHA256 of the body with the secret.
- ``gitlab``: ``X-Gitlab-Token: TOKEN``, the token itself: config.toml keeps only its sha256.
- ``toolrun``: ``X-Toolrun-Signature: t=UNIX,v1=HEX``, HMAC-SHA256 of ``"{t}."`` and the body;
  older than the replay window (or that far ahead) is refused, and so is a signature seen before.

A delivery identified once (GitHub's ``X-GitHub-Delivery``, GitLab's ``X-Gitlab-Event-UUID``,
toolrun's signature) is refused if it comes again. The payload (JSON or a form), the headers
and the query become params through ``${{ }}`` expressions, and ``if:`` decides whether the
hook runs at all. Pure logic: the daemon reads the body and starts the run (daemon/hooks_api.py).
"""

from __future__ import annotations

import hashlib
import hmac
import json
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

from ..config import Config
from ..errors import ConfigError
from ..records import field, record
from ..toolchains.expressions import (
    Context,
    ExpressionError,
    Template,
    parse_condition,
    parse_template,
    paths,
    truthy,
)
from ..tools.versions import is_tool_name
from . import signing

KINDS = ("github", "gitlab", "toolrun")
CONFIG_KEYS = (
    "name",
    "toolchain",
    "kind",
    "secret_file",
    "token_sha256",
    "params",
    "if",
    "max_parallel",
)
REPLAY_WINDOW = 300.0  # seconds a toolrun signature's time may be from the daemon's
DELIVERIES_KEPT = 7 * 86400.0  # how long a delivery's id is remembered, to refuse it again
MAX_BODY = 5 * 1024 * 1024  # GitHub's pushes are rarely past 1 MB; 25 MB is its own ceiling
CONTEXT_NAMES = ("payload", "headers", "query", "hook")


class Refused(Exception):
    """A delivery refused; ``status`` is the HTTP answer (401 for a bad signature)."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


@record(frozen=True)
class Hook:
    name: str
    toolchain: str
    kind: str = "toolrun"
    secret: bytes = b""  # github and toolrun: the shared secret (from secret_file)
    token_sha256: str = ""  # gitlab: only the token's hash is kept
    params: dict[str, Template] = field(default_factory=dict)
    condition: Template | None = None
    condition_text: str = ""
    max_parallel: int = 0  # runs of this hook going at once; 0: no limit of its own


def hooks_from_config(config: Config) -> dict[str, Hook]:
    """config.toml's ``[[hooks]]``, secrets read; ConfigError names the table and field."""
    hooks: dict[str, Hook] = {}
    for index, raw in enumerate(config.tables.get("hooks", [])):
        hook = hook_from_table(raw, f"{config.path}: hooks[{index}]", config.path.parent)
        if hook.name in hooks:
            raise ConfigError(f"{config.path}: hooks[{index}]: a second hook named {hook.name!r}")
        hooks[hook.name] = hook
    return hooks


def hook_from_table(raw: dict[str, Any], where: str, base: Path) -> Hook:
    unknown = sorted(set(raw) - set(CONFIG_KEYS))
    if unknown:
        raise ConfigError(f"{where}: unknown key {unknown[0]!r} (known: {', '.join(CONFIG_KEYS)})")
    name, toolchain, kind = raw.get("name"), raw.get("toolchain"), raw.get("kind", "toolrun")
    if not isinstance(name, str) or not is_tool_name(name):
        raise ConfigError(f"{where}.name must be a simple name (letters, digits, '.', '_', '-')")
    if not isinstance(toolchain, str) or not is_tool_name(toolchain):
        raise ConfigError(f"{where}.toolchain must be a toolchain's name")
    if kind not in KINDS:
        raise ConfigError(f"{where}.kind must be one of {', '.join(KINDS)}")
    secret, token_sha256 = b"", ""
    if kind == "gitlab":
        token_sha256 = str(raw.get("token_sha256", ""))
        if len(token_sha256) != 64 or not all(c in "0123456789abcdef" for c in token_sha256):
            raise ConfigError(
                f"{where}.token_sha256 must be the 64 hex digits of the token's sha256",
                hint=f"toolrun hook create {name} --kind gitlab --secret-file FILE writes it",
            )
    else:
        secret = _read_secret(raw.get("secret_file"), f"{where}.secret_file", base)
    params: dict[str, Template] = {}
    for key, value in dict(raw.get("params", {})).items():
        try:
            params[str(key)] = parse_template(str(value))
        except ExpressionError as exc:
            raise ConfigError(
                f"{where}.params.{key}: bad expression: {exc.message} "
                f"(at character {exc.column + 1})"
            ) from None
    condition = None
    text = raw.get("if")
    if text is not None:
        try:
            condition = parse_condition(str(text))
        except ExpressionError as exc:
            raise ConfigError(
                f"{where}.if: bad expression: {exc.message} (at character {exc.column + 1})"
            ) from None
    for template in [*params.values(), *([condition] if condition else [])]:
        for node in template.nodes():
            for path in paths(node):
                if path[0] not in CONTEXT_NAMES:
                    raise ConfigError(
                        f"{where}: an expression reads {'.'.join(path)!r}; hooks can read "
                        f"{', '.join(CONTEXT_NAMES)}"
                    )
    limit = raw.get("max_parallel", 0)
    if not isinstance(limit, int) or isinstance(limit, bool) or limit < 0:
        raise ConfigError(f"{where}.max_parallel must be a whole number (0: no limit)")
    return Hook(
        name,
        toolchain,
        kind,
        secret,
        token_sha256,
        params,
        condition,
        str(text or ""),
        limit,
    )


def _read_secret(value: object, where: str, base: Path) -> bytes:
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{where} must name the file holding the hook's secret")
    path = Path(value).expanduser()
    path = path if path.is_absolute() else base / path
    try:
        secret = path.read_bytes().strip()
    except OSError as exc:
        raise ConfigError(f"{where}: cannot read {path}: {exc.strerror}") from None
    if len(secret) < 16:
        raise ConfigError(f"{where}: {path} holds a secret of {len(secret)} bytes; use 16 or more")
    return secret


# -- signatures -------------------------------------------------------------------------------


def verify(hook: Hook, headers: dict[str, str], body: bytes, now: float) -> str:
    """The delivery's identity (to refuse it again) when its signature holds; Refused if not.

    ``headers`` has lower-case names."""
    if hook.kind == "github":
        given = headers.get("x-hub-signature-256", "")
        if not given:
            raise _unsigned("X-Hub-Signature-256")
        expected = "sha256=" + hmac.new(hook.secret, body, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(given.encode(), expected.encode()):
            raise _forged("X-Hub-Signature-256")
        return headers.get("x-github-delivery") or given
    if hook.kind == "gitlab":
        given = headers.get("x-gitlab-token", "")
        if not given:
            raise _unsigned("X-Gitlab-Token")
        digest = hashlib.sha256(given.encode()).hexdigest()
        if not hmac.compare_digest(digest, hook.token_sha256):
            raise _forged("X-Gitlab-Token")
        return headers.get("x-gitlab-event-uuid") or headers.get("idempotency-key") or ""
    given = headers.get("x-toolrun-signature", "")
    if not given:
        raise _unsigned("X-Toolrun-Signature")
    parts = dict(part.partition("=")[::2] for part in given.split(","))
    stamp, given_mac = parts.get("t", ""), parts.get("v1", "")
    if not (stamp.isascii() and stamp.isdigit() and len(stamp) <= 12 and given_mac):
        raise Refused(
            401, "bad_signature", "X-Toolrun-Signature must read t=UNIX_SECONDS,v1=HEX_HMAC"
        )
    expected = signing.mac(hook.secret, stamp, body)
    if not hmac.compare_digest(given_mac.encode(), expected.encode()):
        raise _forged("X-Toolrun-Signature")
    if abs(now - int(stamp)) > REPLAY_WINDOW:
        raise Refused(
            401,
            "replayed",
            f"X-Toolrun-Signature was made at {stamp}, {abs(now - int(stamp)):.0f} s from now; "
            f"signatures are taken for {REPLAY_WINDOW:.0f} s (is a clock wrong?)",
        )
    return given


def delivery_key(identity: str) -> str:
    return hashlib.sha256(identity.encode()).hexdigest()


def _unsigned(header: str) -> Refused:
    return Refused(401, "unsigned", f"this hook needs a {header} header")


def _forged(header: str) -> Refused:
    return Refused(401, "bad_signature", f"{header} does not match this hook's secret")


# -- the payload ------------------------------------------------------------------------------


def payload_of(body: bytes, content_type: str) -> Any:
    """A JSON body, or a form (GitHub's form posts carry the JSON in ``payload=``)."""
    media = content_type.split(";", 1)[0].strip().lower()
    if not body.strip():
        return {}
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise Refused(400, "bad_request", f"the payload is not UTF-8 (byte {exc.start})") from None
    if media == "application/x-www-form-urlencoded":
        form = dict(parse_qsl(text, keep_blank_values=True))
        if set(form) == {"payload"}:
            text = form["payload"]
        else:
            return form
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        raise Refused(
            400, "bad_request", "the payload must be JSON, or a form (x-www-form-urlencoded)"
        ) from None


# What an expression may not read of a delivery: a secret would end up in a run's params.
SECRET_HEADERS = (
    "authorization",
    "cookie",
    "x-gitlab-token",
    "x-hub-signature",
    "x-hub-signature-256",
    "x-toolrun-signature",
)


def context_of(hook: Hook, payload: Any, headers: dict[str, str], query: dict[str, str]) -> Context:
    shown = {name: value for name, value in headers.items() if name not in SECRET_HEADERS}
    return Context(
        {"payload": payload, "headers": shown, "query": query, "hook": {"name": hook.name}}
    )


def should_run(hook: Hook, context: Context) -> tuple[bool, str]:
    """Whether the hook's ``if:`` holds for this delivery, and why not."""
    if hook.condition is None:
        return True, ""
    if truthy(hook.condition.evaluate_single(context)):
        return True, ""
    return False, f"if: {hook.condition_text} is false for this delivery"


def params_of(hook: Hook, context: Context) -> dict[str, str]:
    """The hook's params, each expression read from the delivery; a missing field reads as
    the empty string, as in GitHub Actions."""
    return {name: template.render(context) for name, template in hook.params.items()}
