"""wsgiserver: a pure-Python HTTP/1.1 server for any WSGI application."""

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
