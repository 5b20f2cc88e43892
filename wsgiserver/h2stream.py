"""One HTTP/2 stream (RFC 9113 section 5): its life, its request body, its
response queued for the connection to frame, and the face its exchange sees.

``Http2Stream`` is what the connection schedules: the phase of the stream,
its body as it arrives, its deadline, what waits to be framed (the head's
fields, bytes, the end) and its cancel or reset. ``StreamExchange`` is the
stream as one exchange sees it (``ExchangeIO``, as ``_ExchangeIO`` is for
HTTP/1.1): the response head, its framing, the writes of the application's
thread and its waits for the client. Neither knows frames, windows or the
h2 library: they ask their connection through ``StreamHost``.
"""

from __future__ import annotations

import enum
import logging
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import IO, Protocol

from .body import NO_BODY, BodyClock, RequestBody
from .clock import Clock
from .drive import ConnectionSettings
from .errors import ClientDisconnected, ResponseError
from .exchange import Exchange
from .outqueue import OutputQueue, Share
from .protocol.events import Request
from .protocol.http2 import Http2Encoder
from .protocol.response import ResponseState
from .protocol.writer import BODY_NONE
from .transport import Peer, Transport

__all__ = ["Http2Stream", "StreamExchange", "StreamHost", "Phase", "PHASE_RECEIVING",
           "PHASE_QUEUED", "PHASE_RUNNING", "PHASE_SENDING", "PHASE_DONE",
           "NO_ERROR", "PROTOCOL_ERROR", "INTERNAL_ERROR", "REFUSED_STREAM", "CANCEL",
           "ENHANCE_YOUR_CALM"]

log = logging.getLogger("wsgiserver")

# RFC 9113 section 7 error codes.
NO_ERROR = 0x0
PROTOCOL_ERROR = 0x1
INTERNAL_ERROR = 0x2
REFUSED_STREAM = 0x7
CANCEL = 0x8
ENHANCE_YOUR_CALM = 0xB
# How long an application's wait sleeps before it looks at its deadline again
# (output that moves wakes it at once).
_WAIT_SLICE = 1.0


def _never_long() -> None:
    return None


class Phase(enum.Enum):
    RECEIVING = "receiving"  # its body is arriving
    QUEUED = "queued"  # complete, waiting for a thread
    RUNNING = "running"  # its application runs
    SENDING = "sending"  # the application is done; DATA still waits for windows
    DONE = "done"


# The members under plain names, for the path of every request: Python 3.11
# reads an Enum class's attributes through EnumType.__getattr__, about four
# times the cost of a global (drive.py's STEP_* say the same).
PHASE_RECEIVING, PHASE_QUEUED, PHASE_RUNNING = Phase.RECEIVING, Phase.QUEUED, Phase.RUNNING
PHASE_SENDING, PHASE_DONE = Phase.SENDING, Phase.DONE


class StreamHost(Protocol):
    """What a stream asks of its connection (``h2life.StreamTable``)."""

    settings: ConnectionSettings
    clock: Clock
    transport: Transport
    output_share: Share
    response_encoder: Http2Encoder  # its streams' heads as HEADERS fields
    io_lock: threading.Lock  # guards the h2 state, the streams and the output

    @property
    def closed(self) -> bool: ...

    def peer_text(self) -> str:
        """The client, for log lines."""

    def want_send(self, stream: Http2Stream) -> None:
        """``stream`` has something for the poller's side to frame (holds io_lock)."""

    def queue_reset(self, stream_id: int, code: int) -> None:
        """RST_STREAM ``code`` for ``stream_id`` at the next framing (holds io_lock)."""

    def stream_done(self, stream: Http2Stream, completed: bool) -> None:
        """``stream`` is over: forget it (holds io_lock)."""

    def ask_poller(self) -> bool:
        """True when the poller's side must be asked to look (holds io_lock)."""

    def arm_for_output(self) -> None:
        """Make sure the poller's side looks (io_lock not held)."""

    def expect_by(self, deadline: float) -> None:
        """Something must happen by ``deadline`` (holds io_lock)."""

    @property
    def serving(self) -> bool:
        """Whether the connection still reads its client (no error, not closed)."""

    def sleep(self, seconds: float) -> None:
        """Sleep until output moves or a stream ends, ``seconds`` at most (holds io_lock)."""


class Http2Stream:
    """One stream as its connection drives it: its request, its body, what
    of its response waits to be framed, its end.

    The poller's side creates it and fills its body; ``run`` (a pool thread)
    runs the exchange through ``exchange``; the connection frames what is
    queued as the windows allow (``head_fields``, ``output``, the end).
    """

    def __init__(self, host: StreamHost, stream_id: int, request: Request | None) -> None:
        self.host = host
        self.id = stream_id
        self.request = request
        self.phase = PHASE_RECEIVING
        self.spool: RequestBody | None = None  # the body as it arrives
        self.input: IO[bytes] = NO_BODY  # and as the application reads it
        self.body_clock: BodyClock | None = None  # while the body arrives
        self.canceled = False  # over for us: nothing more is sent
        self.reset_after_end = False  # the client still sends a body nobody reads
        self.head_fields: list[tuple[bytes, bytes]] | None = None  # HEADERS to write
        self.head_ends = False  # END_STREAM on the HEADERS
        self.end_queued = False  # END_STREAM goes once the queue is empty
        self.end_sent = False
        settings = host.settings
        # What of its response waits: within its --response-buffer-bytes and
        # the connection's share of memory, then its own spool file.
        self.output = OutputQueue(settings.output_high_water, settings.output_spool,
                                  host.output_share)
        self.progress_at = host.clock.monotonic()
        self.waiting = False  # its application's thread waits for the client
        self.went_long: Callable[[], None] = _never_long
        self.exchange = StreamExchange(self)
        if request is not None:  # stream 1 of an h2c upgrade: its body is in
            self.exchange.begin(request, True)

    def begin(self, request: Request, ended: bool) -> list[tuple[bytes, bytes]] | None:
        """Its request is known: the response will answer it. The fields of
        a ``100 Continue`` to send now if the client waits for one before
        its body (``ended``: it has none)."""
        self.request = request
        return self.exchange.begin(request, ended)

    # -- poller side (the connection holds io_lock) ----------------------------

    def complete(self) -> None:
        """The whole request is in: queue it for a thread."""
        self.phase = PHASE_QUEUED
        self.input = self.spool.finish() if self.spool is not None else NO_BODY

    def refuse(self, status: int, detail: str, ended: bool,
               retry_after: int | None = None) -> None:
        """Answer a request we cannot take with a short error; a client still
        sending its body is asked to stop (RST_STREAM NO_ERROR, RFC 9113 8.1)."""
        self.release_body()
        self.phase = PHASE_SENDING
        self.exchange.respond_error(status, detail, retry_after)
        if not ended:
            self.reset_after_end = True
        self.host.want_send(self)
        exchange = self.host.settings.exchange
        if exchange.access_log is not None:
            exchange.access_log.record_refused(self.host.transport.peer, status, 0,
                                               self.request)
        if exchange.metrics is not None:
            exchange.metrics.refused(status)

    def deadline(self) -> float:
        """When this stream's wait for its client ends."""
        settings = self.host.settings
        if self.phase is PHASE_RECEIVING and self.body_clock is not None:
            return self.body_clock.deadline()  # HTTP/1.1's rule (body.BodyClock)
        if self.phase is PHASE_SENDING:
            return self.progress_at + settings.write_timeout
        return float("inf")

    def expire(self, now: float) -> None:
        """Past its deadline: 408 for a body that stopped, a reset for a
        response whose window stayed shut."""
        if self.deadline() > now:
            return
        if self.phase is PHASE_RECEIVING:
            clock, spool = self.body_clock, self.spool
            if clock is not None and spool is not None and clock.on_time(now, spool.size):
                return  # the rate was met: its window slides on
            log.debug("%s: stream %d: request not received in time",
                      self.host.peer_text(), self.id)
            self.refuse(408, "request not received in time", ended=False)
        elif self.phase is PHASE_SENDING:
            log.debug("%s: stream %d: response not read in time",
                      self.host.peer_text(), self.id)
            self.reset(CANCEL)

    def cancel(self) -> None:
        """The stream is over for us (reset by the client, or the connection
        ends): drop what is queued; a running application's next write fails."""
        if self.canceled:
            return
        self.canceled = True
        self.output.clear()
        if self.phase is not PHASE_RUNNING:
            self.release_body()
            self.phase = PHASE_DONE
        self.host.stream_done(self, completed=False)

    def reset(self, code: int) -> None:
        """Reset the stream ourselves (RST_STREAM), then cancel it."""
        if not self.canceled and not self.host.closed:
            self.host.queue_reset(self.id, code)
        self.cancel()

    @property
    def wants_to_send(self) -> bool:
        return not self.canceled and (self.head_fields is not None or bool(self.output) or
                                      self.end_queued and not self.end_sent)

    def sent_all(self) -> None:
        """Nothing more to send: a finished response is done."""
        if self.end_sent and not self.canceled and self.phase is not PHASE_RUNNING:
            self.phase = PHASE_DONE
            self.release_body()
            self.host.stream_done(self, completed=True)

    def stalled(self) -> float:
        """From another thread: seconds its application has waited for the
        client (0 while it works): what the pool's cap on long requests weighs."""
        if not self.waiting:
            return 0.0
        return max(self.host.clock.monotonic() - self.progress_at, 0.0)

    def release_body(self) -> None:
        if self.spool is not None:
            self.spool.close()
            self.spool = None
        self.input.close()
        self.input = NO_BODY

    # -- what the exchange queues (holds io_lock) ---------------------------------

    def queue_head(self, fields: list[tuple[bytes, bytes]], ends: bool) -> None:
        """HEADERS for the poller's side to write, with END_STREAM when ``ends``."""
        waited = self.wants_to_send
        self.head_fields = fields
        self.head_ends = ends
        if ends:
            self.end_queued = True
        self._queued(waited)

    def queue_bytes(self, framed: bytes) -> None:
        if framed and not self.end_queued:
            waited = self.wants_to_send
            self.output.add(framed)
            self._queued(waited)

    def queue_file(self, fd: int, offset: int, count: int) -> None:
        waited = self.wants_to_send
        self.output.add_file(fd, offset, count)
        self._queued(waited)

    def queue_end(self) -> None:
        waited = self.wants_to_send
        self.end_queued = True
        self._queued(waited)

    def _queued(self, waited: bool) -> None:
        """Something was queued; if nothing waited before, the client's time
        to take it (``progress_at``, what --write-timeout weighs) starts now,
        not when the stream last moved: an application may work for longer
        than the timeout between writes."""
        if not waited:
            self.progress_at = self.host.clock.monotonic()
        self.host.want_send(self)

    # -- the application's thread ----------------------------------------------

    def run(self, went_long: Callable[[], None] | None = None) -> None:
        """Run the exchange (on a pool thread). ``went_long``: the pool's
        way to detach this thread when it must wait for its client."""
        if went_long is not None:
            self.went_long = went_long
        host = self.host
        with host.io_lock:
            if self.canceled or self.phase is not PHASE_QUEUED or self.request is None:
                return
            self.phase = PHASE_RUNNING
        try:
            Exchange(host.settings.exchange, self.request, self.exchange).run()
        finally:
            self._exchange_done()

    def _exchange_done(self) -> None:
        host = self.host
        with host.io_lock:
            if self.phase is PHASE_RUNNING:
                self.phase = PHASE_SENDING
            self.release_body()
            if self.canceled:
                self.phase = PHASE_DONE
                host.stream_done(self, completed=False)
            elif not self.end_queued:
                # The application failed after its head, or fell short of its
                # Content-Length: this response must not pass for whole.
                self.reset(INTERNAL_ERROR)
            else:
                host.want_send(self)  # sent_all() ends it once all is out
            # A response left waiting for a window has a deadline of its own.
            host.expect_by(self.deadline())
            # The end (and whatever is queued) is for the poller's side to
            # frame and write: ask it to look, once per turn.
            arm = host.ask_poller()
        if arm:
            host.arm_for_output()

    def cut(self) -> None:
        """From another thread: a 503 if no head went out, else a reset."""
        host = self.host
        with host.io_lock:
            if self.phase is not PHASE_RUNNING or self.canceled:
                return
            metrics = host.settings.exchange.metrics
            if metrics is not None:
                metrics.refused(503)
            if not self.exchange.head_sent:
                self.exchange.respond_error(503, "too many long-running requests")
                self.exchange.cut_off = True  # the application's next write fails
            else:
                self.reset(CANCEL)
            host.ask_poller()
        host.arm_for_output()


class StreamExchange:
    """The stream as one exchange sees it (``ExchangeIO``): the body, the
    response head and its framing, the writes of the application's thread
    and its waits for the client. The sink's methods take the connection's
    io_lock (``cut`` may come from the watchdog meanwhile)."""

    upgraded = False

    def __init__(self, stream: Http2Stream) -> None:
        self._stream = stream
        self._host = stream.host
        settings = stream.host.settings
        self._settings = settings
        self.cut_off = False  # the application may not write any more
        # The head, its framing and the 100, as HTTP/1.1 decides them; its
        # HEADERS go out when the poller's side writes them.
        self.response: ResponseState[list[tuple[bytes, bytes]]] = ResponseState(
            stream.host.response_encoder)
        self._high_water = settings.output_high_water
        self._low_water = settings.output_high_water // 4

    def _check(self) -> None:
        if self._stream.canceled or self.cut_off:
            raise ClientDisconnected("the stream was closed")

    def begin(self, request: Request, ended: bool) -> list[tuple[bytes, bytes]] | None:
        """The response answers ``request``; the 100's fields if it is due now."""
        response = self.response
        response.begin(request.method, request.expect_continue and not ended)
        return response.continue_head()

    def _start_head(self, body_length: int | None, ending: bool, exact: bool = True) -> None:
        """The head decided and its HEADERS fields queued for the poller's
        side to write (holds io_lock)."""
        response = self.response
        fields = response.start(body_length, exact)
        # END_STREAM on the HEADERS when no body follows.
        self._stream.queue_head(fields, response.framer is not None and
                                (response.framer.framing is BODY_NONE or
                                 (ending and body_length == 0)))

    def _queue_bytes(self, data: bytes) -> None:
        self._stream.queue_bytes(self.response.frame(data))

    def _end(self) -> None:
        if not self._stream.end_queued:
            self.response.end()  # ResponseError when short: the stream is then reset
            self._stream.queue_end()

    def _queue_file(self, fd: int, offset: int, available: int) -> None:
        response = self.response
        count = response.raw_count(available)
        assert count is not None  # no chunking in HTTP/2
        if count and not self._stream.end_queued:
            self._stream.queue_file(fd, offset, count)
            response.sent_raw(count)

    def _produce(self, pieces: Iterable[bytes], *, body_length: int | None = None,
                 end: bool = False, wait: bool = False,
                 file: tuple[int, int, int] | None = None) -> None:
        host = self._host
        lock = host.io_lock
        lock.acquire()  # not ``with``: a third cheaper, on every response's path
        try:
            self._check()
            if not self.response.head_sent:
                self._start_head(body_length, end, exact=file is None)
            for piece in pieces:
                self._queue_bytes(piece)
            if file is not None:
                self._queue_file(*file)
            if end:
                self._end()
            arm = host.ask_poller()
            over = not self._has_room(wait, self._high_water)
        finally:
            lock.release()
        if arm:
            host.arm_for_output()
        if over:
            self._wait_for_client(lambda: self._has_room(wait, self._low_water))
        if self._stream.canceled:
            raise ClientDisconnected("the stream was closed")

    def _wait_for_client(self, satisfied: Callable[[], bool]) -> None:
        """The application's thread waits for its client until ``satisfied``:
        detached from the pool first (a long request's place, so the pool
        keeps serving), then asleep until the poller's side says output
        moved; it never reads frames. ClientDisconnected when the stream
        ends, or when nothing of it moved for --write-timeout (the stream is
        then reset)."""
        stream, host = self._stream, self._host
        stream.went_long()
        write_timeout = self._settings.write_timeout
        timed_out = False
        with host.io_lock:
            while not satisfied():
                if stream.canceled or not host.serving:
                    raise ClientDisconnected("the stream was closed")
                now = host.clock.monotonic()
                deadline = stream.progress_at + write_timeout
                if now >= deadline:
                    log.debug("%s: stream %d: response not read in time",
                              host.peer_text(), stream.id)
                    stream.reset(CANCEL)
                    host.ask_poller()
                    timed_out = True
                    break
                stream.waiting = True
                try:
                    host.sleep(min(deadline - now, _WAIT_SLICE))
                finally:
                    stream.waiting = False
        if timed_out:  # the poller's side writes the RST_STREAM
            host.arm_for_output()
            raise ClientDisconnected("the stream was closed")

    def _has_room(self, producing: bool, mark: int) -> bool:
        """Whether the application may go on: a producing one while its
        memory queue is within ``mark``, and any while the connection's
        memory is within its share (or none of it is this stream's)."""
        in_memory = self._stream.output.in_memory
        if producing and in_memory > mark:
            return False
        return not self._host.output_share.over or not in_memory

    def respond_error(self, status: int, detail: str, retry_after: int | None = None) -> None:
        """A whole short error response of the server's own (holds io_lock)."""
        text = self.response.set_error(status, detail, retry_after)
        self._start_head(len(text), ending=True)
        self._queue_bytes(text)
        self._end()

    # -- ExchangeIO ----------------------------------------------------------

    @property
    def body(self) -> IO[bytes]:
        """The request body, received whole (``wsgi.input``)."""
        return self._stream.input

    @property
    def head_sent(self) -> bool:
        """True once the head is decided (its HEADERS are queued or sent)."""
        return self.response.head_sent

    def set_head(self, status: str, headers: list[tuple[str, str]]) -> None:
        """Set or replace the pending head."""
        with self._host.io_lock:
            self._check()
            self.response.set_head(status, headers)

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
        self._produce((), body_length=0 if not self.response.head_sent else None, end=True)

    def send_file(self, file_fd: int, offset: int, available: int) -> bool:
        """A file body, read into DATA frames as the windows allow."""
        self._produce((), body_length=available, end=True, file=(file_fd, offset, available))
        return True

    def send_error(self, status: int, detail: str, close: bool) -> bool:
        """A short error response of the server's own, unless a head went out."""
        host = self._host
        with host.io_lock:
            if self._stream.canceled or self.response.head_sent:
                return False
            self.respond_error(status, detail)
            arm = host.ask_poller()
        if arm:
            host.arm_for_output()
        return True

    @property
    def peer(self) -> Peer:
        """The client's (address, port)."""
        return self._host.transport.peer

    @property
    def connection_environ(self) -> Mapping[str, str]:
        """What the connection adds to the environ (its TLS facts)."""
        return self._host.transport.environ

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
