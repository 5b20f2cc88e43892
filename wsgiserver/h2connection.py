"""One HTTP/2 connection (RFC 9113): frames both ways through the h2 library,
each stream one exchange on the worker pool, many at once.

Owns the h2 state machine of one connection and its streams: a request body
received whole before its application runs (memory, then a spool file, as
for HTTP/1.1), a response queued as DATA frames within the flow-control
windows, fairly among the streams; and the guards for what the library
leaves unbounded: floods of cheap frames (PING, SETTINGS, PRIORITY, empty
DATA, unknown types), rapid resets, oversized header blocks, a client that
reads nothing, bodies that never end and windows held shut.

Threads. Frames are read and written only on the side the poller wakes
(``on_ready``, ``expire``, ``begin_draining``, under ``lock``): it alone
calls the h2 library. Each stream's application runs on a pool thread and
queues its response (the head's fields, its bytes, the end, a reset) on
its stream, then arms the poller once until its next turn; that turn
frames what the windows allow for every stream and writes it in one go.
One lock (``io_lock``) guards the h2 state, the streams, the output queue and
the socket. An application that must wait for its client (its share of memory
used, a window held shut) never reads the client's frames: it is detached
from the pool like a long request (so ``--threads 1`` still serves) and
sleeps on the ``SendQueue`` (``h2send.py``), which the poller's side
wakes as output leaves.
Lock order: ``lock``, then ``io_lock``, then the pool's.

Memory. What one connection may hold is bounded as for HTTP/1.1, however
many streams it opens: request bodies share ``2 x --body-memory-bytes``
in memory (past it, bodies go to their spool files), responses share
``4 x --response-buffer-bytes`` waiting for windows (past it, a response's
bytes go to a spool file of its own within the server's spool budget, or
its application waits for its client).

Inside: ``Http2Connection`` keeps the connection's life and the poller's
interface; ``_Inbound`` turns the client's bytes into events and the events
into streams; ``_Framer`` frames the streams' output in turn and hands it
to the ``SendQueue``; ``_StreamHost`` is the connection as its streams see
it. A stream's own state and the face its exchange sees are
``h2stream.py``'s; they reach the connection only through ``_StreamHost``.

Knows nothing of the poller or the pool: the server gives it ``arm`` (watch
my socket for this interest now) and ``submit`` (run this stream).
"""

from __future__ import annotations

import base64
import enum
import logging
import threading
from collections import deque
from collections.abc import Callable
from typing import IO

import h2.config
import h2.connection
import h2.events
import h2.exceptions
import h2.settings
from hyperframe.frame import GoAwayFrame

from .body import BodyClock, RequestBody, SpoolFull
from .budget import BodyBudgets, Budget, FileCount
from .clock import Clock
from .drive import DRAIN_QUIET_SECONDS, SPOOL_FULL_RETRY_AFTER, ConnectionSettings, Step
from .errors import ProtocolError
from .h2hpack import RememberingDecoder, RememberingEncoder
from .h2output import FileEnded, Share
from .h2send import OUTPUT_LOW, SendQueue
from .h2stream import (
    ENHANCE_YOUR_CALM,
    INTERNAL_ERROR,
    NO_ERROR,
    PROTOCOL_ERROR,
    REFUSED_STREAM,
    Http2Stream,
    Phase,
)
from .protocol.events import Request
from .protocol.http2 import (
    FloodGuard,
    FrameFlood,
    FrameScanner,
    MalformedRequest,
    check_trailers,
    request_from_fields,
)
from .protocol.policy import ParserLimits, body_too_large
from .transport import Transport

__all__ = ["Http2Connection", "Http2Stream"]

log = logging.getLogger("wsgiserver")

# Receive windows we offer: bodies are stored as they arrive (memory, then a
# spool file), so a window only paces the client, never our memory.
_STREAM_WINDOW = 1 << 20
_CONNECTION_WINDOW = 16 << 20
# Reads per wake-up of the poller: the others connections get their turn.
_READS_PER_WAKE = 4
_RECV_SIZE = 256 * 1024
# After the last GOAWAY, what the client still sends is read and dropped
# this long, so that closing does not reset the connection under our answers.
_LINGER_SECONDS = 2.0
# One connection's share of memory, in units of one HTTP/1.1 connection's:
# request bodies (--body-memory-bytes) and responses (--response-buffer-bytes).
_BODY_MEMORY_SHARES = 2
_OUTPUT_MEMORY_SHARES = 4


class _Life(enum.Enum):
    """Where the connection is in its life; it only moves down this list
    (DRAINING may be skipped, and GONE and CLOSED come from anywhere)."""

    OPEN = "open"  # new streams are taken
    DRAINING = "draining"  # a GOAWAY either way: open streams finish, no new ones
    FAILING = "failing"  # a connection error: what is queued goes out, then close
    GONE = "gone"  # the client went away: close at once
    LINGERING = "lingering"  # all said: the write side is shut, what arrives is dropped
    CLOSED = "closed"


def _library_connection(limits: ParserLimits, max_streams: int) -> h2.connection.H2Connection:
    """The h2 state machine of one connection, with our settings and coders."""
    # Inbound header blocks are checked by request_from_fields: the
    # library would make a malformed one a connection error.
    config = h2.config.H2Configuration(client_side=False, header_encoding=None,
                                       validate_inbound_headers=False,
                                       validate_outbound_headers=False,
                                       normalize_outbound_headers=False)
    connection = h2.connection.H2Connection(config)
    # HPACK counts 32 bytes per field besides name and value (RFC 7541
    # 4.1): the list size that matches our limit on the header section.
    header_list_size = limits.max_header_bytes + 32 * limits.max_header_count
    # Repeated header blocks (the same response fields, a client's same
    # request) are coded from memory.
    connection.encoder = RememberingEncoder()
    connection.decoder = RememberingDecoder(header_list_size)
    connection.local_settings = h2.settings.Settings(client=False, initial_values={
        h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: max_streams,
        h2.settings.SettingCodes.MAX_HEADER_LIST_SIZE: header_list_size,
        h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: _STREAM_WINDOW,
    })
    return connection


def _connection_body_budgets(settings: ConnectionSettings) -> BodyBudgets:
    """The connection's share of body memory, drawn from the server's."""
    shared = settings.body_budgets
    limit = _BODY_MEMORY_SHARES * settings.body_memory_bytes
    if shared is None:
        unbounded = 1 << 62
        return BodyBudgets(Budget(limit), Budget(unbounded), FileCount(unbounded))
    return BodyBudgets(Budget(limit, parent=shared.memory), shared.spool, shared.files)


class Http2Connection:
    """An HTTP/2 connection, driven by whichever thread holds ``lock``; see
    the module docstring.

    ``arm(interest)`` asks the poller to watch the socket (a ``Step``:
    READ, WRITE or READ_WRITE); ``submit(stream)`` runs a complete stream's
    exchange on a pool thread (``Http2Stream.run``). ``initial``: bytes
    already received (the preface, after prior knowledge or an upgrade);
    ``upgrade``: the HTTP/1.1 request of an ``Upgrade: h2c``, its body, and
    its HTTP2-Settings payload, which becomes stream 1.
    """

    def __init__(self, transport: Transport, settings: ConnectionSettings, *,
                 arm: Callable[[Step], None], submit: Callable[[Http2Stream], None],
                 initial: bytes = b"",
                 upgrade: tuple[Request, IO[bytes], bytes] | None = None) -> None:
        assert settings.http2 is not None
        self.transport = transport
        self.fd = transport.fd
        self.settings = settings
        self.clock = settings.clock
        self.lock = threading.Lock()  # the driver's: see the module docstring
        self.io_lock = threading.Lock()
        self._arm = arm
        self._submit = submit
        max_streams = settings.http2.max_concurrent_streams
        self._h2 = _library_connection(settings.limits, max_streams)
        self.streams: dict[int, Http2Stream] = {}
        now = self.clock.monotonic()
        self._guard = FloodGuard(max_streams, now)
        self._life = _Life.OPEN
        self._goaway_sent = False  # whether we said GOAWAY (once is enough)
        self._last_stream = 0  # past OPEN: streams above it are refused
        # Response bytes in memory across the streams, and their bound.
        self.output_share = Share(_OUTPUT_MEMORY_SHARES * settings.output_high_water)
        self._queue = SendQueue(transport, self.clock, self.io_lock)
        self._framer = _Framer(self._h2, self._queue, self._guard, self.clock)
        self._host = _StreamHost(self, self._queue, self._framer, self._guard)
        self._inbound = _Inbound(self, self._host, self._h2, self._guard)
        self._reported = (0, 0)
        self.deadline = now + settings.keepalive_timeout
        self._start(initial, upgrade)

    # -- what the server reads -------------------------------------------------

    @property
    def closed(self) -> bool:
        """True once the socket is closed."""
        return self._life is _Life.CLOSED

    @property
    def busy(self) -> bool:
        """True while a stream's request runs or waits for a thread."""
        return self._host.busy

    @property
    def idle(self) -> bool:
        """True with no stream open and nothing to send."""
        return not self.streams and not self._queue

    # -- driven by the server --------------------------------------------------

    def _start(self, initial: bytes, upgrade: tuple[Request, IO[bytes], bytes] | None) -> None:
        ready: list[Http2Stream] = []
        self._pending_start = ready
        with self.io_lock:
            try:
                self._inbound.begin(upgrade, ready)
            except (h2.exceptions.ProtocolError, ValueError) as error:
                log.debug("%s: HTTP/2 upgrade refused: %s", self._host.peer_text(), error)
                self._life = _Life.FAILING
                return
            if initial:
                ready += self._inbound.receive(initial)

    def start(self) -> Step:
        """Begin: the server's preface goes out, what arrived is handled."""
        for stream in self._pending_start:
            self._submit(stream)
        self._pending_start = []
        return self.on_ready()

    def on_ready(self) -> Step:
        """The socket is ready for what the last step asked for."""
        life = self._life
        if life is _Life.CLOSED:
            return Step.CLOSED
        if life is _Life.LINGERING:
            return self._linger_read()
        with self.io_lock:
            # A client that reads nothing gets nothing of it read.
            reading = self.taking_frames and not self._queue.over_limit
            ready = self._inbound.read() if reading else []
            self._send()
            step = self._next_step()
        self._count_transfer()
        for stream in ready:
            if not stream.canceled:
                self._submit(stream)
        return step

    def expire(self) -> bool:
        """The deadline passed (the reaper holds ``lock``): 408 for bodies
        that stopped coming, a reset for responses whose window stayed shut,
        close for an idle connection or a client that reads nothing. True
        when the server is to forget the connection."""
        if self._life is _Life.CLOSED:
            return True
        if self._life is _Life.LINGERING:
            with self.io_lock:
                self._close_now()
            return True
        now = self.clock.monotonic()
        with self.io_lock:
            if self._queue and self._queue.progress_at + self.settings.write_timeout < now:
                log.debug("%s: HTTP/2 output not read in time", self._host.peer_text())
                self.transport.abort_on_close()
                self._close_now()
                return True
            self._send()  # what the streams queued moves before they are judged late
            self._expire_parts(now)
            self._send()
            step = self._next_step()
        self._count_transfer()
        if step is Step.CLOSED:
            return True
        self._arm(step)
        return False

    def _expire_parts(self, now: float) -> None:
        """What is late: a header block, the streams, an idle connection."""
        block_started = self._inbound.block_started
        if block_started is not None and block_started + self.settings.header_timeout < now:
            self.connection_error(PROTOCOL_ERROR, "header block not finished in time")
        self._host.expire_streams(now)
        if not self.streams and not self._queue and self._life is not _Life.FAILING and \
                self._host.idle_until() < now:
            self._goaway(NO_ERROR)

    def begin_draining(self) -> None:
        """The server is draining (the reaper holds ``lock``): GOAWAY once, the
        open streams finish, then the connection closes."""
        if self._life in (_Life.CLOSED, _Life.LINGERING):
            return
        with self.io_lock:
            if not self._goaway_sent and self._life is not _Life.FAILING:
                self._goaway(NO_ERROR)
            # Always: this turn answers a stream's request to be written (a
            # re-arm for reading alone would leave its output waiting).
            self._send()
            self._update_deadline()
            step = self._next_step()
        if step is not Step.CLOSED:
            self._arm(step)

    def cut(self) -> None:
        """From another thread: end every running stream early (503 before a
        head, a reset after); their applications' next writes fail."""
        self._host.cut_streams()

    def close(self) -> None:
        """Close the socket now (idempotent); streams still running fail."""
        with self.io_lock:
            self._close_now()

    # -- its life --------------------------------------------------------------

    def accepts(self, stream_id: int) -> bool:
        """Whether a new stream is taken: none above the last after a GOAWAY."""
        return self._life is _Life.OPEN or stream_id <= self._last_stream

    def went_away(self) -> None:
        """The client is gone: close at once."""
        if self._life is not _Life.CLOSED:
            self._life = _Life.GONE
        self._host.cancel_streams()

    def drain(self, last_stream: int) -> None:
        """No new streams above ``last_stream``; those open finish."""
        if self._life is _Life.OPEN:
            self._life = _Life.DRAINING
            self._last_stream = last_stream

    def fail(self) -> None:
        """A connection error whose GOAWAY is said (by h2, or by the client):
        the streams end, what is queued goes out, then the connection closes."""
        self._host.cancel_streams()
        if self._life is _Life.OPEN or self._life is _Life.DRAINING:
            self._life = _Life.FAILING

    def connection_error(self, code: int, why: str) -> None:
        """A connection error of ours: GOAWAY ``code``, then close."""
        log.debug("%s: HTTP/2 connection closed (%s)", self._host.peer_text(), why)
        self.fail()
        self._goaway(code)

    def _goaway(self, code: int) -> None:
        self.drain(self._framer.goaway(code))
        self._goaway_sent = True

    # -- sending ----------------------------------------------------------------

    def _send(self) -> None:
        """Frame what the windows allow and send what the socket takes: what a
        stream's thread asked the poller's side for (``flush_asked``) is done
        here, whichever entry point calls it. Holds io_lock."""
        self._queue.flush_asked = False
        life = self._life
        if life is _Life.CLOSED:
            return
        if life is _Life.GONE:  # what is queued may still go; nothing more
            if not self._queue.flush():
                self.went_away()
        elif not self._framer.send():
            self.went_away()
        self._queue.moved()

    def _next_step(self) -> Step:
        """After acting: close, linger, or what to watch for. Holds io_lock."""
        life = self._life
        if life is _Life.GONE:
            self._close_now()
            return Step.CLOSED
        if self._finished() and not self._queue:
            return self._start_linger()
        self._update_deadline()
        return Step.WRITE if life is _Life.FAILING else self._queue.interest()

    def _finished(self) -> bool:
        """Nothing more will be said but what is queued: a connection error,
        or a GOAWAY either way and no stream left."""
        return self._life is _Life.FAILING or self._life is _Life.DRAINING and not self.streams

    def arm_for_output(self) -> None:
        """From a thread not the poller's: output waits to be framed and
        written, or the connection has something to finish; make sure the
        poller looks."""
        with self.lock:
            if self._life in (_Life.CLOSED, _Life.LINGERING):
                return
            with self.io_lock:
                step = Step.WRITE if self._life is _Life.FAILING else Step.READ_WRITE
            self._arm(step)

    # -- deadlines -----------------------------------------------------------

    def _update_deadline(self) -> None:
        settings = self.settings
        now = self.clock.monotonic()
        if self._queue:
            deadline = self._queue.progress_at + settings.write_timeout
        else:
            deadline = now + settings.keepalive_timeout
        block_started = self._inbound.block_started
        if block_started is not None:
            deadline = min(deadline, block_started + settings.header_timeout)
        if self.streams:
            deadline = min(deadline, self._host.streams_deadline())
        elif not self._queue:
            deadline = min(deadline, self._host.idle_until())
        self.deadline = deadline

    # -- closing ---------------------------------------------------------------

    def _start_linger(self) -> Step:
        """Everything is said: stop sending, drop what still arrives a moment."""
        if not self.transport.shutdown_write():
            self._close_now()
            return Step.CLOSED
        self._life = _Life.LINGERING
        self.deadline = self.clock.monotonic() + _LINGER_SECONDS
        return Step.READ

    def _linger_read(self) -> Step:
        if self._inbound.drop_what_arrives():
            with self.io_lock:
                self._close_now()
            return Step.CLOSED
        return Step.READ

    def _close_now(self) -> None:
        """Close the socket and fail what is still open. Holds io_lock (or owns
        the connection alone)."""
        if self._life is _Life.CLOSED:
            return
        self._life = _Life.CLOSED
        self._host.cancel_streams()
        self._queue.clear()
        self.transport.close()
        self._queue.moved()  # waiting applications see the end at once

    def _count_transfer(self) -> None:
        metrics = self.settings.exchange.metrics
        if metrics is not None:
            received, sent = self._inbound.received, self._queue.sent
            if (received, sent) != self._reported:
                metrics.transferred(received - self._reported[0], sent - self._reported[1])
                self._reported = (received, sent)

    @property
    def taking_frames(self) -> bool:
        """Whether what the client sends is still read and acted on."""
        return self._life is _Life.OPEN or self._life is _Life.DRAINING


class _StreamHost:
    """The connection as its streams see it (``StreamHost``), as
    ``_ExchangeIO`` is the HTTP/1.1 connection as an exchange sees it: the
    settings, the lock, the output share, and what a stream may ask (to be
    framed, a reset, its end, the poller's look, a sleep until output moves).
    Its asks are the owners' own methods, so a stream's call costs no more."""

    def __init__(self, connection: Http2Connection, queue: SendQueue, framer: _Framer,
                 guard: FloodGuard) -> None:
        self._connection = connection
        self._guard = guard
        self.settings = connection.settings
        self.clock = connection.clock
        self.transport = connection.transport
        self.io_lock = connection.io_lock
        self.output_share = connection.output_share
        self.streams = connection.streams
        self.quiet_since = self.clock.monotonic()  # when the last stream ended
        self.want_send = framer.want_send
        self.queue_reset = framer.queue_reset
        self.ask_poller = queue.ask_poller
        self.sleep = queue.sleep
        self.arm_for_output = connection.arm_for_output

    @property
    def closed(self) -> bool:
        return self._connection.closed

    @property
    def serving(self) -> bool:
        return self._connection.taking_frames

    def peer_text(self) -> str:
        """The client, for log lines."""
        address, port = self.transport.peer
        return f"{address}:{port}" if address else "peer"

    # -- the streams, as the connection sees them -----------------------------

    def idle_until(self) -> float:
        """When a connection without streams is closed as idle."""
        settings = self.settings
        wait = DRAIN_QUIET_SECONDS if settings.draining() else settings.keepalive_timeout
        return self.quiet_since + wait

    @property
    def busy(self) -> bool:
        """True while a stream's request runs or waits for a thread."""
        return any(stream.phase in (Phase.QUEUED, Phase.RUNNING)
                   for stream in list(self.streams.values()))

    def streams_deadline(self) -> float:
        """The earliest of the streams' deadlines."""
        return min((stream.deadline() for stream in list(self.streams.values())),
                   default=float("inf"))

    def expire_streams(self, now: float) -> None:
        for stream in list(self.streams.values()):
            stream.expire(now)

    def cut_streams(self) -> None:
        for stream in list(self.streams.values()):
            stream.cut()

    def cancel_streams(self) -> None:
        for stream in list(self.streams.values()):
            stream.cancel()

    def expect_by(self, deadline: float) -> None:
        """Something must happen by ``deadline``: the reaper looks then (holds io_lock)."""
        connection = self._connection
        connection.deadline = min(connection.deadline, deadline)

    def stream_done(self, stream: Http2Stream, completed: bool) -> None:
        """A stream is over (holds io_lock): forget it; a response that ended
        well earns back a reset."""
        if self.streams.get(stream.id) is stream:
            del self.streams[stream.id]
        if completed:
            self._guard.completed()
        if not self.streams:
            self.quiet_since = self.clock.monotonic()


class _Inbound:
    """Frames in: the client's bytes to h2 events, the events to streams
    (their requests, their bodies, their resets). Runs on the poller's side,
    holding io_lock; the connection's life is changed through its methods."""

    def __init__(self, connection: Http2Connection, host: _StreamHost,
                 h2conn: h2.connection.H2Connection, guard: FloodGuard) -> None:
        self._connection = connection
        self._host = host
        self._h2 = h2conn
        self._guard = guard
        settings = connection.settings
        self._settings = settings
        self._clock = settings.clock
        self._transport = connection.transport
        self._streams = connection.streams
        limits = settings.limits
        self._scanner = FrameScanner(header_block_limit=2 * limits.max_header_bytes + 1024)
        self._body_budgets = _connection_body_budgets(settings)
        self.block_started: float | None = None  # an unfinished header block
        self.received = 0

    def drop_what_arrives(self) -> bool:
        """While lingering: read and drop; True at the end of the stream."""
        return self._transport.recv(_RECV_SIZE) == b""

    def begin(self, upgrade: tuple[Request, IO[bytes], bytes] | None,
              ready: list[Http2Stream]) -> None:
        """The server's preface; after an ``Upgrade: h2c``, its request as
        stream 1, complete (put on ``ready``)."""
        h2conn = self._h2
        if upgrade is not None:
            request, body, payload = upgrade
            h2conn.initiate_upgrade_connection(base64.urlsafe_b64encode(payload))
            stream = Http2Stream(self._host, 1, request)
            self._streams[1] = stream
            stream.input = body
            stream.phase = Phase.QUEUED
            ready.append(stream)
        else:
            h2conn.initiate_connection()
        h2conn.increment_flow_control_window(_CONNECTION_WINDOW - 65535)

    def read(self) -> list[Http2Stream]:
        """Read and handle what the socket has, a few reads at most; streams
        now complete."""
        ready: list[Http2Stream] = []
        connection = self._connection
        for _ in range(_READS_PER_WAKE):
            data = self._transport.recv(_RECV_SIZE)
            if data is None:
                break
            if not data:
                connection.went_away()
                break
            ready += self.receive(data)
            if not connection.taking_frames:
                break
        return ready

    def receive(self, data: bytes) -> list[Http2Stream]:
        """Feed bytes to h2 and act on its events; streams now complete."""
        self.received += len(data)
        ready: list[Http2Stream] = []
        try:
            scanner = self._scanner
            cheap = scanner.feed(data)
            updates, scanner.window_updates = scanner.window_updates, 0
            self._guard.received(cheap, updates, self._clock.monotonic())
            events = self._h2.receive_data(data)
            for event in events:
                self._handle(event, ready)
        except FrameFlood as flood:
            self._connection.connection_error(ENHANCE_YOUR_CALM, str(flood))
        except h2.exceptions.ProtocolError as error:
            # h2 has queued its GOAWAY already.
            log.debug("%s: HTTP/2 connection error: %s", self._host.peer_text(), error)
            self._connection.fail()
        self.block_started = None if not self._scanner.in_header_block else \
            (self.block_started or self._clock.monotonic())
        return ready

    def _handle(self, event: object, ready: list[Http2Stream]) -> None:
        kind = type(event)
        if kind is h2.events.DataReceived:
            self._on_data(event)  # type: ignore[arg-type]
        elif kind is h2.events.RequestReceived:
            self._on_request(event)  # type: ignore[arg-type]
        elif kind is h2.events.StreamEnded:
            stream = self._streams.get(event.stream_id)  # type: ignore[attr-defined]
            if stream is not None and stream.phase is Phase.RECEIVING:
                stream.complete()
                ready.append(stream)
        elif kind is h2.events.StreamReset:
            self._on_reset(event)  # type: ignore[arg-type]
        elif kind is h2.events.TrailersReceived:
            self._on_trailers(event)  # type: ignore[arg-type]
        elif kind is h2.events.ConnectionTerminated:
            if event.error_code:  # type: ignore[attr-defined]
                log.debug("%s: the client ended HTTP/2 with error %s",
                          self._host.peer_text(),
                          event.error_code)  # type: ignore[attr-defined]
                self._connection.fail()
            else:  # it takes no new streams from us, nor we from it
                self._connection.drain(self._h2.highest_inbound_stream_id)
        # WindowUpdated and RemoteSettingsChanged give credit: _send follows.
        # PING and SETTINGS are answered by h2; their floods are counted.

    def _on_request(self, event: h2.events.RequestReceived) -> None:
        stream_id = event.stream_id
        if not self._connection.accepts(stream_id):
            self._h2.reset_stream(stream_id, REFUSED_STREAM)
            return
        ended = event.stream_ended is not None
        stream = Http2Stream(self._host, stream_id, None)
        self._streams[stream_id] = stream
        settings = self._settings
        try:
            request = request_from_fields(event.headers or (), settings.limits, ended)
        except MalformedRequest as error:
            self._malformed(stream, error)
            return
        except ProtocolError as error:
            log.debug("%s: stream %d: %d %s", self._host.peer_text(), stream_id,
                      error.status, error.detail)
            stream.refuse(error.status, error.detail, ended)
            return
        interim = stream.begin(request, ended)
        if not ended:
            stream.spool = RequestBody(settings.body_memory_bytes, settings.spool_dir,
                                       self._body_budgets)
            stream.body_clock = BodyClock(self._clock.monotonic(), settings.body_timeout,
                                          settings.max_body_seconds, settings.min_body_rate)
        if interim is not None:  # the 100 Continue, as the stream's response decides it
            self._h2.send_headers(stream_id, interim)

    def _on_trailers(self, event: h2.events.TrailersReceived) -> None:
        """Trailers are read and dropped (the body is whole without them),
        unless RFC 9113 calls them malformed."""
        stream = self._streams.get(event.stream_id)
        if stream is None:
            return
        try:
            check_trailers(event.headers or ())
        except MalformedRequest as error:
            self._malformed(stream, error)

    def _malformed(self, stream: Http2Stream, error: MalformedRequest) -> None:
        """RFC 9113 8.1.1: a malformed request is a stream error; the
        connection and its other streams go on."""
        log.debug("%s: stream %d: malformed request: %s", self._host.peer_text(),
                  stream.id, error.detail)
        stream.reset(PROTOCOL_ERROR)

    def _on_data(self, event: h2.events.DataReceived) -> None:
        stream_id = event.stream_id
        if event.flow_controlled_length:
            self._h2.acknowledge_received_data(event.flow_controlled_length, stream_id)
        stream = self._streams.get(stream_id)
        if stream is None or stream.phase is not Phase.RECEIVING or stream.spool is None:
            return  # refused or reset: dropped
        data = event.data or b""
        if stream.body_clock is not None:
            stream.body_clock.arrived(self._clock.monotonic())
        max_body_bytes = self._settings.limits.max_body_bytes
        if stream.spool.size + len(data) > max_body_bytes:
            stream.refuse(413, body_too_large(max_body_bytes).detail, ended=False)
            return
        try:
            stream.spool.write(data)
        except SpoolFull as error:
            log.warning("%s: stream %d: %s", self._host.peer_text(), stream_id, error)
            stream.refuse(503, "the server cannot take this body now", ended=False,
                          retry_after=SPOOL_FULL_RETRY_AFTER)
        except OSError as error:
            log.error("%s: request body could not be stored: %s",
                      self._host.peer_text(), error)
            stream.refuse(503, "the request body could not be stored", ended=False)

    def _on_reset(self, event: h2.events.StreamReset) -> None:
        stream = self._streams.get(event.stream_id)
        if stream is None:
            return
        if stream.phase is not Phase.DONE:
            self._guard.reset_under_way()
        stream.cancel()


class _Framer:
    """Frames out: the streams with something to send framed in turn, one
    DATA frame each, within the windows and while the output is short; the
    resets; GOAWAY. What it frames goes to the ``SendQueue``. Runs on the
    poller's side, holding io_lock."""

    def __init__(self, h2conn: h2.connection.H2Connection, queue: SendQueue,
                 guard: FloodGuard, clock: Clock) -> None:
        self._h2 = h2conn
        self._queue = queue
        self._guard = guard
        self._clock = clock
        self._sending: deque[Http2Stream] = deque()  # streams with DATA or END_STREAM to go
        self._resets: deque[tuple[int, int]] = deque()  # RST_STREAM to write: (stream, code)

    def want_send(self, stream: Http2Stream) -> None:
        if stream not in self._sending:
            self._sending.append(stream)

    def queue_reset(self, stream_id: int, code: int) -> None:
        self._resets.append((stream_id, code))

    def collect(self) -> None:
        """What h2 has framed (answers, HEADERS, DATA) goes to the queue."""
        self._queue.add(self._h2.data_to_send())

    def goaway(self, code: int) -> int:
        """GOAWAY written by us (h2's own would end its state machine, and
        streams under way must be able to finish after a graceful one): the
        last stream it lets finish."""
        last = self._h2.highest_inbound_stream_id
        frame = GoAwayFrame(0, last_stream_id=last, error_code=code)
        self.collect()  # what h2 has queued goes first
        self._queue.add(frame.serialize())
        return last

    def send(self) -> bool:
        """Frame what the windows allow and send what the socket takes;
        False when the client went away."""
        queue = self._queue
        # What was framed before (and h2's own answers) goes first, then more
        # is framed while the socket takes it all.
        while True:
            if not queue.flush():
                return False
            if queue:
                # The socket is full: no more DATA, but what h2 answers on
                # its own (PING and SETTINGS acknowledgements) and our resets
                # join the queue, counted against its limit, not left in h2.
                self._write_resets()
                self.collect()
                return True
            if not self.pump() and not queue:
                return True

    def pump(self) -> bool:
        """Write the streams' queued HEADERS, DATA (one frame per stream in
        turn, while the windows allow and the output is short), ends and
        resets."""
        self._write_resets()
        self.collect()
        sending = self._sending
        moved_any = False
        stalled = 0
        budget = OUTPUT_LOW - self._queue.waiting_bytes
        h2conn = self._h2
        while sending and budget > 0 and stalled < len(sending):
            stream = sending[0]
            try:
                moved = self._move(stream, h2conn)
            except h2.exceptions.ProtocolError:  # closed on h2's side meanwhile
                stream.cancel()
                moved = 0
            if moved:
                moved_any = True
                budget -= moved + 9
                self._guard.data_sent()
                stalled = 0
            else:
                stalled += 1
            if not stream.wants_to_send:
                stalled = 0  # it is done (a head alone with END_STREAM moves no bytes)
                sending.popleft()
                if stream.reset_after_end and stream.end_sent and not stream.canceled:
                    self._reset_quietly(stream.id, NO_ERROR)
                stream.sent_all()
            else:
                sending.rotate(-1)
        self._write_resets()  # a file that ended short
        self.collect()
        return moved_any

    def _move(self, stream: Http2Stream, h2conn: h2.connection.H2Connection) -> int:
        """Send the stream's HEADERS if they wait, then one DATA frame (or
        END_STREAM) as the windows allow: body bytes moved."""
        if stream.canceled:
            return 0
        fields = stream.head_fields
        if fields is not None:
            stream.head_fields = None
            h2conn.send_headers(stream.id, fields, end_stream=stream.head_ends)
            if stream.head_ends:
                stream.end_sent = True
                stream.progress_at = self._clock.monotonic()
                return 0
        output = stream.output
        if not output:
            if stream.end_queued and not stream.end_sent:
                h2conn.end_stream(stream.id)
                stream.end_sent = True
                stream.progress_at = self._clock.monotonic()
            return 0
        window = h2conn.local_flow_control_window(stream.id)
        if window <= 0:
            return 0
        try:
            piece = output.take(min(window, h2conn.max_outbound_frame_size))
        except FileEnded:
            log.error("stream %d: the file ended before its announced length", stream.id)
            stream.reset(INTERNAL_ERROR)
            return 0
        last = stream.end_queued and not output
        h2conn.send_data(stream.id, piece, end_stream=last)
        if last:
            stream.end_sent = True
        stream.progress_at = self._clock.monotonic()
        return len(piece)

    def _write_resets(self) -> None:
        """RST_STREAM for the streams reset since the last turn."""
        resets = self._resets
        while resets:
            self._reset_quietly(*resets.popleft())

    def _reset_quietly(self, stream_id: int, code: int) -> None:
        try:
            self._h2.reset_stream(stream_id, code)
        except h2.exceptions.ProtocolError:
            pass  # closed already on h2's side
