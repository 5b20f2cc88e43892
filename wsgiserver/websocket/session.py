"""WebSocket: a blocking RFC 6455 session for an application's worker thread.

Owns one upgraded connection's state: messages in and out, Pongs for Pings,
the close handshake, and the locks that let another thread close it. Knows
no sockets (it is given a ``recv`` and a ``send`` callable) and no HTTP;
the bytes on the wire are frames.py's business.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator

from .deflate import Deflate
from .frames import (
    NEED_DATA,
    BinaryMessage,
    CloseCode,
    CloseReceived,
    Event,
    FrameParser,
    Opcode,
    Ping,
    TextMessage,
    WebSocketError,
    encode_close,
    encode_frame,
)

__all__ = ["WebSocket", "ConnectionClosed"]

# How much one recv() may return; the parser buffers any surplus.
_RECV_SIZE = 64 * 1024


class ConnectionClosed(ConnectionError):
    """A message or Ping could not be sent: the WebSocket is closing or closed."""

    def __init__(self, code: int | None, detail: str = "the WebSocket is closed") -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail


class WebSocket:
    """One WebSocket connection, after the 101 response, as the app sees it.

    ``recv(n)`` blocks until data arrives and returns b"" at EOF, raising
    TimeoutError or OSError on a timeout or failure; ``send(data)`` sends all
    of it or raises OSError. The WebSocket never closes the transport: its
    owner does, once ``closed`` is true or close() has returned.

    ``close_code`` is RFC 6455's "WebSocket Connection Close Code" (section
    7.1.5): the code of the peer's Close frame, 1005 if it had none, 1006 if
    the connection ended without one; and, when this side failed the
    connection for a protocol error, the code it sent (1002, 1007, 1009).
    """

    def __init__(
        self,
        recv: Callable[[int], bytes],
        send: Callable[[bytes], None],
        *,
        subprotocol: str | None = None,
        max_message_bytes: int = 1 << 20,
        close_timeout: float = 5.0,
        deflate: Deflate | None = None,
        on_finish: Callable[[], None] | None = None,
    ) -> None:
        self._recv = recv
        # Called once the session is over, from the thread that ended it: the
        # transport's owner ends the connection, so a reader blocked on it
        # (an idle WebSocket waits without a timeout) returns.
        self._on_finish = on_finish
        self._send = send
        self.subprotocol = subprotocol
        self.close_timeout = close_timeout
        # permessage-deflate, when the handshake agreed on it (RFC 7692).
        self.deflate = deflate
        self._parser = FrameParser(max_message_bytes, deflate=deflate)
        self.close_code: int | None = None
        self.close_reason = ""
        # Sends are serialized, and _output_closed (our Close went out or the
        # transport failed: nothing more may be sent) changes only under it.
        self._send_lock = threading.Lock()
        self._output_closed = False
        # One reader at a time: the app in receive(), or close() draining.
        self._receive_lock = threading.Lock()
        self._state_lock = threading.Lock()
        self._done = threading.Event()
        # When the peer last sent a message (not a control frame): idle timeouts.
        self.last_message_at = time.monotonic()

    @property
    def closed(self) -> bool:
        """True once the connection is over: nothing more comes in or goes out."""
        return self._done.is_set()

    @property
    def closing(self) -> bool:
        """True once our Close frame has gone out (or sending failed)."""
        return self._output_closed

    # -- receiving ----------------------------------------------------------

    def receive(self) -> str | bytes | None:
        """The next message (str for text, bytes for binary); None once closed.

        Pings are answered with Pongs on the way. A protocol violation by the
        peer fails the connection with its close code and returns None. A
        TimeoutError from ``recv`` propagates and leaves the session usable.
        """
        with self._receive_lock:
            while not self.closed:
                event = self._next_event(deadline=None)
                if event is None:
                    break
                message = self._handle(event)
                if message is not None:
                    return message
        return None

    def __iter__(self) -> Iterator[str | bytes]:
        """Every message until the connection closes."""
        while (message := self.receive()) is not None:
            yield message

    def _next_event(self, deadline: float | None) -> Event | None:
        """The parser's next event, reading as needed; None once it is over."""
        while True:
            try:
                event = self._parser.next_event()
            except WebSocketError as error:
                self._fail(error)
                return None
            if event is not NEED_DATA:
                return event
            if not self._fill(deadline):
                return None

    def _fill(self, deadline: float | None) -> bool:
        """Feed the parser one ``recv``; False (and closed) when the transport
        ended or, while closing, the deadline passed."""
        if deadline is not None and time.monotonic() >= deadline:
            self._finish(CloseCode.ABNORMAL, "no Close frame from the peer in time")
            return False
        try:
            data = self._recv(_RECV_SIZE)
        except TimeoutError:
            if deadline is None:
                raise
            return True  # the deadline, checked above, decides when to give up
        except WebSocketError as error:  # the transport's owner gave up on the peer
            self._fail(error)
            return False
        except OSError as error:
            self._finish(CloseCode.ABNORMAL, f"connection failed: {error}")
            return False
        if not data:
            self._finish(CloseCode.ABNORMAL, "connection closed without a Close frame")
            return False
        self._parser.feed(data)
        return True

    def _handle(self, event: Event) -> str | bytes | None:
        """Act on one event; returns the message for the app, if any."""
        if isinstance(event, CloseReceived):
            self._close_received(event)
        elif isinstance(event, Ping):
            self._answer_ping(event.payload)
        elif isinstance(event, (TextMessage, BinaryMessage)) and not self._output_closed:
            # Once our Close has gone out the app has said it wants no more
            # messages; those still in flight are dropped (section 1.4).
            self.last_message_at = time.monotonic()
            return event.data
        return None

    def _answer_ping(self, payload: bytes) -> None:
        # Section 5.5.2: answer "as soon as is practical" with the same payload;
        # not at all once our Close has been sent (section 5.5.1).
        try:
            self._send_frame(encode_frame(Opcode.PONG, payload))
        except ConnectionClosed:
            pass

    def _close_received(self, event: CloseReceived) -> None:
        # Section 5.5.1: an endpoint that receives a Close it has not sent one
        # for answers with a Close, echoing the status code it received.
        code = CloseCode.NO_STATUS if event.code is None else event.code
        self._send_close_once(encode_close(event.code))
        self._finish(code, event.reason)

    def _fail(self, error: WebSocketError) -> None:
        # Section 7.1.7: _Fail the WebSocket Connection_: send a Close with
        # the code if none went out yet, and read nothing more from the peer.
        reason = error.detail.encode("utf-8")[:123].decode("utf-8", "ignore")
        self._send_close_once(encode_close(error.close_code, reason))
        self._finish(error.close_code, error.detail)

    def _finish(self, code: int, reason: str) -> None:
        """The connection is over; the first cause to get here is the one kept."""
        with self._state_lock:
            if self._done.is_set():
                return
            self.close_code = code
            self.close_reason = reason
            self._done.set()
        if self._on_finish is not None:
            self._on_finish()

    # -- sending ------------------------------------------------------------

    def send(self, message: str | bytes | bytearray | memoryview) -> None:
        """Send one message: str as a text frame, bytes-like as a binary frame."""
        if isinstance(message, str):
            opcode, payload = Opcode.TEXT, message.encode("utf-8")
        elif isinstance(message, (bytes, bytearray, memoryview)):
            opcode, payload = Opcode.BINARY, bytes(message)
        else:
            raise TypeError(f"a message is str or bytes, not {type(message).__name__}")
        compressed = self.deflate.compress(payload) if self.deflate is not None else None
        if compressed is not None:
            self._send_frame(encode_frame(opcode, compressed, compressed=True))
        else:
            self._send_frame(encode_frame(opcode, payload))

    def ping(self, payload: bytes = b"") -> None:
        """Send a Ping (at most 125 bytes); the peer's Pong is read and ignored."""
        self._send_frame(encode_frame(Opcode.PING, bytes(payload)))

    def _send_frame(self, frame: bytes) -> None:
        with self._send_lock:
            if self._output_closed:
                raise ConnectionClosed(self.close_code)
            try:
                self._send(frame)
            except OSError as error:
                self._output_closed = True
                self._finish(CloseCode.ABNORMAL, f"connection failed: {error}")
                raise ConnectionClosed(self.close_code, str(error)) from error

    def _send_close_once(self, frame: bytes) -> bool:
        """Send our Close frame unless one (or the transport) already went."""
        with self._send_lock:
            if self._output_closed:
                return False
            self._output_closed = True
            try:
                self._send(frame)
            except OSError as error:
                self._finish(CloseCode.ABNORMAL, f"connection failed: {error}")
                return False
            return True

    # -- closing ------------------------------------------------------------

    def close(self, code: int = CloseCode.NORMAL, reason: str = "") -> None:
        """Run the close handshake (RFC 6455 section 7.1.2); idempotent, any thread.

        Sends a Close with ``code`` and ``reason``, then waits for the
        peer's Close. The wait is bounded by ``close_timeout`` between reads,
        but a single ``recv`` blocks as long as its own timeout lets it; if no
        Close arrives in time the session ends with close_code 1006 and the
        transport's owner should just close it. If another thread is inside
        receive(), that call reads the peer's Close and returns None. Sending
        our Close waits for a send() in progress, as long as ``send`` blocks.
        """
        frame = encode_close(code, reason)  # a bad code raises before any change
        deadline = time.monotonic() + self.close_timeout
        self._send_close_once(frame)
        while not self.closed:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self._finish(CloseCode.ABNORMAL, "no Close frame from the peer in time")
                return
            if self._receive_lock.acquire(timeout=remaining):
                try:
                    self._drain(deadline)
                finally:
                    self._receive_lock.release()

    def _drain(self, deadline: float) -> None:
        """Read (and drop messages) until the peer's Close, EOF or the deadline."""
        while not self.closed:
            event = self._next_event(deadline)
            if event is None:
                return
            self._handle(event)
