"""An in-memory transport on a manual clock, and connection settings for it.

The fake stands in for a client socket: the test schedules what the client
sends and when, and how much the client reads; waiting for readiness moves
the clock instead of sleeping, so timeouts are tested in no time at all.
"""

from __future__ import annotations

import itertools
import os
from collections import deque
from dataclasses import dataclass

from wsgiserver.clock import ManualClock
from wsgiserver.connection import Connection, ConnectionSettings
from wsgiserver.errors import ClientDisconnected
from wsgiserver.exchange import ExchangeSettings
from wsgiserver.protocol import ParserLimits
from wsgiserver.wsgi import EnvironBuilder

_descriptors = itertools.count(1000)


@dataclass
class _Arrival:
    at: float
    data: bytes  # b"": the client closed its side


class FakeTransport:
    """A client socket in memory; see the module docstring."""

    def __init__(self, clock: ManualClock, peer: tuple[str, int] = ("192.0.2.7", 40000),
                 *, can_sendfile: bool = True, reads: int | None = None) -> None:
        self.clock = clock
        self.fd = next(_descriptors)
        self.peer = peer
        self.can_sendfile = can_sendfile
        self._arrivals: deque[_Arrival] = deque()
        self.sent = bytearray()
        # How many more bytes the client takes; None: everything.
        self.reads = reads
        self.closed = self.aborted = self.write_shut = False
        self.handshake_done = True

    # -- the test's side ---------------------------------------------------

    def arrive(self, data: bytes, after: float = 0.0) -> None:
        """The client sends ``data``, ``after`` seconds from now."""
        self._arrivals.append(_Arrival(self.clock.monotonic() + after, data))

    def hang_up(self, after: float = 0.0) -> None:
        """The client closes its side ``after`` seconds from now."""
        self.arrive(b"", after)

    def take_sent(self) -> bytes:
        """What the server sent since the last call."""
        data = bytes(self.sent)
        self.sent.clear()
        return data

    # -- the Transport interface ----------------------------------------

    def handshake(self) -> bool:
        return self.handshake_done

    def recv(self) -> bytes | None:
        now = self.clock.monotonic()
        if not self._arrivals or self._arrivals[0].at > now:
            return None
        if self._arrivals[0].data == b"":
            return b""
        data = b""
        while self._arrivals and self._arrivals[0].at <= now and self._arrivals[0].data:
            data += self._arrivals.popleft().data
        return data

    def send(self, data: bytes | memoryview) -> int:
        if self.closed:
            raise ClientDisconnected("closed")
        count = len(data) if self.reads is None else min(len(data), self.reads)
        self.sent += bytes(data[:count])
        if self.reads is not None:
            self.reads -= count
        return count

    def wait_readable(self, deadline: float) -> bool:
        if self._arrivals and self._arrivals[0].at <= deadline:
            self.clock.advance_to(self._arrivals[0].at)
            return True
        self.clock.advance_to(deadline)
        return False

    def wait_writable(self, deadline: float) -> bool:
        if self.reads is None or self.reads > 0:
            return True
        self.clock.advance_to(deadline)
        return False

    def sendfile(self, file_fd: int, offset: int, count: int, timeout: float) -> int:
        data = os.pread(file_fd, count, offset)
        if self.reads is not None and self.reads < len(data):
            self.clock.advance(timeout)
            raise ClientDisconnected("write timed out")
        return self.send(data)

    def shutdown_write(self) -> bool:
        self.write_shut = True
        return not self.closed

    def abort(self) -> None:
        self.aborted = True
        self.closed = True

    def close(self) -> None:
        self.closed = True


def settings_for(app, clock: ManualClock, *, draining=lambda: False, access_log=None,
                 **overrides) -> ConnectionSettings:
    """Connection settings with short, round timeouts for tests."""
    values = dict(
        limits=ParserLimits(),
        keepalive_timeout=15.0,
        header_timeout=10.0,
        body_timeout=30.0,
        write_timeout=30.0,
        max_drain_bytes=256 * 1024,
        date=None,
        server_name=None,
    )
    values.update(overrides)
    exchange = ExchangeSettings(
        app=app,
        environ=EnvironBuilder(server_name="127.0.0.1", server_port=8080),
        access_log=access_log,
        clock=clock,
    )
    return ConnectionSettings(exchange=exchange, draining=draining, clock=clock, **values)


class Client:
    """A connection over a fake transport, driven the way the server drives it."""

    def __init__(self, app, **options) -> None:
        self.clock = ManualClock()
        transport_options = {k: options.pop(k) for k in ("reads", "can_sendfile") if k in options}
        self.transport = FakeTransport(self.clock, **transport_options)
        self.connection = Connection(self.transport, settings_for(app, self.clock, **options))
        self.watched = True

    def send(self, data: bytes) -> bytes:
        """The client sends ``data``; the server reads it; what came back."""
        self.transport.arrive(data)
        return self.readable()

    def readable(self) -> bytes:
        """The poller reports the socket readable; what the server sent."""
        assert self.watched and not self.connection.closed
        self.watched = self.connection.on_readable()
        return self.transport.take_sent()

    def wait(self, seconds: float) -> bytes:
        """Time passes; the reaper expires the connection if its deadline passed."""
        self.clock.advance(seconds)
        if self.clock.monotonic() > self.connection.deadline and not self.connection.closed:
            self.connection.expire()
            self.connection.close()
            self.watched = False
        return self.transport.take_sent()

    @property
    def closed(self) -> bool:
        return self.connection.closed
