"""Where each setting comes from: the command line, ``WSGISERVER_*`` variables,
a TOML file or PasteDeploy, and the defaults, in that order of precedence.

Owns reading each source through the option table's converters, naming the
source of every value and of every mistake (one line), and building the
ServerConfig. Knows nothing of argparse or of loading the application.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from .config import ServerConfig, SettingError
from .options import (
    BY_FIELD,
    BY_NAME,
    OPTIONS,
    Kind,
    Option,
    Where,
    convert_items,
    convert_text,
    to_text,
)
from .reload import CHILD_VARIABLE

__all__ = ["Setting", "SettingsError", "DEFAULT", "COMMAND_LINE", "from_environment",
           "from_file", "from_pyproject", "from_paste", "resolve", "server_config", "render",
]

DEFAULT = "default"
COMMAND_LINE = "command line"
PREFIX = "WSGISERVER_"
# Variables of ours that are no setting: the reloader marks its child with one.
# Variables of ours that are not settings: the reloader's mark on its child,
# and the build's switch for the compiled variant (setup.py), which may well
# stay exported in the shell that runs the server.
_INTERNAL_VARIABLES = frozenset({CHILD_VARIABLE, "WSGISERVER_COMPILE"})


@dataclass(frozen=True)
class Setting:
    """A value and where it came from: "default", "command line", a variable's
    name or a file's path."""

    value: Any
    source: str


class SettingsError(ValueError):
    """A bad setting; the message is one line that names its source."""


Layer = Mapping[str, Setting]  # option name -> setting, from one source


# -- the environment ---------------------------------------------------------


def from_environment(environ: Mapping[str, str]) -> dict[str, Setting]:
    """``WSGISERVER_<OPTION>`` variables; an empty one counts as unset."""
    by_variable = {option.variable: option for option in OPTIONS
                   if Where.ENVIRONMENT in option.where}
    layer: dict[str, Setting] = {}
    for variable, text in sorted(environ.items()):
        if not variable.startswith(PREFIX) or variable in _INTERNAL_VARIABLES or not text:
            continue
        option = by_variable.get(variable)
        if option is None:
            raise SettingsError(f"{variable}: unknown variable"
                                f"{_suggestion(variable.upper(), by_variable)}")
        layer[option.name] = Setting(_convert(option, text, variable), variable)
    return layer


def _convert(option: Option, text: str, source: str) -> Any:
    try:
        return convert_text(option, text)
    except ValueError as error:
        raise SettingsError(f"{source}: {error}") from None


def _suggestion(name: str, known: Iterable[str]) -> str:
    import difflib  # here, not at start-up: only a mistake needs it

    close = difflib.get_close_matches(name, list(known), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


# -- files -------------------------------------------------------------------


def from_file(path: str) -> dict[str, Setting]:
    """A TOML file of settings, its keys the option names."""
    return _from_table(_read_toml(path), _display(path))


def _display(path: str) -> str:
    """A path as short as it is clear: relative when under the current directory."""
    relative = os.path.relpath(path)
    return path if relative.startswith("..") else relative


def from_pyproject(directory: str) -> dict[str, Setting]:
    """``[tool.wsgiserver]`` of ``directory``/pyproject.toml; {} when there is none."""
    path = os.path.join(directory, "pyproject.toml")
    if not os.path.isfile(path):
        return {}
    table = _read_toml(path).get("tool", {}).get("wsgiserver")
    if table is None:
        return {}
    label = f"{_display(path)} [tool.wsgiserver]"
    if not isinstance(table, dict):
        raise SettingsError(f"{label}: expected a table of settings")
    return _from_table(table, label)


def _read_toml(path: str) -> dict[str, Any]:
    import tomllib  # only a file of settings needs it

    try:
        with open(path, "rb") as file:
            return tomllib.load(file)
    except OSError as error:
        raise SettingsError(f"{_display(path)}: cannot read: {error.strerror}") from None
    except tomllib.TOMLDecodeError as error:
        raise SettingsError(f"{_display(path)}: not valid TOML: {error}") from None


def _from_table(table: Mapping[str, Any], source: str) -> dict[str, Setting]:
    layer: dict[str, Setting] = {}
    for key, raw in table.items():
        option = _option_for_key(key, Where.FILE, source)
        try:
            value = _from_toml(option, raw)
        except ValueError as error:
            raise SettingsError(f"{source}: {key}: {error}") from None
        layer[option.name] = Setting(value, source)
    return layer


def _from_toml(option: Option, raw: Any) -> Any:
    """A TOML value through the option's converter, as its text."""
    if option.kind is Kind.LIST and isinstance(raw, list):
        return convert_items(option, (_scalar_text(option, item) for item in raw))
    return convert_text(option, _scalar_text(option, raw))


def _scalar_text(option: Option, raw: Any) -> str:
    if isinstance(raw, bool):
        if option.kind is not Kind.FLAG:
            raise ValueError(f"expected a string or a number, not {str(raw).lower()}")
        return "true" if raw else "false"
    if isinstance(raw, str | int | float):
        return str(raw)
    kind = "a list" if isinstance(raw, list) else "a table" if isinstance(raw, dict) \
        else f"a {type(raw).__name__}"
    raise ValueError(f"expected a string, a number or true/false, not {kind}")


def _option_for_key(key: str, where: Where, source: str) -> Option:
    """The option a file or ini key names; SettingsError saying why not."""
    option = BY_NAME.get(key)
    if option is not None and where in option.where:
        return option
    if option is not None:
        raise SettingsError(f"{source}: {key} cannot be set here (only "
                            f"{', '.join(sorted(place.value for place in option.where))})")
    dashed = key.replace("_", "-")
    if dashed in BY_NAME:
        raise SettingsError(f"{source}: unknown key {key!r}: keys are the option names, "
                            f"with dashes: {dashed!r}")
    known = [option.name for option in OPTIONS if where in option.where]
    raise SettingsError(f"{source}: unknown key {key!r}{_suggestion(key, known)}")


# -- PasteDeploy -------------------------------------------------------------


def from_paste(values: Mapping[str, str], source: str) -> dict[str, Setting]:
    """A ``[server:...]`` section's text values (PasteDeploy read the file)."""
    layer: dict[str, Setting] = {}
    for key, text in values.items():
        option = _option_for_key(key, Where.PASTE, source)
        layer[option.name] = Setting(_convert(option, text, f"{source}: {key}"), source)
    return layer


# -- precedence and the result ------------------------------------------------


def resolve(*layers: Layer) -> dict[str, Setting]:
    """Every option's setting: from the first layer that has it, else its default."""
    resolved: dict[str, Setting] = {}
    for option in OPTIONS:
        found = next((layer[option.name] for layer in layers if option.name in layer), None)
        resolved[option.name] = found or Setting(option.default, DEFAULT)
    return resolved


def server_config(settings: Mapping[str, Setting]) -> ServerConfig:
    """The ServerConfig of resolved settings; a conflict between two of them is
    a SettingsError naming the options and where the first came from."""
    values: dict[str, Any] = {}
    for option in OPTIONS:
        if option.field is not None:
            value = settings[option.name].value
            values[option.field] = not value if option.negates else value
    try:
        return ServerConfig(**values)
    except SettingError as error:
        raise SettingsError(_conflict(error, settings)) from None


def _conflict(error: SettingError, settings: Mapping[str, Setting]) -> str:
    option = BY_FIELD.get(error.name)
    if option is None:  # a field no option sets: the library's own message
        return str(error)
    source = settings[option.name].source
    where = "" if source == COMMAND_LINE else f"{source}: "
    if error.needs is not None:
        return f"{where}{option.flag} needs {BY_FIELD[error.needs].flag}"
    return f"{where}{option.flag}: {error}"


def without_effect(config: ServerConfig, settings: Mapping[str, Setting]) -> list[str]:
    """One line for each setting given that does nothing in ``config``,
    naming where it came from and what it needs (``--unix-socket-mode has
    no effect without a unix: --bind``)."""
    lines = []
    for field, needs in config.without_effect():
        option, needed = BY_FIELD[field], BY_FIELD[needs]
        source = settings[option.name].source
        where = "" if source == COMMAND_LINE else f"{source}: "
        what = "a unix: --bind" if needs == "binds" else needed.flag
        lines.append(f"{where}{option.flag} has no effect without {what}")
    worker_import = settings.get("worker-import")
    if worker_import is not None and worker_import.value and not config.supervised:
        # Not a ServerConfig field: the command line's own (hooks.py).
        where = "" if worker_import.source == COMMAND_LINE else f"{worker_import.source}: "
        lines.append(f"{where}--worker-import has no effect without worker processes "
                     "(--workers 2 or more, --max-requests, --worker-timeout)")
    return lines


def render(settings: Mapping[str, Setting]) -> str:
    """The settings as a TOML file (--config takes it back), each value's
    source in a comment."""
    lines = ["# wsgiserver settings; after each value, where it came from"]
    for option in OPTIONS:
        if Where.FILE not in option.where:
            continue
        setting = settings[option.name]
        if setting.value is None:
            line = f"# {option.name} is not set"
        else:
            line = f"{option.name} = {_toml_value(option, setting.value)}"
        lines.append(f"{line:<48} # {setting.source}")
    return "\n".join(lines) + "\n"


def _toml_value(option: Option, value: Any) -> str:
    if option.kind is Kind.LIST:
        return "[" + ", ".join(_toml_string(str(item)) for item in value) + "]"
    if isinstance(value, bool | int | float) and option.text is None:
        return to_text(option, value)
    return _toml_string(to_text(option, value))


def _toml_string(text: str) -> str:
    # TOML's basic strings escape as JSON does, DEL included.
    import json

    return json.dumps(text, ensure_ascii=False).replace("\x7f", "\\u007f")

