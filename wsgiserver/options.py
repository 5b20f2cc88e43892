"""The options: one table of every setting a user can give, and the converters
that turn the text of one into its value.

Owns each option's name (``--name``, ``WSGISERVER_NAME``, the key ``name`` in
a file), its converter, default and help. The command line, the environment,
files and PasteDeploy all read values through this table, so a value is
checked in one way wherever it comes from. Knows nothing of argparse, of the
environment or of files: converters take text and raise ValueError.
"""

from __future__ import annotations

import enum
import io
import math
import os
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from .appspec import parse_spec
from .config import ServerConfig

__all__ = ["Kind", "Option", "OPTIONS", "BY_NAME", "BY_FIELD", "LIBRARY_ONLY", "Where",
           "convert_text", "convert_items", "show_default", "to_text", "parse_bool"]

_DEFAULTS = ServerConfig()


class Kind(enum.Enum):
    """How an option takes its value on the command line."""

    VALUE = "value"  # --name VALUE
    FLAG = "flag"  # --name; true or false elsewhere
    LIST = "list"  # --name VALUE, repeatable; comma-separated in a variable
    OPTIONAL_VALUE = "optional value"  # --name [VALUE]


class Where(enum.Enum):
    """The sources an option may come from."""

    COMMAND_LINE = "command line"
    ENVIRONMENT = "environment"
    FILE = "file"
    PASTE = "PasteDeploy"


_PROGRAM = frozenset({Where.COMMAND_LINE, Where.ENVIRONMENT, Where.FILE})
_EVERYWHERE = _PROGRAM | {Where.PASTE}


@dataclass(frozen=True)
class Option:
    """One setting, as every source names and converts it."""

    name: str  # "max-body-bytes": --max-body-bytes, WSGISERVER_MAX_BODY_BYTES
    convert: Callable[[str], Any]  # text -> value, ValueError for a bad one
    help: str
    group: str
    default: Any = None
    field: str | None = None  # the ServerConfig field it sets; None: the program's own
    kind: Kind = Kind.VALUE
    metavar: str | None = None
    short: str | None = None  # "-b"
    const: str | None = None  # OPTIONAL_VALUE: the value when the option has none
    negates: bool = False  # FLAG --no-x: the field is x's opposite
    shown_default: str | None = None  # for --help and the README, when the value says little
    where: frozenset[Where] = _EVERYWHERE
    # Value -> text the converter takes back (print-config), when str() is not it.
    text: Callable[[Any], str] | None = None

    @property
    def flag(self) -> str:
        """``--name``."""
        return f"--{self.name}"

    @property
    def variable(self) -> str:
        """``WSGISERVER_NAME``."""
        return "WSGISERVER_" + self.name.upper().replace("-", "_")

    @property
    def dest(self) -> str:
        """The identifier argparse stores it under."""
        return self.name.replace("-", "_")


# -- converters: text -> value, or ValueError saying what was wanted ----------


def _count(text: str) -> int:
    """A whole number, 0 or more."""
    if re.fullmatch(r"-[0-9]+", text):
        raise ValueError(f"must not be negative, not {text!r}")
    if not re.fullmatch(r"[0-9]+", text):
        raise ValueError(f"not a whole number: {text!r}")
    return int(text)


def _positive_int(text: str) -> int:
    value = _count(text)
    if value < 1:
        raise ValueError(f"must be at least 1, not {text!r}")
    return value


_SIZE_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def _size(text: str) -> int:
    """A number of bytes, 0 or more: digits, then K, M, G or T (binary,
    case-insensitive, "KiB" and "KB" alike), as ``10M`` or ``64K``."""
    found = re.fullmatch(r"([0-9]+)\s*([kKmMgGtT]?)(?:i?[bB])?", text.strip())
    if found is None:
        if re.fullmatch(r"-[0-9]+.*", text.strip()):
            raise ValueError(f"must not be negative, not {text!r}")
        raise ValueError(f"not a size such as 1048576, 64K, 10M or 1G: {text!r}")
    return int(found.group(1)) * _SIZE_UNITS[found.group(2).upper()]


def _positive_size(text: str) -> int:
    value = _size(text)
    if value < 1:
        raise ValueError(f"must be at least 1, not {text!r}")
    return value


def _port(text: str) -> int:
    if not re.fullmatch(r"[0-9]+", text) or int(text) > 65535:
        raise ValueError(f"must be a port number from 0 to 65535, not {text!r}")
    return int(text)


def _number(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"not a number of seconds: {text!r}") from None
    if not math.isfinite(value):
        raise ValueError(f"not a number of seconds: {text!r}")
    return value


def _seconds(text: str) -> float:
    value = _number(text)
    if not value > 0:
        raise ValueError(f"must be a positive number of seconds: {text!r}")
    return value


def _seconds_or_off(text: str) -> float:
    value = _number(text)
    if value < 0:
        raise ValueError(f"must be 0 (off) or a positive number of seconds: {text!r}")
    return value


def _text(text: str) -> str:
    if not text:
        raise ValueError("must not be empty")
    return text


def _directory(text: str) -> str:
    if not os.path.isdir(text):
        raise ValueError(f"not a directory: {text!r}")
    return os.path.abspath(text)


def _file(text: str) -> str:
    if not os.path.isfile(text):
        raise ValueError(f"no such file: {text!r}")
    return os.path.abspath(text)


def _static(text: str) -> tuple[str, ...]:
    from .static import parse_mount

    parse_mount(text)  # its ValueError says what is wrong
    return (text,)


def _bind(text: str) -> str:
    from .binding import parse_bind

    parse_bind(text)  # its ValueError names the spec and what was expected
    return text


def _binds(text: str) -> tuple[str, ...]:
    return (_bind(text),)


def _mode(text: str) -> int:
    if not re.fullmatch(r"0?[0-7]{3}", text):
        raise ValueError(f"not an octal mode such as 660: {text!r}")
    return int(text, 8)


def _trusted_proxies(text: str) -> tuple[str, ...]:
    from .proxy import ProxyTrust

    entries = tuple(item.strip() for item in text.split(",") if item.strip())
    ProxyTrust(entries)  # its ValueError names the entry
    return entries


def _host_names(text: str) -> tuple[str, ...]:
    names = tuple(item.strip().lower() for item in text.split(",") if item.strip())
    for name in names:
        if not re.fullmatch(r"\*|\.?[a-z0-9_.:\[\]-]+", name):
            raise ValueError(f"not a host name: {name!r}")
    return names


def _access_log_format(text: str) -> str:
    from .accesslog import AccessLog

    AccessLog(io.StringIO(), _text(text))  # compiles the format: ValueError if it is bad
    return text


def _app(text: str) -> str:
    parse_spec(text)
    return text


def _choice(*choices: str) -> Callable[[str], str]:
    def convert(text: str) -> str:
        if text not in choices:
            raise ValueError(f"expected {' or '.join(choices)}, not {text!r}")
        return text

    return convert


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def parse_bool(text: str) -> bool:
    """``true``/``false`` (also 1/0, yes/no, on/off, in any case)."""
    if text.lower() in _TRUE:
        return True
    if text.lower() in _FALSE:
        return False
    raise ValueError(f"expected true or false, not {text!r}")


def convert_text(option: Option, text: str) -> Any:
    """The value of ``text`` for ``option``, as a variable or an ini line gives it
    (flags as true/false, lists comma-separated); ValueError if it is bad."""
    if option.kind is Kind.LIST:
        return convert_items(option, (item for item in text.split(",") if item.strip()))
    return option.convert(text)


def convert_items(option: Option, items: Iterable[str]) -> tuple[Any, ...]:
    """A list option's value from its items, each through its converter."""
    return tuple(value for item in items for value in option.convert(item.strip()))


def to_text(option: Option, value: Any) -> str:
    """Text that ``option``'s converter turns back into ``value``."""
    if option.text is not None:
        return option.text(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def show_default(option: Option) -> str:
    """The default as --help and the README show it."""
    if option.shown_default is not None:
        return option.shown_default
    if option.kind is Kind.FLAG:
        return "on" if option.default else "off"
    if option.default is None or option.default == ():
        return "none"
    return to_text(option, option.default)


# -- the table ---------------------------------------------------------------


def _server(name: str, convert: Callable[[str], Any], help: str, group: str,
            **details: Any) -> Option:
    """An option that sets the ServerConfig field of its name."""
    field = details.pop("field", name.replace("-", "_"))
    if name.endswith("-bytes"):  # sizes take suffixes: 64K, 10M, 1G
        sizes: dict[Callable[[str], Any], Callable[[str], Any]] = {
            _count: _size, _positive_int: _positive_size}
        convert = sizes.get(convert, convert)
    if "metavar" not in details and details.get("kind", Kind.VALUE) is not Kind.FLAG:
        details["metavar"] = _METAVARS.get(convert, "BYTES" if group == _LIMITS else "N")
    default = getattr(_DEFAULTS, field)
    if details.get("negates"):
        default = not default
    return Option(name, convert, help, group, default=default, field=field, **details)


def _timeout(name: str, what: str) -> Option:
    return _server(name, _seconds, f"how long {what}", _TIMEOUTS)


_METAVARS: dict[Callable[[str], Any], str] = {
    _seconds: "SECONDS", _directory: "DIR", _file: "FILE", _port: "PORT", _text: "HOST"}

_APPLICATION = "application"
_LISTEN = "where to listen"
_CAPACITY = "threads, processes and connections"
_LIMITS = "limits (bytes)"
_TIMEOUTS = "timeouts (seconds)"
_PROXY_TLS = "TLS and proxies"
_HTTP2 = "HTTP/2"
_LOGS = "logs and headers"
_PROGRAM_GROUP = "the program"

OPTIONS: tuple[Option, ...] = (
    Option("app", _app, "the application: module:attribute, module:factory() or "
           "module:factory('arg', key=value) with literal arguments", _APPLICATION,
           metavar="MODULE:APP", where=_PROGRAM),
    _server("directory", _directory,
            'a directory given to apps as environ["wsgiserver.directory"]', _APPLICATION),
    _server("static", _static, "serve the files of DIR under /PREFIX without calling the "
            "application: sendfile, ETag and Last-Modified (304), byte ranges, NAME.gz for "
            "clients that accept gzip, 404 outside DIR; repeatable", _APPLICATION,
            kind=Kind.LIST, metavar="/PREFIX=DIR", shown_default="none"),
    _server("allowed-hosts", _host_names, "comma-separated names this server answers to "
            "(.example.com: it and its subdomains, *: any), given to apps as "
            'environ["wsgiserver.allowed_hosts"]; the bundled app refuses other Host values on '
            "/files with 421; repeatable", _APPLICATION, kind=Kind.LIST, metavar="LIST",
            shown_default="loopback names when listening on loopback"),

    _server("host", _text, "address to listen on", _LISTEN),
    _server("port", _port, "port to listen on, 0 for any free one", _LISTEN),
    _server("bind", _binds, "where to listen, repeatable: HOST:PORT, [IPv6]:PORT, unix:PATH "
            "or fd://N (replaces --host and --port)", _LISTEN, field="binds", kind=Kind.LIST,
            metavar="ADDRESS", short="-b", shown_default="--host:--port"),
    _server("unix-socket-mode", _mode, "permissions of Unix sockets, e.g. 660", _LISTEN,
            metavar="OCTAL", text=lambda mode: f"{mode:o}"),
    _server("backlog", _positive_int, "connections the kernel queues until they are "
            "accepted", _LISTEN),

    _server("threads", _positive_int, "worker threads per process: ordinary requests "
            "running at once", _CAPACITY),
    _server("workers", _positive_int, "worker processes sharing the sockets; 2 or more add a "
            "supervisor: SIGHUP replaces workers one by one", _CAPACITY, short="-w"),
    _server("max-requests", _count, "a worker process is replaced after this many requests "
            "(even with one worker); 0: never", _CAPACITY, metavar="N"),
    _server("max-requests-jitter", _count, "a random 0 to this many more requests per worker, "
            "so workers do not restart together", _CAPACITY, metavar="N"),
    _server("worker-timeout", _seconds_or_off, "a worker process that took no new work for "
            "this many seconds (every thread held) is replaced, its stacks logged; 0: never",
            _CAPACITY, metavar="SECONDS"),
    _server("poller", _choice("auto", "epoll", "poll", "select"), "how sockets are watched: "
            "auto is epoll on Linux, poll on macOS and the BSDs, select on Windows (1024 "
            "descriptors at most, 512 sockets on Windows)", _CAPACITY,
            metavar="{auto,epoll,poll,select}"),
    _server("max-connections", _positive_int, "open connections per process; beyond it the "
            "kernel queues new ones", _CAPACITY),
    _server("max-websockets", _count, "open WebSockets per process, each on a thread of its "
            "own; beyond: 503", _CAPACITY),
    _server("long-request-seconds", _seconds, "how long a request may run before its thread "
            "is replaced in the pool", _CAPACITY),
    _server("max-long-requests", _count, "requests running past --long-request-seconds at "
            "once; beyond: 503", _CAPACITY, shown_default="4 x --threads"),

    _server("max-request-line", _positive_int, "414 beyond", _LIMITS),
    _server("max-header-bytes", _positive_int, "431 beyond", _LIMITS),
    _server("max-header-count", _positive_int, "431 beyond", _LIMITS, metavar="N"),
    _server("max-body-bytes", _count, "413 beyond", _LIMITS,
            shown_default="100 MiB, or what the app declares (max_request_body_bytes)"),
    _server("body-memory-bytes", _count, "a request body is kept in memory up to this size, "
            "beyond in a spool file", _LIMITS),
    _server("max-body-memory-bytes", _count, "request bodies held in memory across the "
            "process; beyond, bodies go to spool files however small", _LIMITS),
    _server("spool-dir", _directory, "where spool files go", _LIMITS,
            shown_default="the system's temporary directory"),
    _server("response-buffer-bytes", _positive_int, "response bytes held in memory for a slow "
            "client while the app produces; beyond, a spool file", _LIMITS),
    _server("response-spool-bytes", _count, "response bytes one slow client may be behind in a "
            "spool file; beyond, the app waits for it", _LIMITS),
    _server("max-spool-bytes", _count, "bytes in spool files across the process (request "
            "bodies and responses); beyond, a body gets 503 and apps wait for their clients",
            _LIMITS),
    _server("websocket-ping-interval", _seconds_or_off, "ping a WebSocket whose peer sent "
            "nothing this long; 0: never", _TIMEOUTS, metavar="SECONDS"),
    _server("websocket-ping-timeout", _seconds_or_off, "close a WebSocket (1011) whose peer "
            "does not answer a ping this long", _TIMEOUTS, metavar="SECONDS"),
    _server("websocket-idle-timeout", _seconds_or_off, "close a WebSocket (1001) after this "
            "long without a message; 0: never", _TIMEOUTS, metavar="SECONDS"),
    _server("max-websocket-message-bytes", _positive_int, "largest WebSocket message; larger ones "
            "close with 1009", _LIMITS),

    _timeout("keepalive-timeout", "an idle keep-alive connection stays open"),
    _timeout("header-timeout", "a request head may take to arrive (then 408)"),
    _timeout("body-timeout", "a body may go without a byte (then 408)"),
    _server("min-body-rate", _count, "slowest a body may arrive, over any 20 s; 0 for none",
            _TIMEOUTS, metavar="BYTES_PER_SECOND"),
    _timeout("max-body-seconds", "a whole body may take, however fast it comes (then 408)"),
    _timeout("write-timeout", "a response may wait for a client that reads nothing"),
    _server("min-response-rate", _count, "slowest a client may read a response, over any 20 s; "
            "slower ones are disconnected, 0 for none", _TIMEOUTS,
            metavar="BYTES_PER_SECOND"),
    _timeout("shutdown-timeout", "in-flight requests get on shutdown"),

    _server("certfile", _file, "TLS certificate chain (PEM): serve https", _PROXY_TLS),
    _server("keyfile", _file, "TLS private key, if not in --certfile", _PROXY_TLS),
    _server("ca-certs", _file, "CA bundle for client certificates", _PROXY_TLS),
    _server("client-certs", _choice("none", "optional", "required"), "ask clients for "
            "certificates (needs --ca-certs)", _PROXY_TLS,
            metavar="{none,optional,required}"),
    _server("forwarded-allow-ips", _trusted_proxies, "comma-separated proxies (addresses, "
            "CIDR ranges, unix, *) whose X-Forwarded-* and Forwarded fields are believed; "
            "repeatable", _PROXY_TLS, kind=Kind.LIST, metavar="LIST", shown_default="nobody"),

    _server("http2", parse_bool, "offer HTTP/2 on TLS listeners (ALPN h2; needs "
            "pip install 'h2>=4.1,<5')", _HTTP2, kind=Kind.FLAG),
    _server("h2c-prior-knowledge", parse_bool, "cleartext HTTP/2 on connections that open with "
            "its preface, from --forwarded-allow-ips peers only", _HTTP2, kind=Kind.FLAG),
    _server("h2c-upgrade", parse_bool, "cleartext HTTP/2 after 'Upgrade: h2c', from "
            "--forwarded-allow-ips peers only", _HTTP2, kind=Kind.FLAG),
    _server("http2-max-concurrent-streams", _positive_int, "streams one HTTP/2 connection may "
            "have open at once", _HTTP2),

    _server("access-log", _text, "log each request: to stderr (no value or -), stdout, "
            "or a file", _LOGS, kind=Kind.OPTIONAL_VALUE, const="-", metavar="TARGET",
            shown_default="off"),
    _server("access-log-format", _access_log_format, "fields such as {remote_addr} "
            "{request_line} {status} {bytes} {duration_us} {request_id} {header:NAME} "
            "{response_header:NAME}", _LOGS, metavar="FORMAT",
            shown_default="Apache's combined"),
    _server("access-log-json", parse_bool, "JSON lines access log", _LOGS, kind=Kind.FLAG),
    _server("no-date-header", parse_bool, "do not send Date", _LOGS, kind=Kind.FLAG,
            field="send_date_header", negates=True),
    _server("no-server-header", parse_bool, "do not send Server", _LOGS, kind=Kind.FLAG,
            field="send_server_header", negates=True),
    _server("metrics-bind", _bind, "serve Prometheus metrics on a listener of its own: "
            "HOST:PORT or unix:PATH", _LOGS, metavar="ADDRESS", shown_default="off"),
    Option("log-level", _choice("debug", "info", "warning", "error", "critical"),
           "the server's log: debug shows every refused request", _LOGS, default="info",
           metavar="{debug,info,warning,error,critical}", where=_PROGRAM),
    Option("log-config", _file, "a logging.config.dictConfig in a .toml or .json FILE, "
           "applied after --log-level: the server's logger is 'wsgiserver', and a "
           "'wsgiserver.access' logger there receives the access log", _LOGS, metavar="FILE",
           shown_default="none", where=_PROGRAM),

    Option("worker-import", parse_bool, "import the application in each worker process after "
           "the fork, not once before it (gunicorn without --preload); with one process "
           "it changes nothing", _PROGRAM_GROUP, default=False, kind=Kind.FLAG,
           where=_PROGRAM),
    Option("on-worker-start", _app, "MODULE:FUNCTION called with no arguments in each "
           "worker process before it serves (open per-process connections there)",
           _PROGRAM_GROUP, metavar="MODULE:FUNCTION", shown_default="none", where=_PROGRAM),
    Option("on-worker-exit", _app, "MODULE:FUNCTION called in each worker process once it "
           "has stopped", _PROGRAM_GROUP, metavar="MODULE:FUNCTION", shown_default="none",
           where=_PROGRAM),
    Option("check-config", parse_bool, "load the settings and import the application, then "
           "exit: 0 when both work, 2 with the one-line error (for deploy pipelines)",
           _PROGRAM_GROUP, default=False, kind=Kind.FLAG,
           where=frozenset({Where.COMMAND_LINE})),
    Option("pid", _text, "write the server's process id to FILE once it listens (the "
           "supervisor's with --workers); removed at exit", _PROGRAM_GROUP, metavar="FILE",
           shown_default="none", where=_PROGRAM),
    Option("reload", parse_bool, "development: restart when a Python file under the app changes",
           _PROGRAM_GROUP, default=False, kind=Kind.FLAG, where=_PROGRAM),
    Option("config", _file, "a TOML file of settings (keys: option names); without it, "
           "[tool.wsgiserver] in ./pyproject.toml if there is one", _PROGRAM_GROUP,
           metavar="FILE", shown_default="[tool.wsgiserver] of ./pyproject.toml, if any",
           where=frozenset({Where.COMMAND_LINE, Where.ENVIRONMENT})),
)

BY_NAME: dict[str, Option] = {option.name: option for option in OPTIONS}
BY_FIELD: dict[str, Option] = {option.field: option for option in OPTIONS if option.field}
# ServerConfig fields no option sets: they are the library's to choose.
LIBRARY_ONLY = frozenset({"server_name"})
