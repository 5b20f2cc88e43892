"""The command line's parser, in-process: help and a default for every option,
the short options, the app given where --access-log wanted a value, and the
sources put together (command line > environment > file > default)."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pytest

from wsgiserver.cli import build_parser, read_settings
from wsgiserver.options import OPTIONS
from wsgiserver.settings import COMMAND_LINE, DEFAULT, Setting

ROOT = Path(__file__).resolve().parents[2]
# Actions, not settings: they have help but nothing to default to.
ACTIONS = {"--help", "--version", "--print-config"}


def long_options(parser: argparse.ArgumentParser) -> set[str]:
    return {name for action in parser._actions for name in action.option_strings
            if name.startswith("--")}


@pytest.fixture(autouse=True)
def no_pyproject_here(tmp_path, monkeypatch):
    """Each test runs where no pyproject.toml has a [tool.wsgiserver] table."""
    monkeypatch.chdir(tmp_path)


def test_help_shows_a_default_for_every_option(monkeypatch):
    monkeypatch.setenv("COLUMNS", "400")  # no wrapping: one entry, one or two lines
    entries = re.split(r"\n(?=  [-A-Z])", build_parser().format_help())
    shown = {}
    for entry in entries:
        names = re.findall(r"(?:^|, )(--[a-z0-9-]+|MODULE:APP)", entry.strip().split("  ")[0])
        for name in names:
            shown[name] = " ".join(entry.split())
    expected = {option.flag for option in OPTIONS if option.name != "app"} | {"MODULE:APP"}
    assert expected <= set(shown)
    assert [name for name in sorted(expected) if "(default: " not in shown[name]] == []


def test_every_option_of_the_parser_has_help_and_every_setting_a_default():
    for action in build_parser()._actions:
        assert action.help, action.option_strings
        names = set(action.option_strings)
        if names and not names & ACTIONS:
            assert "(default: " in action.help, action.option_strings


def test_short_options_for_gunicorn_users():
    settings, _ = read_settings(["-b", "127.0.0.1:8000", "-b", "unix:/tmp/a.sock", "-w", "3",
                                 "mod:app"], environ={})
    assert settings["bind"] == Setting(("127.0.0.1:8000", "unix:/tmp/a.sock"), COMMAND_LINE)
    assert settings["workers"] == Setting(3, COMMAND_LINE)
    with pytest.raises(SystemExit):
        build_parser().parse_args(["-t", "5", "mod:app"])  # gunicorn's -t is a timeout


@pytest.mark.parametrize(
    ("argv", "app", "access_log"),
    [
        (["--access-log", "myapp:app"], "myapp:app", "-"),
        (["--access-log", "myapp:create_app()", "--threads", "2"], "myapp:create_app()", "-"),
        (["--access-log", "access.log", "myapp:app"], "myapp:app", "access.log"),
        (["--access-log", "-", "myapp:app"], "myapp:app", "-"),
        (["myapp:app", "--access-log"], "myapp:app", "-"),
        (["myapp:app"], "myapp:app", None),
    ],
)
def test_an_app_spec_after_access_log_is_the_app_when_no_other_is_given(argv, app, access_log):
    settings, _ = read_settings(argv, environ={})
    assert (settings["app"].value, settings["access-log"].value) == (app, access_log)


def test_a_file_named_like_a_spec_stays_the_log(tmp_path):
    (tmp_path / "logs:today").write_text("")
    settings, _ = read_settings(["--access-log", "logs:today"], environ={})
    assert (settings["app"].value, settings["access-log"].value) == (None, "logs:today")


def test_sources_in_order_of_precedence(tmp_path):
    (tmp_path / "site.toml").write_text("threads = 5\nworkers = 6\nbacklog = 7\n")
    environ = {"WSGISERVER_THREADS": "3", "WSGISERVER_WORKERS": "4",
               "WSGISERVER_CONFIG": "site.toml"}
    settings, print_config = read_settings(["--threads", "2", "mod:app"], environ=environ)
    assert settings["threads"] == Setting(2, COMMAND_LINE)
    assert settings["workers"] == Setting(4, "WSGISERVER_WORKERS")
    assert settings["backlog"] == Setting(7, "site.toml")
    assert settings["port"] == Setting(4221, DEFAULT)
    assert settings["config"].source == "WSGISERVER_CONFIG"
    assert print_config is False


def test_pyproject_is_read_only_without_a_config_file(tmp_path):
    (tmp_path / "pyproject.toml").write_text("[tool.wsgiserver]\napp = 'mod:app'\nthreads = 3\n")
    (tmp_path / "other.toml").write_text("workers = 2\n")
    settings, _ = read_settings([], environ={})
    assert settings["app"] == Setting("mod:app", "pyproject.toml [tool.wsgiserver]")
    settings, _ = read_settings(["--config", "other.toml"], environ={})
    assert (settings["app"].value, settings["threads"].value, settings["workers"].value) == (
        None, 8, 2)


def test_readme_option_table_and_parser_name_the_same_options():
    readme = (ROOT / "README.md").read_text()
    table = readme.split("| option | default | meaning |", 1)[1].split("\n\n", 1)[0]
    in_readme = {name for row in table.splitlines()
                 for name in re.findall(r"`(--[a-z0-9-]+)", row.split("|")[1] if "|" in row else "")}
    assert in_readme, "the README's option table was not found"
    parser = long_options(build_parser())
    assert sorted(parser - in_readme) == [], "options missing from the README"
    assert sorted(in_readme - parser) == [], "README options the parser does not have"
