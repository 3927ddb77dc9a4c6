"""The console config file: parsing, the errors it gives, the flag merge, and live diffs."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from cotal_tui.commands.console import (
    UnknownTheme,
    file_theme,
    known_themes,
    register,
    run,
    session_options,
)
from cotal_tui.console.config import (
    ConsoleConfig,
    ConsoleConfigError,
    ConsoleFlags,
    config_path,
    effective,
    live_change,
    load_console_config,
    parse_console_config,
)


def test_camel_case_fields_parse_and_hash_is_stripped():
    cfg = parse_console_config(
        '{"theme": "nord", "name": "desk", "channels": ["#general", "ops", "general"],'
        ' "readOnly": true, "daemon": true}'
    )
    assert cfg == ConsoleConfig(
        theme="nord", name="desk", channels=("general", "ops"), read_only=True, daemon=True
    )


def test_empty_file_and_empty_object_are_defaults():
    assert parse_console_config("") == ConsoleConfig()
    assert parse_console_config("{}") == ConsoleConfig()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"channels": ["ok", "bad name"]}', 'channels: invalid channel "bad name"'),
        ('{"channels": ["team.>"]}', 'channels: "team.>" is a pattern'),
        ('{"readonly": true}', "readonly: unknown field (known: theme, name, channels, readOnly"),
        ('{"readOnly": "maybe"}', "readOnly: Input should be a valid boolean"),
        ('{"name": " padded"}', "name: invalid name"),
        ('{"name": "a/b"}', 'name: invalid name "a/b": "/" is reserved'),
        ('{"theme": "  "}', "theme: must be a theme name, not blank"),
        ('{"channels": "general"}', "channels: must be a list of channel names"),
        ("[1]", "must be a JSON object of settings"),
        ('{"theme": "nord",}', "not JSON (Expecting property name"),
    ],
)
def test_bad_files_name_the_field_and_the_rule(text: str, expected: str):
    with pytest.raises(ConsoleConfigError) as info:
        parse_console_config(text, "c.json")
    message = str(info.value)
    assert message.startswith("c.json: ") and expected in message, message
    assert "\n" not in message


def test_absent_default_is_defaults_but_absent_explicit_file_is_an_error(tmp_path: Path):
    path = config_path(None, tmp_path)
    assert path == tmp_path / "console.json"
    assert load_console_config(path, required=False) == (ConsoleConfig(), None)
    with pytest.raises(ConsoleConfigError, match="no such file"):
        load_console_config(tmp_path / "nope.json", required=True)


def test_flags_override_the_file_and_channels_add_up():
    cfg = ConsoleConfig(theme="nord", name="desk", channels=("general",))
    eff = effective(cfg, ConsoleFlags(theme="cotal-mono", channels=("#ops", "general")))
    assert (eff.theme, eff.name, eff.channels) == ("cotal-mono", "desk", ("general", "ops"))
    assert not eff.read_only and not eff.daemon
    assert effective(ConsoleConfig(), ConsoleFlags()).name == "operator"
    assert effective(ConsoleConfig(read_only=True), ConsoleFlags()).read_only


def test_live_change_joins_leaves_and_restart_only_fields():
    flags = ConsoleFlags(channels=("pinned",))
    old = effective(ConsoleConfig(theme="nord", channels=("general", "ops")), flags)
    new = effective(ConsoleConfig(channels=("ops", "dev"), name="x", daemon=True), flags)
    change = live_change(old, new)
    assert change.theme_changed and change.theme is None
    assert change.join == ("dev",) and change.leave == ("general",)
    assert change.restart_only == ("name", "daemon")
    assert live_change(old, old).empty
    dropped = effective(ConsoleConfig(), flags)
    assert "pinned" not in live_change(old, dropped).leave, "a --channel is never left by an edit"


def _args(tmp_path: Path, *argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers(dest="command"))
    return parser.parse_args(["console", "--state-dir", str(tmp_path), *argv])


def test_cli_reads_the_state_dir_file_and_flags_win(tmp_path: Path):
    (tmp_path / "console.json").write_text(
        '{"name": "desk", "channels": ["general"], "readOnly": true, "theme": "nord"}'
    )
    options = session_options(_args(tmp_path, "--name", "me", "--channel", "ops"))
    assert options.name == "me" and options.channels == ["general", "ops"] and options.read_only
    assert options.watch and options.config is not None
    assert options.config.path == tmp_path / "console.json"
    assert options.config.running.theme == "nord"


def test_cli_refuses_to_start_with_one_line_naming_the_field(tmp_path: Path, capsys):
    bad = tmp_path / "mine.json"
    bad.write_text('{"channels": ["a b"]}')
    assert run(_args(tmp_path, "--config", str(bad), "--plain")) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"cotal-tui console: {bad}: channels: invalid channel"), err
    assert "\n" not in err
    assert run(_args(tmp_path, "--config", str(tmp_path / "absent.json"), "--plain")) == 1
    assert "no such file" in capsys.readouterr().err


def test_a_theme_from_the_file_must_be_known_but_a_flag_wins(tmp_path: Path):
    (tmp_path / "console.json").write_text('{"theme": "no-such"}')
    options = session_options(_args(tmp_path))
    with pytest.raises(UnknownTheme, match=r"console.json: theme: 'no-such' is not a known theme"):
        file_theme(options, None)
    assert file_theme(options, "nord") == "nord"
    assert {"cotal-mono", "nord", "textual-dark"} <= known_themes()
    (tmp_path / "console.json").write_text('{"theme": "cotal-mono"}')
    assert file_theme(session_options(_args(tmp_path)), None) == "cotal-mono"
