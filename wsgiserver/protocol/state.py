"""The server side of one HTTP/1.1 connection as a state machine (RFC 9112 section 9).

Sans-IO: bytes and events in, bytes and decisions out. It alone decides
whether the connection persists (versions, Connection fields, framing
errors, an application's close, draining for shutdown), when the one
``100 Continue`` goes out, whether an unread body is drained or the
connection closed, and it writes every head the server sends: the
application's, and its own (errors, 100, 101), through the response state
both protocols share (``response.ResponseState``), of which it is the
HTTP/1.1 encoder (bytes, chunking, Connection). Knows nothing of sockets,
threads, clocks, logging or WSGI: the date, the server's name and whether
the server is draining are functions it is given.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable, Sequence

from ..errors import ProtocolError
from .events import FRAMING_NONE, Event, Request
from .parser import RequestParser
from .policy import ParserLimits
from .response import ResponseState
from .writer import (
    BODY_CHUNKED,
    BODY_CLOSE,
    BODY_LENGTH,
    BodyFraming,
    ResponseHead,
    choose_framing,
    encode_head,
    length_field_kept,
    reason_phrase,
    status_line,
)

__all__ = ["After", "ConnectionState", "client_persists"]

# RFC 9110 section 15.2.1: an interim response, a status line and no fields.
CONTINUE_HEAD = status_line(100) + b"\r\n"


class After(enum.Enum):
    """What the connection does once a response is over."""

    NEXT_REQUEST = "next request"  # persist; the next request may already be buffered
    CLOSE = "close"  # close now: the client has nothing more to send
    LINGER = "linger"  # stop sending, discard what still arrives for a moment, close
    ABORT = "abort"  # reset: the response is incomplete and must not pass for whole
    SWITCHED = "switched"  # after 101 the connection speaks another protocol


# The members as globals, for the request path: Python 3.11 reads an Enum
# class's attributes through EnumType.__getattr__, about four times the cost
# of a global (3.12 dropped the hook).
AFTER_NEXT_REQUEST, AFTER_CLOSE, AFTER_LINGER = After.NEXT_REQUEST, After.CLOSE, After.LINGER
AFTER_ABORT, AFTER_SWITCHED = After.ABORT, After.SWITCHED


def _never() -> bool:
    return False


def client_persists(request: Request) -> bool:
    """RFC 9112 section 9.3: HTTP/1.1 persists unless ``close``; HTTP/1.0 only
    with ``keep-alive`` (and a response that says so, see ``_server_fields``)."""
    if b"close" in request.connection:
        return False
    return request.http_version >= (1, 1) or b"keep-alive" in request.connection


class ConnectionState:
    """One connection's requests and responses, in order.

    Receiving: ``feed`` bytes, then ``next_event`` gives a Request, Data,
    EndOfMessage, NEED_DATA or PAUSED; a ProtocolError is final. Responding:
    ``response.set_head`` (replaceable until sent; ``response`` also says
    what the response is), then ``write``/``write_whole``/``finish`` return
    the bytes to send; ``error_response`` and
    ``switch_protocols`` are the server's own. Then ``after_response`` says
    what comes next, and ``start_next_request`` moves on.
    """

    def __init__(
        self,
        limits: ParserLimits | None = None,
        *,
        date: Callable[[], str] | None = None,
        server_name: str | None = None,
        draining: Callable[[], bool] = _never,
    ) -> None:
        self._parser = RequestParser(limits)
        self._date = date
        self._server_name = server_name
        self._draining = draining
        self.request: Request | None = None
        self._persist = True  # the connection may carry another request
        self._input_broken = False  # the request's framing was lost
        # The response under way (read its facts here, set its head here);
        # this state is its HTTP/1.1 encoder, and its bytes go through
        # write/finish below, which also weigh persistence.
        self.response: ResponseState[bytes] = ResponseState(self)

    # -- receiving -----------------------------------------------------------

    def feed(self, data: bytes) -> None:
        """Add bytes received from the client."""
        self._parser.feed(data)

    @property
    def buffered(self) -> int:
        """Bytes received and not yet turned into events."""
        return self._parser.buffered

    @property
    def receiving_head(self) -> bool:
        """True while part of a request head has arrived and the rest has not."""
        return self._parser.in_head and self._parser.buffered > 0

    @property
    def body_pending(self) -> bool:
        """True while body bytes of the current request are still to come."""
        return self._parser.body_pending

    @property
    def direct_body(self) -> int:
        """Body bytes that may be read past the parser (see RequestParser.direct_body)."""
        return self._parser.direct_body

    def body_received(self, count: int) -> None:
        """``count`` body bytes were read past the parser and kept."""
        self._parser.body_received(count)

    def next_event(self, max_data: int | None = None) -> Event:
        """The next request event; a ProtocolError ends the connection's requests."""
        try:
            event = self._parser.next_event(max_data)
        except ProtocolError:
            self._persist = False
            self._input_broken = True
            raise
        if type(event) is Request:
            self._begin(event)
        return event

    def _begin(self, request: Request) -> None:
        self.request = request
        self._persist = client_persists(request)
        self.response.begin(request.method,
                        request.expect_continue and request.framing is not FRAMING_NONE)

    def input_failed(self) -> None:
        """The request body cannot be completed: the client went silent or away."""
        self._persist = False
        self._input_broken = True

    def continue_head(self) -> bytes:
        """The ``100 Continue`` to send before reading the body, or b"".

        Exactly once, only to a client that asked (RFC 9110 section
        10.1.1: HTTP/1.1, ``Expect: 100-continue``, a body to come), and
        never once a final response has started.
        """
        return self.response.continue_head() or b""

    # -- responding ----------------------------------------------------------

    def write(self, data: bytes) -> bytes:
        """Body bytes to send: the head first if it has not gone yet."""
        out = self.response
        if out.head_sent:
            framed = out.frame(data)
        else:
            framed = out.start(None) + out.frame(data)
        framer = out.framer
        if framer is not None and framer.overflowed:
            self._persist = False  # the application broke its own framing
        return framed

    def write_whole(self, data: bytes) -> bytes:
        """The entire body at once: its length becomes the Content-Length."""
        out = self.response
        if out.head_sent:
            return self.write(data) + self.finish()
        head, body = out.whole(data)  # ResponseError if short: not done then
        framer = out.framer
        if framer is not None and framer.overflowed:
            self._persist = False  # the application broke its own framing
        return head + body

    def write_pieces(self, pieces: Sequence[bytes]) -> list[bytes]:
        """A body made in full, in pieces: the head (their total is the
        Content-Length) if it has not gone yet, each piece framed, the end."""
        sent = [] if self.response.head_sent else [self.response.start(sum(map(len, pieces)))]
        sent += [self.write(piece) for piece in pieces]
        sent.append(self.finish())
        return sent

    def finish(self) -> bytes:
        """The bytes that end the response; ResponseError if it fell short."""
        if not self.response.head_sent:
            return self.write_whole(b"")  # an empty iterable: the body is known empty
        return self.response.end()

    def file_head(self, available: int) -> bytes:
        """The head before a file body of ``available`` bytes that may go out raw."""
        if self.response.head_sent:
            return b""
        return self.response.start(available, exact=False)

    def raw_count(self, available: int) -> int | None:
        """Bytes of a file to send unframed (sendfile), or None to frame it in pieces."""
        return self.response.raw_count(available)

    def sent_raw(self, count: int) -> None:
        """Account for ``count`` body bytes sent around ``write`` (sendfile)."""
        self.response.sent_raw(count)

    def error_response(self, status: int, detail: str = "", *, close: bool = False,
                       retry_after: int | None = None) -> bytes:
        """A whole short ``text/plain`` response of the server's own.

        Replaces a head the application set but did not send; ``close``
        ends the connection after it (the request's framing is lost).
        """
        text = self.response.set_error(status, detail, retry_after)
        if close:
            self._persist = False
        return self.write_whole(text)

    def switch_protocols(self, fields: Iterable[tuple[str, str]]) -> bytes:
        """The ``101 Switching Protocols`` head; HTTP ends on this connection."""
        self.response.switch()
        self._persist = False
        return encode_head(f"101 {reason_phrase(101)}", list(fields))

    def take_buffered(self) -> bytes:
        """Bytes received after a 101, which belong to the new protocol."""
        return self._parser.take_buffered()

    # -- the HTTP/1.1 encoder of its ResponseState ---------------------------

    def encode_final(self, head: ResponseHead, method: bytes,
                     length: int | None) -> tuple[bytes, BodyFraming]:
        """The head's bytes, with the framing fields (Content-Length or
        chunked), Date, Server and Connection (whether the connection
        persists is decided here, once, and holds)."""
        request = self.request
        version = request.http_version if request is not None else (1, 1)
        framing = choose_framing(version, method, head.code, length)
        fields = head.fields.copy()
        # length_field_kept's first case asked here: a call less per response
        if framing is BODY_LENGTH or length_field_kept(framing, head.code, length):
            fields.append(("Content-Length", str(length)))
        elif framing is BODY_CHUNKED:
            fields.append(("Transfer-Encoding", "chunked"))
        if framing is BODY_CLOSE or head.close:
            self._persist = False
        fields += self._server_fields(head, version)
        return encode_head(head.status, fields), framing

    def encode_continue(self) -> bytes:
        """The interim ``100 Continue``: a status line and no fields."""
        return CONTINUE_HEAD

    def _server_fields(self, head: ResponseHead, version: tuple[int, int]) -> list[tuple[str, str]]:
        fields = []
        if self._date is not None and not head.has_date:
            fields.append(("Date", self._date()))  # RFC 9110 section 6.6.1
        if self._server_name and not head.has_server:
            fields.append(("Server", self._server_name))
        options = []
        if not self._will_persist(at_head=True):
            self._persist = False  # said once, it holds
            options.append("close")
        elif version < (1, 1):
            options.append("keep-alive")  # RFC 9112 appendix C.2.2
        if head.has_upgrade:
            options.append("upgrade")  # RFC 9110 section 7.8
        if options:
            fields.append(("Connection", ", ".join(options)))
        return fields

    # -- after a response ----------------------------------------------------

    def _will_persist(self, at_head: bool = False) -> bool:
        if not self._persist or self._input_broken:
            return False
        # Draining is weighed when a head is written: a head that promised
        # persistence is kept to, since the client may already be sending its
        # next request; that one is answered with close (RFC 9112 9.6).
        if at_head and self._draining():
            return False
        # A body not read to its end leaves the connection's framing unknown
        # to us (and a client without its 100 Continue may never send it).
        return not self._parser.body_pending

    def after_response(self) -> After:
        """What the connection does now that the application is done."""
        out = self.response
        if not out.done:
            return AFTER_SWITCHED if out.switched else AFTER_ABORT
        if self._will_persist():
            return AFTER_NEXT_REQUEST
        self._persist = False
        if self._input_broken or self._parser.buffered or self._parser.body_pending:
            return AFTER_LINGER
        return AFTER_CLOSE

    def start_next_request(self) -> int:
        """Forget the finished exchange; the bytes of the next request already
        buffered (a pipelined one) are returned as a count."""
        self._parser.start_next_request()
        self.request = None
        self.response.begin()
        return self._parser.buffered
