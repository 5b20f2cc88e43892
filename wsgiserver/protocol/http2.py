"""HTTP/2 requests and responses under the same policy as HTTP/1.1 (RFC 9113 section 8).

Sans-IO, and free of the h2 library: a stream's decoded field list in, a
``Request`` out (the event the HTTP/1.1 parser makes), checked against the
same limits and grammar; an application's ``ResponseHead`` in, the field
list of a HEADERS frame and the body's framer out, under the same rules of
what a response may carry. Every refusal is a ``ProtocolError(status)``,
answered on its stream. ``FrameScanner`` reads frame headers beside the
library, for the guards it does not have.

The h2 library has already refused, as connection errors, what RFC 9113
calls malformed at the framing level: upper-case names, connection-specific
fields, pseudo-fields out of order, repeated or unknown, a missing
``:method``, ``:scheme`` or ``:path``, ``:authority`` differing from Host,
NUL, CR or LF in a value. What is left here is what HTTP/1.1 refuses too.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from ..errors import ProtocolError
from . import grammar
from .events import Framing, Request
from .parser import ParserLimits, body_too_large, content_length, split_target
from .writer import (
    HOP_BY_HOP,
    BodyFramer,
    BodyFraming,
    ResponseHead,
    body_allowed,
    framed_length,
    known_length,
    length_field_kept,
)

__all__ = ["request_from_fields", "response_fields", "FrameScanner", "FrameFlood", "HTTP2"]

HTTP2 = (2, 0)
Fields = Iterable[tuple[bytes, bytes]]

# RFC 9112 section 3's request-target is visible US-ASCII; so is :path here.
_TARGET = re.compile(rb"[\x21-\x7e]+")
# The bytes an HTTP/1.1 head spends on a field line beyond its name and
# value (": " and CRLF), so that the size limit means the same for both.
_LINE_OVERHEAD = 4
# Besides HTTP/1.1's hop-by-hop fields, HTTP/2 forbids Upgrade in a
# response (RFC 9113 section 8.2.2).
_NOT_IN_HTTP2 = HOP_BY_HOP | {"upgrade"}


def request_from_fields(fields: Fields, limits: ParserLimits, ended: bool) -> Request:
    """The request a HEADERS block carries; ``ended``: END_STREAM came with it.

    The same refusals as HTTP/1.1, with the same statuses: 414 for a request
    line (method and :path) over the limit, 431 for too many or too large
    fields, 400 for a name that is not a token, a bad Host or :authority,
    neither of them, a :path that is not origin-form (or ``*`` for OPTIONS),
    a scheme other than http(s); 501 for CONNECT; 413 for a Content-Length
    beyond the body limit.
    """
    method = path = scheme = authority = None
    headers: list[tuple[bytes, bytes]] = []
    size = 0
    hosts: list[bytes] = []
    lengths: list[bytes] = []
    expect_continue = False
    for name, value in fields:
        if name[:1] == b":":
            if name == b":method":
                method = value
            elif name == b":path":
                path = value
            elif name == b":scheme":
                scheme = value
            elif name == b":authority":
                authority = value
            continue
        if grammar.token.fullmatch(name) is None:
            raise ProtocolError(400, "invalid field name")
        if grammar.forbidden_in_value.search(value) is not None:
            raise ProtocolError(400, "invalid octet in field value")
        headers.append((name, value))
        size += len(name) + len(value) + _LINE_OVERHEAD
        if name == b"host":
            hosts.append(value)
        elif name == b"content-length":
            lengths.append(value)
        elif name == b"expect":
            expect_continue = expect_continue or value.lower() == b"100-continue"
    if method is None or grammar.token.fullmatch(method) is None:
        raise ProtocolError(400, "invalid :method")
    count = len(headers)
    if authority is not None and not hosts:
        # HTTP/1.1 would have carried it as a Host line: count it as one.
        size += len(b"host") + len(authority) + _LINE_OVERHEAD
        count += 1
    if count > limits.max_header_count:
        raise ProtocolError(431, "too many header fields")
    if size > limits.max_header_bytes:
        raise ProtocolError(431, "request header section too large")
    if method == b"CONNECT":
        raise ProtocolError(501, "CONNECT is not supported")
    if path is None or scheme is None:
        raise ProtocolError(400, "request without :path or :scheme")
    # What the request-line would have been: the same limit as HTTP/1.1's.
    if len(method) + len(path) + len(b"  HTTP/1.1") > limits.max_request_line:
        raise ProtocolError(414, "request-line too long")
    if _TARGET.fullmatch(path) is None:
        raise ProtocolError(400, "invalid :path")
    if path[:1] != b"/" and path != b"*":
        # RFC 9113 section 8.3.1: origin-form, or "*" for OPTIONS; never absolute.
        raise ProtocolError(400, ":path is not origin-form")
    target_path, query, _, _ = split_target(method, path)
    if scheme.lower() not in (b"http", b"https"):
        raise ProtocolError(400, "unsupported :scheme")
    if authority is not None and (
        not authority or b"@" in authority or grammar.host.fullmatch(authority) is None
    ):
        # RFC 9113 section 8.3.1: no userinfo in :authority.
        raise ProtocolError(400, "invalid :authority")
    if len(hosts) > 1:
        raise ProtocolError(400, "more than one Host field")
    if hosts and grammar.host.fullmatch(hosts[0]) is None:
        raise ProtocolError(400, "invalid Host field")
    if authority is None and not hosts:
        raise ProtocolError(400, "request without :authority or Host")
    length = content_length(lengths) if lengths else None
    if length is not None and length > limits.max_body_bytes:
        raise body_too_large(limits.max_body_bytes)
    if ended:
        framing = Framing.NONE
    else:
        framing = Framing.LENGTH if length is not None else Framing.CHUNKED
    return Request(
        method=method,
        target=path,
        http_version=HTTP2,
        headers=tuple(headers),
        path=target_path,
        query=query,
        scheme=None,
        authority=authority,
        framing=framing,
        content_length=length,
        connection=frozenset(),
        expect_continue=expect_continue and not ended,
    )


def response_fields(
    head: ResponseHead,
    method: bytes,
    body_length: int | None,
    date: str | None,
    server_name: str | None,
    exact: bool = True,
) -> tuple[list[tuple[bytes, bytes]], BodyFramer]:
    """The HEADERS fields of ``head`` and the framer of its body.

    As in HTTP/1.1: no body for HEAD, 204, 205 and 304; Content-Length from
    the application, or from a body known whole (``exact``: ``body_length``
    is the whole body, and a declared length it disagrees with is a
    ResponseError; else it is a file's available bytes); a body longer than its
    Content-Length is cut, a shorter one fails at its end. There is no
    chunking: DATA frames carry the body and END_STREAM ends it. Names go
    lower-case, values without surrounding whitespace (RFC 9113 8.2.1), and
    the connection-specific fields are dropped.
    """
    code = head.code
    if exact:
        length = framed_length(method, head, body_length)
    else:  # a file's available bytes: a Content-Length may announce only a part
        length = head.content_length
        if length is None and body_length is not None:
            length = known_length(method, code, body_length)
    if not body_allowed(method, code):
        framing = BodyFraming.NONE
    elif length is not None:
        framing = BodyFraming.LENGTH
    else:
        framing = BodyFraming.CLOSE  # to END_STREAM
    fields = [(b":status", b"%d" % code)]
    for name, value in head.fields:
        lower = name.lower()
        if lower in _NOT_IN_HTTP2:
            continue
        fields.append((lower.encode("ascii"), value.strip(" \t").encode("latin-1")))
    if length is not None and length_field_kept(framing, code, length):
        fields.append((b"content-length", b"%d" % length))
    if date is not None and not head.has_date:
        fields.append((b"date", date.encode("ascii")))
    if server_name and not head.has_server:
        fields.append((b"server", server_name.encode("latin-1")))
    return fields, BodyFramer(framing, length)


class FrameFlood(Exception):
    """A client's frames are an attack rather than a use (RFC 9113 section
    10.5): the connection ends with ENHANCE_YOUR_CALM."""


# RFC 9113 section 6: frame types and the flags read here.
_DATA, _HEADERS, _PRIORITY, _RST_STREAM, _SETTINGS = 0x0, 0x1, 0x2, 0x3, 0x4
_PING, _WINDOW_UPDATE, _CONTINUATION = 0x6, 0x8, 0x9
_END_STREAM = _ACK = 0x1
_END_HEADERS = 0x4
_FRAME_HEADER = 9
PREFACE_LENGTH = 24


class FrameScanner:
    """Reads the frame headers of what a client sends, beside the h2 library,
    for what it leaves unbounded (RFC 9113 section 10.5).

    ``feed`` returns how many frames cost work without carrying a request
    forward (PING, SETTINGS, PRIORITY, RST_STREAM, an empty DATA frame
    without END_STREAM, unknown types): the connection budgets them.
    WINDOW_UPDATE frames are counted apart (``window_updates``): they are
    the client's answer to our DATA, so only those beyond what our DATA
    called for cost budget. A
    header block (HEADERS and its CONTINUATIONs) larger than
    ``header_block_limit`` bytes on the wire raises FrameFlood before the
    library buffers it; ``in_header_block`` says one is unfinished.
    """

    __slots__ = ("_skip", "_head", "_block", "_limit", "window_updates")

    def __init__(self, header_block_limit: int, preface: int = PREFACE_LENGTH) -> None:
        self._skip = preface  # bytes to pass over: the preface, then payloads
        self._head = b""  # a frame header split across reads
        self._block: int | None = None  # bytes of the unfinished header block
        self._limit = header_block_limit
        self.window_updates = 0  # WINDOW_UPDATE frames seen, for the connection to weigh

    @property
    def in_header_block(self) -> bool:
        """True while a header block has begun and not ended."""
        return self._block is not None

    def feed(self, data: bytes) -> int:
        """Account for ``data``; the number of cheap frames whose header it ended."""
        cheap = 0
        position, end = 0, len(data)
        while position < end:
            if self._skip:
                step = min(self._skip, end - position)
                self._skip -= step
                position += step
                continue
            missing = _FRAME_HEADER - len(self._head)
            self._head += data[position:position + missing]
            position += missing
            if len(self._head) < _FRAME_HEADER:
                break
            head, self._head = self._head, b""
            length = int.from_bytes(head[:3], "big")
            kind, flags = head[3], head[4]
            self._skip = length
            if kind == _HEADERS:
                self._block = None if flags & _END_HEADERS else length
                if length > self._limit:
                    raise FrameFlood("header block too large")
            elif kind == _CONTINUATION and self._block is not None:
                self._block += length
                if self._block > self._limit:
                    raise FrameFlood("header block too large")
                if flags & _END_HEADERS:
                    self._block = None
            elif kind == _DATA:
                cheap += length == 0 and not flags & _END_STREAM
            elif kind == _SETTINGS:
                cheap += not flags & _ACK
            elif kind == _WINDOW_UPDATE:
                self.window_updates += 1
            elif kind in (_PING, _PRIORITY, _RST_STREAM) or kind > _CONTINUATION:
                cheap += 1
        return cheap
