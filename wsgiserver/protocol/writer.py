"""Response heads and body framing as bytes (RFC 9112 sections 4, 6, 7).

Sans-IO: decides how a response body is delimited from the request's version
and method and the response's status and length, and encodes heads and
chunks. Header values arrive already validated by the caller.
"""

from __future__ import annotations

import enum
from http import HTTPStatus

__all__ = [
    "BodyFraming",
    "body_allowed",
    "choose_framing",
    "encode_head",
    "encode_chunk",
    "LAST_CHUNK",
    "status_line",
    "reason_phrase",
]

LAST_CHUNK = b"0\r\n\r\n"


class BodyFraming(enum.Enum):
    """How a response body is delimited."""

    NONE = "none"  # no body may be sent at all
    LENGTH = "content-length"
    CHUNKED = "chunked"
    CLOSE = "close"  # the end of the connection ends the body (HTTP/1.0)


def body_allowed(method: bytes, status: int) -> bool:
    """RFC 9110 sections 9.3.2, 15.2, 15.3.5, 15.3.6, 15.4.5: HEAD, 1xx, 204,
    205 and 304 carry no body."""
    return method != b"HEAD" and status >= 200 and status not in (204, 205, 304)


def choose_framing(
    http_version: tuple[int, int], method: bytes, status: int, content_length: int | None
) -> BodyFraming:
    """Pick the framing for a response; see RFC 9112 section 6.3."""
    if not body_allowed(method, status):
        return BodyFraming.NONE
    if content_length is not None:
        return BodyFraming.LENGTH
    if http_version >= (1, 1):
        return BodyFraming.CHUNKED
    # No Transfer-Encoding to an HTTP/1.0 peer (RFC 9112 section 6.1).
    return BodyFraming.CLOSE


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
    lines = ["HTTP/1.1 ", status, "\r\n"]
    for name, value in headers:
        lines += (name, ": ", value, "\r\n")
    lines.append("\r\n")
    return "".join(lines).encode("latin-1")


def encode_chunk(data: bytes) -> bytes:
    """One chunk of a chunked body (RFC 9112 section 7.1); never the last one."""
    if not data:
        # A zero-size chunk is the last-chunk: it would end the body early.
        return b""
    return b"%x\r\n%s\r\n" % (len(data), data)
