"""wsgiserver: a pure-Python HTTP/1.1 server for any WSGI application.

The public names are imported when first used (PEP 562): the command line
installs its signal handlers before anything heavy is imported, so a stop
asked for while the server starts is never lost.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .config import ServerConfig
    from .errors import ClientDisconnected, ProtocolError
    from .runner import serve
    from .server import Server

__version__ = "0.1.0"

__all__ = [
    "Server",
    "ServerConfig",
    "serve",
    "ProtocolError",
    "ClientDisconnected",
    "__version__",
]

_WHERE = {
    "Server": ".server",
    "ServerConfig": ".config",
    "serve": ".runner",
    "ProtocolError": ".errors",
    "ClientDisconnected": ".errors",
}


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'wsgiserver' has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value
