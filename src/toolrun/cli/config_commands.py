"""``toolrun config ...``: where the config is, and reading or changing one key."""

from __future__ import annotations

from ..config import SETTINGS, ConfigEditor
from .context import Context
from .output import info, print_table


def path(ctx: Context) -> None:
    info(str(ctx.paths.config_file))


def get(ctx: Context, key: str | None) -> None:
    config = ctx.config
    if key is None:
        print_table(
            ["key", "value", "default", "meaning"],
            [
                [name, _show(config.get(name)), _show(s.default), s.help]
                for name, s in SETTINGS.items()
            ],
        )
        return
    info(_show(config.get(key)))


def set_(ctx: Context, key: str, value: str) -> None:
    editor = ConfigEditor(ctx.paths.config_file)
    stored = editor.set(key, value)
    editor.save()
    info(f"{key} = {_show(stored)}")


def unset(ctx: Context, key: str) -> None:
    editor = ConfigEditor(ctx.paths.config_file)
    editor.unset(key)
    editor.save()
    info(f"{key} reset to its default")


def _show(value: object) -> str:
    if isinstance(value, tuple | list):
        return ", ".join(map(_show, value)) or "(none)"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)
