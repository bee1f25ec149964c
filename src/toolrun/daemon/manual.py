"""``/result/help``: the HTTP manual (docs/http-api.md) as one self-contained HTML page.

The wheel carries the Markdown inside the package; a checkout reads it from docs/. It is
rendered once, at the first request, with markdown-it (already installed as rich's parser).
"""

from __future__ import annotations

import functools
import html
from pathlib import Path

STYLE = """
body { font: 15px/1.5 system-ui, sans-serif; max-width: 60rem; margin: 2rem auto; padding: 0 1rem;
       color: #222; }
code, pre { font: 13px ui-monospace, monospace; background: #f4f4f4; }
pre { padding: .75rem; overflow-x: auto; }
table { border-collapse: collapse; } td, th { border: 1px solid #ccc; padding: .25rem .5rem; }
h1, h2, h3 { line-height: 1.2; }
"""


def manual_path() -> Path:
    packaged = Path(__file__).with_name("http-api.md")
    if packaged.is_file():
        return packaged
    return Path(__file__).resolve().parents[3] / "docs" / "http-api.md"


@functools.cache
def manual_html() -> str:
    from markdown_it import MarkdownIt

    try:
        text = manual_path().read_text(encoding="utf-8")
    except OSError:
        text = "# toolrun HTTP API\n\nThe manual is missing from this installation."
    body = MarkdownIt("commonmark", {"html": False}).enable("table").render(text)
    return (
        "<!doctype html>\n<html lang=en><head><meta charset=utf-8>"
        f"<title>{html.escape('toolrun HTTP API')}</title><style>{STYLE}</style></head>"
        f"<body>{body}</body></html>\n"
    )
