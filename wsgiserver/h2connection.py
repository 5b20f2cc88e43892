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
One lock (``_io``) guards the h2 state, the streams, the output queue and
the socket. An application that must wait for its client (its share of memory
used, a window held shut) never reads the client's frames: it is detached
from the pool like a long request (so ``--threads 1`` still serves) and
waits on ``_moved``, which the poller's side signals as output leaves.
Lock order: ``lock``, then ``_io``, then the pool's.

Memory. What one connection may hold is bounded as for HTTP/1.1, however
many streams it opens: request bodies share ``2 x --body-memory-bytes``
in memory (past it, bodies go to their spool files), responses share
``4 x --response-buffer-bytes`` waiting for windows (past it, a response's
bytes go to a spool file of its own within the server's spool budget, or
its application waits for its client).

Knows nothing of the poller or the pool: the server gives it ``arm`` (watch
my socket for this interest now) and ``submit`` (run this stream).
"""

from __future__ import annotations

import base64
import enum
import logging
import threading
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import IO

import h2.config
import h2.connection
import h2.events
import h2.exceptions
import h2.settings
from hyperframe.frame import GoAwayFrame

from .body import NO_BODY, RequestBody, SpoolFull
from .budget import BodyBudgets, Budget, FileCount
from .drive import DRAIN_QUIET_SECONDS, SPOOL_FULL_RETRY_AFTER, ConnectionSettings, Step
from .errors import ClientDisconnected, ProtocolError, ResponseError
from .exchange import Exchange
from .h2hpack import RememberingDecoder, RememberingEncoder
from .h2output import FileEnded, Share, StreamOutput
from .protocol.events import Request
from .protocol.http2 import (
    FloodGuard,
    FrameFlood,
    FrameScanner,
    MalformedRequest,
    check_trailers,
    request_from_fields,
    response_fields,
)
from .protocol.policy import ParserLimits, body_too_large
from .protocol.writer import BodyFramer, BodyFraming, ResponseHead, error_text
from .transport import Peer, Transport

__all__ = ["Http2Connection", "Http2Stream"]

log = logging.getLogger("wsgiserver")

# RFC 9113 section 7 error codes.
NO_ERROR = 0x0
PROTOCOL_ERROR = 0x1
INTERNAL_ERROR = 0x2
REFUSED_STREAM = 0x7
CANCEL = 0x8
ENHANCE_YOUR_CALM = 0xB

# Receive windows we offer: bodies are stored as they arrive (memory, then a
# spool file), so a window only paces the client, never our memory.
_STREAM_WINDOW = 1 << 20
_CONNECTION_WINDOW = 16 << 20
# Reads per wake-up of the poller: the others connections get their turn.
_READS_PER_WAKE = 4
_RECV_SIZE = 256 * 1024
# DATA is framed while less than this waits for the socket; beyond
# _OUTPUT_LIMIT unsent (the client reads nothing, while sending frames that
# want answers) nothing more is read from it until it reads.
_OUTPUT_LOW = 128 * 1024
_OUTPUT_LIMIT = 1 << 20
# After the last GOAWAY, what the client still sends is read and dropped
# this long, so that closing does not reset the connection under our answers.
_LINGER_SECONDS = 2.0
# How long an application's wait sleeps before it looks at its deadline again
# (output that moves wakes it at once).
_WAIT_SLICE = 1.0
# One connection's share of memory, in units of one HTTP/1.1 connection's:
# request bodies (--body-memory-bytes) and responses (--response-buffer-bytes).
_BODY_MEMORY_SHARES = 2
_OUTPUT_MEMORY_SHARES = 4


def _never_long() -> None:
    return None


class _Life(enum.Enum):
    """Where the connection is in its life; it only moves down this list
    (DRAINING may be skipped, and GONE and CLOSED come from anywhere)."""

    OPEN = "open"  # new streams are taken
    DRAINING = "draining"  # a GOAWAY either way: open streams finish, no new ones
    FAILING = "failing"  # a connection error: what is queued goes out, then close
    GONE = "gone"  # the client went away: close at once
    LINGERING = "lingering"  # all said: the write side is shut, what arrives is dropped
    CLOSED = "closed"


class _Phase(enum.Enum):
    RECEIVING = "receiving"  # its body is arriving
    QUEUED = "queued"  # complete, waiting for a thread
    RUNNING = "running"  # its application runs
    SENDING = "sending"  # the application is done; DATA still waits for windows
    DONE = "done"


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
        self._io = threading.Lock()
        self._arm = arm
        self._submit = submit
        limits = settings.limits
        self._max_streams = settings.http2.max_concurrent_streams
        self._h2 = self._library_connection(limits, self._max_streams)
        self._scanner = FrameScanner(header_block_limit=2 * limits.max_header_bytes + 1024)
        self._streams: dict[int, Http2Stream] = {}
        self._sending: deque[Http2Stream] = deque()  # streams with DATA or END_STREAM to go
        self._resets: deque[tuple[int, int]] = deque()  # RST_STREAM to write: (stream, code)
        self._out: deque[memoryview] = deque()
        self._out_bytes = 0
        now = self.clock.monotonic()
        self._out_progress_at = now
        self._quiet_since = now
        self._block_started: float | None = None  # an unfinished header block
        self._guard = FloodGuard(self._max_streams, now)
        self._life = _Life.OPEN
        self._goaway_sent = False  # whether we said GOAWAY (once is enough)
        self._last_stream = 0  # past OPEN: streams above it are refused
        self._waiters = 0  # application threads waiting on _moved
        # An application's thread framed output and asked the poller's side
        # to send it; more output framed before that turn rides along.
        self._flush_asked = False
        self._moved = threading.Condition(self._io)  # output left, or a stream ended
        self._body_budgets = self._connection_body_budgets(settings)
        # Response bytes in memory across the streams, and their bound.
        self.output_share = Share(_OUTPUT_MEMORY_SHARES * settings.output_high_water)
        self.received = 0
        self.sent = 0
        self._reported = (0, 0)
        self.deadline = now + settings.keepalive_timeout
        self._start(initial, upgrade)

    @staticmethod
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

    @staticmethod
    def _connection_body_budgets(settings: ConnectionSettings) -> BodyBudgets:
        """The connection's share of body memory, drawn from the server's."""
        shared = settings.body_budgets
        limit = _BODY_MEMORY_SHARES * settings.body_memory_bytes
        if shared is None:
            unbounded = 1 << 62
            return BodyBudgets(Budget(limit), Budget(unbounded), FileCount(unbounded))
        return BodyBudgets(Budget(limit, parent=shared.memory), shared.spool, shared.files)

    # -- what the server reads -------------------------------------------------

    @property
    def closed(self) -> bool:
        """True once the socket is closed."""
        return self._life is _Life.CLOSED

    @property
    def busy(self) -> bool:
        """True while a stream's request runs or waits for a thread."""
        return any(stream.phase in (_Phase.QUEUED, _Phase.RUNNING)
                   for stream in list(self._streams.values()))

    @property
    def idle(self) -> bool:
        """True with no stream open and nothing to send."""
        return not self._streams and not self._out

    # -- driven by the server --------------------------------------------------

    def _start(self, initial: bytes, upgrade: tuple[Request, IO[bytes], bytes] | None) -> None:
        ready: list[Http2Stream] = []
        self._pending_start = ready
        with self._io:
            try:
                if upgrade is not None:
                    request, body, payload = upgrade
                    self._h2.initiate_upgrade_connection(base64.urlsafe_b64encode(payload))
                    stream = Http2Stream(self, 1, request)
                    self._streams[1] = stream
                    stream.input = body
                    stream.phase = _Phase.QUEUED
                    ready.append(stream)
                else:
                    self._h2.initiate_connection()
                self._h2.increment_flow_control_window(_CONNECTION_WINDOW - 65535)
            except (h2.exceptions.ProtocolError, ValueError) as error:
                log.debug("%s: HTTP/2 upgrade refused: %s", self._peer_text(), error)
                self._life = _Life.FAILING
                return
            if initial:
                ready += self._receive(initial)

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
        with self._io:
            self._flush_asked = False
            ready = self._read_some() if self._taking_frames() else []
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
            with self._io:
                self._close_now()
            return True
        now = self.clock.monotonic()
        with self._io:
            self._flush_asked = False
            if self._out and self._out_progress_at + self.settings.write_timeout < now:
                log.debug("%s: HTTP/2 output not read in time", self._peer_text())
                self.transport.abort_on_close()
                self._close_now()
                return True
            if self._block_started is not None and \
                    self._block_started + self.settings.header_timeout < now:
                self._connection_error(PROTOCOL_ERROR, "header block not finished in time")
            for stream in list(self._streams.values()):
                stream.expire(now)
            if not self._streams and not self._out and self._life is not _Life.FAILING and \
                    self._quiet_since + self._idle_wait() < now:
                self._goaway(NO_ERROR)
            self._send()
            step = self._next_step()
        self._count_transfer()
        if step is Step.CLOSED:
            return True
        self._arm(step)
        return False

    def begin_draining(self) -> None:
        """The server is draining (the reaper holds ``lock``): GOAWAY once, the
        open streams finish, then the connection closes."""
        if self._life in (_Life.CLOSED, _Life.LINGERING):
            return
        with self._io:
            self._flush_asked = False
            if not self._goaway_sent and self._life is not _Life.FAILING:
                self._goaway(NO_ERROR)
                self._send()
            self._update_deadline()
            step = self._next_step()
        if step is not Step.CLOSED:
            self._arm(step)

    def cut(self) -> None:
        """From another thread: end every running stream early (503 before a
        head, a reset after); their applications' next writes fail."""
        for stream in list(self._streams.values()):
            stream.cut()

    def close(self) -> None:
        """Close the socket now (idempotent); streams still running fail."""
        with self._io:
            self._close_now()

    # -- reading ---------------------------------------------------------------

    def _read_some(self) -> list[Http2Stream]:
        """Read and handle what the socket has, a few reads at most. Holds _io."""
        ready: list[Http2Stream] = []
        if self._out_bytes > _OUTPUT_LIMIT:
            return ready  # the client reads nothing: read nothing of it
        for _ in range(_READS_PER_WAKE):
            data = self.transport.recv(_RECV_SIZE)
            if data is None:
                break
            if not data:
                self._went_away()
                break
            ready += self._receive(data)
            if self._life is not _Life.OPEN and self._life is not _Life.DRAINING:
                break
        return ready

    def _receive(self, data: bytes) -> list[Http2Stream]:
        """Feed bytes to h2 and act on its events; streams now complete. Holds _io."""
        self.received += len(data)
        ready: list[Http2Stream] = []
        try:
            scanner = self._scanner
            cheap = scanner.feed(data)
            updates, scanner.window_updates = scanner.window_updates, 0
            self._guard.received(cheap, updates, self.clock.monotonic())
            events = self._h2.receive_data(data)
            for event in events:
                self._handle(event, ready)
        except FrameFlood as flood:
            self._connection_error(ENHANCE_YOUR_CALM, str(flood))
        except h2.exceptions.ProtocolError as error:
            # h2 has queued its GOAWAY already.
            log.debug("%s: HTTP/2 connection error: %s", self._peer_text(), error)
            self._fail_streams()
            self._failing()
        self._block_started = None if not self._scanner.in_header_block else \
            (self._block_started or self.clock.monotonic())
        return ready

    def _handle(self, event: object, ready: list[Http2Stream]) -> None:
        kind = type(event)
        if kind is h2.events.DataReceived:
            self._on_data(event)  # type: ignore[arg-type]
        elif kind is h2.events.RequestReceived:
            self._on_request(event)  # type: ignore[arg-type]
        elif kind is h2.events.StreamEnded:
            stream = self._streams.get(event.stream_id)  # type: ignore[attr-defined]
            if stream is not None and stream.phase is _Phase.RECEIVING:
                stream.complete()
                ready.append(stream)
        elif kind is h2.events.StreamReset:
            self._on_reset(event)  # type: ignore[arg-type]
        elif kind is h2.events.TrailersReceived:
            self._on_trailers(event)  # type: ignore[arg-type]
        elif kind is h2.events.ConnectionTerminated:
            if event.error_code:  # type: ignore[attr-defined]
                log.debug("%s: the client ended HTTP/2 with error %s", self._peer_text(),
                          event.error_code)  # type: ignore[attr-defined]
                self._fail_streams()
                self._failing()
            else:  # it takes no new streams from us, nor we from it
                self._draining(self._h2.highest_inbound_stream_id)
        # WindowUpdated and RemoteSettingsChanged give credit: _send follows.
        # PING and SETTINGS are answered by h2; their floods are counted.

    def _on_request(self, event: h2.events.RequestReceived) -> None:
        stream_id = event.stream_id
        if self._life is not _Life.OPEN and stream_id > self._last_stream:
            self._h2.reset_stream(stream_id, REFUSED_STREAM)
            return
        ended = event.stream_ended is not None
        stream = Http2Stream(self, stream_id, None)
        self._streams[stream_id] = stream
        try:
            request = request_from_fields(event.headers or (), self.settings.limits, ended)
        except MalformedRequest as error:
            self._malformed(stream, error)
            return
        except ProtocolError as error:
            log.debug("%s: stream %d: %d %s", self._peer_text(), stream_id, error.status,
                      error.detail)
            stream.refuse(error.status, error.detail, ended)
            return
        stream.request = request
        if not ended:
            stream.spool = RequestBody(self.settings.body_memory_bytes, self.settings.spool_dir,
                                       self._body_budgets)
            stream.body_started = stream.body_at = self.clock.monotonic()
            if request.expect_continue:
                self._h2.send_headers(stream_id, [(b":status", b"100")])

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
        log.debug("%s: stream %d: malformed request: %s", self._peer_text(), stream.id,
                  error.detail)
        stream.reset(PROTOCOL_ERROR)

    def _on_data(self, event: h2.events.DataReceived) -> None:
        stream_id = event.stream_id
        if event.flow_controlled_length:
            self._h2.acknowledge_received_data(event.flow_controlled_length, stream_id)
        stream = self._streams.get(stream_id)
        if stream is None or stream.phase is not _Phase.RECEIVING or stream.spool is None:
            return  # refused or reset: dropped
        data = event.data or b""
        stream.body_at = self.clock.monotonic()
        if stream.spool.size + len(data) > self.settings.limits.max_body_bytes:
            too_large = body_too_large(self.settings.limits.max_body_bytes)
            stream.refuse(413, too_large.detail, ended=False)
            return
        try:
            stream.spool.write(data)
        except SpoolFull as error:
            log.warning("%s: stream %d: %s", self._peer_text(), stream_id, error)
            stream.refuse(503, "the server cannot take this body now", ended=False,
                          retry_after=SPOOL_FULL_RETRY_AFTER)
        except OSError as error:
            log.error("%s: request body could not be stored: %s", self._peer_text(), error)
            stream.refuse(503, "the request body could not be stored", ended=False)

    def _on_reset(self, event: h2.events.StreamReset) -> None:
        stream = self._streams.get(event.stream_id)
        if stream is None:
            return
        if stream.phase is not _Phase.DONE:
            self._guard.reset_under_way()
        stream.cancel()

    def _went_away(self) -> None:
        if self._life is not _Life.CLOSED:
            self._life = _Life.GONE
        self._fail_streams()

    def _taking_frames(self) -> bool:
        """Whether what the client sends is still read and acted on."""
        return self._life is _Life.OPEN or self._life is _Life.DRAINING

    def _draining(self, last_stream: int) -> None:
        """No new streams above ``last_stream``; those open finish."""
        if self._life is _Life.OPEN:
            self._life = _Life.DRAINING
            self._last_stream = last_stream

    def _failing(self) -> None:
        """A connection error: what is queued goes out, then the connection closes."""
        if self._life is _Life.OPEN or self._life is _Life.DRAINING:
            self._life = _Life.FAILING

    def _fail_streams(self) -> None:
        for stream in list(self._streams.values()):
            stream.cancel()

    def _connection_error(self, code: int, why: str) -> None:
        log.debug("%s: HTTP/2 connection closed (%s)", self._peer_text(), why)
        self._fail_streams()
        self._failing()
        self._goaway(code)

    def _goaway(self, code: int) -> None:
        """GOAWAY written by us: h2's own would end its state machine, and
        streams under way must be able to finish after a graceful one."""
        last = self._h2.highest_inbound_stream_id
        frame = GoAwayFrame(0, last_stream_id=last, error_code=code)
        self._collect()  # what h2 has queued goes first
        self._queue_out(frame.serialize())
        self._goaway_sent = True
        self._draining(last)

    # -- sending ----------------------------------------------------------------

    def _queue_out(self, data: bytes) -> None:
        if data:
            self._out.append(memoryview(data))
            self._out_bytes += len(data)

    def _collect(self) -> None:
        self._queue_out(self._h2.data_to_send())

    def _send(self) -> None:
        """Frame what the windows allow and send what the socket takes. Holds _io."""
        if self._life is _Life.CLOSED:
            return
        # What the streams' threads framed may fill the output already: it
        # goes first, then more is framed while the socket takes it all.
        while True:
            self._flush()
            if self._out or self._life is _Life.GONE:
                break
            if not self._pump() and not self._out:
                break
        if self._waiters:
            self._moved.notify_all()

    def _ask_poller(self) -> bool:
        """From a thread not the poller's: something was queued (a head,
        bytes, the end, a reset) that only the poller's side frames and
        writes, so that the responses of all the streams that ran in one
        turn go out in one write (one TLS record and one system call, not
        one a stream). True when the poller's side must be asked to look
        (``arm_for_output``): once until its next turn. Holds _io."""
        if self._flush_asked:
            return False
        self._flush_asked = True
        return True

    def _pump(self) -> bool:
        """Move queued response bytes into DATA frames, one frame per stream
        in turn, while the windows allow and the output is short."""
        self._write_resets()
        self._collect()
        sending = self._sending
        moved_any = False
        stalled = 0
        budget = _OUTPUT_LOW - self._out_bytes
        h2conn = self._h2
        while sending and budget > 0 and stalled < len(sending):
            stream = sending[0]
            try:
                moved = stream.move(h2conn)
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
                sending.popleft()
                stream.sent_all()
            else:
                sending.rotate(-1)
        self._write_resets()  # a file that ended short
        self._collect()
        return moved_any

    def _write_resets(self) -> None:
        """RST_STREAM for the streams reset since the last turn."""
        resets = self._resets
        while resets:
            stream_id, code = resets.popleft()
            try:
                self._h2.reset_stream(stream_id, code)
            except h2.exceptions.ProtocolError:
                pass  # closed already on h2's side

    def _flush(self) -> None:
        out = self._out
        sent_any = False
        if len(out) > 1:
            # One write for what every stream framed (each TLS write is a
            # record and a system call); the queue is bounded (_OUTPUT_LOW
            # of DATA, what h2 answers besides).
            joined = memoryview(b"".join(out))
            out.clear()
            out.append(joined)
        try:
            while out:
                item = out[0]
                sent = self.transport.send(item)
                if not sent:
                    break
                sent_any = True
                self.sent += sent
                self._out_bytes -= sent
                if sent == len(item):
                    out.popleft()
                else:
                    out[0] = item[sent:]
        except ClientDisconnected:
            out.clear()
            self._out_bytes = 0
            self._went_away()
        if sent_any:
            self._out_progress_at = self.clock.monotonic()

    def _interest(self) -> Step:
        if self._out_bytes > _OUTPUT_LIMIT:
            return Step.WRITE
        return Step.READ_WRITE if self._out else Step.READ

    def _next_step(self) -> Step:
        """After acting: close, linger, or what to watch for. Holds _io."""
        life = self._life
        if life is _Life.GONE:
            self._close_now()
            return Step.CLOSED
        if self._finished() and not self._out:
            return self._start_linger()
        self._update_deadline()
        return Step.WRITE if life is _Life.FAILING else self._interest()

    def _finished(self) -> bool:
        """Nothing more will be said but what is queued: a connection error,
        or a GOAWAY either way and no stream left."""
        return self._life is _Life.FAILING or self._life is _Life.DRAINING and not self._streams

    def arm_for_output(self) -> None:
        """From a thread not the poller's: output waits to be framed and
        written, or the connection has something to finish; make sure the
        poller looks."""
        with self.lock:
            if self._life in (_Life.CLOSED, _Life.LINGERING):
                return
            with self._io:
                step = Step.WRITE if self._life is _Life.FAILING else Step.READ_WRITE
            self._arm(step)

    # -- deadlines -----------------------------------------------------------

    def _idle_wait(self) -> float:
        return DRAIN_QUIET_SECONDS if self.settings.draining() else self.settings.keepalive_timeout

    def _update_deadline(self) -> None:
        settings = self.settings
        now = self.clock.monotonic()
        if self._out:
            deadline = self._out_progress_at + settings.write_timeout
        else:
            deadline = now + settings.keepalive_timeout
        if self._block_started is not None:
            deadline = min(deadline, self._block_started + settings.header_timeout)
        if self._streams:
            for stream in list(self._streams.values()):
                deadline = min(deadline, stream.deadline())
        elif not self._out:
            deadline = min(deadline, self._quiet_since + self._idle_wait())
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
        data = self.transport.recv(_RECV_SIZE)
        if data == b"":
            with self._io:
                self._close_now()
            return Step.CLOSED
        return Step.READ

    def _close_now(self) -> None:
        """Close the socket and fail what is still open. Holds _io (or owns
        the connection alone)."""
        if self._life is _Life.CLOSED:
            return
        self._life = _Life.CLOSED
        for stream in list(self._streams.values()):
            stream.cancel()
        self._out.clear()
        self._out_bytes = 0
        self.transport.close()
        if self._waiters:
            self._moved.notify_all()  # waiting applications see the end at once

    def _count_transfer(self) -> None:
        metrics = self.settings.exchange.metrics
        if metrics is not None:
            received, sent = self.received, self.sent
            if (received, sent) != self._reported:
                metrics.transferred(received - self._reported[0], sent - self._reported[1])
                self._reported = (received, sent)

    def _peer_text(self) -> str:
        address, port = self.transport.peer
        return f"{address}:{port}" if address else "peer"

    # -- what streams ask of their connection ------------------------------------

    def _stream_done(self, stream: Http2Stream, completed: bool) -> None:
        """A stream is over (holds _io): forget it; a response that ended
        well earns back a reset."""
        if self._streams.get(stream.id) is stream:
            del self._streams[stream.id]
        if completed:
            self._guard.completed()
        if not self._streams:
            self._quiet_since = self.clock.monotonic()

    def _want_send(self, stream: Http2Stream) -> None:
        if stream not in self._sending:
            self._sending.append(stream)

    def _wait(self, stream: Http2Stream, satisfied: Callable[[], bool]) -> None:
        """An application's thread waits for its client until ``satisfied``:
        detached from the pool first (a long request's place, so the pool
        keeps serving), then asleep until the poller's side says output
        moved. ClientDisconnected when the stream ends, or when nothing of
        it moved for --write-timeout (the stream is then reset)."""
        stream.went_long()
        write_timeout = self.settings.write_timeout
        timed_out = False
        with self._io:
            while not satisfied():
                if stream.canceled or not self._taking_frames():
                    raise ClientDisconnected("the stream was closed")
                now = self.clock.monotonic()
                deadline = stream.progress_at + write_timeout
                if now >= deadline:
                    log.debug("%s: stream %d: response not read in time",
                              self._peer_text(), stream.id)
                    stream.reset(CANCEL)
                    self._ask_poller()
                    timed_out = True
                    break
                self._waiters += 1
                stream.waiting = True
                try:
                    self._moved.wait(min(deadline - now, _WAIT_SLICE))
                finally:
                    self._waiters -= 1
                    stream.waiting = False
        if timed_out:  # the poller's side writes the RST_STREAM
            self.arm_for_output()
            raise ClientDisconnected("the stream was closed")


class Http2Stream:
    """One stream: its request, its body, its response on the way out.

    The poller side creates it and fills its body; ``run`` (a pool thread)
    calls the application through the ``ExchangeIO`` methods below; the
    connection frames what is queued as the windows allow.
    """

    upgraded = False

    def __init__(self, connection: Http2Connection, stream_id: int,
                 request: Request | None) -> None:
        self.connection = connection
        self.id = stream_id
        self.request = request
        self.phase = _Phase.RECEIVING
        self.spool: RequestBody | None = None  # the body as it arrives
        self.input: IO[bytes] = NO_BODY  # and as the application reads it
        self.body_started = self.body_at = 0.0
        self.canceled = False  # over for us: nothing more is sent
        self._cut_off = False  # the application may not write any more
        self._reset_after_end = False  # the client still sends a body nobody reads
        self._head: ResponseHead | None = None
        self._framer: BodyFramer | None = None
        self._head_sent = False  # the head is decided (its HEADERS may wait)
        self._head_fields: list[tuple[bytes, bytes]] | None = None  # HEADERS to write
        self._head_ends = False  # END_STREAM on the HEADERS
        self._end_queued = False  # END_STREAM goes once the queue is empty
        self._end_sent = False
        settings = connection.settings
        self.output = StreamOutput(connection.output_share, settings.output_high_water,
                                   settings.output_spool)
        self.progress_at = connection.clock.monotonic()
        self.waiting = False  # its application's thread waits for the client
        self.went_long: Callable[[], None] = _never_long
        self._status = 0
        self._high_water = settings.output_high_water
        self._low_water = settings.output_high_water // 4

    # -- poller side (the connection holds _io) --------------------------------

    def complete(self) -> None:
        """The whole request is in: queue it for a thread."""
        self.phase = _Phase.QUEUED
        self.input = self.spool.finish() if self.spool is not None else NO_BODY

    def refuse(self, status: int, detail: str, ended: bool,
               retry_after: int | None = None) -> None:
        """Answer a request we cannot take with a short error; a client still
        sending its body is asked to stop (RST_STREAM NO_ERROR, RFC 9113 8.1)."""
        connection = self.connection
        self._release_body()
        self.phase = _Phase.SENDING
        method = self.request.method if self.request is not None else b"GET"
        self._respond_error(status, detail, method, retry_after)
        if not ended:
            self._reset_after_end = True
        connection._want_send(self)
        exchange = connection.settings.exchange
        if exchange.access_log is not None:
            exchange.access_log.record_refused(connection.transport.peer, status, 0,
                                               self.request)
        if exchange.metrics is not None:
            exchange.metrics.refused(status)

    def deadline(self) -> float:
        """When this stream's wait for its client ends."""
        settings = self.connection.settings
        if self.phase is _Phase.RECEIVING and self.spool is not None:
            allowance = settings.body_timeout
            if settings.min_body_rate:
                allowance += self.spool.size / settings.min_body_rate
            return min(self.body_at + settings.body_timeout, self.body_started + allowance)
        if self.phase is _Phase.SENDING:
            return self.progress_at + settings.write_timeout
        return float("inf")

    def expire(self, now: float) -> None:
        """Past its deadline: 408 for a body that stopped, a reset for a
        response whose window stayed shut."""
        if self.deadline() >= now:
            return
        if self.phase is _Phase.RECEIVING:
            log.debug("%s: stream %d: request not received in time",
                      self.connection._peer_text(), self.id)
            self.refuse(408, "request not received in time", ended=False)
        elif self.phase is _Phase.SENDING:
            log.debug("%s: stream %d: response not read in time",
                      self.connection._peer_text(), self.id)
            self.reset(CANCEL)

    def cancel(self) -> None:
        """The stream is over for us (reset by the client, or the connection
        ends): drop what is queued; a running application's next write fails."""
        if self.canceled:
            return
        self.canceled = True
        self.output.clear()
        if self.phase is not _Phase.RUNNING:
            self._release_body()
            self.phase = _Phase.DONE
        self.connection._stream_done(self, completed=False)

    def reset(self, code: int) -> None:
        """Reset the stream ourselves (RST_STREAM), then cancel it."""
        if not self.canceled and not self.connection.closed:
            self.connection._resets.append((self.id, code))  # written by _pump
        self.cancel()

    @property
    def wants_to_send(self) -> bool:
        return not self.canceled and (self._head_fields is not None or bool(self.output) or
                                      self._end_queued and not self._end_sent)

    def move(self, h2conn: h2.connection.H2Connection) -> int:
        """Send the HEADERS if they wait, then one DATA frame (or END_STREAM)
        as the windows allow: body bytes moved."""
        if self.canceled:
            return 0
        fields = self._head_fields
        if fields is not None:
            self._head_fields = None
            h2conn.send_headers(self.id, fields, end_stream=self._head_ends)
            if self._head_ends:
                self._end_sent = True
                self.progress_at = self.connection.clock.monotonic()
                return 0
        output = self.output
        if not output:
            if self._end_queued and not self._end_sent:
                h2conn.end_stream(self.id)
                self._end_sent = True
                self.progress_at = self.connection.clock.monotonic()
            return 0
        window = h2conn.local_flow_control_window(self.id)
        if window <= 0:
            return 0
        try:
            piece = output.take(min(window, h2conn.max_outbound_frame_size))
        except FileEnded:
            log.error("stream %d: the file ended before its announced length", self.id)
            self.reset(INTERNAL_ERROR)
            return 0
        last = self._end_queued and not output
        h2conn.send_data(self.id, piece, end_stream=last)
        if last:
            self._end_sent = True
        self.progress_at = self.connection.clock.monotonic()
        return len(piece)

    def sent_all(self) -> None:
        """Nothing more to send: a finished response is done."""
        if self._end_sent and not self.canceled:
            if self._reset_after_end:
                try:
                    self.connection._h2.reset_stream(self.id, NO_ERROR)
                except h2.exceptions.ProtocolError:
                    pass
            if self.phase is not _Phase.RUNNING:
                self.phase = _Phase.DONE
                self._release_body()
                self.output.close_spool()
                self.connection._stream_done(self, completed=True)

    def stalled(self) -> float:
        """From another thread: seconds its application has waited for the
        client (0 while it works): what the pool's cap on long requests weighs."""
        if not self.waiting:
            return 0.0
        return max(self.connection.clock.monotonic() - self.progress_at, 0.0)

    def _release_body(self) -> None:
        if self.spool is not None:
            self.spool.close()
            self.spool = None
        self.input.close()
        self.input = NO_BODY

    # -- the application's thread ----------------------------------------------

    def run(self, went_long: Callable[[], None] | None = None) -> None:
        """Run the exchange (on a pool thread). ``went_long``: the pool's
        way to detach this thread when it must wait for its client."""
        if went_long is not None:
            self.went_long = went_long
        connection = self.connection
        with connection._io:
            if self.canceled or self.phase is not _Phase.QUEUED or self.request is None:
                return
            self.phase = _Phase.RUNNING
        try:
            Exchange(connection.settings.exchange, self.request, self).run()
        finally:
            self._exchange_done()

    def _exchange_done(self) -> None:
        connection = self.connection
        with connection._io:
            if self.phase is _Phase.RUNNING:
                self.phase = _Phase.SENDING
            self._release_body()
            if self.canceled:
                self.phase = _Phase.DONE
                self.output.close_spool()
                connection._stream_done(self, completed=False)
            elif not self._end_queued:
                # The application failed after its head, or fell short of its
                # Content-Length: this response must not pass for whole.
                self.reset(INTERNAL_ERROR)
            else:
                connection._want_send(self)  # sent_all() ends it once all is out
            # A response left waiting for a window has a deadline of its own.
            connection.deadline = min(connection.deadline, self.deadline())
            # Output waiting for the socket, or a connection that can close
            # now: the poller side must look. (A window still shut waits for
            # the client's WINDOW_UPDATE, which wakes the poller side anyway.)
            arm = connection._ask_poller()
        if arm:
            connection.arm_for_output()

    def _check(self) -> None:
        if self.canceled or self._cut_off:
            raise ClientDisconnected("the stream was closed")

    def _start_head(self, body_length: int | None, ending: bool, exact: bool = True) -> None:
        """HEADERS for the application's head (holds _io)."""
        head = self._head
        if head is None:
            raise ResponseError("no response head was set")
        request = self.request
        settings = self.connection.settings
        fields, framer = response_fields(head, request.method if request else b"GET",
                                         body_length,
                                         settings.date() if settings.date else None,
                                         settings.server_name, exact)
        self._framer = framer
        self._head_sent = True
        self._status = head.code
        # The poller's side writes the HEADERS (move), with END_STREAM when
        # no body follows.
        self._head_fields = fields
        self._head_ends = framer.framing is BodyFraming.NONE or (ending and body_length == 0)
        if self._head_ends:
            self._end_queued = True
        self.connection._want_send(self)

    def _queue_bytes(self, data: bytes) -> None:
        framer = self._framer
        assert framer is not None
        framed = framer.frame(data)
        if framed and not self._end_queued:
            self.output.add(framed)
            self.connection._want_send(self)

    def _end(self) -> None:
        framer = self._framer
        assert framer is not None
        if not self._end_queued:
            framer.end()  # ResponseError when short: the stream is then reset
            self._end_queued = True
            self.connection._want_send(self)

    def _produce(self, pieces: Iterable[bytes], *, body_length: int | None = None,
                 end: bool = False, wait: bool = False,
                 file: tuple[int, int, int] | None = None) -> None:
        connection = self.connection
        with connection._io:
            self._check()
            if not self._head_sent:
                self._start_head(body_length, end, exact=file is None)
            for piece in pieces:
                self._queue_bytes(piece)
            if file is not None:
                self._queue_file(*file)
            if end:
                self._end()
            arm = connection._ask_poller()
            over = not self._has_room(wait, self._high_water)
        if arm:
            connection.arm_for_output()
        if over:
            connection._wait(self, lambda: self._has_room(wait, self._low_water))
        if self.canceled:
            raise ClientDisconnected("the stream was closed")

    def _has_room(self, producing: bool, mark: int) -> bool:
        """Whether the application may go on: a producing one while its
        memory queue is within ``mark``, and any while the connection's
        memory is within its share (or none of it is this stream's)."""
        in_memory = self.output.in_memory
        if producing and in_memory > mark:
            return False
        return not self.connection.output_share.over or not in_memory

    def _queue_file(self, fd: int, offset: int, available: int) -> None:
        framer = self._framer
        assert framer is not None
        count = framer.raw_count(available)
        assert count is not None  # no chunking in HTTP/2
        if count and not self._end_queued:
            self.output.add_file(fd, offset, count)
            framer.sent_raw(count)
            self.connection._want_send(self)

    def _respond_error(self, status: int, detail: str, method: bytes,
                       retry_after: int | None = None) -> None:
        """A whole short error response of the server's own (holds _io)."""
        text, head = error_text(status, detail, retry_after)
        self._head = head
        self._start_head(len(text) if method != b"HEAD" else None, ending=True)
        self._queue_bytes(text)
        self._end()

    def cut(self) -> None:
        """From another thread: a 503 if no head went out, else a reset."""
        connection = self.connection
        with connection._io:
            if self.phase is not _Phase.RUNNING or self.canceled:
                return
            metrics = connection.settings.exchange.metrics
            if metrics is not None:
                metrics.refused(503)
            if not self._head_sent:
                method = self.request.method if self.request is not None else b"GET"
                self._respond_error(503, "too many long-running requests", method)
                self._cut_off = True  # the application's next write fails
            else:
                self.reset(CANCEL)
            connection._ask_poller()
        connection.arm_for_output()

    # -- ExchangeIO ----------------------------------------------------------

    @property
    def body(self) -> IO[bytes]:
        """The request body, received whole (``wsgi.input``)."""
        return self.input

    @property
    def head_sent(self) -> bool:
        """True once the head is decided (its HEADERS are queued or sent)."""
        return self._head_sent

    def set_head(self, status: str, headers: list[tuple[str, str]]) -> None:
        """Set or replace the pending head."""
        with self.connection._io:
            self._check()
            if self._head_sent:
                raise ResponseError("the response head was already sent")
            self._head = ResponseHead(status, headers)

    def write(self, data: bytes) -> None:
        """Send body data (the head first), waiting for the client past the bound."""
        self._produce((data,), wait=True)

    def write_whole(self, data: bytes) -> None:
        """The whole body at once: its length is the Content-Length."""
        self._produce((data,), body_length=len(data), end=True)

    def write_all(self, pieces: Sequence[bytes]) -> None:
        """A body made in full: queued, never waited on."""
        self._produce(pieces, body_length=sum(map(len, pieces)), end=True)

    def finish(self) -> None:
        """End the response."""
        self._produce((), body_length=0 if not self._head_sent else None, end=True)

    def send_file(self, file_fd: int, offset: int, available: int) -> bool:
        """A file body, read into DATA frames as the windows allow."""
        self._produce((), body_length=available, end=True, file=(file_fd, offset, available))
        return True

    def send_error(self, status: int, detail: str, close: bool) -> bool:
        """A short error response of the server's own, unless a head went out."""
        connection = self.connection
        with connection._io:
            if self.canceled or self._head_sent:
                return False
            method = self.request.method if self.request is not None else b"GET"
            self._respond_error(status, detail, method)
            arm = connection._ask_poller()
        if arm:
            connection.arm_for_output()
        return True

    @property
    def peer(self) -> Peer:
        """The client's (address, port)."""
        return self.connection.transport.peer

    @property
    def connection_environ(self) -> Mapping[str, str]:
        """What the connection adds to the environ (its TLS facts)."""
        return self.connection.transport.environ

    @property
    def status_code(self) -> int:
        """The response's status."""
        return self._status or (self._head.code if self._head is not None else 0)

    @property
    def response_fields(self) -> Sequence[tuple[str, str]]:
        """The application's response fields."""
        return self._head.fields if self._head is not None else []

    @property
    def body_bytes(self) -> int:
        """Response body bytes sent (or queued to be)."""
        return self._framer.body_bytes if self._framer is not None else 0

    def switch_protocols(self, fields: list[tuple[str, str]]) -> None:
        """No protocol switch on HTTP/2 (RFC 9113 section 8.6)."""
        raise ResponseError("no protocol upgrade on HTTP/2")

    def upgraded_recv(self, max_bytes: int, wait: float | None) -> bytes | None:
        """Never reached: no upgrade on HTTP/2."""
        raise ResponseError("no protocol upgrade on HTTP/2")

    def upgraded_wake(self) -> None:
        """Never reached: no upgrade on HTTP/2."""
        raise ResponseError("no protocol upgrade on HTTP/2")

    def upgraded_send(self, data: bytes) -> None:
        """Never reached: no upgrade on HTTP/2."""
        raise ResponseError("no protocol upgrade on HTTP/2")
