"""``wsgiserver MODULE:APP [options]``: settings -> ServerConfig -> serve().

Owns the argument parser (built from the option table), putting the command
line, the environment and a TOML file together in that order of precedence,
and turning every user mistake into one line on stderr and exit status 2,
never a traceback. What each option means is the table's (options.py);
where values come from, settings.py's; loading the application, appspec.py's.
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import logging
import os
import re
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NoReturn

from . import __version__, build
from .accesslog import LOGGING_TARGET
from .appspec import AppSpecError, load_app, load_hook, parse_spec
from .hooks import WorkerHooks
from .options import BY_NAME, OPTIONS, Kind, Option, Where, show_default
from .reload import CHILD_VARIABLE
from .runner import apply_log_config, configure_logging, serve, supervised
from .settings import (
    COMMAND_LINE,
    DEFAULT,
    Setting,
    SettingsError,
    from_environment,
    from_file,
    from_pyproject,
    render,
    resolve,
    server_config,
    without_effect,
)
from .stopsignals import StopSignals

__all__ = ["main", "build_parser", "read_settings", "load_app"]

log = logging.getLogger("wsgiserver")

_EPILOG = """\
Every option can also be given as an environment variable WSGISERVER_<OPTION>
(WSGISERVER_THREADS=16, WSGISERVER_ACCESS_LOG_JSON=true) or as a key in a
TOML file (--config FILE, else [tool.wsgiserver] of ./pyproject.toml):
threads = 16, max-body-bytes = 1048576. The command line wins over the
environment, the environment over the file. --print-config shows the result.
"""


class UsageError(Exception):
    """A mistake of the user's, reported as one line."""


# gunicorn's and uvicorn's names for what ours are called otherwise.
_THEIR_NAMES = {
    "--timeout": "--worker-timeout, or --keepalive-timeout",
    "--graceful-timeout": "--shutdown-timeout",
    "--keep-alive": "--keepalive-timeout",
    "--keepalive": "--keepalive-timeout",
    "--access-logfile": "--access-log",
    "--error-logfile": "the server's log goes to stderr (--log-level)",
    "--bind-address": "--bind",
    "--limit-request-line": "--max-request-line",
    "--limit-request-fields": "--max-header-count",
    "--preload": "the app is always imported before workers fork",
}


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # one line, exit status 2
        self.exit(2, f"{self.prog}: error: {_with_hint(self, message)}\n")


def _with_hint(parser: argparse.ArgumentParser, message: str) -> str:
    """An unknown option's message, with the option meant: gunicorn's name
    for it, or the nearest of ours."""
    found = re.match(r"unrecognized arguments: (\S+)", message)
    if found is None:
        return message
    given = found.group(1).split("=", 1)[0]
    if given in _THEIR_NAMES:
        return f"{message} (wsgiserver calls it {_THEIR_NAMES[given]})"
    ours = [flag for action in parser._actions for flag in action.option_strings]
    nearest = difflib.get_close_matches(given, ours, n=1, cutoff=0.6)
    hint = f"did you mean {nearest[0]}? " if nearest else ""
    return f"{message} ({hint}see --help)"


def build_parser() -> argparse.ArgumentParser:
    """The command line parser: an option for every entry of the table.

    Nothing has a default here (``SUPPRESS``), so what the parser returns is
    exactly what was given; the defaults come last, in settings.resolve().
    """
    parser = _Parser(prog="wsgiserver",
                     description="Serve a WSGI application over HTTP/1.1 and HTTP/2.",
                     argument_default=argparse.SUPPRESS, epilog=_EPILOG, allow_abbrev=False,
                     formatter_class=argparse.RawDescriptionHelpFormatter)
    app = BY_NAME["app"]
    # None, not SUPPRESS: argparse passes a missing positional's default
    # through its type; _command_line drops it.
    parser.add_argument("app", nargs="?", default=None, metavar=app.metavar,
                        type=_argparse_type(app), help=_help(app))
    groups: dict[str, Any] = {}
    for option in OPTIONS:
        if option is app or Where.COMMAND_LINE not in option.where:
            continue
        if option.group not in groups:
            groups[option.group] = parser.add_argument_group(option.group)
        _add_option(groups[option.group], option)
    program = groups["the program"]
    program.add_argument("--print-config", action="store_true",
                         help="print the settings, each with where it came from, and exit")

    program.add_argument("--version", action="version",
                         version=f"wsgiserver {__version__} ({build.describe()})")
    return parser


def _add_option(group: Any, option: Option) -> None:
    names = [option.short, option.flag] if option.short else [option.flag]
    details: dict[str, Any] = {"dest": option.dest, "help": _help(option)}
    if option.kind is Kind.FLAG:
        group.add_argument(*names, action="store_true", **details)
        return
    details.update(type=_argparse_type(option), metavar=option.metavar)
    if option.kind is Kind.LIST:
        details["action"] = "append"
    elif option.kind is Kind.OPTIONAL_VALUE:
        details.update(nargs="?", const=option.const)
    group.add_argument(*names, **details)


def _help(option: Option) -> str:
    text = f"{option.help} (default: {show_default(option)})"
    return text.replace("%", "%%")  # argparse formats help with %


def _argparse_type(option: Option) -> Callable[[str], Any]:
    """The option's converter, its ValueError as argparse's one-line error."""

    def convert(text: str) -> Any:
        try:
            return option.convert(text)
        except ValueError as error:
            raise argparse.ArgumentTypeError(str(error)) from None

    convert.__name__ = option.name  # argparse names it in some messages
    return convert


def read_settings(argv: Sequence[str] | None = None,
                  environ: Mapping[str, str] | None = None) -> tuple[dict[str, Setting], bool]:
    """Every setting with its source, and whether --print-config was given.

    Precedence: command line, then ``WSGISERVER_*`` variables, then the
    file (--config, WSGISERVER_CONFIG, or ./pyproject.toml), then defaults.
    """
    parser = build_parser()
    arguments = list(sys.argv[1:] if argv is None else argv)
    for argument in arguments:  # before argparse, which may blame a positional first
        if argument == "--":
            break
        known = parser._option_string_actions
        if argument.startswith("--") and argument.split("=", 1)[0] not in known:
            parser.error(f"unrecognized arguments: {argument}")
    given = vars(parser.parse_args(arguments))
    print_config = bool(given.pop("print_config", False))

    command_line = _command_line(given)
    environment = from_environment(os.environ if environ is None else environ)
    config = command_line.get("config") or environment.get("config")
    file = from_file(config.value) if config else from_pyproject(os.getcwd())
    return resolve(command_line, environment, file), print_config


def _command_line(given: Mapping[str, Any]) -> dict[str, Setting]:
    layer: dict[str, Setting] = {}
    for option in OPTIONS:
        value = given.get(option.dest)
        if value is not None:
            if option.kind is Kind.LIST:  # one tuple per occurrence
                value = tuple(item for items in value for item in items)
            layer[option.name] = Setting(value, COMMAND_LINE)
    _app_after_optional_value(layer)
    return layer


def _app_after_optional_value(layer: dict[str, Setting]) -> None:
    """``wsgiserver --access-log myapp:app``: the option took the app as its
    value. With no other app given, and a value that is a spec and no file,
    the user meant the app, and the option without a value."""
    if "app" in layer:
        return
    for option in OPTIONS:
        setting = layer.get(option.name)
        if option.kind is Kind.OPTIONAL_VALUE and setting is not None \
                and _is_spec(setting.value):
            layer["app"] = Setting(setting.value, COMMAND_LINE)
            layer[option.name] = Setting(option.const, COMMAND_LINE)
            return


def _is_spec(text: str) -> bool:
    try:
        parse_spec(text)
    except AppSpecError:
        return False
    return not os.path.exists(text)


def main(argv: Sequence[str] | None = None, signals: StopSignals | None = None) -> int:
    """Run the server; the process's exit status. ``signals``: handlers the
    entry point (command.py) installed before importing this module."""
    # Handlers first: a stop asked for while the application is imported is
    # honoured once there is a server to stop, instead of a traceback.
    if signals is None:
        signals = StopSignals()
        signals.install()
    try:
        settings, print_config = read_settings(argv)
        config = server_config(settings)
        if print_config:
            sys.stdout.write(render(settings))
            return 0
        spec = settings["app"].value
        if spec is None:
            raise UsageError("no application: give MODULE:APP (or WSGISERVER_APP, or app in "
                             "the config file); see --help")
        configure_logging(settings["log-level"].value, config.workers)
        log_config = settings["log-config"].value
        if log_config is not None and apply_log_config(log_config) and \
                settings["access-log"].source == DEFAULT:
            # The file routes access lines somewhere: they are on, through it.
            config = dataclasses.replace(config, access_log=LOGGING_TARGET)
        for line in without_effect(config, settings):
            log.warning("%s", line)
        hooks = _worker_hooks(spec, config, settings)
        if settings["reload"].value and not os.environ.get(CHILD_VARIABLE) and \
                not settings["check-config"].value:
            # The child imports the app: one broken now is watched until it
            # is fixed (the child fails, the next change restarts it).
            parse_spec(spec)  # a spec that cannot even be read is one line now
            return 0 if signals.requested else _run_reloading(spec, argv)
        # With --worker-import under the supervisor, the workers import it.
        app = load_app(spec) if hooks.load is None or settings["check-config"].value else None
        if settings["check-config"].value:
            print(f"wsgiserver: configuration OK: {spec} loaded, {len(settings)} settings "
                  f"resolved", file=sys.stderr)
            return 0
        return serve(app, config, signals=signals, pid_file=settings["pid"].value,
                     announce=_startup_line(spec, config, settings), hooks=hooks)
    except AppSpecError as error:
        print(f"wsgiserver: error: {error}", file=sys.stderr)
        if error.details:  # where the application's own code failed
            print(error.details, file=sys.stderr)
        return 2
    except (UsageError, SettingsError) as error:
        print(f"wsgiserver: error: {error}", file=sys.stderr)
        return 2
    except ValueError as error:  # listener and TLS set-up problems
        print(f"wsgiserver: error: {error}", file=sys.stderr)
        return 2
    except OSError as error:
        print(f"wsgiserver: error: {_describe(error)}", file=sys.stderr)
        return 1


def _worker_hooks(spec: str, config: Any, settings: Mapping[str, Setting]) -> WorkerHooks:
    """--worker-import, --on-worker-start, --on-worker-exit, imported now
    (a mistake is one line before anything starts)."""
    start, end = settings["on-worker-start"].value, settings["on-worker-exit"].value
    return WorkerHooks(
        load=(lambda: load_app(spec)) if settings["worker-import"].value and supervised(config)
        else None,
        on_start=load_hook(start) if start else None,
        on_exit=load_hook(end) if end else None,
    )


def _startup_line(spec: str, config: Any, settings: Mapping[str, Setting]) -> str:
    """Who serves what: the version and Python, the application, the
    protocols on, and the settings files read (if any)."""
    protocols = ["HTTP/1.1"]
    if config.http2:
        protocols.append("h2")
    if config.h2c_prior_knowledge or config.h2c_upgrade:
        protocols.append("h2c")
    files = sorted({setting.source for setting in settings.values()
                    if setting.source.endswith(".toml")})
    line = (f"wsgiserver {__version__} ({build.describe()}): {spec}, "
            f"{', '.join(protocols)}")
    return line + (f"; settings from {', '.join(files)}" if files else "")


def _run_reloading(spec: str, argv: Sequence[str] | None) -> int:
    """Run the server in a child process that restarts when the app's code changes."""
    from importlib.util import find_spec

    from .reload import run_with_reloader

    try:
        module = find_spec(spec.partition(":")[0])
    except Exception:  # noqa: BLE001  a parent package that fails to import: the cwd
        module = None
    origin = module.origin if module is not None and module.origin else None
    # The folder of the app's module (of the package, for a package).
    root = os.path.dirname(origin) if origin else os.getcwd()
    arguments = [arg for arg in (sys.argv[1:] if argv is None else argv) if arg != "--reload"]
    return run_with_reloader([sys.executable, "-m", "wsgiserver", *arguments], root)


def _describe(error: OSError) -> str:
    message = error.strerror or str(error)
    if error.filename:
        message = f"{message}: {error.filename}"
    return message if "listen" in message else f"cannot listen: {message}"
