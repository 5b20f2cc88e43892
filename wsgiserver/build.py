"""How this copy of the server was built: the modules the opt-in compiled
build turns into C extensions with mypyc (``setup.py`` reads the list), and
whether the running copy is that build. Same source either way: the
extension of a module, where it was built, is imported instead of its
``.py`` file.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import platform

__all__ = ["COMPILED_MODULES", "compiled", "describe"]

# The hot path of one request, from bytes in to bytes out. Not here: what
# runs once (the command line, settings), errors.py (its exceptions subclass
# OSError, which a compiled class may not), the HTTP/2 connection (built on
# the h2 library's Python classes), outqueue.py (only slow clients and files
# reach it: a response the socket takes whole never does) and microapp.
COMPILED_MODULES = (
    "wsgiserver/protocol/grammar.py",
    "wsgiserver/protocol/events.py",
    "wsgiserver/protocol/parser.py",
    "wsgiserver/protocol/policy.py",
    "wsgiserver/protocol/response.py",
    "wsgiserver/protocol/state.py",
    "wsgiserver/protocol/writer.py",
    "wsgiserver/wsgi.py",
    "wsgiserver/exchange.py",
    "wsgiserver/drive.py",
    "wsgiserver/clock.py",
    "wsgiserver/proxy.py",
    "wsgiserver/budget.py",
    "wsgiserver/body.py",
    "wsgiserver/poller.py",
    "wsgiserver/connection.py",
    "wsgiserver/transport.py",
    "wsgiserver/output.py",
    "wsgiserver/pool.py",
    "wsgiserver/server.py",
)


def compiled() -> bool:
    """True when the hot path runs compiled (its parser is a C extension)."""
    spec = importlib.util.find_spec("wsgiserver.protocol.parser")
    origin = spec.origin if spec is not None else None
    return origin is not None and origin.endswith(tuple(importlib.machinery.EXTENSION_SUFFIXES))


def describe() -> str:
    """Which Python runs the server, and how it was built."""
    build = "compiled with mypyc" if compiled() else "pure Python"
    return f"Python {platform.python_version()}, {build}"
