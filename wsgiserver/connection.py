"""One client connection: bytes from the transport through the connection
state to exchanges, response bytes back, and the connection's deadline.

Glue, in order: the TLS handshake, request heads (and small bodies)
received while the connection waits in the poller, the exchange run on the
worker that holds the connection, then drain, close or the next request as
the state decides. The only place that turns a ProtocolError into an error
response. The state decides, the transport moves bytes, the exchange runs
the application; this module knows nothing of the poller or the thread
pool: the server calls ``on_readable`` when bytes arrive and ``expire``
once the deadline has passed.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from .clock import Clock
from .errors import BodyReadError, ClientDisconnected, ProtocolError, ResponseError
from .exchange import Exchange, ExchangeSettings
from .protocol.events import NEED_DATA, Data, Framing, Request
from .protocol.parser import ParserLimits
from .protocol.state import After, ConnectionState
from .transport import Peer, Transport

__all__ = ["Connection", "ConnectionSettings"]

log = logging.getLogger("wsgiserver")

# After an error response, unread bytes from the client are read and thrown
# away for a moment before closing; closing with unread data makes the
# kernel send RST, which can destroy the response before the client reads it.
_LINGER_SECONDS = 2.0
# Waiting for the rest of an unread body costs a worker; cap the wait.
_DRAIN_SECONDS = 5.0
# Bodies up to this size (with a Content-Length) are read while the
# connection waits in the poller, before a worker takes the request: a client
# trickling a small body then holds no thread. Larger bodies stream to the
# app as it reads them.
_BUFFERED_BODY_LIMIT = 64 * 1024
# While the server drains for shutdown, an idle keep-alive connection is
# closed once it has been quiet this long: a client that just received a
# response and sends its next request at once gets it answered (with
# Connection: close) instead of finding the connection gone.
DRAIN_QUIET_SECONDS = 0.25


@dataclass(frozen=True)
class ConnectionSettings:
    """What every connection of one listening socket shares."""

    exchange: ExchangeSettings
    limits: ParserLimits
    keepalive_timeout: float
    header_timeout: float
    body_timeout: float
    write_timeout: float
    max_drain_bytes: int
    date: Callable[[], str] | None
    server_name: str | None
    draining: Callable[[], bool]
    clock: Clock


class Connection:
    """A client connection, driven by whichever worker thread holds ``lock``."""

    def __init__(self, transport: Transport, settings: ConnectionSettings) -> None:
        self.transport = transport
        self.fd = transport.fd
        self.settings = settings
        self.clock = settings.clock
        self.state = ConnectionState(
            settings.limits,
            date=settings.date,
            server_name=settings.server_name,
            draining=settings.draining,
            max_drain_bytes=settings.max_drain_bytes,
        )
        # Held by the worker serving the connection; the reaper only closes
        # a connection whose lock it can take, so it never closes under a worker.
        self.lock = threading.Lock()
        self.closed = False
        now = self.clock.monotonic()
        self.deadline = now + settings.header_timeout
        self._quiet_since = now  # when the connection last went idle
        self._handshaking = True
        self._head_started: float | None = None
        self._lingering = False
        self._pending: Request | None = None  # its head is here, its body is coming
        self._io = _ExchangeIO(self)

    # -- driven by the server ------------------------------------------------

    def on_readable(self) -> bool:
        """Read what arrived and serve every complete request.

        Returns True to be watched for more bytes, False once closed.
        """
        if self._handshaking and not self._handshake():
            return not self.closed
        data = self.transport.recv()
        if data is None:
            return True
        if not data:
            return self.close()
        if self._lingering:
            return True  # discard: we are closing
        self.state.feed(data)
        return self._serve_available()

    def _handshake(self) -> bool:
        try:
            done = self.transport.handshake()
        except (OSError, ValueError) as error:
            # Plain HTTP on the TLS port, scanners, expired handshakes: quietly.
            log.debug("%s: TLS handshake failed: %s", self._peer_text(), error)
            self.close()
            return False
        self._handshaking = not done
        return done

    @property
    def idle(self) -> bool:
        """True while waiting for a request of which nothing has arrived."""
        return not (self.closed or self._lingering or self._pending is not None
                    or self.state.buffered)

    def begin_draining(self) -> None:
        """The server is draining: an idle connection closes once it has been quiet
        for a moment; one with part of a request keeps its deadline."""
        if self.idle:
            self.deadline = min(self.deadline, self._quiet_since + DRAIN_QUIET_SECONDS)

    def expire(self) -> None:
        """The deadline passed: answer 408 to a half-received request (the server closes)."""
        waiting = self._head_started is not None or self._pending is not None
        if waiting and not self._lingering and not self.closed:
            response = self.state.error_response(408, "request not received in time", close=True)
            self._log_refused(408)
            try:
                self.transport.send(response)
            except ClientDisconnected:
                pass
            log.debug("%s: request not received in time", self._peer_text())

    def close(self) -> bool:
        """Close the socket now. Returns False (no longer watched)."""
        if not self.closed:
            self.closed = True
            self.transport.close()
        return False

    # -- requests ------------------------------------------------------------

    def _serve_available(self) -> bool:
        while True:
            request = self._pending
            self._pending = None
            if request is None:
                try:
                    event = self.state.next_event()
                except ProtocolError as error:
                    return self._reject(error)
                if type(event) is not Request:  # NEED_DATA: between requests
                    self._wait_for_request()
                    return True
                request = event
            if self._body_still_arriving(request):
                self._pending = request  # served once its body is all here
                self.deadline = self.clock.monotonic() + self.settings.body_timeout
                return True
            if not self._serve(request):
                return not self.closed  # lingering connections stay watched

    def _body_still_arriving(self, request: Request) -> bool:
        length = request.content_length or 0
        return (
            request.framing is Framing.LENGTH
            and not request.expect_continue
            and length <= _BUFFERED_BODY_LIMIT
            and self.state.buffered < length
        )

    def _wait_for_request(self) -> None:
        now = self.clock.monotonic()
        if self.state.buffered:
            if self._head_started is None:
                self._head_started = now
            self.deadline = self._head_started + self.settings.header_timeout
        else:
            self._quiet_since = now
            wait = DRAIN_QUIET_SECONDS if self.settings.draining() else None
            self.deadline = now + (wait or self.settings.keepalive_timeout)

    def _serve(self, request: Request) -> bool:
        """Run one request; True when the connection can carry another."""
        self._head_started = None
        Exchange(self.settings.exchange, request, self._io).run()
        after = self.state.after_response()
        if after is After.DRAIN:
            after = self._drain_body()
        if after is After.NEXT_REQUEST:
            self.state.start_next_request()
            return True
        if after is After.ABORT:
            self.transport.abort()
            self.closed = True
        elif after is After.LINGER:
            self._linger()
        else:  # CLOSE, and SWITCHED: an upgraded connection never returns to HTTP
            self.close()
        return False

    def _drain_body(self) -> After:
        """Read and discard what the application left of the body, within bounds."""
        deadline = self.clock.monotonic() + min(self.settings.body_timeout, _DRAIN_SECONDS)
        while (ended := self.state.discard_body()) is None:
            if not self._io.receive_more(deadline, quietly=True):
                return After.LINGER
        return After.NEXT_REQUEST if ended else After.LINGER

    # -- error answers and closing -------------------------------------------

    def _reject(self, error: ProtocolError) -> bool:
        """Answer a request we could not parse, and close: framing is lost."""
        log.debug("%s: %d %s", self._peer_text(), error.status, error.detail)
        response = self.state.error_response(error.status, error.detail, close=True)
        self._log_refused(error.status)
        try:
            self._io.send_all(response)
        except ClientDisconnected:
            return self.close()
        return self._linger()

    def _log_refused(self, status: int) -> None:
        """An access-log line for a request that never reached the application."""
        access_log = self.settings.exchange.access_log
        if access_log is not None:
            access_log.record_refused(self.transport.peer, status, self.state.body_bytes)

    def _linger(self) -> bool:
        """Stop sending, keep reading (and discarding) for a moment, then close."""
        if not self.transport.shutdown_write():
            return self.close()
        self._lingering = True
        self.deadline = self.clock.monotonic() + _LINGER_SECONDS
        return True

    def _peer_text(self) -> str:
        address, port = self.transport.peer
        return f"{address}:{port}" if address else "peer"


class _ExchangeIO:
    """The connection as its exchange sees it: body in, response out, upgrades.

    Writes block the worker (with the write timeout) until the client took
    the bytes; body reads block it until bytes arrive (with the body timeout).
    """

    def __init__(self, connection: Connection) -> None:
        self._connection = connection
        self._state = connection.state
        self._transport = connection.transport
        self._clock = connection.clock
        self._settings = connection.settings
        self.upgraded = False
        self._leftover = b""  # bytes that came after the 101, before we read on

    # -- ResponseSink ----------------------------------------------------

    @property
    def head_sent(self) -> bool:
        """True once the head has gone out."""
        return self._state.head_sent

    def set_head(self, status: str, headers: list[tuple[str, str]]) -> None:
        """Set or replace the pending head."""
        self._state.set_head(status, headers)

    def write(self, data: bytes) -> None:
        """Send body data (the head first)."""
        self.send_all(self._state.write(data))

    def write_whole(self, data: bytes) -> None:
        """Send the whole response at once."""
        self.send_all(self._state.write_whole(data))

    def finish(self) -> None:
        """End the response."""
        self.send_all(self._state.finish())

    def send_file(self, file_fd: int, offset: int, available: int) -> bool:
        """Send a file's bytes with sendfile where the framing allows it."""
        if not self._transport.can_sendfile:
            return False
        self.send_all(self._state.file_head(available))
        count = self._state.raw_count(available)
        if count is None:
            return False  # chunked: the caller frames the file piece by piece
        if count:
            sent = self._transport.sendfile(file_fd, offset, count, self._settings.write_timeout)
            self._state.sent_raw(sent)
        self.finish()
        return True

    def send_error(self, status: int, detail: str, close: bool) -> bool:
        """Answer with a short error response, unless a head already went."""
        if self._state.head_sent:
            return False
        try:
            self.send_all(self._state.error_response(status, detail, close=close))
        except (ClientDisconnected, ResponseError):
            return False
        return True

    # -- what the exchange reads and logs ----------------------------------

    @property
    def peer(self) -> Peer:
        """The client's (address, port)."""
        return self._transport.peer

    @property
    def status_code(self) -> int:
        """The response's status."""
        return self._state.status_code

    @property
    def response_fields(self) -> Sequence[tuple[str, str]]:
        """The application's response fields."""
        return self._state.response_fields

    @property
    def body_bytes(self) -> int:
        """Response body bytes sent."""
        return self._state.body_bytes

    def receive_body(self, max_bytes: int) -> bytes:
        """The next piece of the request body for ``wsgi.input``; b"" at its end."""
        continue_head = self._state.continue_head()
        if continue_head:
            self.send_all(continue_head)
        deadline = self._clock.monotonic() + self._settings.body_timeout
        while True:
            try:
                event = self._state.next_event(max_bytes)
            except ProtocolError as error:
                raise BodyReadError(error.detail, error.status) from None
            if type(event) is Data:
                return event.data
            if event is not NEED_DATA:
                return b""  # EndOfMessage, then PAUSED
            self.receive_more(deadline)
            deadline = self._clock.monotonic() + self._settings.body_timeout

    def receive_more(self, deadline: float, quietly: bool = False) -> bool:
        """Feed the state the next bytes of a body; BodyReadError (or False,
        ``quietly``) when the client goes silent past ``deadline`` or away."""
        transport = self._transport
        while (data := transport.recv()) is None:
            if not transport.wait_readable(deadline):
                self._state.input_failed()
                if quietly:
                    return False
                raise BodyReadError("request body not received in time", 408)
        if not data:
            self._state.input_failed()
            if quietly:
                return False
            raise BodyReadError("client closed the connection before the body ended")
        self._state.feed(data)
        return True

    # -- upgrades ----------------------------------------------------------

    def switch_protocols(self, fields: list[tuple[str, str]]) -> None:
        """Send the 101; bytes already received belong to the new protocol."""
        head = self._state.switch_protocols(fields)
        self._leftover = self._state.take_buffered()
        self.upgraded = True
        self.send_all(head)

    def upgraded_send(self, data: bytes) -> None:
        """Send all of ``data`` on the upgraded connection."""
        self.send_all(data)

    def upgraded_recv(self, max_bytes: int, wait: float) -> bytes | None:
        """After 101: the next bytes from the client (b"" at the end), or None
        when nothing arrived within ``wait`` seconds."""
        if self._leftover:
            data, self._leftover = self._leftover, b""
            return data
        deadline = self._clock.monotonic() + wait
        while True:
            if self._connection.closed:
                raise ConnectionAbortedError("the connection is closed")
            received = self._transport.recv()
            if received is not None:
                return received
            if not self._transport.wait_readable(deadline):
                return None

    # -- sending -----------------------------------------------------------

    def send_all(self, data: bytes) -> None:
        """Send all of ``data`` or raise ClientDisconnected (write timeout included)."""
        if not data:
            return
        transport = self._transport
        sent = transport.send(data)
        if sent == len(data):
            return
        view = memoryview(data)[sent:]
        while view:
            deadline = self._clock.monotonic() + self._settings.write_timeout
            if not transport.wait_writable(deadline):
                raise ClientDisconnected("write timed out")
            view = view[transport.send(view):]
