"""One response as the server makes it, on either protocol (RFC 9110 sections 6.4, 10.1.1, 15).

Sans-IO. A ``ResponseState`` holds the application's head until it goes
(replaceable until then), decides once what the response carries (no body
for HEAD, 1xx, 204 and 304; its length from the application, or from a body
known whole: ``writer.response_length``), keeps the body's framer (a body
longer than its Content-Length is cut, a shorter one fails at its end),
sends the one ``100 Continue`` (only to a client that asked, at most once,
never after a final head) and makes the server's own error responses.

What a head looks like on the wire, and which framings a version may use,
is its encoder's (``HeadEncoder``): HTTP/1.1 makes bytes and may chunk
(``state.ConnectionState``, which also decides whether the connection
persists); HTTP/2 makes a HEADERS field list and ends a body with
END_STREAM (``http2.Http2Encoder``). An HTTP/1.1 connection and an HTTP/2
stream each drive one of these; neither writes a head of its own.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from typing import Generic, Protocol, TypeVar

from ..errors import ResponseError
from .writer import BodyFramer, BodyFraming, ResponseHead, error_text, response_length

__all__ = ["HeadEncoder", "ResponseState"]

HeadT = TypeVar("HeadT")
HeadT_co = TypeVar("HeadT_co", covariant=True)


class HeadEncoder(Protocol[HeadT_co]):
    """A protocol's way of writing heads."""

    def encode_final(self, head: ResponseHead, method: bytes,
                     length: int | None) -> tuple[HeadT_co, BodyFraming]:
        """The final head of ``head`` for a body of ``length`` bytes (None:
        unknown), and the framing its body goes in."""
        ...

    def encode_continue(self) -> HeadT_co:
        """The interim ``100 Continue``."""
        ...


class _Continue(enum.Enum):
    NOT_EXPECTED = "not expected"
    PENDING = "pending"  # the client waits for it before sending the body
    SENT = "sent"
    WITHHELD = "withheld"  # a final response went first; the body may never come


# The members as globals: Python 3.11 reads an Enum class's attributes
# through EnumType.__getattr__, about four times the cost of a global.
_NOT_EXPECTED, _PENDING = _Continue.NOT_EXPECTED, _Continue.PENDING
_SENT, _WITHHELD = _Continue.SENT, _Continue.WITHHELD


class ResponseState(Generic[HeadT]):
    """One exchange's response: ``begin`` it for a request, ``set_head``,
    then ``start`` (the encoded head) and ``frame``/``end`` (the body's
    bytes as they go out), or ``whole`` for a body known whole. Reusable:
    ``begin`` starts over."""

    def __init__(self, encoder: HeadEncoder[HeadT]) -> None:
        self._encoder = encoder
        self._method = b"GET"  # what the server answers before any request
        self._continue = _NOT_EXPECTED
        self._head: ResponseHead | None = None
        # Where it is: attributes to read, never to set (a property would be
        # a call on the request path). No head yet; a head and a body under
        # way (``framer``); done; or switched to another protocol by a 101.
        self.head_sent = False  # a final (or 101) head is decided
        self.framer: BodyFramer | None = None  # the body's, once a final head is
        self.done = False  # the body has ended
        self.switched = False  # a 101 went out: HTTP is over on this connection

    def begin(self, method: bytes = b"GET", expects_continue: bool = False) -> None:
        """A new response, to a request of ``method``; ``expects_continue``:
        the client waits for a 100 before it sends its body."""
        self._method = method
        self._continue = _PENDING if expects_continue else _NOT_EXPECTED
        self._head = None
        self.head_sent = self.done = self.switched = False
        self.framer = None

    # -- the head ------------------------------------------------------------

    def set_head(self, status: str, headers: Iterable[tuple[str, str]]) -> None:
        """Set (or replace) the final head; ResponseError once one went."""
        if self.head_sent:
            raise ResponseError("the response head was already sent")
        self._head = ResponseHead(status, headers)

    def set_error(self, status: int, detail: str = "", retry_after: int | None = None) -> bytes:
        """Make the head a short ``text/plain`` response of the server's own,
        replacing one the application set but did not send; its body is
        returned, to send through ``whole`` (or ``start``, ``frame``, ``end``)."""
        if self.head_sent:
            raise ResponseError("a response is already under way")
        text, self._head = error_text(status, detail, retry_after)
        return text

    def continue_head(self) -> HeadT | None:
        """The ``100 Continue`` to send now, or None: only to a client that
        asked, once, and never once a final head is decided."""
        if self._continue is not _PENDING or self.head_sent:
            return None
        self._continue = _SENT
        return self._encoder.encode_continue()

    def start(self, body_length: int | None, exact: bool = True) -> HeadT:
        """Decide the head and encode it, for a body of ``body_length`` bytes
        (None: still to come); ``exact``: that is the whole body (else the
        bytes a file has available)."""
        head = self._head
        if head is None:
            raise ResponseError("no response head was set")
        method = self._method
        length = response_length(method, head, body_length, exact)
        encoded, framing = self._encoder.encode_final(head, method, length)
        if self._continue is _PENDING:
            self._continue = _WITHHELD
        self.framer = BodyFramer(framing, length)
        self.head_sent = True
        return encoded

    def switch(self) -> None:
        """A ``101 Switching Protocols`` goes out instead of a final head."""
        if self.head_sent:
            raise ResponseError("a response is already under way")
        self.head_sent = self.switched = True

    # -- the body ------------------------------------------------------------

    def whole(self, data: bytes) -> tuple[HeadT, bytes]:
        """The head and the body, for a body known whole, and the end: its
        length is the Content-Length; ResponseError if the application's
        own Content-Length asks for more (the response is then not done)."""
        head = self.start(len(data))
        framer = self.framer
        assert framer is not None
        body = framer.frame_last(data)  # ResponseError if short: not done then
        self.done = True
        return head, body

    def frame(self, data: bytes) -> bytes:
        """Body bytes as they go out (b"" when there is no body to send)."""
        framer = self.framer
        if framer is None or self.done:
            return b""
        return framer.frame(data)

    def end(self) -> bytes:
        """The bytes that end the body; ResponseError if it fell short."""
        framer = self.framer
        if framer is None or self.done:
            return b""
        ending = framer.end()  # raises before the response counts as done
        self.done = True
        return ending

    def raw_count(self, available: int) -> int | None:
        """Bytes of a file to send unframed, or None to frame it in pieces."""
        return self.framer.raw_count(available) if self.framer is not None else None

    def sent_raw(self, count: int) -> None:
        """Account for ``count`` body bytes sent around ``frame`` (a file)."""
        if self.framer is not None:
            self.framer.sent_raw(count)

    # -- what it is ----------------------------------------------------------

    @property
    def status_code(self) -> int:
        """The status of the pending or decided head; 0 before any."""
        if self.switched:
            return 101
        return self._head.code if self._head is not None else 0

    @property
    def fields(self) -> list[tuple[str, str]]:
        """The application's fields as kept (no hop-by-hop ones)."""
        return self._head.fields if self._head is not None else []

    @property
    def body_bytes(self) -> int:
        """Body bytes framed so far."""
        return self.framer.body_bytes if self.framer is not None else 0
