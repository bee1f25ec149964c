"""config.toml (config.py): read with a message naming the file and the key for anything wrong,
its reading reused while the file is unchanged, and edited in place keeping comments."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from toolrun.config import ConfigEditor, TokenRef, load_config, shown_url, url_problem
from toolrun.errors import ConfigError, NotFoundError, UsageError


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_a_missing_file_is_the_defaults(tmp_path: Path) -> None:
    config = load_config(tmp_path / "config.toml")
    assert config.get("kill_grace") == 5.0 and config.get("offline") is False
    assert config.registry_timeout == 10.0 and config.registries == () and config.tokens == ()
    with pytest.raises(UsageError, match="did you mean 'offline'"):
        config.get("ofline")


def test_values_are_parsed_by_their_setting(tmp_path: Path) -> None:
    path = write(
        tmp_path / "config.toml",
        'kill_grace = "2m"\nregistry_cache = 0\noutput_cap = "100MB"\noffline = true\n'
        'accept_env = ["GAME_*", "LANG"]\nallow_hosts = "build.example, .corp.example"\n'
        '[[registries]]\nname = "team"\nlocation = "https://tools.example/registry/"\n',
    )
    config = load_config(path)
    assert config.get("kill_grace") == 120.0 and config.get("registry_cache") == 0.0
    assert config.get("output_cap") == 100 * 1024**2 and config.get("offline") is True
    assert config.get("accept_env") == ("GAME_*", "LANG")
    assert config.get("allow_hosts") == ("build.example", ".corp.example")
    (registry,) = config.registries
    assert registry.name == "team" and registry.is_http


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("ofline = true\n", "unknown key 'ofline' (did you mean 'offline'?)"),
        ('kill_grace = "soon"\n', "key 'kill_grace' must be a duration such as 30s"),
        ("output_cap = -1\n", "key 'output_cap' must be a size"),
        ('registries = "team"\n', "'registries' must be an array of tables"),
        ('[[registries]]\nname = "a b"\nlocation = "x"\n', "registries[0]: 'name'"),
        ('[[registries]]\nname = "t"\n', "registries[0]: 'location'"),
        (
            '[[registries]]\nname = "t"\nlocation = "https://me:secret@tools.example/"\n',
            "'https://me:***@tools.example/' holds a user name or password",
        ),
        ('[[tokens]]\nname = "ci"\nsha256 = "ab"\n', "tokens[0]: 'sha256' must be 64 hex"),
        (
            f'[[tokens]]\nname = "ci"\nsha256 = "{"a" * 64}"\nscope = "root"\n',
            "tokens[0]: 'scope' must be one of read, run, admin",
        ),
        ("kill_grace = \n", "not valid TOML"),
    ],
)
def test_what_is_wrong_is_named_with_the_file(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path / "config.toml", text)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert caught.value.message.startswith(str(path)) and message in caught.value.message
    assert "secret" not in caught.value.message


def test_a_file_that_is_not_utf8_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_bytes(b"offline = true\n# \xff\n")
    with pytest.raises(ConfigError, match=r"config.toml:2: not UTF-8 text \(byte 0xff\)"):
        load_config(path)


def test_the_reading_is_reused_while_the_file_is_unchanged(tmp_path: Path) -> None:
    path = write(tmp_path / "config.toml", "kill_grace = 7\n")
    cache = tmp_path / "cache"
    assert load_config(path, cache_dir=cache).get("kill_grace") == 7.0
    kept = cache / "config.json"
    assert kept.is_file()
    saved = json.loads(kept.read_text())
    saved["data"]["kill_grace"] = 9  # a kept reading is used as it is: this shows it was
    kept.write_text(json.dumps(saved))
    assert load_config(path, cache_dir=cache).get("kill_grace") == 9.0
    write(path, "kill_grace = 8\n")  # the file changed: read again
    assert load_config(path, cache_dir=cache).get("kill_grace") == 8.0


def test_edits_keep_comments_and_refuse_what_would_not_load(tmp_path: Path) -> None:
    path = write(tmp_path / "config.toml", "# our build farm\nkill_grace = 5  # seconds\n")
    editor = ConfigEditor(path)
    assert editor.set("kill_grace", "1m") == 60.0
    editor.set("accept_env", "GAME_*,LANG")
    editor.add_registry("team", "/srv/registry")
    editor.add_token(TokenRef("ci", "c" * 64, "read", ("export-job",), "2026-12-03"))
    editor.save()
    text = path.read_text(encoding="utf-8")
    assert text.startswith("# our build farm\n")
    config = load_config(path)
    assert config.get("kill_grace") == 60.0 and config.get("accept_env") == ("GAME_*", "LANG")
    assert [r.name for r in config.registries] == ["team"]
    assert config.tokens[0].allow == ("export-job",) and config.tokens[0].scope == "read"
    with pytest.raises(UsageError, match="already configured"):
        editor.add_registry("team", "/elsewhere")
    with pytest.raises(UsageError, match="must be a duration"):
        editor.set("kill_grace", "0")
    editor = ConfigEditor(path)
    editor.remove_registry("team")
    editor.remove_token("ci")
    editor.unset("kill_grace")
    editor.save()
    config = load_config(path)
    assert config.registries == () and config.tokens == () and config.get("kill_grace") == 5.0
    with pytest.raises(NotFoundError, match="no registry named 'team'"):
        ConfigEditor(path).remove_registry("team")


def test_urls_a_registry_can_be_asked_at() -> None:
    assert url_problem("https://tools.example/registry/") is None
    assert url_problem("ftp://tools.example/") == "needs http:// or https:// and a host"
    assert url_problem("https://tools.example/a b") is not None
    assert url_problem("https://tools.example:99999/") is not None
    assert url_problem("https://u:p@tools.example/") is not None
    assert url_problem("https://u:p@tools.example/", credentials=True) is None
    assert shown_url("https://u:p@tools.example/x") == "https://u:***@tools.example/x"
    assert shown_url("https://tools.example/x") == "https://tools.example/x"
