"""What the parser produces: immutable events. No I/O, no WSGI keys."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import NamedTuple

__all__ = ["Framing", "Request", "RequestHead", "Data", "EndOfMessage", "Event", "NEED_DATA",
           "PAUSED"]


class Framing(enum.Enum):
    """How a request body is delimited (RFC 9112 section 6.3)."""

    NONE = "none"
    LENGTH = "content-length"
    CHUNKED = "chunked"


# Framing's members as globals for the request path (Python 3.11's Enum
# member reads are slow: see drive.py's STEP_ names).
FRAMING_NONE, FRAMING_LENGTH, FRAMING_CHUNKED = Framing.NONE, Framing.LENGTH, Framing.CHUNKED


class Request(NamedTuple):
    """A complete, validated request head.

    ``headers`` keeps every field line in order as (lower-cased name, value)
    byte pairs, with surrounding whitespace removed from each value.
    Immutable; a tuple underneath, because one is built for every request
    and a tuple is made in C.
    """

    method: bytes
    target: bytes
    http_version: tuple[int, int]
    headers: tuple[tuple[bytes, bytes], ...]
    # The target split up; for absolute-form the scheme and authority come
    # from the target, which wins over Host (RFC 9112 section 3.2.2).
    path: bytes
    query: bytes
    scheme: bytes | None
    authority: bytes | None
    framing: Framing
    content_length: int | None
    # The Connection field's options, lower-cased (RFC 9110 section 7.6.1):
    # facts for the connection state, which alone decides persistence.
    connection: frozenset[bytes]
    # Expect: 100-continue from an HTTP/1.1 client (RFC 9110 section 10.1.1).
    expect_continue: bool

    def header(self, name: bytes) -> bytes | None:
        """The first value of field ``name`` (lower-case), or None."""
        for field_name, value in self.headers:
            if field_name == name:
                return value
        return None


class RequestHead(NamedTuple):
    """What was read of a request refused after its request line and fields
    parsed (413 for its length, 400 for its framing or Host): the facts the
    access log names it by. A Request has the same four first fields."""

    method: bytes
    target: bytes
    http_version: tuple[int, int]
    headers: tuple[tuple[bytes, bytes], ...]


@dataclass(frozen=True, slots=True)
class Data:
    """A piece of request body, de-chunked."""

    data: bytes


@dataclass(frozen=True, slots=True)
class EndOfMessage:
    """The body is complete. Trailer fields are reported, never used for framing."""

    trailers: tuple[tuple[bytes, bytes], ...] = ()


class _Signal(enum.Enum):
    NEED_DATA = "need data"
    PAUSED = "paused"


Event = Request | Data | EndOfMessage | _Signal


# The parser needs more bytes before it can produce another event.
NEED_DATA = _Signal.NEED_DATA
# The current request is complete; call start_next_request() to go on.
PAUSED = _Signal.PAUSED
