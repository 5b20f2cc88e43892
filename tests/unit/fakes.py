"""An in-memory transport on a manual clock, and connection settings for it.

The fake stands in for a client socket: the test schedules what the client
sends and when, and how much the client reads; waiting for readiness moves
the clock instead of sleeping, so timeouts are tested in no time at all.
"""

from __future__ import annotations

import itertools
import os
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from wsgiserver.clock import ManualClock
from wsgiserver.connection import Connection
from wsgiserver.drive import ConnectionSettings, Step
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
        self.alpn: str | None = None
        self.handshake_writing = False
        self.direct_reads = True
        self.on_wait: Callable[[], None] | None = None
        self._arrivals: deque[_Arrival] = deque()
        self.sent = bytearray()
        self._sent_total = 0
        # Sends may come from a stream's thread while the test takes them.
        self._sent_lock = threading.Lock()
        # How many more bytes the client takes; None: everything.
        self.reads = reads
        self.closed = self.aborted = self.write_shut = self.shut = False
        self.reset_on_close = False
        self.handshake_done = True
        self.environ: dict[str, str] = {}

    # -- the test's side ---------------------------------------------------

    def arrive(self, data: bytes, after: float = 0.0) -> None:
        """The client sends ``data``, ``after`` seconds from now."""
        self._arrivals.append(_Arrival(self.clock.monotonic() + after, data))

    def hang_up(self, after: float = 0.0) -> None:
        """The client closes its side ``after`` seconds from now."""
        self.arrive(b"", after)

    def take_sent(self) -> bytes:
        """What the server sent since the last call."""
        with self._sent_lock:
            data = bytes(self.sent)
            self.sent.clear()
        return data

    def sent_count(self) -> int:
        """Bytes sent since the start."""
        return self._sent_total

    # -- the Transport interface ----------------------------------------

    def handshake(self) -> bool:
        return self.handshake_done

    def readable(self) -> bool:
        """Bytes (or the end) are waiting now."""
        return bool(self._arrivals) and self._arrivals[0].at <= self.clock.monotonic()

    def writable(self) -> bool:
        """The client would take bytes now."""
        return self.reads is None or self.reads > 0

    def recv(self, max_bytes: int = 65536) -> bytes | None:
        now = self.clock.monotonic()
        if not self._arrivals or self._arrivals[0].at > now:
            return None
        if self._arrivals[0].data == b"":
            return b""
        data = b""
        while self._arrivals and self._arrivals[0].at <= now and self._arrivals[0].data:
            data += self._arrivals.popleft().data
        if len(data) > max_bytes:
            self._arrivals.appendleft(_Arrival(now, data[max_bytes:]))
            data = data[:max_bytes]
        return data

    def recv_into(self, buffer: memoryview) -> int | None:
        data = self.recv(len(buffer))
        if data is None:
            return None
        buffer[:len(data)] = data
        return len(data)

    def send(self, data: bytes | memoryview) -> int:
        if self.closed or self.shut:
            raise ClientDisconnected("closed")
        count = len(data) if self.reads is None else min(len(data), self.reads)
        with self._sent_lock:
            self.sent += bytes(data[:count])
            self._sent_total += count
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

    def wait_for(self, deadline: float, write: bool = False, wake_fd: int | None = None) -> None:
        if self.on_wait is not None:
            self.on_wait()  # the client's turn, while the server's thread waits
        if self._arrivals and self._arrivals[0].at <= deadline:
            self.clock.advance_to(max(self._arrivals[0].at, self.clock.monotonic()))
        elif not (write and self.writable()):
            self.clock.advance_to(deadline)

    def sendfile(self, file_fd: int, offset: int, count: int) -> int:
        return self.send(os.pread(file_fd, count, offset))

    def shutdown_write(self) -> bool:
        self.write_shut = True
        return not self.closed

    def shutdown(self) -> None:
        self.shut = True

    def abort_on_close(self) -> None:
        self.reset_on_close = True

    def abort(self) -> None:
        self.aborted = True
        self.closed = True

    def close(self) -> None:
        self.closed = True
        self.aborted = self.aborted or self.reset_on_close


def settings_for(app, clock: ManualClock, *, draining=lambda: False, access_log=None,
                 **overrides) -> ConnectionSettings:
    """Connection settings with round timeouts for tests."""
    values = dict(
        limits=ParserLimits(),
        keepalive_timeout=15.0,
        header_timeout=10.0,
        body_timeout=30.0,
        min_body_rate=1024,
        write_timeout=30.0,
        body_memory_bytes=64 * 1024,
        spool_dir=None,
        output_high_water=256 * 1024,
        output_spool=None,
        min_response_rate=0,
        body_budgets=None,
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
    """A connection over a fake transport, driven the way the server drives it:
    the poller's events, exchanges run on the spot, the reaper's deadlines."""

    def __init__(self, app, **options) -> None:
        self.clock = ManualClock()
        transport_options = {k: options.pop(k) for k in ("reads", "can_sendfile") if k in options}
        self.transport = FakeTransport(self.clock, **transport_options)
        self.connection = Connection(self.transport, settings_for(app, self.clock, **options))
        self.step = Step.READ
        self.exchanges = 0

    def send(self, data: bytes) -> bytes:
        """The client sends ``data``; the server acts on it; what came back."""
        self.transport.arrive(data)
        return self.events()

    def events(self) -> bytes:
        """Deliver every event the poller would now: what the server sent."""
        while not self.closed:
            if self.step is Step.READ and not self.transport.readable():
                break
            if self.step is Step.WRITE and not self.transport.writable():
                break
            self._drive(self.connection.on_ready())
        return self.transport.take_sent()

    def _drive(self, step: Step) -> None:
        while step is Step.RUN:
            self.exchanges += 1
            step = self.connection.run_exchange()
        self.step = step

    def wait(self, seconds: float) -> bytes:
        """Time passes; the reaper expires the connection if its deadline passed."""
        self.clock.advance(seconds)
        sent = self.events()
        # As the reaper: a connection that says it may go on (a rate window
        # met) gets its new deadline, else it is closed.
        while not self.closed and self.clock.monotonic() > self.connection.deadline:
            if self.connection.expire():
                self.connection.close()
        return sent + self.transport.take_sent()

    def read(self, count: int | None = None) -> bytes:
        """The client reads ``count`` more bytes (all, for None); what the server sent."""
        self.transport.reads = None if count is None else (self.transport.reads or 0) + count
        return self.events()

    @property
    def closed(self) -> bool:
        return self.connection.closed
