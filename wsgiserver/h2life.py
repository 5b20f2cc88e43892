"""One HTTP/2 connection as the poller drives it, apart from frames: its
life (one state), its deadline, the interface the server drives
(``start``, ``on_ready``, ``expire``, ``begin_draining``, ``cut``,
``close``, ``arm_for_output``) and the connection as its streams see it.

``ConnectionLife`` keeps the life and the poller's interface; the frames
both ways are ``h2connection.py``'s (``Http2Connection`` is a
``ConnectionLife`` with an ``Inbound`` and a ``Framer`` built on the h2
library). ``StreamTable`` is the connection as its streams see it
(``StreamHost``): the streams' table, what the client's events do to them
(a body's bytes, its end, a reset) and their asks (to be framed, a reset,
their end, the poller's look, a sleep until output moves).

Threads. Frames are read and written only on the side the poller wakes
(``on_ready``, ``expire``, ``begin_draining``, under ``lock``): it alone
calls the h2 library. Each stream's application runs on a pool thread and
queues its response (the head's fields, its bytes, the end, a reset) on
its stream, then arms the poller once until its next turn
(``arm_for_output``); that turn frames what the windows allow for every
stream and writes it in one go. One lock (``io_lock``) guards the h2 state,
the streams, the output queue and the socket. An application that must wait
for its client (its share of memory used, a window held shut) never reads
the client's frames: it is detached from the pool like a long request (so
``--threads 1`` still serves) and sleeps on the ``SendQueue``
(``h2send.py``), which the poller's side wakes as output leaves.
Lock order: ``lock``, then ``io_lock``, then the pool's.

Memory. What one connection may hold is bounded as for HTTP/1.1, however
many streams it opens: request bodies share ``2 x --body-memory-bytes``
in memory (past it, bodies go to their spool files), responses share
``4 x --response-buffer-bytes`` waiting for windows (past it, a response's
bytes go to a spool file of its own within the server's spool budget, or
its application waits for its client).

Knows no frames and no h2, nor the poller or the pool: the server gives it
``arm`` (watch my socket for this interest now) and ``submit`` (run this
stream).
"""

from __future__ import annotations

import enum
import logging
import threading
from collections.abc import Callable
from typing import Protocol

from .body import SpoolFull
from .budget import BodyBudgets, Budget, FileCount
from .drive import (
    DRAIN_QUIET_SECONDS,
    SPOOL_FULL_RETRY_AFTER,
    STEP_CLOSED,
    STEP_READ,
    STEP_READ_WRITE,
    STEP_WRITE,
    ConnectionSettings,
    Step,
)
from .h2send import SendQueue
from .h2stream import (
    NO_ERROR,
    PHASE_DONE,
    PHASE_QUEUED,
    PHASE_RECEIVING,
    PHASE_RUNNING,
    PROTOCOL_ERROR,
    Http2Stream,
)
from .outqueue import Share
from .protocol.http2 import FloodGuard, Http2Encoder
from .protocol.policy import body_too_large
from .transport import Transport

__all__ = ["ConnectionLife", "Life", "StreamTable", "Inbound", "Framer",
           "connection_body_budgets"]

log = logging.getLogger("wsgiserver")

# After the last GOAWAY, what the client still sends is read and dropped
# this long, so that closing does not reset the connection under our answers.
_LINGER_SECONDS = 2.0
# One connection's share of memory, in units of one HTTP/1.1 connection's:
# request bodies (--body-memory-bytes) and responses (--response-buffer-bytes).
_BODY_MEMORY_SHARES = 2
_OUTPUT_MEMORY_SHARES = 4


class Life(enum.Enum):
    """Where the connection is in its life; it only moves down this list
    (DRAINING may be skipped, and GONE and CLOSED come from anywhere)."""

    OPEN = "open"  # new streams are taken
    DRAINING = "draining"  # a GOAWAY either way: open streams finish, no new ones
    FAILING = "failing"  # a connection error: what is queued goes out, then close
    GONE = "gone"  # the client went away: close at once
    LINGERING = "lingering"  # all said: the write side is shut, what arrives is dropped
    CLOSED = "closed"


# The members under plain names (see h2stream.py's PHASE_*).
_OPEN, _DRAINING, _FAILING = Life.OPEN, Life.DRAINING, Life.FAILING
_GONE, _LINGERING, _CLOSED = Life.GONE, Life.LINGERING, Life.CLOSED


def connection_body_budgets(settings: ConnectionSettings) -> BodyBudgets:
    """The connection's share of body memory, drawn from the server's."""
    shared = settings.body_budgets
    limit = _BODY_MEMORY_SHARES * settings.body_memory_bytes
    if shared is None:
        unbounded = 1 << 62
        return BodyBudgets(Budget(limit), Budget(unbounded), FileCount(unbounded))
    return BodyBudgets(Budget(limit, parent=shared.memory), shared.spool, shared.files)


class Inbound(Protocol):
    """Frames in, as the connection's life sees them (``h2connection._Inbound``)."""

    block_started: float | None  # when an unfinished header block began
    received: int  # bytes read in all

    def read(self) -> list[Http2Stream]:
        """Read and handle what the socket has; the streams now complete."""

    def drop_what_arrives(self) -> bool:
        """While lingering: read and drop; True at the end of the stream."""


class Framer(Protocol):
    """Frames out, as the connection's life sees them (``h2connection._Framer``)."""

    def send(self) -> bool:
        """Frame what the windows allow, send what the socket takes; False
        when the client went away."""

    def goaway(self, code: int) -> int:
        """Queue our GOAWAY ``code``: the last stream it lets finish."""

    def want_send(self, stream: Http2Stream) -> None:
        """``stream`` has something to frame."""

    def queue_reset(self, stream_id: int, code: int) -> None:
        """RST_STREAM ``code`` for ``stream_id`` at the next framing."""


class ConnectionLife:
    """An HTTP/2 connection's life and the poller's interface, driven by
    whichever thread holds ``lock``; see the module docstring. The frames
    are its subclass's (``Http2Connection``), which sets ``_inbound``,
    ``_framer`` and ``_host`` before the first call.

    ``arm(interest)`` asks the poller to watch the socket (a ``Step``:
    READ, WRITE or READ_WRITE); ``submit(stream)`` runs a complete stream's
    exchange on a pool thread (``Http2Stream.run``).
    """

    _inbound: Inbound
    _framer: Framer
    _host: StreamTable

    def __init__(self, transport: Transport, settings: ConnectionSettings, *,
                 arm: Callable[[Step], None], submit: Callable[[Http2Stream], None],
                 max_streams: int) -> None:
        self.transport = transport
        self.fd = transport.fd
        self.settings = settings
        self.clock = settings.clock
        self.lock = threading.Lock()  # the driver's: see the module docstring
        self.io_lock = threading.Lock()
        self._arm = arm
        self._submit = submit
        self.streams: dict[int, Http2Stream] = {}
        now = self.clock.monotonic()
        self._guard = FloodGuard(max_streams, now)
        self._life = _OPEN
        self._goaway_sent = False  # whether we said GOAWAY (once is enough)
        self._last_stream = 0  # past OPEN: streams above it are refused
        # Response bytes in memory across the streams, and their bound.
        self.output_share = Share(_OUTPUT_MEMORY_SHARES * settings.output_high_water)
        self._queue = SendQueue(transport, self.clock, self.io_lock)
        self._pending_start: list[Http2Stream] = []
        self._reported = (0, 0)
        self.deadline = now + settings.keepalive_timeout

    # -- what the server reads -------------------------------------------------

    @property
    def closed(self) -> bool:
        """True once the socket is closed."""
        return self._life is _CLOSED

    @property
    def busy(self) -> bool:
        """True while a stream's request runs or waits for a thread."""
        return self._host.busy

    @property
    def idle(self) -> bool:
        """True with no stream open and nothing to send."""
        return not self.streams and not self._queue

    # -- driven by the server --------------------------------------------------

    def start(self) -> Step:
        """Begin: the server's preface goes out, what arrived is handled."""
        for stream in self._pending_start:
            self._submit(stream)
        self._pending_start = []
        return self.on_ready()

    def on_ready(self) -> Step:
        """The socket is ready for what the last step asked for."""
        life = self._life
        if life is _CLOSED:
            return STEP_CLOSED
        if life is _LINGERING:
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
        if self._life is _CLOSED:
            return True
        if self._life is _LINGERING:
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
        if step is STEP_CLOSED:
            return True
        self._arm(step)
        return False

    def _expire_parts(self, now: float) -> None:
        """What is late: a header block, the streams, an idle connection."""
        block_started = self._inbound.block_started
        if block_started is not None and block_started + self.settings.header_timeout < now:
            self.connection_error(PROTOCOL_ERROR, "header block not finished in time")
        self._host.expire_streams(now)
        if not self.streams and not self._queue and self._life is not _FAILING and \
                self._host.idle_until() < now:
            self._goaway(NO_ERROR)

    def begin_draining(self) -> None:
        """The server is draining (the reaper holds ``lock``): GOAWAY once, the
        open streams finish, then the connection closes."""
        if self._life in (_CLOSED, _LINGERING):
            return
        with self.io_lock:
            if not self._goaway_sent and self._life is not _FAILING:
                self._goaway(NO_ERROR)
            # Always: this turn answers a stream's request to be written (a
            # re-arm for reading alone would leave its output waiting).
            self._send()
            self._update_deadline()
            step = self._next_step()
        if step is not STEP_CLOSED:
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
        return self._life is _OPEN or stream_id <= self._last_stream

    def went_away(self) -> None:
        """The client is gone: close at once."""
        if self._life is not _CLOSED:
            self._life = _GONE
        self._host.cancel_streams()

    def drain(self, last_stream: int) -> None:
        """No new streams above ``last_stream``; those open finish."""
        if self._life is _OPEN:
            self._life = _DRAINING
            self._last_stream = last_stream

    def fail(self) -> None:
        """A connection error whose GOAWAY is said (by h2, or by the client):
        the streams end, what is queued goes out, then the connection closes."""
        self._host.cancel_streams()
        if self._life is _OPEN or self._life is _DRAINING:
            self._life = _FAILING

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
        if life is _CLOSED:
            return
        if life is _GONE:  # what is queued may still go; nothing more
            if not self._queue.flush():
                self.went_away()
        elif not self._framer.send():
            self.went_away()
        self._queue.moved()

    def _next_step(self) -> Step:
        """After acting: close, linger, or what to watch for. Holds io_lock."""
        life = self._life
        if life is _GONE:
            self._close_now()
            return STEP_CLOSED
        if self._finished() and not self._queue:
            return self._start_linger()
        self._update_deadline()
        return STEP_WRITE if life is _FAILING else self._queue.interest()

    def _finished(self) -> bool:
        """Nothing more will be said but what is queued: a connection error,
        or a GOAWAY either way and no stream left."""
        return self._life is _FAILING or self._life is _DRAINING and not self.streams

    def arm_for_output(self) -> None:
        """From a thread not the poller's: output waits to be framed and
        written, or the connection has something to finish; make sure the
        poller looks."""
        with self.lock:
            if self._life in (_CLOSED, _LINGERING):
                return
            with self.io_lock:
                step = STEP_WRITE if self._life is _FAILING else STEP_READ_WRITE
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
            return STEP_CLOSED
        self._life = _LINGERING
        self.deadline = self.clock.monotonic() + _LINGER_SECONDS
        return STEP_READ

    def _linger_read(self) -> Step:
        if self._inbound.drop_what_arrives():
            with self.io_lock:
                self._close_now()
            return STEP_CLOSED
        return STEP_READ

    def _close_now(self) -> None:
        """Close the socket and fail what is still open. Holds io_lock (or owns
        the connection alone)."""
        if self._life is _CLOSED:
            return
        self._life = _CLOSED
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
        return self._life is _OPEN or self._life is _DRAINING


class StreamTable:
    """The connection as its streams see it (``StreamHost``), as
    ``_ExchangeIO`` is the HTTP/1.1 connection as an exchange sees it: the
    settings, the lock, the output share, and what a stream may ask (to be
    framed, a reset, its end, the poller's look, a sleep until output moves).
    Its asks are the owners' own methods, so a stream's call costs no more.
    And what the client's events do to the streams (a body's bytes, its end,
    a reset), on the poller's side, holding io_lock."""

    def __init__(self, connection: ConnectionLife, queue: SendQueue, framer: Framer,
                 guard: FloodGuard) -> None:
        self._connection = connection
        self._guard = guard
        self.body_budgets = connection_body_budgets(connection.settings)
        self.settings = connection.settings
        self.clock = connection.clock
        self.transport = connection.transport
        self.io_lock = connection.io_lock
        self.output_share = connection.output_share
        self.response_encoder = Http2Encoder(self.settings.date, self.settings.server_name)
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
        return any(stream.phase in (PHASE_QUEUED, PHASE_RUNNING)
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


    # -- what the client's events do to them (holds io_lock) -------------------

    def body_arrived(self, stream_id: int, data: bytes) -> None:
        """DATA for ``stream_id``: stored, or the stream refused (413, 503);
        dropped for a stream refused or reset already."""
        stream = self.streams.get(stream_id)
        if stream is None or stream.phase is not PHASE_RECEIVING or stream.spool is None:
            return
        if stream.body_clock is not None:
            stream.body_clock.arrived(self.clock.monotonic())
        max_body_bytes = self.settings.limits.max_body_bytes
        if stream.spool.size + len(data) > max_body_bytes:
            stream.refuse(413, body_too_large(max_body_bytes).detail, ended=False)
            return
        try:
            stream.spool.write(data)
        except SpoolFull as error:
            log.warning("%s: stream %d: %s", self.peer_text(), stream_id, error)
            stream.refuse(503, "the server cannot take this body now", ended=False,
                          retry_after=SPOOL_FULL_RETRY_AFTER)
        except OSError as error:
            log.error("%s: request body could not be stored: %s", self.peer_text(), error)
            stream.refuse(503, "the request body could not be stored", ended=False)

    def ended(self, stream_id: int) -> Http2Stream | None:
        """The client's END_STREAM: a stream whose request is now complete."""
        stream = self.streams.get(stream_id)
        if stream is not None and stream.phase is PHASE_RECEIVING:
            stream.complete()
            return stream
        return None

    def client_reset(self, stream_id: int) -> None:
        """The client's RST_STREAM: the stream is over (a reset under way
        counts until it is)."""
        stream = self.streams.get(stream_id)
        if stream is None:
            return
        if stream.phase is not PHASE_DONE:
            self._guard.reset_under_way()
        stream.cancel()
