"""PasteDeploy's server runner: ``use = egg:wsgiserver-microapp`` in a ``[server:main]`` section.

Owns turning the section's text values into a ServerConfig, through the
same converters as variables and files, and serving with it; a mistake is
one line and exit status 2. Knows nothing of ini files (PasteDeploy read
the file) or of loading the application (PasteDeploy built it).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Mapping
from typing import Any, NoReturn

from .runner import configure_logging, serve
from .settings import SettingsError, from_paste, resolve, server_config
from .wsgi import WSGIApp

__all__ = ["serve_paste"]


def serve_paste(wsgi_app: WSGIApp, global_conf: Mapping[str, Any], **local_conf: str) -> None:
    """Serve ``wsgi_app`` with the section's settings until SIGTERM or SIGINT.

    PasteDeploy calls it with the section's keys as ``local_conf`` (text);
    ``global_conf`` holds the file's defaults, of which only ``__file__`` is
    used, to name the file in errors.
    """
    source = str(global_conf.get("__file__") or "PasteDeploy [server]")
    try:
        config = server_config(resolve(from_paste(local_conf, source)))
    except SettingsError as error:
        _exit(str(error), 2)
    if not _logging_configured(logging.getLogger("wsgiserver")):
        configure_logging("info", config.workers)
    try:
        status = serve(wsgi_app, config)
    except ValueError as error:  # listener and TLS set-up problems
        _exit(str(error), 2)
    except OSError as error:
        _exit(error.strerror or str(error), 1)
    if status:
        raise SystemExit(status)


def _logging_configured(logger: logging.Logger) -> bool:
    """Whether the ini's logging sections (pserve applies them) decide about
    the server's lines: they name its logger, or they show INFO lines.
    Otherwise (no sections: pserve's basicConfig shows only warnings) the
    lines go to stderr as on the command line."""
    if logger.handlers or logger.level != logging.NOTSET:
        return True
    return logger.hasHandlers() and logger.isEnabledFor(logging.INFO)


def _exit(message: str, status: int) -> NoReturn:
    print(f"wsgiserver: error: {message}", file=sys.stderr)
    raise SystemExit(status)
