"""The response side of RFC 9112 as bytes: heads, body framing, chunks.

Sans-IO: decides how a response body is delimited (from the request's
version and method and the response's status and length), which fields of
an application's head the server owns, and encodes heads, chunks and the
framed body. Header syntax arrives already checked by the caller; whether
the connection persists is the connection state's decision, not this one's.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from http import HTTPStatus

from ..errors import ResponseError

__all__ = [
    "BodyFraming",
    "BodyFramer",
    "ResponseHead",
    "body_allowed",
    "choose_framing",
    "known_length",
    "framed_length",
    "response_length",
    "length_field_kept",
    "HOP_BY_HOP",
    "encode_head",
    "encode_chunk",
    "LAST_CHUNK",
    "status_line",
    "reason_phrase",
    "error_text",
]

# Fields an application must not set (PEP 3333; RFC 9110 section 7.6.1): the
# server frames the message and manages the connection itself.
HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "proxy-connection"}
)
_MAX_LENGTH_DIGITS = 18

LAST_CHUNK = b"0\r\n\r\n"


class BodyFraming(enum.Enum):
    """How a response body is delimited."""

    NONE = "none"  # no body may be sent at all
    LENGTH = "content-length"
    CHUNKED = "chunked"
    CLOSE = "close"  # the end of the connection ends the body (HTTP/1.0)


# As globals for the request path (Python 3.11's Enum member reads are slow).
BODY_NONE, BODY_LENGTH = BodyFraming.NONE, BodyFraming.LENGTH
BODY_CHUNKED, BODY_CLOSE = BodyFraming.CHUNKED, BodyFraming.CLOSE


def body_allowed(method: bytes, status: int) -> bool:
    """RFC 9110 sections 9.3.2, 15.2, 15.3.5, 15.3.6, 15.4.5: HEAD, 1xx, 204,
    205 and 304 carry no body."""
    return method != b"HEAD" and status >= 200 and status not in (204, 205, 304)


def known_length(method: bytes, status: int, body_length: int) -> int | None:
    """The Content-Length that a body known whole gives a response, if it gives one."""
    if status < 200 or status in (204, 304):
        return None
    if status == 205:
        return 0  # RFC 9110 section 15.3.6: no content, whatever the application gave
    if method == b"HEAD" and body_length == 0:
        return None  # an empty HEAD body says nothing of the GET's length
    return body_length


def framed_length(method: bytes, head: ResponseHead, body_length: int | None) -> int | None:
    """The Content-Length of a response: the application's, else that of a
    body known whole (``body_length``; None while it is still to come).

    A body known whole that disagrees with the application's Content-Length
    is a ResponseError before anything is sent, so the client gets a 500
    rather than a head whose length no body will honour. Where no body is
    sent (HEAD, 204, 205, 304) the declared length stands as it is.
    """
    length = head.content_length
    if body_length is None:
        return length
    if length is None:
        return known_length(method, head.code, body_length)
    if length != body_length and body_allowed(method, head.code):
        raise ResponseError(f"the application declared Content-Length: {length} "
                            f"and returned {body_length} bytes")
    return length


def response_length(method: bytes, head: ResponseHead, body_length: int | None,
                    exact: bool = True) -> int | None:
    """The length a response's body is framed by, on either protocol.

    ``exact``: ``body_length`` is the whole body (see ``framed_length``);
    else it is a file's available bytes, whose count frames the body only
    when the application declared no Content-Length (which may announce a
    part of them).
    """
    length = head.content_length
    if body_length is None or body_length == length:
        return length
    if exact:
        return framed_length(method, head, body_length)
    if length is None:
        return known_length(method, head.code, body_length)
    return length


def length_field_kept(framing: BodyFraming, status: int, content_length: int | None) -> bool:
    """Whether the head carries Content-Length: with a length framing, and for
    HEAD and 304, which keep the length a GET would have had (RFC 9110 8.6);
    never on 1xx or 204."""
    if content_length is None:
        return False
    return framing is BODY_LENGTH or (status >= 200 and status != 204)


def choose_framing(
    http_version: tuple[int, int], method: bytes, status: int, content_length: int | None
) -> BodyFraming:
    """Pick the framing for a response; see RFC 9112 section 6.3."""
    if not body_allowed(method, status):
        return BODY_NONE
    if content_length is not None:
        return BODY_LENGTH
    if http_version >= (1, 1):
        return BODY_CHUNKED
    # No Transfer-Encoding to an HTTP/1.0 peer (RFC 9112 section 6.1).
    return BODY_CLOSE


_REASONS = {status.value: status.phrase for status in HTTPStatus}
# RFC 9110 renamed some (Python 3.11's http module still has the old names).
_REASONS.update({
    413: "Content Too Large",
    414: "URI Too Long",
    416: "Range Not Satisfiable",
    422: "Unprocessable Content",
})


def reason_phrase(status: int) -> str:
    """The canonical reason phrase of ``status`` (RFC 9110 section 15)."""
    return _REASONS.get(status, "Unknown")


def status_line(status: int) -> bytes:
    """``HTTP/1.1 404 Not Found\\r\\n`` with the canonical reason phrase."""
    return b"HTTP/1.1 %d %s\r\n" % (status, reason_phrase(status).encode("ascii"))


def encode_head(status: str, headers: list[tuple[str, str]]) -> bytes:
    """A response head: the status line with the app's status text, fields, CRLF.

    ``status`` is a WSGI status such as ``"200 OK"``; names and values must
    already be checked to be latin-1 without CR, LF or NUL.
    """
    fields = "".join([f"{name}: {value}\r\n" for name, value in headers])
    return f"HTTP/1.1 {status}\r\n{fields}\r\n".encode("latin-1")


def encode_chunk(data: bytes) -> bytes:
    """One chunk of a chunked body (RFC 9112 section 7.1); never the last one."""
    if not data:
        # A zero-size chunk is the last-chunk: it would end the body early.
        return b""
    return b"%x\r\n%s\r\n" % (len(data), data)


class ResponseHead:
    """An application's response head as the server will send it.

    ``fields`` are the application's own, without the hop-by-hop ones and
    without Content-Length, whose value is kept apart. ``close`` records
    that the application asked for ``Connection: close``; ``has_date``,
    ``has_server`` and ``has_upgrade`` that it set those fields itself.
    Read-only by convention (built once per response, on the hot path).
    """

    __slots__ = ("status", "code", "fields", "content_length", "close",
                 "has_date", "has_server", "has_upgrade")

    def __init__(self, status: str, headers: Iterable[tuple[str, str]]) -> None:
        """Sort an application's fields; ResponseError for a bad Content-Length."""
        kept: list[tuple[str, str]] = []
        length: int | None = None
        close = has_date = has_server = has_upgrade = False
        for name, value in headers:
            lower = name.lower()
            if lower in HOP_BY_HOP:
                close = close or (lower == "connection" and "close" in value.lower())
                continue
            if lower == "content-length":
                length = _parse_length(value, length)
                continue
            if lower in _NOTED:
                has_date = has_date or lower == "date"
                has_server = has_server or lower == "server"
                has_upgrade = has_upgrade or lower == "upgrade"
            kept.append((name, value))
        self.status = status
        self.code = int(status[:3])
        if self.code == 205:
            length = 0  # RFC 9110 section 15.3.6: a 205 has no content
        self.fields = kept
        self.content_length = length
        self.close = close
        self.has_date = has_date
        self.has_server = has_server
        self.has_upgrade = has_upgrade


_NOTED = frozenset({"date", "server", "upgrade"})


def _parse_length(value: str, previous: int | None) -> int:
    value = value.strip(" \t")
    if not value.isascii() or not value.isdigit() or len(value) > _MAX_LENGTH_DIGITS:
        raise ResponseError(f"invalid Content-Length from the application: {value!r}")
    length = int(value)
    if previous is not None and previous != length:
        raise ResponseError("conflicting Content-Length values from the application")
    return length


def error_text(status: int, detail: str = "",
               retry_after: int | None = None) -> tuple[bytes, ResponseHead]:
    """The body and head of a short ``text/plain`` error response of the
    server's own; ``retry_after`` seconds when it is worth trying again
    (RFC 9110 section 10.2.3)."""
    reason = reason_phrase(status)
    text = f"{status} {reason}: {detail}\n" if detail else f"{status} {reason}\n"
    fields = [("Content-Type", "text/plain; charset=utf-8")]
    if retry_after is not None:
        fields.append(("Retry-After", str(retry_after)))
    head = ResponseHead(f"{status} {reason}", fields)
    return text.encode("utf-8"), head


class BodyFramer:
    """Frames the body of one response: chunks, a Content-Length count, or raw.

    Never sends more than a Content-Length announced (the excess would read
    as the start of the next response): ``overflowed`` records the cut.
    """

    __slots__ = ("framing", "_left", "body_bytes", "overflowed")

    def __init__(self, framing: BodyFraming, content_length: int | None) -> None:
        self.framing = framing
        self._left = content_length or 0  # bytes still owed under Content-Length
        self.body_bytes = 0  # body bytes framed so far
        self.overflowed = False

    def frame(self, data: bytes) -> bytes:
        """``data`` as it goes on the wire (b"" where no body may be sent)."""
        framing = self.framing
        if not data or framing is BODY_NONE:
            return b""
        if framing is BODY_CHUNKED:
            self.body_bytes += len(data)
            return encode_chunk(data)
        if framing is BODY_LENGTH:
            if len(data) > self._left:
                self.overflowed = True
                data = data[: self._left]
            self._left -= len(data)
        self.body_bytes += len(data)
        return data

    def frame_last(self, data: bytes) -> bytes:
        """``data`` framed as the body's last bytes, and the end: ``frame``
        then ``end`` in one call, for a body known whole."""
        if self.framing is BODY_LENGTH and len(data) == self._left:
            self._left = 0
            self.body_bytes += len(data)
            return data
        return self.frame(data) + self.end()

    def end(self) -> bytes:
        """The bytes that end the body; ResponseError when it fell short."""
        if self.framing is BODY_CHUNKED:
            return LAST_CHUNK
        if self.framing is BODY_LENGTH and self._left:
            # The client cannot tell where this response ends.
            raise ResponseError(f"response ended {self._left} bytes short of its Content-Length")
        return b""

    def raw_count(self, available: int) -> int | None:
        """How many bytes of a file to send unframed (sendfile), or None when
        the body must be framed piece by piece (chunked)."""
        if self.framing is BODY_LENGTH:
            return min(self._left, available)
        if self.framing is BODY_CLOSE:
            return available
        if self.framing is BODY_NONE:
            return 0
        return None

    def sent_raw(self, count: int) -> None:
        """Account for ``count`` body bytes sent around ``frame`` (sendfile)."""
        self.body_bytes += count
        if self.framing is BODY_LENGTH:
            self._left -= count
