"""``toolrun hook create|list|remove|sign``: the hooks in config.toml that other systems call
(``POST /hooks/NAME`` on a daemon)."""

from __future__ import annotations

import hashlib
import os
import secrets
import sys
from pathlib import Path
from typing import Any

from ..automation.hooks import KINDS, hook_from_table, hooks_from_config
from ..automation.signing import sign
from ..config import ConfigEditor
from ..errors import NotFoundError, StorageError, UsageError
from ..toolchains.model import parse_assignments
from .context import Context
from .output import info, print_json, print_table

HEADERS = {
    "github": "X-Hub-Signature-256",
    "gitlab": "X-Gitlab-Token",
    "toolrun": "X-Toolrun-Signature",
}


def create(
    ctx: Context,
    name: str,
    *,
    toolchain: str,
    secret_file: Path,
    kind: str = "github",
    params: list[str] | None = None,
    condition: str | None = None,
    max_parallel: int = 0,
) -> None:
    if kind not in KINDS:
        raise UsageError(f"--kind must be one of {', '.join(KINDS)}, not {kind!r}")
    entry: dict[str, Any] = {"name": name, "toolchain": toolchain, "kind": kind}
    if params:
        entry["params"] = parse_assignments(params)
    if condition:
        entry["if"] = condition
    if max_parallel:
        entry["max_parallel"] = max_parallel
    # What the daemon would refuse is refused now, before a secret is made that nobody sees.
    hook_from_table({**entry, "kind": "gitlab", "token_sha256": "0" * 64}, f"hook {name}", Path())
    ctx.load_toolchain(toolchain)
    if any(table.get("name") == name for table in ctx.config.tables.get("hooks", [])):
        raise UsageError(f"config.toml has a hook named {name!r} already; remove it first")
    secret, made = _secret(secret_file)
    if kind == "gitlab":
        # GitLab sends the token itself: a hash of it is enough to check it, as for tokens.
        entry["token_sha256"] = hashlib.sha256(secret).hexdigest()
    else:
        entry["secret_file"] = str(secret_file.resolve())
        hook_from_table(entry, f"hook {name}", Path())  # the secret itself: long enough?
    editor = ConfigEditor(ctx.paths.config_file)
    editor.add_named("hooks", entry)
    editor.save()
    info(f"hook {name}: POST /hooks/{name} on the daemon starts {toolchain}")
    if made:
        info(f"a new secret is in {secret_file} (only you can read it): {secret.decode()}")
    if kind == "github":
        info("GitHub: Settings > Webhooks > Add webhook; Payload URL .../hooks/" + name)
        info("  Content type application/json; Secret: the secret above")
    elif kind == "gitlab":
        info(f"GitLab: Settings > Webhooks; URL .../hooks/{name}; Secret token: the secret")
        info(f"  config.toml keeps only its sha256; {secret_file} may be deleted once set")
    else:
        info(f"callers sign with: toolrun hook sign {name} BODY_FILE (X-Toolrun-Signature)")


def _secret(path: Path) -> tuple[bytes, bool]:
    """The secret in ``path``, or a new one written there (0600) when it does not exist."""
    try:
        return path.read_bytes().strip(), False
    except FileNotFoundError:
        pass
    except OSError as exc:
        raise StorageError(f"cannot read {path}: {exc.strerror}") from None
    secret = secrets.token_urlsafe(32).encode()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "wb") as file:
            file.write(secret + b"\n")
    except OSError as exc:
        raise StorageError(f"cannot write {path}: {exc.strerror}") from None
    return secret, True


def list_hooks(ctx: Context, *, as_json: bool = False) -> None:
    hooks = hooks_from_config(ctx.config)
    rows: list[dict[str, Any]] = [
        {
            "name": hook.name,
            "toolchain": hook.toolchain,
            "kind": hook.kind,
            "header": HEADERS[hook.kind],
            "params": sorted(hook.params),
            "if": hook.condition_text or None,
            "max_parallel": hook.max_parallel or None,
        }
        for hook in hooks.values()
    ]
    if as_json:
        print_json(rows)
        return
    if not rows:
        info("no hooks: toolrun hook create NAME --toolchain X --secret-file FILE")
        return
    print_table(
        ["name", "toolchain", "kind", "if"],
        [[r["name"], r["toolchain"], r["kind"], r["if"] or "-"] for r in rows],
    )


def remove(ctx: Context, name: str) -> None:
    editor = ConfigEditor(ctx.paths.config_file)
    editor.remove_named("hooks", name)
    editor.save()
    info(f"removed hook {name}")


def sign_body(ctx: Context, name: str, body_file: str) -> None:
    """Print the X-Toolrun-Signature value for a body, for a caller such as curl."""
    hook = hooks_from_config(ctx.config).get(name)
    if hook is None:
        raise NotFoundError(f"no hook named {name!r}")
    if hook.kind != "toolrun":
        raise UsageError(f"hook {name!r} is a {hook.kind} hook: {hook.kind} signs its own")
    try:
        body = sys.stdin.buffer.read() if body_file == "-" else Path(body_file).read_bytes()
    except OSError as exc:
        raise UsageError(f"cannot read {body_file}: {exc.strerror}") from None
    print(sign(hook.secret, body))
