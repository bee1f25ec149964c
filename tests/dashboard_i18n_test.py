"""Every string a person reads on the pages is in the Chinese catalog, translated, with the
same %(placeholders)s; and the catalog holds nothing the pages no longer say."""

from __future__ import annotations

import re
from pathlib import Path

from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po

DASHBOARD = Path(__file__).resolve().parent.parent / "src" / "toolrun" / "dashboard"
CATALOG = DASHBOARD / "locale" / "zh_CN" / "LC_MESSAGES" / "messages.po"
PLACEHOLDER = re.compile(r"%\(\w+\)s")


def said() -> dict[str, str]:
    """msgid -> where it is, from the templates and the Python that renders them."""
    found: dict[str, str] = {}
    for filename, lineno, message, _comments, _context in extract_from_dir(
        str(DASHBOARD),
        method_map=[("templates/**.html", "jinja2"), ("**.py", "python")],
        options_map={"templates/**.html": {"trim_blocks": "true", "lstrip_blocks": "true"}},
        keywords={"_": None, "N_": None},
    ):
        text = message if isinstance(message, str) else message[0]
        found.setdefault(text, f"{filename}:{lineno}")
    return found


def catalog() -> dict[str, str]:
    with CATALOG.open("rb") as file:
        return {str(m.id): str(m.string) for m in read_po(file) if m.id}


def test_every_string_shown_is_translated() -> None:
    strings, translated = said(), catalog()
    assert len(strings) > 100
    missing = [f"{where}: {text!r}" for text, where in strings.items() if not translated.get(text)]
    assert not missing, "not in messages.po (or untranslated):\n" + "\n".join(missing)
    for text, chinese in translated.items():
        assert sorted(PLACEHOLDER.findall(text)) == sorted(PLACEHOLDER.findall(chinese)), text


def test_the_catalog_holds_only_what_the_pages_say() -> None:
    stale = sorted(set(catalog()) - set(said()))
    assert not stale, f"in messages.po but said nowhere: {stale}"
