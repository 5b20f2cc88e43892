"""Running the server as a program: ``serve()`` until a signal says stop.

Owns signal handling (SIGTERM and SIGINT stop gracefully, a second SIGINT
exits at once, SIGHUP belongs to the ``--workers`` supervisor), the choice
between one process and the supervisor, and where the server's own log
lines go when it runs as a program. Sits above server.py and
supervisor.py; neither imports it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Sequence
from typing import IO, Any

from . import system
from .binding import Listener
from .config import ServerConfig
from .hooks import WorkerHooks
from .server import Server, listeners_for, metrics_listener_for
from .stopsignals import StopSignals
from .wsgi import WSGIApp

__all__ = ["serve", "StopSignals", "configure_logging", "supervised"]

log = logging.getLogger("wsgiserver")
# The name of the handler configure_logging adds, so a second call replaces it.
_HANDLER_NAME = "wsgiserver-stderr"


def configure_logging(level: str, workers: int = 1) -> None:
    """Send the "wsgiserver" logger's lines to stderr from ``level`` up.

    Only that logger: the root logger is the application's to configure
    (Django and others do), and a handler of ours there would print the
    application's lines, or ours twice. With several workers each line
    says which process wrote it. Calling it again replaces what it set.
    """
    pid = " [pid %(process)d]" if workers > 1 else ""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(f"%(asctime)s{pid} %(levelname)s %(message)s"))
    handler.set_name(_HANDLER_NAME)
    for old in [item for item in log.handlers if item.get_name() == _HANDLER_NAME]:
        log.removeHandler(old)
    log.addHandler(handler)
    log.setLevel(level.upper())
    log.propagate = False


ACCESS_LOGGER = "wsgiserver.access"


def apply_log_config(path: str) -> bool:
    """Apply the ``logging.config.dictConfig`` in ``path`` (TOML or JSON);
    True when it configures the access logger (``wsgiserver.access``).

    Loggers that exist already stay enabled unless the file says otherwise
    (``disable_existing_loggers``): the application's, imported or not, are
    its own. ValueError, naming the file, for a file that is not such a
    configuration or that ``dictConfig`` refuses.
    """
    import json
    import logging.config
    import tomllib

    try:
        with open(path, "rb") as file:
            data = file.read()
        loaded = tomllib.loads(data.decode()) if path.endswith(".toml") else json.loads(data)
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"--log-config {path}: {error}") from None
    if not isinstance(loaded, dict) or loaded.get("version") != 1:
        raise ValueError(f"--log-config {path}: not a logging dictConfig (it needs version = 1)")
    loaded.setdefault("disable_existing_loggers", False)
    try:
        logging.config.dictConfig(loaded)
    except (ValueError, TypeError, AttributeError, ImportError) as error:
        raise ValueError(f"--log-config {path}: {error}") from None
    loggers = loaded.get("loggers")
    return isinstance(loggers, dict) and ACCESS_LOGGER in loggers


def supervised(config: ServerConfig) -> bool:
    """Whether worker processes run under the supervisor (``ServerConfig.supervised``)."""
    return config.supervised


def serve(
    app: WSGIApp | None,
    config: ServerConfig | None = None,
    *,
    listeners: Sequence[Listener] = (),
    signals: StopSignals | None = None,
    pid_file: str | None = None,
    announce: str | None = None,
    hooks: WorkerHooks | None = None,
    **settings: Any,
) -> int:
    """Serve ``app`` until SIGTERM or SIGINT, then shut down gracefully.

    With ``workers`` > 1 a supervisor runs that many processes. A second
    SIGINT during shutdown exits at once. ``signals`` are handlers the
    caller installed earlier (the command line does, before it imports the
    application). ``pid_file``: --pid. ``announce``: a line logged once the
    server listens (the command line's startup line). Returns the exit
    status: 1 when the shutdown's grace period (``shutdown_timeout``) cut
    requests off.
    """
    if config is None:
        config = ServerConfig(**settings)
    elif settings:
        config = config.replace(**settings)
    if signals is None:
        signals = StopSignals()
        if not signals.install():
            print("wsgiserver: not in the main thread; signals not handled", file=sys.stderr)
    if signals.requested:
        return 0  # asked to stop before anything was started
    if supervised(config):
        if not system.HAS_FORK:
            asked = ("--workers 2 or more" if config.workers > 1 else
                     "--max-requests" if config.max_requests else "--worker-timeout")
            raise ValueError(system.unavailable(asked, "os.fork") +
                             ": run one process, or one per port behind a load balancer")
        from .supervisor import Supervisor  # only the multi-process mode forks

        bound = list(listeners) or listeners_for(config)
        metrics = metrics_listener_for(config) if config.metrics_bind else None
        supervisor = Supervisor(app, config, bound, metrics_listener=metrics, hooks=hooks)
        pid = _PidFile(pid_file)
        pid.write()  # the sockets listen: the supervisor's id
        if announce:
            log.info("%s", announce)
        try:
            return supervisor.run(early_signals=signals.requested)
        finally:
            pid.remove()
    pid = _PidFile(pid_file)
    hooks = hooks or WorkerHooks()
    if hooks.on_start is not None:  # one process is its own one worker
        hooks.on_start()
    if app is None:
        assert hooks.load is not None, "no application, and none to import"
        app = hooks.load()
    server = Server(app, config, listeners=listeners)
    # Before start: a stop that lands during start waits for it to finish.
    signals.notify(server.stop_in_background, reopen=server.reopen_logs)
    server.start()
    if announce:  # once it listens: a mistake before that stays one line
        log.info("%s", announce)
    pid.write()
    try:
        server.serve_forever()
    finally:
        pid.remove()
        if hooks.on_exit is not None:
            try:
                hooks.on_exit()
            except Exception:
                log.exception("the exit hook failed")
    # Requests cut off by the shutdown's grace period: say so in the status.
    return 1 if server.cut_off else 0


class _PidFile:
    """``--pid FILE``: checked before the server starts (a path that cannot be
    written is a one-line error, with nothing started), written once it
    listens, removed at exit unless another process wrote it since. A
    reader never finds it empty: the id goes into a temporary file beside
    it, renamed over it."""

    def __init__(self, path: str | None) -> None:
        self._path = path
        self._file: IO[str] | None = None
        self._mine = f"{os.getpid()}\n"
        if path is not None:
            try:
                # Append: an old id stays readable until ours replaces it.
                self._file = open(path, "a", encoding="ascii")  # noqa: SIM115 - closed in write()
            except OSError as error:
                raise ValueError(f"cannot write --pid {path}: {error.strerror}") from None

    def write(self) -> None:
        """The server listens: the id goes in."""
        if self._file is None or self._path is None:
            return
        with self._file:
            temporary = f"{self._path}.{os.getpid()}.tmp"
            try:
                with open(temporary, "w", encoding="ascii") as file:
                    file.write(self._mine)
                os.replace(temporary, self._path)
            except OSError:  # a file we may write in a directory we may not
                with contextlib.suppress(OSError):
                    os.unlink(temporary)
                self._file.seek(0)
                self._file.truncate()
                self._file.write(self._mine)
        self._file = None

    def remove(self) -> None:
        """The server stopped: the file goes, if it is still ours."""
        if self._path is None:
            return
        if self._file is not None:
            self._file.close()
        try:
            with open(self._path, encoding="ascii") as file:
                if file.read() == self._mine:
                    os.unlink(self._path)
        except OSError:
            pass
