"""One client connection: bytes from the transport through the connection
state to exchanges, response bytes back, and the connection's deadline.

Glue, in order: the TLS handshake, the request head and its whole body
(received as bytes arrive, on whichever thread the poller wakes, into
memory or a spool file), the exchange run on a worker, what is left of the
response sent as the client takes it, then the next request, a lingering
close or a reset as the state decides. Nothing here waits for a client
except a producing application's thread once the output bound is reached.
The only place that turns a ProtocolError into an error response.

Knows nothing of the poller or the thread pool: the server calls
``on_ready`` when the descriptor is ready for what ``on_ready`` last asked
for, ``run_exchange`` when it answered RUN, and ``expire`` once the
deadline has passed.
"""

from __future__ import annotations

import base64
import enum
import logging
import re
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import IO

from .body import NO_BODY, BodyClock, RequestBody, SpoolFull
from .drive import (
    DRAIN_QUIET_SECONDS,
    SPOOL_FULL_RETRY_AFTER,
    STEP_CLOSED,
    STEP_READ,
    STEP_RUN,
    STEP_SWITCH,
    STEP_WRITE,
    ConnectionSettings,
    Step,
)
from .errors import ClientDisconnected, ProtocolError, ResponseError
from .exchange import Exchange
from .output import ResponseOutput
from .protocol.events import FRAMING_NONE, Data, EndOfMessage, Request, RequestHead
from .protocol.grammar import request_line
from .protocol.state import (
    AFTER_ABORT,
    AFTER_LINGER,
    AFTER_NEXT_REQUEST,
    After,
    ConnectionState,
)
from .transport import Peer, PlainHttpOnTls, Transport

__all__ = ["Connection", "HTTP2_PREFACE", "h2c_settings"]

log = logging.getLogger("wsgiserver")

# After an error response, unread bytes from the client are read and thrown
# away for a moment before closing; closing with unread data makes the
# kernel send RST, which can destroy the response before the client reads it.
_LINGER_SECONDS = 2.0
# Reads while a body arrives are larger than while a head does: fewer calls
# for an upload, and a head never needs more than one read of this size.
_HEAD_RECV = 64 * 1024
_BODY_RECV = 256 * 1024
# A Content-Length body is read in blocks of this size, at most this many
# per wake-up (other connections get their turn).
_DIRECT_BUFFER = 1 << 20
_DIRECT_READS = 32
_threads = threading.local()


def _direct_buffer() -> memoryview:
    """This thread's buffer for body reads (made on its first upload)."""
    buffer: memoryview | None = getattr(_threads, "buffer", None)
    if buffer is None:
        buffer = _threads.buffer = memoryview(bytearray(_DIRECT_BUFFER))
    return buffer


# RFC 9113 section 3.4: how an HTTP/2 client opens a connection.
HTTP2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
_PREFACE_LINE = HTTP2_PREFACE[:16]  # its request line: PRI * HTTP/2.0 CRLF
# An empty SETTINGS frame, then GOAWAY (last stream 0, PROTOCOL_ERROR): RFC 9113 6.5, 6.8.
_BROKEN_PREFACE_ANSWER = (b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"
                          b"\x00\x00\x08\x07\x00\x00\x00\x00\x00"
                          b"\x00\x00\x00\x00\x00\x00\x00\x01")


class _Phase(enum.Enum):
    HANDSHAKE = "handshake"  # TLS
    REQUEST = "request"  # a head, then its body, arriving
    EXCHANGE = "exchange"  # held by a worker running the application
    FLUSH = "flush"  # the application is done; its response is still going out
    LINGER = "linger"  # closing: discarding what the client still sends
    CLOSED = "closed"


# As globals for the request path (Python 3.11's Enum member reads are slow:
# see drive.py's STEP_ names).
_HANDSHAKE, _REQUEST, _EXCHANGE = _Phase.HANDSHAKE, _Phase.REQUEST, _Phase.EXCHANGE
_FLUSH, _LINGER, _CLOSED = _Phase.FLUSH, _Phase.LINGER, _Phase.CLOSED


class Connection:
    """A client connection, driven by whichever thread holds ``lock``."""

    def __init__(self, transport: Transport, settings: ConnectionSettings,
                 tls: bool = False) -> None:
        self.transport = transport
        self.fd = transport.fd
        self.settings = settings
        self.clock = settings.clock
        self.state = ConnectionState(
            settings.limits,
            date=settings.date,
            server_name=settings.server_name,
            draining=settings.draining,
        )
        self.output = ResponseOutput(
            transport, settings.clock, write_timeout=settings.write_timeout,
            high_water=settings.output_high_water, low_water=settings.output_high_water // 4,
            spool=settings.output_spool, min_rate=settings.min_response_rate,
        )
        # Held by the thread driving the connection; the reaper only closes a
        # connection whose lock it can take, so it never closes under a worker.
        self.lock = threading.Lock()
        now = self.clock.monotonic()
        self.deadline = now + settings.header_timeout
        self._quiet_since = now  # when the connection last went idle
        self._phase = _HANDSHAKE if tls else _REQUEST
        self._head_started: float | None = None
        self._request: Request | None = None
        self._body: RequestBody | None = None
        self._body_clock: BodyClock | None = None  # while a body arrives
        self._current: _ExchangeIO | None = None  # the exchange running, for cut()
        self.received = 0  # bytes read from the client (for the metrics)
        self._reported = (0, 0)  # (received, sent) already counted in the metrics
        self._io = _ExchangeIO(self)  # one per connection, begun anew per exchange
        # HTTP/2 after a SWITCH: the bytes that belong to it, and the request
        # of an "Upgrade: h2c" (its body received), which becomes stream 1.
        self.switch_data = b""
        self.upgrade_request: tuple[Request, IO[bytes]] | None = None
        http2 = settings.http2
        cleartext = http2 is not None and not tls and http2.cleartext_for(transport.peer)
        self._preface: bytes | None = b"" if cleartext and http2 and http2.prior_knowledge \
            else None  # bytes that may be the start of the HTTP/2 preface
        self._h2c_upgrade = cleartext and http2 is not None and http2.upgrade

    @property
    def closed(self) -> bool:
        """True once the socket is closed."""
        return self._phase is _CLOSED

    # -- driven by the server ------------------------------------------------

    def on_ready(self) -> Step:
        """The descriptor is ready for what the last step asked for."""
        phase = self._phase
        if phase is _FLUSH:
            return self._flush()
        if phase is _HANDSHAKE:
            if not self._handshake():
                if self.closed:
                    return STEP_CLOSED
                return STEP_WRITE if self.transport.handshake_writing else STEP_READ
            if self.transport.alpn == "h2":
                return STEP_SWITCH
        if self._request is not None and self.state.direct_body and \
                self.transport.direct_reads and phase is _REQUEST:
            return self._receive_body()
        size = _HEAD_RECV if self._request is None else _BODY_RECV
        data = self.transport.recv(size)
        if data is None:
            return STEP_READ
        if not data:
            return self._close()
        self.received += len(data)
        if phase is _LINGER:
            return STEP_READ  # discard: we are closing
        if self._preface is not None:
            return self._check_preface(data)
        self.state.feed(data)
        return self._advance()

    def _receive_body(self) -> Step:
        """A Content-Length body, read from the socket straight into its
        storage through one buffer per thread: no copy through the parser."""
        body, state, transport = self._body, self.state, self.transport
        assert body is not None
        buffer = _direct_buffer()
        for _ in range(_DIRECT_READS):
            wanted = state.direct_body
            if not wanted:
                break
            count = transport.recv_into(buffer[:wanted] if wanted < len(buffer) else buffer)
            if count is None:
                break
            if not count:
                return self._close()
            self.received += count
            try:
                body.write(buffer[:count])
            except OSError as error:
                return self._not_stored(error)
            state.body_received(count)
        return self._advance()

    def _check_preface(self, data: bytes) -> Step:
        """The first bytes of a connection that may speak h2c by prior knowledge."""
        seen = self._preface = (self._preface or b"") + data
        if len(seen) < len(HTTP2_PREFACE) and HTTP2_PREFACE.startswith(seen):
            self._wait_for_bytes()
            return STEP_READ
        self._preface = None
        if seen.startswith(HTTP2_PREFACE):
            self.switch_data = seen
            return STEP_SWITCH
        if _broken_preface(seen):
            # A peer allowed to speak HTTP/2 by prior knowledge opened with
            # neither the preface nor an HTTP/1.1 request line ("PRI * HTTP/2.0"
            # with the rest broken, or anything else): RFC 9113 section 3.4
            # makes that a connection error, PROTOCOL_ERROR (our SETTINGS
            # first, as every HTTP/2 server's side starts, then GOAWAY), and
            # the connection ends. An HTTP/1.1 400 would read as a frame.
            log.debug("%s: invalid HTTP/2 connection preface", self._peer_text())
            try:
                self.transport.send(_BROKEN_PREFACE_ANSWER)
            except ClientDisconnected:
                pass
            return self._close()
        self.state.feed(seen)
        return self._advance()

    def hand_over(self) -> Transport:
        """The connection speaks HTTP/2 from now on: give up the transport
        without closing it (h2connection.py takes it)."""
        self._phase = _CLOSED
        self._count_transfer()
        return self.transport

    def run_exchange(self, detach: Callable[[], None] | None = None) -> Step:
        """Run the complete request's exchange on this thread, then go on."""
        request, body = self._request, self._body
        assert request is not None and self._phase is _REQUEST
        if self._h2c_upgrade and _asks_for_h2c(request):
            return self._upgrade_to_http2(request, body)
        self._phase = _EXCHANGE
        exchange_io = self._io
        exchange_io.begin(body.finish() if body is not None else NO_BODY, detach)
        self.output.start_window()  # the client's reading rate counts from its request
        self._current = exchange_io
        try:
            Exchange(self.settings.exchange, request, exchange_io).run()
        finally:
            self._current = None
            exchange_io.done()
            if body is not None:
                body.close()
            self._request = self._body = self._body_clock = None
        if self.settings.exchange.metrics is not None:
            self._count_transfer()
        after = self.state.after_response()
        if after is AFTER_ABORT:
            return self._abort()
        if self.output.pending:
            self._phase = _FLUSH
            self.deadline = self.output.deadline()
            return STEP_WRITE
        return self._after_response(after)

    def _upgrade_to_http2(self, request: Request, body: RequestBody | None) -> Step:
        """RFC 7540 section 3.2: 101, and the request becomes HTTP/2's stream 1."""
        self._h2c_upgrade = False
        try:
            self.output.write(self.state.switch_protocols(
                [("Connection", "Upgrade"), ("Upgrade", "h2c")]), wait=False)
            self.output.drain()
        except ClientDisconnected:
            if body is not None:
                body.close()
            return self._close()
        self.switch_data = self.state.take_buffered()
        self.upgrade_request = (request, body.finish() if body is not None else NO_BODY)
        self._request = self._body = self._body_clock = None
        return STEP_SWITCH

    def cut(self) -> None:
        """From another thread: end the running exchange early (see _ExchangeIO.cut)."""
        current = self._current
        if current is not None:
            current.cut()

    def stalled(self) -> float:
        """From another thread: seconds the running exchange's thread has been
        waiting for its client to take bytes (0 while it works). What a cap
        on long requests weighs, to cut the one making least progress."""
        output = self.output
        if self._current is None or not output.waiting:
            return 0.0
        return max(self.clock.monotonic() - output.progress_at, 0.0)

    @property
    def busy(self) -> bool:
        """True while a request is in its application or its response goes out."""
        return self._phase is _EXCHANGE or self._phase is _FLUSH

    @property
    def idle(self) -> bool:
        """True while waiting for a request of which nothing has arrived."""
        return (self._phase is _REQUEST and self._request is None
                and not self.state.buffered)

    def begin_draining(self) -> None:
        """The server is draining: an idle or lingering connection closes once
        quiet for a moment; one with part of a request keeps its deadline."""
        if self.idle or self._phase is _LINGER:
            self.deadline = min(self.deadline, self._quiet_since + DRAIN_QUIET_SECONDS)

    def expire(self) -> bool:
        """The deadline passed: 408 for a half-received request, a reset for a
        response the client stopped reading. True: the server closes it next
        (always, for HTTP/1.1)."""
        phase = self._phase
        if phase is _FLUSH:
            if not self.output.too_slow():
                self.deadline = self.output.deadline()  # the rate was met: the window slides
                return False
            log.info("%s: response cut off: %s", self._peer_text(), self.output.slow_reason())
            self.transport.abort_on_close()
            return True
        waiting = self._head_started is not None or self._request is not None
        clock, body = self._body_clock, self._body
        if phase is _REQUEST and self._request is not None and clock is not None and \
                clock.on_time(self.clock.monotonic(), body.size if body is not None else 0):
            self.deadline = clock.deadline()
            return False
        if phase is _REQUEST and waiting:
            self.state.input_failed()
            if self._body is not None:
                self._body.close()  # before the answer: nothing is left once it is read
                self._body = None
            try:
                response = self.state.error_response(408, "request not received in time",
                                                     close=True)
                self._log_refused(408)
                self.transport.send(response)
            except (ClientDisconnected, ResponseError):
                pass
            log.debug("%s: request not received in time", self._peer_text())
        return True

    def close(self) -> None:
        """Close the socket now (idempotent)."""
        self._close()

    # -- receiving -----------------------------------------------------------

    def _handshake(self) -> bool:
        try:
            done = self.transport.handshake()
        except PlainHttpOnTls:
            # As nginx does: say so in plain text rather than drop the
            # connection without a word.
            response = self.state.error_response(
                400, "this port speaks HTTPS: use an https:// URL", close=True)
            self._log_refused(400)
            try:
                self.transport.send(response)
            except ClientDisconnected:
                self._close()
                return False
            self._linger()
            return False
        except (OSError, ValueError) as error:
            # Plain HTTP on the TLS port, scanners, expired handshakes: quietly.
            log.debug("%s: TLS handshake failed: %s", self._peer_text(), error)
            self._close()
            return False
        if done:
            self._phase = _REQUEST
        return done

    def _advance(self) -> Step:
        """Turn buffered bytes into progress: RUN once a request is complete."""
        state = self.state
        try:
            while True:
                event = state.next_event()
                if type(event) is Data:
                    assert self._body is not None
                    self._body.write(event.data)
                elif type(event) is Request:
                    if event.framing is FRAMING_NONE:
                        self._request = event
                        self._head_started = None
                        return STEP_RUN  # no body: its end needs no event
                    self._begin_request(event)
                elif type(event) is EndOfMessage:
                    self._head_started = None
                    return STEP_RUN
                else:  # NEED_DATA
                    self._wait_for_bytes()
                    return STEP_READ
        except ProtocolError as error:
            return self._reject(error)
        except OSError as error:  # the spool file could not be written
            return self._not_stored(error)

    def _not_stored(self, error: OSError) -> Step:
        """503 for a body we cannot keep: with Retry-After when the server's
        spool is full for now (its budget, or descriptors), logged as an
        error when the disk failed."""
        if isinstance(error, SpoolFull):
            log.warning("%s: request body refused: %s", self._peer_text(), error)
            return self._reject(ProtocolError(503, "the server cannot take this body now",
                                              retry_after=SPOOL_FULL_RETRY_AFTER))
        log.error("%s: request body could not be stored: %s", self._peer_text(), error)
        return self._reject(ProtocolError(503, "the request body could not be stored"))

    def _begin_request(self, request: Request) -> None:
        """A head with a body to come: where the body goes, and the 100 Continue."""
        self._request = request
        settings = self.settings
        self._body = RequestBody(settings.body_memory_bytes, settings.spool_dir,
                                 settings.body_budgets)
        self._body_clock = BodyClock(self.clock.monotonic(), settings.body_timeout,
                                     settings.max_body_seconds, settings.min_body_rate)
        # Refused before a byte of it is read (or a 100 Continue sent) when the
        # spool has no room for all it announced: the bodies admitted finish.
        if request.content_length is not None and not self._body.reserve(request.content_length):
            raise SpoolFull(f"no room in the spool for {request.content_length} bytes now")
        # The head passed every check of ours: the client may send the body.
        continue_head = self.state.continue_head()
        if continue_head and self.transport.send(continue_head) < len(continue_head):
            raise ProtocolError(400, "the client does not read the 100 Continue")

    def _wait_for_bytes(self) -> None:
        now = self.clock.monotonic()
        settings = self.settings
        body_clock = self._body_clock
        if self._request is not None and body_clock is not None:
            body_clock.arrived(now)  # bytes just arrived (or the head did)
            self.deadline = body_clock.deadline()
        elif self.state.buffered:
            if self._head_started is None:
                self._head_started = now
            self.deadline = self._head_started + settings.header_timeout
        else:
            self._quiet_since = now
            wait = DRAIN_QUIET_SECONDS if settings.draining() else settings.keepalive_timeout
            self.deadline = now + wait

    # -- after a response ------------------------------------------------------

    def _flush(self) -> Step:
        try:
            done = self.output.flush()
        except (ClientDisconnected, OSError) as error:
            log.debug("%s: response not sent: %s", self._peer_text(), error)
            return self._abort()
        if not done:
            self.deadline = self.output.deadline()
            return STEP_WRITE
        return self._after_response(self.state.after_response())

    def _after_response(self, after: After) -> Step:
        if after is AFTER_NEXT_REQUEST:
            self._phase = _REQUEST
            state = self.state
            if state.start_next_request():
                return self._advance()  # a pipelined request is here already
            self._wait_for_bytes()  # what _advance comes to with nothing buffered
            return STEP_READ
        if after is AFTER_LINGER:
            return self._linger()
        if after is AFTER_ABORT:
            return self._abort()
        return self._close()  # CLOSE, or SWITCHED: an upgraded connection never returns

    # -- error answers and closing -------------------------------------------

    def _reject(self, error: ProtocolError) -> Step:
        """Answer a request we could not accept, and close: framing is lost."""
        log.debug("%s: %d %s", self._peer_text(), error.status, error.detail)
        if self._body is not None:
            self._body.close()
            self._body = None
        response = self.state.error_response(error.status, error.detail, close=True,
                                             retry_after=error.retry_after)
        self._log_refused(error.status, error.head)
        try:
            self.transport.send(response)  # short: one send takes it
        except ClientDisconnected:
            return self._close()
        return self._linger()

    def _log_refused(self, status: int, head: RequestHead | None = None) -> None:
        """The log line and the count of a request that never reached the
        application: named by its head where one was read (the request being
        received, else what a refused head carried)."""
        access_log = self.settings.exchange.access_log
        if access_log is not None:
            access_log.record_refused(self.transport.peer, status, self.state.response.body_bytes,
                                      self.state.request or head)
        metrics = self.settings.exchange.metrics
        if metrics is not None:
            metrics.refused(status)

    def _linger(self) -> Step:
        """Stop sending, keep reading (and discarding) for a moment, then close."""
        if not self.transport.shutdown_write():
            return self._close()
        self._phase = _LINGER
        self._quiet_since = now = self.clock.monotonic()
        self.deadline = now + _LINGER_SECONDS
        return STEP_READ

    def _abort(self) -> Step:
        """Reset: no client may take an incomplete response for a whole one."""
        if self._phase is not _CLOSED:
            self._phase = _CLOSED
            self._count_transfer()
            self.output.discard()
            self.transport.abort()
        return STEP_CLOSED

    def _count_transfer(self) -> None:
        metrics = self.settings.exchange.metrics
        if metrics is not None:
            received, sent = self.received, self.output.sent
            metrics.transferred(received - self._reported[0], sent - self._reported[1])
            self._reported = (received, sent)

    def _close(self) -> Step:
        if self._phase is not _CLOSED:
            self._phase = _CLOSED
            self._count_transfer()
            self.output.discard()
            if self._body is not None:
                self._body.close()
                self._body = None
            self.transport.close()
        return STEP_CLOSED

    def _peer_text(self) -> str:
        address, port = self.transport.peer
        return f"{address}:{port}" if address else "peer"


def _broken_preface(seen: bytes) -> bool:
    """The first bytes of a prior-knowledge peer: the preface's request line
    with the rest broken, or a first line that is no HTTP/1.x request line."""
    if seen.startswith(_PREFACE_LINE):
        return True
    line, found, _ = seen.partition(b"\r\n")
    return bool(found) and request_line.fullmatch(line) is None


def _asks_for_h2c(request: Request) -> bool:
    """An HTTP/1.1 request asking to go on in h2c (RFC 7540 section 3.2):
    ``Upgrade: h2c``, one well-formed ``HTTP2-Settings`` field, both named in
    Connection. Anything less is served as HTTP/1.1, the offer ignored."""
    if request.http_version != (1, 1) or not {b"upgrade", b"http2-settings"} <= request.connection:
        return False
    offers = [element.strip(b" \t").lower() for name, value in request.headers
              if name == b"upgrade" for element in value.split(b",")]
    return b"h2c" in offers and h2c_settings(request) is not None


def h2c_settings(request: Request) -> bytes | None:
    """The SETTINGS payload an h2c upgrade request carries in ``HTTP2-Settings``
    (base64url, RFC 7540 section 3.2.1), or None unless there is exactly one
    that decodes to whole settings (six bytes each)."""
    values = [value for name, value in request.headers if name == b"http2-settings"]
    if len(values) != 1 or re.fullmatch(rb"[A-Za-z0-9_-]*={0,2}", values[0]) is None:
        return None
    text = values[0].rstrip(b"=")
    try:
        payload = base64.urlsafe_b64decode(text + b"=" * (-len(text) % 4))
    except ValueError:
        return None
    return payload if len(payload) % 6 == 0 else None


class _ExchangeIO:
    """The connection as one exchange sees it: the body, the response sink,
    upgrades. Its sink methods run on the application's thread; ``cut`` may
    come from the watchdog, so they all take one lock. One per connection,
    begun anew for each exchange."""

    def __init__(self, connection: Connection) -> None:
        self._connection = connection
        self._state = connection.state
        self.response = connection.state.response  # its facts, for the log
        self._output = connection.output
        self._transport = connection.transport
        self._clock = connection.clock
        self._settings = connection.settings
        self._lock = threading.Lock()
        self._detach: Callable[[], None] | None = None
        self.body: IO[bytes] = NO_BODY
        self.peer: Peer = connection.transport.peer  # the client's (address, port)
        # What the connection adds to the environ (its TLS facts): read from
        # the transport (which keeps it) as each exchange begins, after the handshake.
        self.connection_environ: Mapping[str, str] = {}
        self.upgraded = False
        self._cut = True  # until begin()
        self._leftover = b""  # bytes that came after the 101, before we read on

    def begin(self, body: IO[bytes], detach: Callable[[], None] | None) -> None:
        """A new exchange starts."""
        self.body = body
        self._detach = detach
        self._cut = False
        self.connection_environ = self._transport.environ

    def done(self) -> None:
        """The exchange is over: a late cut has nothing left to do."""
        self._lock.acquire()
        self._cut = True
        self._lock.release()

    def cut(self) -> None:
        """End the exchange early: a 503 if no head went out yet, else the
        socket is shut. The application's next write fails. Never waits: if
        the application's thread is inside a write, the socket is shut."""
        if not self._lock.acquire(blocking=False):
            self._cut = True
            self._transport.shutdown()
            return
        try:
            if self._cut:
                return
            self._cut = True
            metrics = self._settings.exchange.metrics
            if metrics is not None:
                metrics.refused(503)
            if not self.response.head_sent:
                try:
                    response = self._state.error_response(
                        503, "too many long-running requests", close=True)
                    self._output.write(response, wait=False)
                    return
                except (ClientDisconnected, ResponseError):
                    pass
            self._transport.shutdown()
        finally:
            self._lock.release()

    def _cut_off(self) -> None:
        raise ClientDisconnected("the request was cut off")

    # -- ResponseSink ----------------------------------------------------

    @property
    def head_sent(self) -> bool:
        """True once the head has gone out."""
        return self.response.head_sent

    def set_head(self, status: str, headers: list[tuple[str, str]]) -> None:
        """Set or replace the pending head."""
        lock = self._lock  # acquire/release: a ``with`` costs more, every request
        lock.acquire()
        try:
            if self._cut:
                self._cut_off()
            self.response.set_head(status, headers)
        finally:
            lock.release()

    def write(self, data: bytes) -> None:
        """Send body data (the head first), waiting for the client past the bound."""
        lock = self._lock  # acquire/release: a ``with`` costs more, every request
        lock.acquire()
        try:
            if self._cut:
                self._cut_off()
            self._output.write(self._state.write(data))
        finally:
            lock.release()

    def write_all(self, pieces: Sequence[bytes]) -> None:
        """Send a body the application made in full: queued, never waited on."""
        with self._lock:
            if self._cut:
                self._cut_off()
            for data in self._state.write_pieces(pieces):
                self._output.write(data, wait=False)

    def write_whole(self, data: bytes) -> None:
        """Send the whole response at once."""
        lock = self._lock  # acquire/release: a ``with`` costs more, every request
        lock.acquire()
        try:
            if self._cut:
                self._cut_off()
            self._output.write(self._state.write_whole(data), wait=False)
        finally:
            lock.release()

    def finish(self) -> None:
        """End the response."""
        lock = self._lock  # acquire/release: a ``with`` costs more, every request
        lock.acquire()
        try:
            if self._cut:
                self._cut_off()
            self._output.write(self._state.finish(), wait=False)
        finally:
            lock.release()

    def send_file(self, file_fd: int, offset: int, available: int) -> bool:
        """Send a file's bytes raw (sendfile, or read where TLS needs it)."""
        with self._lock:
            if self._cut:
                self._cut_off()
            self._output.write(self._state.file_head(available), wait=False)
            count = self._state.raw_count(available)
            if count is None:
                return False  # chunked: the caller frames the file piece by piece
            if count:
                self._output.send_file(file_fd, offset, count)
                self._state.sent_raw(count)
            self._output.write(self._state.finish(), wait=False)
            return True

    def send_error(self, status: int, detail: str, close: bool) -> bool:
        """Answer with a short error response, unless a head already went."""
        with self._lock:
            if self._cut or self.response.head_sent:
                return False
            try:
                self._output.write(self._state.error_response(status, detail, close=close),
                                   wait=False)
            except (ClientDisconnected, ResponseError):
                return False
            return True

    # -- upgrades ----------------------------------------------------------

    def switch_protocols(self, fields: list[tuple[str, str]]) -> None:
        """Send the 101; bytes already received belong to the new protocol.
        The thread leaves the pool's count: a WebSocket lasts."""
        with self._lock:
            if self._cut:
                self._cut_off()
            self._output.write(self._state.switch_protocols(fields), wait=False)
            self._leftover = self._state.take_buffered()
            self.upgraded = True
            self._output.drain()  # the 101 goes before any frame
        if self._detach is not None:
            self._detach()

    def upgraded_wake(self) -> None:
        """End both directions of the upgraded connection: a waiting reader returns."""
        self._transport.shutdown()

    def upgraded_send(self, data: bytes) -> None:
        """Send all of ``data`` on the upgraded connection."""
        self._output.write(data)
        self._output.drain()

    def upgraded_recv(self, max_bytes: int, wait: float | None) -> bytes | None:
        """After 101: the next bytes from the client (b"" at the end), or None
        when nothing arrived within ``wait`` seconds (None: until bytes come
        or ``upgraded_wake`` ends the connection: an idle WebSocket's thread
        sleeps in the kernel, costing no CPU)."""
        if self._leftover:
            data, self._leftover = self._leftover, b""
            return data
        deadline = float("inf") if wait is None else self._clock.monotonic() + wait
        while True:
            if self._connection.closed:
                raise ConnectionAbortedError("the connection is closed")
            received = self._transport.recv(max_bytes)
            if received is not None:
                return received
            if not self._transport.wait_readable(deadline):
                return None
