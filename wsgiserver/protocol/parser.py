"""RequestParser: HTTP/1.1 request bytes in, events out (RFC 9112).

Sans-IO: it owns a byte buffer and the framing state of one connection, and
knows nothing of sockets, threads, clocks, logging or WSGI. Every violation
is a ProtocolError carrying the status to answer with; after one, the
parser refuses to go on, because the framing can no longer be trusted.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Iterator

from ..errors import ProtocolError
from . import grammar
from .events import NEED_DATA, PAUSED, Data, EndOfMessage, Event, Framing, Request, RequestHead

__all__ = ["RequestParser", "ParserLimits", "body_too_large", "content_length",
           "parse_field_lines", "split_target"]

# The largest Content-Length we convert; longer digit strings are refused
# before int() sees them (int() of thousands of digits raises ValueError).
_MAX_LENGTH_DIGITS = 18
# A chunk-size line with extensions; longer lines are an attack or a bug.
_MAX_CHUNK_LINE = 4096

Version = tuple[int, int]
Fields = tuple[tuple[bytes, bytes], ...]


class _State(enum.Enum):
    HEAD = "head"
    BODY = "body"
    CHUNK_SIZE = "chunk size"
    CHUNK_DATA = "chunk data"
    CHUNK_END = "chunk end"
    TRAILERS = "trailers"
    DONE = "done"
    ERROR = "error"


class ParserLimits:
    """The sizes the parser enforces, each with the status it answers."""

    __slots__ = ("max_request_line", "max_header_bytes", "max_header_count", "max_body_bytes")

    def __init__(
        self,
        max_request_line: int = 8192,
        max_header_bytes: int = 65536,
        max_header_count: int = 100,
        max_body_bytes: int = 1 << 30,
    ) -> None:
        self.max_request_line = max_request_line  # 414
        self.max_header_bytes = max_header_bytes  # 431
        self.max_header_count = max_header_count  # 431
        self.max_body_bytes = max_body_bytes  # 413


class RequestParser:
    """Parses the requests of one connection, one after another.

    ``feed(bytes)`` adds received bytes; ``next_event()`` returns a Request,
    Data or EndOfMessage event, NEED_DATA, or PAUSED once a request is
    complete. ``start_next_request()`` moves on to the next pipelined one.
    """

    def __init__(self, limits: ParserLimits | None = None) -> None:
        self.limits = limits or ParserLimits()
        self._buffer = bytearray()
        self._state = _State.HEAD
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
        return self._state is _State.HEAD

    @property
    def request_complete(self) -> bool:
        """True when the current request's body has been read to its end."""
        return self._state is _State.DONE

    @property
    def body_pending(self) -> bool:
        """True while body bytes of the current request are still to come."""
        if self._state is _State.BODY:
            return self._remaining > 0
        return self._state not in (_State.HEAD, _State.DONE, _State.ERROR)

    @property
    def direct_body(self) -> int:
        """Bytes of a Content-Length body the caller may read straight into
        its own storage (with ``body_received``), bypassing the parser: the
        rest of the body, when nothing of it is buffered here; else 0."""
        if self._state is _State.BODY and not self._buffer:
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
        self._state = _State.ERROR
        self._error = ProtocolError(400, "the connection switched protocols")
        return data

    def start_next_request(self) -> None:
        """Forget the finished request; the next one may already be buffered."""
        if self._state is not _State.DONE and (self._state is not _State.BODY or self._remaining):
            raise RuntimeError("the current request is not complete")
        self._state = _State.HEAD
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
            self._state = _State.ERROR
            self._error = error
            raise

    def _next_event(self, max_data: int | None) -> Event:
        state = self._state
        if state is _State.HEAD:
            return self._parse_head()
        if state is _State.BODY:
            return self._length_body(max_data)
        if state is _State.DONE:
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
        self._start_body(request)
        return request

    def _check_incomplete_head(self) -> None:
        # Refuse early only what the complete head would be refused for too,
        # so that the answer never depends on how the bytes were split: a
        # trailing CR may be the start of the CRLF that ends a line in limits.
        buffer = self._buffer
        line_end = buffer.find(b"\r\n")
        if line_end < 0:
            if len(buffer) - buffer.endswith(b"\r") > self.limits.max_request_line:
                raise ProtocolError(414, "request-line too long")
        elif line_end > self.limits.max_request_line:
            raise ProtocolError(414, "request-line too long")
        # The field lines with their CRLFs, as _build_request counts them; the
        # head's final CRLF CRLF can begin no earlier than three bytes from the end.
        elif len(buffer) - 3 - line_end > self.limits.max_header_bytes:
            raise ProtocolError(431, "request header section too large")
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
        if len(request_line) > self.limits.max_request_line:
            raise ProtocolError(414, "request-line too long")
        method, target, version = _parse_request_line(request_line)
        if len(field_lines) > self.limits.max_header_count:
            raise ProtocolError(431, "too many header fields")
        if sum(map(len, field_lines)) + 2 * len(field_lines) > self.limits.max_header_bytes:
            raise ProtocolError(431, "request header section too large")
        special: dict[bytes, list[bytes]] = {}
        headers = parse_field_lines(field_lines, special)
        try:
            path, query, scheme, authority = split_target(method, target)
            _check_host(version, special.get(b"host"))
            framing, length = self._framing(version, special)
        except ProtocolError as error:
            error.head = RequestHead(method, target, version, headers)
            raise
        connection = special.get(b"connection")
        expect = special.get(b"expect")
        return Request(
            method=method,
            target=target,
            http_version=version,
            headers=headers,
            path=path,
            query=query,
            scheme=scheme,
            authority=authority,
            framing=framing,
            content_length=length,
            connection=_NO_OPTIONS if connection is None else _connection_options(connection),
            expect_continue=expect is not None and _expects_continue(version, expect),
        )

    def _framing(
        self, version: Version, special: dict[bytes, list[bytes]]
    ) -> tuple[Framing, int | None]:
        lengths = special.get(b"content-length")
        codings = special.get(b"transfer-encoding")
        if codings is not None:
            _check_transfer_codings(codings)
            if version < (1, 1):
                # RFC 9112 section 6.1: Transfer-Encoding in HTTP/1.0 is faulty framing.
                raise ProtocolError(400, "Transfer-Encoding in an HTTP/1.0 request")
            if lengths:
                # RFC 9112 section 6.1 lets a server refuse both at once, and
                # section 6.3 (3) says to close either way: refusing is safer
                # behind a proxy that framed the body by the other one.
                raise ProtocolError(400, "both Content-Length and Transfer-Encoding")
            return Framing.CHUNKED, None
        if not lengths:
            return Framing.NONE, None
        length = content_length(lengths)
        if length > self.limits.max_body_bytes:
            raise body_too_large(self.limits.max_body_bytes)
        return (Framing.LENGTH if length else Framing.NONE), length

    def _start_body(self, request: Request) -> None:
        if request.framing is Framing.CHUNKED:
            self._state = _State.CHUNK_SIZE
        else:
            # RFC 9112 section 6.3 (7): no framing fields means no body.
            self._state = _State.BODY
            self._remaining = request.content_length or 0

    # -- bodies ------------------------------------------------------------

    def _length_body(self, max_data: int | None) -> Event:
        if self._remaining == 0:
            self._state = _State.DONE
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
            if state is _State.CHUNK_SIZE:
                if not self._parse_chunk_size():
                    return NEED_DATA
            elif state is _State.CHUNK_DATA:
                event = self._take_data(max_data)
                if self._remaining == 0:
                    self._state = _State.CHUNK_END
                return event
            elif state is _State.CHUNK_END:
                # RFC 9112 section 7.1: chunk-data is followed by CRLF, exactly.
                if len(self._buffer) < 2:
                    if self._buffer and self._buffer[0] != 0x0D:
                        raise ProtocolError(400, "chunk data not followed by CRLF")
                    return NEED_DATA
                if self._buffer[:2] != b"\r\n":
                    raise ProtocolError(400, "chunk data not followed by CRLF")
                del self._buffer[:2]
                self._state = _State.CHUNK_SIZE
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
            self._state = _State.TRAILERS
        else:
            self._state = _State.CHUNK_DATA
            self._remaining = size
        return True

    def _parse_trailers(self) -> Event:
        buffer = self._buffer
        if buffer[:2] == b"\r\n":
            del buffer[:2]
            self._state = _State.DONE
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
        self._state = _State.DONE
        return EndOfMessage(trailers)


# -- the grammar of single pieces, as functions without state ---------------


def _parse_request_line(line: bytes) -> tuple[bytes, bytes, Version]:
    match = grammar.request_line.fullmatch(line)
    if match is None:
        raise ProtocolError(400, "invalid request-line")
    method, target, major, minor = match.groups()
    if major != b"1":
        raise ProtocolError(505, "HTTP version not supported")
    # RFC 9110 section 2.5: a higher minor version is served as 1.1.
    return method, target, (1, 0) if minor == b"0" else (1, 1)


# The fields that frame a request or decide its handling, collected while the
# field lines are parsed so that no later step scans them all again.
_SPECIAL = frozenset({b"host", b"content-length", b"transfer-encoding", b"connection", b"expect"})
_NO_OPTIONS: frozenset[bytes] = frozenset()


def parse_field_lines(
    lines: list[bytes], special: dict[bytes, list[bytes]] | None = None
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
        if special is not None and name in _SPECIAL:
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


def split_target(
    method: bytes, target: bytes
) -> tuple[bytes, bytes, bytes | None, bytes | None]:
    """(path, query, scheme, authority) of a request-target (RFC 9112 section 3.2)."""
    if method == b"CONNECT":
        raise ProtocolError(501, "CONNECT is not supported")
    if b"#" in target:
        # A fragment is never part of a request-target (RFC 9112 section 3.2).
        raise ProtocolError(400, "fragment in request-target")
    if target[:1] == b"/":
        path, _, query = target.partition(b"?")
        return path, query, None, None
    if target == b"*":
        if method != b"OPTIONS":
            raise ProtocolError(400, "asterisk-form is only for OPTIONS")
        return b"*", b"", None, None
    match = grammar.absolute_target.fullmatch(target)
    if match is None:
        raise ProtocolError(400, "invalid request-target")
    scheme, authority, rest = match.groups()
    scheme = scheme.lower()
    if scheme not in (b"http", b"https"):
        raise ProtocolError(400, "unsupported URI scheme in request-target")
    # RFC 9110 section 4.2.1: an http(s) URI has a non-empty host and no userinfo.
    if not authority or b"@" in authority or grammar.host.fullmatch(authority) is None:
        raise ProtocolError(400, "invalid authority in request-target")
    path, _, query = rest.partition(b"?")
    return path or b"/", query, scheme, authority


def _check_host(version: Version, hosts: list[bytes] | None) -> None:
    if hosts is not None and len(hosts) > 1:
        raise ProtocolError(400, "more than one Host field")
    if not hosts:
        if version >= (1, 1):
            raise ProtocolError(400, "HTTP/1.1 request without Host")  # RFC 9112 section 3.2
        return
    if grammar.host.fullmatch(hosts[0]) is None:
        raise ProtocolError(400, "invalid Host field")


def _list_elements(values: Iterable[bytes]) -> Iterator[bytes]:
    """The non-empty, whitespace-trimmed elements of comma lists (RFC 9110 5.6.1)."""
    for value in values:
        for element in value.split(b","):
            element = element.strip(b" \t")
            if element:
                yield element


def _check_transfer_codings(values: list[bytes]) -> None:
    """Transfer-Encoding field values must name chunked, once and last."""
    codings = []
    for element in _list_elements(values):
        if grammar.token.fullmatch(element) is None:
            raise ProtocolError(400, "invalid Transfer-Encoding")
        codings.append(element.lower())
    if not codings:
        raise ProtocolError(400, "empty Transfer-Encoding")
    # RFC 9112 section 6.1/6.3: chunked once, and last; anything else as the
    # final coding leaves the length unknown, so we cannot read the body.
    if codings.count(b"chunked") > 1:
        raise ProtocolError(400, "chunked applied more than once")
    if b"chunked" in codings and codings[-1] != b"chunked":
        raise ProtocolError(400, "chunked is not the final transfer coding")
    if codings != [b"chunked"]:
        raise ProtocolError(501, "transfer coding not implemented")


def content_length(values: list[bytes]) -> int:
    """The one Content-Length of duplicate fields or lists (RFC 9110 section 8.6)."""
    lengths = set()
    for value in values:
        elements = value.split(b",")
        for element in elements:
            element = element.strip(b" \t")
            if grammar.digits.fullmatch(element) is None:
                raise ProtocolError(400, "invalid Content-Length")
            lengths.add(element.lstrip(b"0") or b"0")
    if len(lengths) != 1:
        raise ProtocolError(400, "conflicting Content-Length values")
    digits = lengths.pop()
    if len(digits) > _MAX_LENGTH_DIGITS:
        raise ProtocolError(413, "request body larger than the server accepts")
    return int(digits)


def body_too_large(limit: int) -> ProtocolError:
    """The 413 for a body past ``limit``, saying the limit: a person reading
    it learns what would have been accepted."""
    return ProtocolError(413, f"request body larger than the server accepts ({limit} bytes)")


def _connection_options(values: list[bytes]) -> frozenset[bytes]:
    """The Connection field's options, lower-cased (RFC 9110 section 7.6.1)."""
    if len(values) == 1 and b"," not in values[0]:  # the usual "close" or "keep-alive"
        option = values[0].strip(b" \t").lower()
        return frozenset((option,)) if option else _NO_OPTIONS
    return frozenset(element.lower() for element in _list_elements(values))


def _expects_continue(version: Version, values: list[bytes]) -> bool:
    """RFC 9110 section 10.1.1: 100-continue, ignored from HTTP/1.0 clients."""
    return version >= (1, 1) and any(value.lower() == b"100-continue" for value in values)
