"""macOS and Windows, simulated on Linux.

``simulate(name)`` takes away what that system lacks (modules, functions,
constants) and lets wsgiserver see its ``sys.platform`` while it is
imported, so the branches those systems take run here on every change. Call
it before anything imports wsgiserver: ``tests/conftest.py`` does when
``SIMULATE_SYSTEM`` names a system, and ``simulated_command`` starts
the command line in a subprocess that does.

What is simulated is what the server branches on; the kernel underneath is
still Linux's (sockets behave as Linux sockets do). Ctrl+Break (SIGBREAK,
Windows only) is stood in for by SIGUSR2, so that a test can send it.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import pkgutil
import signal
import socket
import sys

# What each system lacks, as (module, attribute) to delete, modules that
# cannot be imported there, and what it has that Linux has not.
SYSTEMS: dict[str, dict] = {
    "windows": {
        "platform": "win32",
        "modules": ("resource", "fcntl", "termios"),
        "attributes": (("os", "fork"), ("os", "sendfile"), ("os", "pread"),
                       ("socket", "AF_UNIX"), ("select", "epoll"), ("select", "poll"),
                       ("signal", "SIGHUP"), ("signal", "SIGUSR1"), ("signal", "SIGCHLD")),
        "added": (("signal", "SIGBREAK", "SIGUSR2"),),
    },
    "macos": {
        "platform": "darwin",
        "modules": (),
        "attributes": (("select", "epoll"),),
        "added": (),
    },
}

# Imported before anything is taken away: the standard library chooses its
# own branches at import, and the simulation is of what wsgiserver sees.
_FIRST = ("subprocess", "selectors", "socket", "ssl", "tempfile", "json", "tomllib", "difflib",
          "mmap", "random", "faulthandler", "email.utils", "http.client", "zlib", "hashlib",
          "ipaddress", "argparse", "logging.handlers", "wsgiref.validate", "shutil")


def _loopback_pair(family: object = None, kind: int = socket.SOCK_STREAM,
                   proto: int = 0) -> tuple[socket.socket, socket.socket]:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        writer = socket.create_connection(listener.getsockname())
        reader, _ = listener.accept()
    return reader, writer


def simulate(name: str) -> None:
    """Make this interpreter look like ``name`` ("windows" or "macos") to
    wsgiserver; every wsgiserver module is imported here, under that look."""
    spec = SYSTEMS[name]
    for module in _FIRST:
        importlib.import_module(module)
    for module in spec["modules"]:
        sys.modules[module] = None  # type: ignore[assignment]  # ImportError on import
    for module, attribute in spec["attributes"]:
        owner = sys.modules[module]
        if hasattr(owner, attribute):
            delattr(owner, attribute)
    for module, attribute, stand_in in spec["added"]:
        setattr(sys.modules[module], attribute, getattr(signal, stand_in))
    if name == "windows":
        # Windows' socketpair() is a loopback TCP connection (no AF_UNIX).
        socket.socketpair = _loopback_pair  # type: ignore[assignment]
    real = sys.platform
    sys.platform = spec["platform"]
    try:
        import wsgiserver

        for info in pkgutil.walk_packages(wsgiserver.__path__, "wsgiserver."):
            if info.name.endswith("__main__") or (
                    info.name.endswith("h2connection") and importlib.util.find_spec("h2") is None):
                continue
            importlib.import_module(info.name)
        import microapp  # noqa: F401
    finally:
        sys.platform = real


def simulated_command(name: str, *arguments: str) -> list[str]:
    """A command line running ``python -m wsgiserver *arguments`` as ``name``."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    code = (f"import sys; sys.path.insert(0, {root!r}); "
            f"from tests.platforms import simulate; simulate({name!r}); "
            "from wsgiserver.cli import main; sys.exit(main(sys.argv[1:]))")
    return [sys.executable, "-c", code, *arguments]
