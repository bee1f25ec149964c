"""The pages' languages: English as written in the templates and code, Simplified Chinese from
a gettext catalog (locale/zh_CN/LC_MESSAGES/messages.po, read with Babel when first needed).

A viewer's language is the one they chose on a page (``?lang=``, then kept in a cookie), else
the first their browser asks for (``Accept-Language``) that toolrun has, else English.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path

LANGUAGES = {"en": "English", "zh_CN": "简体中文"}
DEFAULT = "en"
LOCALE_DIR = Path(__file__).resolve().parent / "locale"

Translate = Callable[..., str]


def N_(text: str) -> str:
    """Marks a word the pages translate from a value (``_(run.status)``), for the catalog."""
    return text


# Values the pages show translated: states, origins, parameter types, filter names.
SHOWN_VALUES = (
    *(N_("queued"), N_("running"), N_("succeeded"), N_("failed"), N_("cancelled")),
    *(
        N_("paused"),
        N_("timed_out"),
        N_("interrupted"),
        N_("pending"),
        N_("skipped"),
        N_("worker_lost"),
    ),
    *(N_("cli"), N_("daemon"), N_("schedule"), N_("hook")),
    *(N_("string"), N_("integer"), N_("number"), N_("boolean")),
    *(N_("Status"), N_("Since"), N_("Until")),
)


def choose(chosen: str | None, accept_language: str | None) -> str:
    """The language to answer in: one chosen on a page, else the browser's preference."""
    if chosen in LANGUAGES:
        return chosen
    for wanted in _preferences(accept_language or ""):
        tag = wanted.replace("-", "_").lower()
        if tag.startswith("zh"):
            # Traditional-script locales still read Simplified better than English.
            return "zh_CN"
        if tag.startswith("en"):
            return "en"
    return DEFAULT


def _preferences(header: str) -> list[str]:
    """Accept-Language's tags, most wanted first (q=0 means not at all)."""
    ranked: list[tuple[float, int, str]] = []
    for index, part in enumerate(header.split(",")[:20]):
        tag, _, params = part.strip().partition(";")
        quality = 1.0
        if params.strip().startswith("q="):
            try:
                quality = float(params.strip()[2:])
            except ValueError:
                quality = 0.0
        if tag and quality > 0:
            ranked.append((-quality, index, tag.strip()))
    return [tag for _, _, tag in sorted(ranked)]


@functools.cache
def catalog(language: str) -> dict[str, str]:
    """msgid -> msgstr of a language's catalog (empty for English, the source)."""
    if language == DEFAULT:
        return {}
    from babel.messages.pofile import read_po

    path = LOCALE_DIR / language / "LC_MESSAGES" / "messages.po"
    with path.open("rb") as file:
        messages = read_po(file, locale=language)
    return {
        str(message.id): str(message.string)
        for message in messages
        if message.id and message.string and not message.fuzzy
    }


def translator(language: str) -> Translate:
    """``_("Run %(id)s", id=...)``: the text in ``language``, values put in after."""
    table = catalog(language)

    def translate(text: str, **values: object) -> str:
        found = table.get(text, text)
        return found % values if values else found

    return translate
