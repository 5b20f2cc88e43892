"""One HTTP/2 connection (RFC 9113): frames to and from events through the
h2 library, the only module that imports it.

Owns the h2 state machine of one connection: the client's bytes to h2
events and the events to streams (``_Inbound``: requests, bodies, trailers,
resets, the client's GOAWAY), and the streams' output framed in turn within
the flow-control windows (``_Framer``: HEADERS, one DATA frame a stream a
round, resets, our GOAWAY) for the ``SendQueue`` to write; and the guards
for what the library leaves unbounded: floods of cheap frames (PING,
SETTINGS, PRIORITY, empty DATA, unknown types), rapid resets, oversized
header blocks, a client that reads nothing.

``Http2Connection`` builds them on a ``ConnectionLife`` (``h2life.py``): the
connection's life, its deadline, the poller's interface, the threads and
their locks, and the connection as its streams see it (``StreamTable``).
Frames are read and written only on the side the poller wakes: it alone
calls the h2 library, holding ``io_lock``. A stream's own state and the face
its exchange sees are ``h2stream.py``'s; they reach the connection only
through the ``StreamTable``. What one connection may hold in memory is
``h2life.py``'s to bound.
"""

from __future__ import annotations

import base64
import logging
from collections import deque
from collections.abc import Callable
from typing import IO

import h2.config
import h2.connection
import h2.events
import h2.exceptions
import h2.settings
from hyperframe.frame import GoAwayFrame

from .body import BodyClock, RequestBody
from .clock import Clock
from .drive import ConnectionSettings, Step
from .errors import ProtocolError
from .h2hpack import RememberingDecoder, RememberingEncoder
from .h2life import ConnectionLife, StreamTable
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
from .outqueue import FileEnded
from .protocol.events import Request
from .protocol.http2 import (
    FloodGuard,
    FrameFlood,
    FrameScanner,
    MalformedRequest,
    RememberedRequests,
    check_trailers,
)
from .protocol.policy import ParserLimits
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


class Http2Connection(ConnectionLife):
    """An HTTP/2 connection: its life and the poller's interface
    (``ConnectionLife``), with frames both ways through the h2 library.

    ``arm(interest)`` asks the poller to watch the socket (a ``Step``:
    READ, WRITE or READ_WRITE); ``submit(stream)`` runs a complete stream's
    exchange on a pool thread (``Http2Stream.run``). ``initial``: bytes
    already received (the preface, after prior knowledge or an upgrade);
    ``upgrade``: the HTTP/1.1 request of an ``Upgrade: h2c``, its body, and
    its HTTP2-Settings payload, which becomes stream 1.
    """

    _inbound: _Inbound
    _framer: _Framer

    def __init__(self, transport: Transport, settings: ConnectionSettings, *,
                 arm: Callable[[Step], None], submit: Callable[[Http2Stream], None],
                 initial: bytes = b"",
                 upgrade: tuple[Request, IO[bytes], bytes] | None = None) -> None:
        assert settings.http2 is not None
        max_streams = settings.http2.max_concurrent_streams
        super().__init__(transport, settings, arm=arm, submit=submit, max_streams=max_streams)
        self._h2 = _library_connection(settings.limits, max_streams)
        self._framer = _Framer(self._h2, self._queue, self._guard, self.clock)
        self._host = StreamTable(self, self._queue, self._framer, self._guard)
        self._inbound = _Inbound(self, self._host, self._h2, self._guard)
        self._start(initial, upgrade)

    def _start(self, initial: bytes, upgrade: tuple[Request, IO[bytes], bytes] | None) -> None:
        """The server's preface, and what arrived with the connection."""
        ready = self._pending_start
        with self.io_lock:
            try:
                self._inbound.begin(upgrade, ready)
            except (h2.exceptions.ProtocolError, ValueError) as error:
                log.debug("%s: HTTP/2 upgrade refused: %s", self._host.peer_text(), error)
                self.fail()
                return
            if initial:
                ready += self._inbound.receive(initial)


class _Inbound:
    """Frames in: the client's bytes to h2 events, the events to streams
    (their requests and trailers here; their bodies, ends and resets through
    the ``StreamTable``). Runs on the poller's side, holding io_lock; the
    connection's life is changed through its methods."""

    def __init__(self, connection: Http2Connection, host: StreamTable,
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
        self._body_budgets = host.body_budgets
        self._requests = RememberedRequests(limits)
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
            stream = self._host.ended(event.stream_id)  # type: ignore[attr-defined]
            if stream is not None:
                ready.append(stream)
        elif kind is h2.events.StreamReset:
            self._host.client_reset(event.stream_id)  # type: ignore[attr-defined]
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
            request = self._requests.request(event.headers or (), ended)
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
        if event.flow_controlled_length:
            self._h2.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
        self._host.body_arrived(event.stream_id, event.data or b"")


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
