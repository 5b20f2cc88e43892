"""RequestParser: HTTP/1.1 request bytes in, events out (RFC 9112).

Sans-IO: it owns a byte buffer and the framing state of one connection, and
knows nothing of sockets, threads, clocks, logging or WSGI. Every violation
is a ProtocolError carrying the status to answer with; after one, the
parser refuses to go on, because the framing can no longer be trusted.
HTTP/1.1's own is here (the line grammar, the body's bytes); what a request
may be once its lines are split is policy.py's, shared with HTTP/2.
"""

from __future__ import annotations

import enum

from ..errors import ProtocolError
from . import grammar
from .events import FRAMING_CHUNKED, NEED_DATA, PAUSED, Data, EndOfMessage, Event, Request
from .policy import (
    SPECIAL,
    Fields,
    ParserLimits,
    Special,
    body_too_large,
    build_request,
    check_field_section,
    header_section_too_large,
    request_line_too_long,
)

# ParserLimits lives with the request policy both protocols share (policy.py).
__all__ = ["RequestParser", "parse_field_lines"]

# A chunk-size line with extensions; longer lines are an attack or a bug.
_MAX_CHUNK_LINE = 4096


class _State(enum.Enum):
    HEAD = "head"
    BODY = "body"
    CHUNK_SIZE = "chunk size"
    CHUNK_DATA = "chunk data"
    CHUNK_END = "chunk end"
    TRAILERS = "trailers"
    DONE = "done"
    ERROR = "error"


# As globals for the request path (Python 3.11's Enum member reads are slow:
# see drive.py's STEP_ names).
_HEAD, _BODY, _DONE, _ERROR = _State.HEAD, _State.BODY, _State.DONE, _State.ERROR
_CHUNK_SIZE, _CHUNK_DATA = _State.CHUNK_SIZE, _State.CHUNK_DATA
_CHUNK_END, _TRAILERS = _State.CHUNK_END, _State.TRAILERS


class RequestParser:
    """Parses the requests of one connection, one after another.

    ``feed(bytes)`` adds received bytes; ``next_event()`` returns a Request,
    Data or EndOfMessage event, NEED_DATA, or PAUSED once a request is
    complete. ``start_next_request()`` moves on to the next pipelined one.
    """

    def __init__(self, limits: ParserLimits | None = None) -> None:
        self.limits = limits or ParserLimits()
        self._buffer = bytearray()
        self._state = _HEAD
        self._scanned = 0  # bytes of the head already searched for its end
        self._remaining = 0  # of the Content-Length body or the current chunk
        self._body_received = 0
        self._error: ProtocolError | None = None

    # -- input -------------------------------------------------------------

    def feed(self, data: bytes) -> None:
        """Add bytes received from the peer."""
        self._buffer += data

    @property
    def buffered(self) -> int:
        """Bytes received but not yet turned into events."""
        return len(self._buffer)

    @property
    def in_head(self) -> bool:
        """True while waiting for (or reading) a request head."""
        return self._state is _HEAD

    @property
    def request_complete(self) -> bool:
        """True when the current request's body has been read to its end."""
        return self._state is _DONE

    @property
    def body_pending(self) -> bool:
        """True while body bytes of the current request are still to come."""
        if self._state is _BODY:
            return self._remaining > 0
        return self._state not in (_HEAD, _DONE, _ERROR)

    @property
    def direct_body(self) -> int:
        """Bytes of a Content-Length body the caller may read straight into
        its own storage (with ``body_received``), bypassing the parser: the
        rest of the body, when nothing of it is buffered here; else 0."""
        if self._state is _BODY and not self._buffer:
            return self._remaining
        return 0

    def body_received(self, count: int) -> None:
        """``count`` bytes of the body (at most ``direct_body``) were read and
        kept by the caller; the body's end is the next event once it is all in."""
        if count > self.direct_body:
            raise RuntimeError("more body bytes than the parser allowed")
        self._remaining -= count

    def take_buffered(self) -> bytes:
        """Hand over the unparsed bytes (after a protocol switch); the parser is done."""
        data = bytes(self._buffer)
        self._buffer.clear()
        self._state = _ERROR
        self._error = ProtocolError(400, "the connection switched protocols")
        return data

    def start_next_request(self) -> None:
        """Forget the finished request; the next one may already be buffered."""
        if self._state is not _DONE and (self._state is not _BODY or self._remaining):
            raise RuntimeError("the current request is not complete")
        self._state = _HEAD
        self._scanned = 0
        self._body_received = 0

    # -- events ------------------------------------------------------------

    def next_event(self, max_data: int | None = None) -> Event:
        """The next event; Data events carry at most ``max_data`` bytes."""
        if self._error is not None:
            raise self._error
        try:
            return self._next_event(max_data)
        except ProtocolError as error:
            self._state = _ERROR
            self._error = error
            raise

    def _next_event(self, max_data: int | None) -> Event:
        state = self._state
        if state is _HEAD:
            return self._parse_head()
        if state is _BODY:
            return self._length_body(max_data)
        if state is _DONE:
            return PAUSED
        return self._chunked_body(max_data)

    # -- head --------------------------------------------------------------

    def _parse_head(self) -> Request | Event:
        buffer = self._buffer
        if not buffer:
            return NEED_DATA  # the usual wait between requests: nothing to check
        # RFC 9112 section 2.2: ignore empty lines before the request-line.
        while buffer[:2] == b"\r\n":
            del buffer[:2]
        end = buffer.find(b"\r\n\r\n", self._scanned)
        if end < 0:
            self._check_incomplete_head()
            return NEED_DATA
        head = bytes(buffer[:end])
        del buffer[: end + 4]
        lines = head.split(b"\r\n")
        request = self._build_request(lines[0], lines[1:])
        if request.framing is FRAMING_CHUNKED:
            self._state = _CHUNK_SIZE
        else:
            # RFC 9112 section 6.3 (7): no framing fields means no body.
            self._state = _BODY
            self._remaining = request.content_length or 0
        return request

    def _check_incomplete_head(self) -> None:
        # Refuse early only what the complete head would be refused for too,
        # so that the answer never depends on how the bytes were split: a
        # trailing CR may be the start of the CRLF that ends a line in limits.
        buffer = self._buffer
        line_end = buffer.find(b"\r\n")
        if line_end < 0:
            if len(buffer) - buffer.endswith(b"\r") > self.limits.max_request_line:
                raise request_line_too_long()
        elif line_end > self.limits.max_request_line:
            raise request_line_too_long()
        # The field lines with their CRLFs, as _build_request counts them; the
        # head's final CRLF CRLF can begin no earlier than three bytes from the end.
        elif len(buffer) - 3 - line_end > self.limits.max_header_bytes:
            raise header_section_too_large()
        # A bare CR or LF can never end the head: answer now rather than wait
        # for a timeout. RFC 9112 section 2.2 lets us refuse both.
        start = max(self._scanned - 1, 0)
        if start and buffer[start - 1] == 0x0D:
            start -= 1
        unpaired = bytes(buffer[start:]).replace(b"\r\n", b"")
        if buffer.endswith(b"\r"):
            unpaired = unpaired[:-1]  # its LF may be on its way
        if b"\r" in unpaired or b"\n" in unpaired:
            raise ProtocolError(400, "bare CR or LF in request head")
        self._scanned = max(len(buffer) - 3, 0)

    def _build_request(self, request_line: bytes, field_lines: list[bytes]) -> Request:
        """The request-line and field lines split and checked as HTTP/1.1
        writes them, then held to the policy both protocols share."""
        limits = self.limits
        if len(request_line) > limits.max_request_line:
            raise request_line_too_long()
        match = grammar.request_line.fullmatch(request_line)
        if match is None:
            raise ProtocolError(400, "invalid request-line")
        method, target, major, minor = match.groups()
        if major != b"1":
            raise ProtocolError(505, "HTTP version not supported")
        # RFC 9110 section 2.5: a higher minor version is served as 1.1.
        version = (1, 0) if minor == b"0" else (1, 1)
        # Each field line counted with its CRLF, before any is parsed.
        check_field_section(len(field_lines), sum(map(len, field_lines)) + 2 * len(field_lines),
                            limits)
        special: Special = {}
        headers = parse_field_lines(field_lines, special)
        return build_request(method, target, version, headers, special, limits)

    # -- bodies ------------------------------------------------------------

    def _length_body(self, max_data: int | None) -> Event:
        if self._remaining == 0:
            self._state = _DONE
            return EndOfMessage()
        return self._take_data(max_data)

    def _take_data(self, max_data: int | None) -> Event:
        buffer = self._buffer
        if not buffer:
            return NEED_DATA
        size = min(len(buffer), self._remaining)
        if max_data is not None:
            size = min(size, max_data)
        if size == len(buffer):
            data = bytes(buffer)
            buffer.clear()
        else:
            data = bytes(buffer[:size])
            del buffer[:size]
        self._remaining -= size
        return Data(data)

    def _chunked_body(self, max_data: int | None) -> Event:
        while True:
            state = self._state
            if state is _CHUNK_SIZE:
                if not self._parse_chunk_size():
                    return NEED_DATA
            elif state is _CHUNK_DATA:
                event = self._take_data(max_data)
                if self._remaining == 0:
                    self._state = _CHUNK_END
                return event
            elif state is _CHUNK_END:
                # RFC 9112 section 7.1: chunk-data is followed by CRLF, exactly.
                if len(self._buffer) < 2:
                    if self._buffer and self._buffer[0] != 0x0D:
                        raise ProtocolError(400, "chunk data not followed by CRLF")
                    return NEED_DATA
                if self._buffer[:2] != b"\r\n":
                    raise ProtocolError(400, "chunk data not followed by CRLF")
                del self._buffer[:2]
                self._state = _CHUNK_SIZE
            else:
                return self._parse_trailers()

    def _parse_chunk_size(self) -> bool:
        buffer = self._buffer
        end = buffer.find(b"\r\n", 0, _MAX_CHUNK_LINE + 2)
        if end < 0:
            # A trailing CR may be the start of the CRLF of a line in limits.
            if len(buffer) - buffer.endswith(b"\r") > _MAX_CHUNK_LINE:
                raise ProtocolError(400, "chunk-size line too long")
            if b"\n" in buffer or b"\r" in buffer[:-1]:
                raise ProtocolError(400, "bare CR or LF in chunk-size line")
            return False
        match = grammar.chunk_size_line.fullmatch(buffer, 0, end)
        if match is None:
            raise ProtocolError(400, "invalid chunk-size line")
        size = int(match.group(1), 16)
        del buffer[: end + 2]
        self._body_received += size
        if self._body_received > self.limits.max_body_bytes:
            raise body_too_large(self.limits.max_body_bytes)
        if size == 0:
            self._state = _TRAILERS
        else:
            self._state = _CHUNK_DATA
            self._remaining = size
        return True

    def _parse_trailers(self) -> Event:
        buffer = self._buffer
        if buffer[:2] == b"\r\n":
            del buffer[:2]
            self._state = _DONE
            return EndOfMessage()
        end = buffer.find(b"\r\n\r\n")
        if end < 0:
            # The final CRLF CRLF can begin no earlier than three bytes from the end.
            if len(buffer) - 3 > self.limits.max_header_bytes:
                raise ProtocolError(431, "trailer section too large")
            if buffer.count(b"\n") != buffer.count(b"\r\n"):
                raise ProtocolError(400, "line ends in a bare LF")
            return NEED_DATA
        if end > self.limits.max_header_bytes:
            raise ProtocolError(431, "trailer section too large")
        lines = bytes(buffer[:end]).split(b"\r\n")
        del buffer[: end + 4]
        if len(lines) > self.limits.max_header_count:
            raise ProtocolError(431, "too many trailer fields")
        # RFC 9112 section 7.1.2: parsed, kept apart, never used for framing.
        trailers = parse_field_lines(lines)
        self._state = _DONE
        return EndOfMessage(trailers)


# -- the grammar of single pieces, as functions without state ---------------


def parse_field_lines(
    lines: list[bytes], special: Special | None = None
) -> Fields:
    """Field lines (without CRLF) as (lower-case name, value) pairs; the values
    of the framing fields also go to ``special`` by name, when it is given."""
    fields = []
    match_line = grammar.field_line.fullmatch
    for line in lines:
        match = match_line(line)
        if match is None:
            raise ProtocolError(400, _field_line_problem(line))
        name, value = match.groups()
        name = name.lower()
        fields.append((name, value))
        if special is not None and name in SPECIAL:
            values = special.get(name)
            if values is None:
                special[name] = [value]
            else:
                values.append(value)
    return tuple(fields)


def _field_line_problem(line: bytes) -> str:
    """Why a field line was refused (RFC 9112 section 5, RFC 9110 section 5.5)."""
    name, colon, value = line.partition(b":")
    if not colon or grammar.token.fullmatch(name) is None:
        return _field_name_problem(line, colon)
    return "invalid octet in field value"


def _field_name_problem(line: bytes, colon: bytes) -> str:
    if line[:1] in (b" ", b"\t"):
        return "obsolete line folding is not accepted"  # RFC 9112 section 5.2
    if not colon:
        return "field line without a colon"
    name = line.partition(b":")[0]
    if name[-1:] in (b" ", b"\t"):
        return "whitespace between field name and colon"  # RFC 9112 section 5.1
    return "invalid field name"
