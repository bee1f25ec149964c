"""Templates to HTML: one Jinja2 environment, escaping on, and the filters the pages share.

Times are written in UTC inside ``<time datetime=...>``; the page's script shows them in the
viewer's own time zone (without scripts they read as UTC, and say so).
"""

from __future__ import annotations

import datetime
import functools
from typing import TYPE_CHECKING, Any

from ..runs.event_text import format_duration, shown_value
from . import i18n

if TYPE_CHECKING:
    import jinja2

    from .pages import Viewer


@functools.cache
def environment() -> jinja2.Environment:
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.PackageLoader("toolrun.dashboard", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["when"] = when
    env.filters["duration"] = lambda seconds: format_duration(seconds) if seconds else "-"
    env.filters["short"] = lambda digest: (digest or "")[:12]
    env.filters["size"] = size
    env.filters["value"] = shown_value
    return env


def when(seconds: float | None) -> Any:
    from markupsafe import Markup, escape

    if not seconds:
        return "-"
    moment = datetime.datetime.fromtimestamp(seconds, datetime.UTC)
    shown = moment.strftime("%Y-%m-%d %H:%M:%S UTC")
    return Markup('<time datetime="{}">{}</time>').format(
        escape(moment.isoformat(timespec="seconds")), escape(shown)
    )


def size(count: int | None) -> str:
    from ..units import format_size

    return format_size(count or 0)


def render_page(template: str, viewer: Viewer, **values: Any) -> str:
    return (
        environment()
        .get_template(template)
        .render(
            _=viewer._,
            viewer=viewer,
            caller=viewer.caller,
            languages=i18n.LANGUAGES,
            **values,
        )
    )
