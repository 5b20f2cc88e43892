"""``wsgiserver MODULE:APP [options]``: arguments -> ServerConfig -> serve().

Owns argument parsing, loading the application and turning every user
mistake into one line on stderr and a non-zero exit, never a traceback.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import logging
import os
import re
import sys
from collections.abc import Callable, Sequence
from typing import Any

from . import __version__
from .config import ServerConfig
from .runner import StopSignals, serve

__all__ = ["main", "load_app", "parse_args"]

_DEFAULTS = ServerConfig()
_FACTORY = re.compile(r"([A-Za-z_][\w.]*)\(\)")
_ATTRIBUTE = re.compile(r"[A-Za-z_][\w.]*")


class UsageError(Exception):
    """A mistake of the user's, reported as one line."""


def _positive_int(text: str) -> int:
    value = _integer(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {text!r}")
    return value


def _integer(text: str) -> int:
    if not re.fullmatch(r"[0-9]+", text):
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}")
    return int(text)


def _port(text: str) -> int:
    value = _integer(text)
    if value > 65535:
        raise argparse.ArgumentTypeError(f"not a port number (0-65535): {text!r}")
    return value


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not value > 0 or value != value or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds: {text!r}")
    return value


def _seconds_or_zero(text: str) -> float:
    return 0.0 if text.strip() in ("0", "0.0") else _seconds(text)


def _directory(text: str) -> str:
    if not os.path.isdir(text):
        raise argparse.ArgumentTypeError(f"not a directory: {text!r}")
    return os.path.abspath(text)


def _bind(text: str) -> str:
    from .binding import parse_bind

    try:
        parse_bind(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    return text


def _mode(text: str) -> int:
    if not re.fullmatch(r"0?[0-7]{3}", text):
        raise argparse.ArgumentTypeError(f"not an octal mode such as 660: {text!r}")
    return int(text, 8)


def _file(text: str) -> str:
    if not os.path.isfile(text):
        raise argparse.ArgumentTypeError(f"no such file: {text!r}")
    return os.path.abspath(text)


def _address_list(text: str) -> tuple[str, ...]:
    from .proxy import ProxyTrust

    entries = tuple(item.strip() for item in text.split(",") if item.strip())
    try:
        ProxyTrust(entries)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    return entries


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, exit status 2
        self.exit(2, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    """The command line parser."""
    p = _Parser(prog="wsgiserver", description="Serve a WSGI application over HTTP/1.1.")
    p.add_argument("app", metavar="MODULE:APP",
                   help="the application: module:attribute, or module:factory() to call one")
    p.add_argument("--version", action="version", version=f"wsgiserver {__version__}")
    p.add_argument("--host", default=_DEFAULTS.host, help="address to listen on (%(default)s)")
    p.add_argument("--port", type=_port, default=_DEFAULTS.port,
                   help="port to listen on, 0 for any free one (%(default)s)")
    p.add_argument("--threads", type=_positive_int, default=_DEFAULTS.threads,
                   help="worker threads per process (%(default)s)")
    p.add_argument("--workers", type=_positive_int, default=_DEFAULTS.workers,
                   help="worker processes sharing the socket; more than 1 adds a "
                        "supervisor: SIGHUP replaces workers one by one (%(default)s)")
    p.add_argument("--directory", type=_directory,
                   help='a directory given to apps as environ["wsgiserver.directory"]')
    p.add_argument("--max-connections", type=_positive_int, default=_DEFAULTS.max_connections)
    p.add_argument("--backlog", type=_positive_int, default=_DEFAULTS.backlog)
    limits = p.add_argument_group("limits (bytes)")
    limits.add_argument("--max-request-line", type=_positive_int,
                        default=_DEFAULTS.max_request_line, help="414 beyond (%(default)s)")
    limits.add_argument("--max-header-bytes", type=_positive_int,
                        default=_DEFAULTS.max_header_bytes, help="431 beyond (%(default)s)")
    limits.add_argument("--max-header-count", type=_positive_int,
                        default=_DEFAULTS.max_header_count, help="431 beyond (%(default)s)")
    limits.add_argument("--max-body-bytes", type=_integer,
                        default=_DEFAULTS.max_body_bytes, help="413 beyond (%(default)s)")
    limits.add_argument("--body-memory-bytes", type=_integer,
                        default=_DEFAULTS.body_memory_bytes,
                        help="a request body is kept in memory up to this size, beyond in a "
                             "spool file (%(default)s)")
    limits.add_argument("--spool-dir", type=_directory,
                        help="where spool files go (the system's temporary directory)")
    limits.add_argument("--response-buffer-bytes", type=_positive_int,
                        default=_DEFAULTS.response_buffer_bytes,
                        help="response bytes held for a slow client while the app produces; "
                             "beyond, the app waits (%(default)s)")
    timeouts = p.add_argument_group("timeouts (seconds)")
    for name, what in [("keepalive-timeout", "an idle keep-alive connection stays open"),
                       ("header-timeout", "a request head may take to arrive (then 408)"),
                       ("body-timeout", "a whole body may take, plus 1 s per --min-body-rate "
                                        "bytes received (then 408)"),
                       ("write-timeout", "a response may wait for a client that reads nothing"),
                       ("shutdown-timeout", "in-flight requests get on shutdown"),
                       ("long-request-seconds", "a request may run before its thread is "
                                                "replaced in the pool")]:
        default = getattr(_DEFAULTS, name.replace("-", "_"))
        timeouts.add_argument(f"--{name}", type=_seconds, default=default,
                              help=f"how long {what} (%(default)s)")
    deploy = p.add_argument_group("deployment")
    deploy.add_argument("--bind", dest="binds", action="append", type=_bind, metavar="ADDRESS",
                        help="where to listen, repeatable: HOST:PORT, [IPv6]:PORT, unix:PATH "
                             "or fd://N (replaces --host/--port)")
    deploy.add_argument("--unix-socket-mode", type=_mode, metavar="OCTAL",
                        help="permissions of Unix sockets, e.g. 660")
    deploy.add_argument("--certfile", type=_file, help="TLS certificate chain (PEM): serve https")
    deploy.add_argument("--keyfile", type=_file, help="TLS private key, if not in --certfile")
    deploy.add_argument("--ca-certs", type=_file, help="CA bundle for client certificates")
    deploy.add_argument("--client-certs", choices=["none", "optional", "required"],
                        default="none", help="ask clients for certificates (%(default)s)")
    deploy.add_argument("--forwarded-allow-ips", type=_address_list, metavar="LIST",
                        help="comma-separated proxies (addresses, CIDR ranges, unix, *) whose "
                             "X-Forwarded-* and Forwarded fields are believed")
    deploy.add_argument("--access-log", nargs="?", const="-", metavar="TARGET",
                        help="log each request: to stderr (no value or -), stdout, or a file")
    deploy.add_argument("--access-log-format", metavar="FORMAT",
                        help="fields such as {remote_addr} {request_line} {status} {bytes} "
                             "{duration_us} {request_id} {header:NAME} {response_header:NAME}")
    deploy.add_argument("--access-log-json", action="store_true", help="JSON lines access log")
    deploy.add_argument("--reload", action="store_true",
                        help="development: restart when a Python file under the app changes")
    timeouts.add_argument("--min-body-rate", type=_integer, default=_DEFAULTS.min_body_rate,
                          metavar="BYTES_PER_SECOND",
                          help="slowest average a body may arrive at, 0 for none (%(default)s)")
    p.add_argument("--max-websockets", type=_positive_int, default=_DEFAULTS.max_websockets,
                   help="open WebSockets, each on a thread of its own (%(default)s)")
    p.add_argument("--max-long-requests", type=_integer,
                   help="requests running past --long-request-seconds at once; beyond, "
                        "503 (default: 4 x --threads)")
    p.add_argument("--max-websocket-message-bytes", type=_positive_int,
                   default=_DEFAULTS.max_websocket_message_bytes)
    ops = p.add_argument_group("operations")
    ops.add_argument("--max-requests", type=_integer, default=_DEFAULTS.max_requests,
                     help="with --workers: replace a worker after this many requests, 0 never "
                          "(%(default)s)")
    ops.add_argument("--max-requests-jitter", type=_integer,
                     default=_DEFAULTS.max_requests_jitter,
                     help="plus a random 0..this, so workers do not retire at once (%(default)s)")
    ops.add_argument("--worker-timeout", type=_seconds_or_zero, default=_DEFAULTS.worker_timeout,
                     help="with --workers: replace a worker whose threads are all stuck in the "
                          "application this long, after logging their stacks; 0 never "
                          "(%(default)s)")
    ops.add_argument("--metrics-bind", type=_bind, metavar="HOST:PORT",
                     help="serve Prometheus metrics there (summed over workers)")
    p.add_argument("--no-date-header", action="store_true", help="do not send Date")
    p.add_argument("--no-server-header", action="store_true", help="do not send Server")
    p.add_argument("--log-level", default="info",
                   choices=["debug", "info", "warning", "error", "critical"])
    return p


def parse_args(argv: Sequence[str] | None = None) -> tuple[str, ServerConfig, str, bool]:
    """(app spec, config, log level, reload) from the command line."""
    args = build_parser().parse_args(argv)
    fields = {field.name for field in dataclasses.fields(ServerConfig)}
    settings = {name: value for name, value in vars(args).items()
                if name in fields and value is not None}
    settings["send_date_header"] = not args.no_date_header
    settings["send_server_header"] = not args.no_server_header
    settings["binds"] = tuple(args.binds or ())
    settings["forwarded_allow_ips"] = tuple(args.forwarded_allow_ips or ())
    try:
        config = ServerConfig(**settings)
    except ValueError as error:
        raise UsageError(str(error)) from None
    return args.app, config, args.log_level, args.reload


def load_app(spec: str) -> Callable[..., Any]:
    """Import ``module:attribute`` or call ``module:factory()``."""
    module_name, colon, target = spec.partition(":")
    if not colon or not module_name or not target:
        raise UsageError(f"expected MODULE:APP, got {spec!r}")
    factory = _FACTORY.fullmatch(target)
    if factory is None and not _ATTRIBUTE.fullmatch(target):
        raise UsageError(f"not an attribute name or factory call: {target!r}")
    if "" not in sys.path and os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    obj: Any
    try:
        obj = importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        if error.name and module_name.startswith(error.name):
            raise UsageError(f"no module named {module_name!r}") from None
        raise UsageError(f"importing {module_name!r} failed: {error}") from None
    except Exception as error:
        raise UsageError(f"importing {module_name!r} failed: "
                         f"{type(error).__name__}: {error}") from None
    for part in (factory.group(1) if factory else target).split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise UsageError(f"module {module_name!r} has no attribute {target!r}") from None
    if factory:
        try:
            obj = obj()
        except Exception as error:
            raise UsageError(f"{target} failed: {type(error).__name__}: {error}") from None
    if not callable(obj):
        raise UsageError(f"{spec} is not callable (it is a {type(obj).__name__})")
    return obj


def main(argv: Sequence[str] | None = None) -> int:
    """Run the server; the process's exit status."""
    # Handlers first: a stop asked for while the application is imported is
    # honoured once there is a server to stop, instead of a traceback.
    signals = StopSignals()
    signals.install()
    try:
        spec, config, level, reload = parse_args(argv)
        logging.basicConfig(level=level.upper(), format="%(asctime)s %(levelname)s %(message)s")
        app = load_app(spec)
        if reload and not os.environ.get("WSGISERVER_RELOADER_CHILD"):
            return 0 if signals.requested else _run_reloading(spec, argv)
        return serve(app, config, signals=signals)
    except UsageError as error:
        print(f"wsgiserver: error: {error}", file=sys.stderr)
        return 2
    except ValueError as error:  # listener and TLS set-up problems
        print(f"wsgiserver: error: {error}", file=sys.stderr)
        return 2
    except OSError as error:
        print(f"wsgiserver: error: {_describe(error)}", file=sys.stderr)
        return 1


def _run_reloading(spec: str, argv: Sequence[str] | None) -> int:
    """Run the server in a child process that restarts when the app's code changes."""
    from importlib.util import find_spec

    from .reload import run_with_reloader

    module = find_spec(spec.partition(":")[0])
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
