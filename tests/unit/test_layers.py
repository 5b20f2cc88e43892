"""The direction of imports between the server's layers (docs/architecture.md).

Each module may use the layers below it, never those above: the transport
knows no HTTP, the exchange no sockets, the server no signals. Read from the
source, so a violation fails here before it tangles anything.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import wsgiserver

PACKAGE = Path(wsgiserver.__file__).parent

# module -> what it must not import (wsgiserver modules by name, or stdlib modules)
FORBIDDEN = {
    "transport": {"protocol", "wsgi", "exchange", "connection", "server", "runner", "threading"},
    "clock": {"protocol", "socket", "transport", "connection", "server"},
    "wsgi": {"socket", "select", "transport", "connection", "exchange", "server", "upgrade"},
    "exchange": {"socket", "select", "transport", "connection", "server", "runner"},
    "connection": {"socket", "select", "poller", "server", "runner", "supervisor", "wsgi",
                   "h2connection", "h2", "pool"},
    # HTTP/2: the h2 library here and nowhere else (but the server's check
    # that it is installed); no poller, no pool, no sockets of its own.
    "h2connection": {"socket", "select", "poller", "pool", "server", "runner", "supervisor",
                     "wsgi", "connection"},
    "h2stream": {"h2", "socket", "select", "poller", "pool", "connection", "h2connection",
                 "h2life", "server"},
    "h2life": {"h2", "socket", "select", "poller", "pool", "connection", "h2connection",
               "server"},
    "h2send": {"h2", "socket", "select", "poller", "pool", "connection", "h2connection",
               "h2stream", "h2life", "server"},
    # The output queue both protocols use: no socket, frame or deadline.
    "outqueue": {"h2", "socket", "select", "transport", "connection", "output", "h2connection",
                 "h2stream", "h2life", "clock", "server", "pool", "protocol"},
    # What both protocols' connections share: neither of them.
    "drive": {"connection", "h2connection", "h2", "socket", "poller", "pool", "server"},
    "poller": {"protocol", "connection", "server", "socket", "h2"},
    "pool": {"socket", "select", "connection", "h2connection", "server", "protocol", "h2"},
    "server": {"runner", "supervisor", "cli", "signal"},
    "supervisor": {"runner", "cli", "connection", "protocol"},
    "upgrade": {"socket", "select", "transport", "connection", "server", "wsgi"},
    "accesslog": {"socket", "wsgi", "connection", "server"},
    "proxy": {"socket", "wsgi", "connection", "server"},
    "static": {"socket", "select", "connection", "server", "transport", "poller", "microapp"},
    "binding": {"protocol", "connection", "server", "config"},
    # What the system offers: asked by everyone, asking no one.
    "system": {"config", "connection", "server", "poller", "transport", "protocol", "runner",
               "binding", "pool", "wsgi"},
    # Configuration: the table converts text, the sources read through it, the
    # command line puts them together; the app spec knows none of them.
    "options": {"argparse", "cli", "settings", "server", "runner", "tomllib"},
    "settings": {"argparse", "cli", "appspec", "server", "runner"},
    "appspec": {"options", "settings", "cli", "config", "server", "runner", "argparse"},
    "cli": {"server", "supervisor", "protocol", "tomllib"},
    "paste": {"cli", "argparse", "appspec", "server", "supervisor"},
}


def imports_of(module: str) -> set[str]:
    """Top-level stdlib names and wsgiserver module names ``module`` imports."""
    tree = ast.parse((PACKAGE / f"{module}.py").read_text())
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0:
                names.add(node.module.split(".")[0])
            elif node.module:
                names.add(node.module.split(".")[0])
            else:  # from . import x
                names.update(alias.name for alias in node.names)
    return names


@pytest.mark.parametrize("module", sorted(FORBIDDEN))
def test_module_imports_only_layers_below_it(module):
    found = imports_of(module)
    assert found, "no imports found: the scan is broken"
    assert found & FORBIDDEN[module] == set()


def test_no_import_cycle_between_server_and_supervisor():
    assert "supervisor" not in imports_of("server")
    assert "server" in imports_of("supervisor")
    assert {"server", "supervisor"} <= imports_of("runner")
