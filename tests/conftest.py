"""Shared fixtures: a real server on 127.0.0.1 with an ephemeral port.

Two variables run the suite another way (``.ci/run`` does both):
``TEST_POLLER`` (poll, select) gives every server that poller,
and ``SIMULATE_SYSTEM`` (windows, macos) makes wsgiserver see that
system before it is imported (tests/platforms.py).
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable, Iterator

import pytest

if os.environ.get("SIMULATE_SYSTEM"):
    from tests.platforms import simulate

    simulate(os.environ["SIMULATE_SYSTEM"])

from wsgiserver import Server, ServerConfig  # noqa: E402

POLLER = os.environ.get("TEST_POLLER", "auto")


@pytest.fixture
def live_server(caplog) -> Iterator[Callable[..., Server]]:
    """Factory: ``live_server(app, **settings)`` starts a Server in threads on
    127.0.0.1:0 and returns it; every server started is stopped afterwards.

    A test fails if the server logged an internal error (a bug of ours, as
    opposed to an application's exception) while it ran."""
    started: list[Server] = []

    def start(app, **settings) -> Server:
        settings.setdefault("host", "127.0.0.1")
        settings.setdefault("port", 0)
        settings.setdefault("shutdown_timeout", 5.0)
        settings.setdefault("poller", POLLER)
        server = Server(app, ServerConfig(**settings))
        server.start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()
    internal = [r for r in caplog.records if r.getMessage().startswith("unexpected error")]
    assert not internal, f"the server hit an internal error: {internal[0].exc_text}"


def connect(server: Server, timeout: float = 5.0) -> socket.socket:
    """A raw client socket connected to ``server``, with a read timeout."""
    sock = socket.create_connection(server.address, timeout=timeout)
    return sock


def recv_until_closed(sock: socket.socket, limit_seconds: float = 5.0) -> bytes:
    """Everything the server sends until it closes the connection (bounded)."""
    chunks = []
    deadline = time.monotonic() + limit_seconds
    while time.monotonic() < deadline:
        try:
            data = sock.recv(65536)
        except (TimeoutError, ConnectionResetError):
            break
        if not data:
            break
        chunks.append(data)
    return b"".join(chunks)
