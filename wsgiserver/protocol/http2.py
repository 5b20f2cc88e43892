"""HTTP/2 requests and responses under the same policy as HTTP/1.1 (RFC 9113 section 8).

Sans-IO, and free of the h2 library: a stream's decoded field list in, a
``Request`` out (the event the HTTP/1.1 parser makes), its pseudo-fields
mapped as HTTP/1.1 would have carried them and held to the same policy
(policy.py); and the encoder of a stream's response state
(``response.ResponseState``, the one HTTP/1.1 drives too): an
application's head in, the field list of a HEADERS frame out. Every
refusal is a ``ProtocolError(status)``, answered on its stream.
``FrameScanner`` reads frame headers beside the library, for the guards
it does not have.

What RFC 9113 calls malformed (upper-case names, connection-specific
fields, pseudo-fields out of order, repeated, unknown or missing,
``:authority`` differing from Host, NUL, CR or LF in a value) is checked
here too, not by the h2 library: the library would make each a connection
error, where the RFC makes it a stream error (``MalformedRequest``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable

from ..errors import ProtocolError
from . import grammar
from .events import Request
from .policy import (
    SPECIAL,
    ParserLimits,
    Special,
    build_request,
    check_field_section,
    request_line_too_long,
)
from .writer import (
    BODY_CLOSE,
    BODY_LENGTH,
    BODY_NONE,
    HOP_BY_HOP,
    BodyFraming,
    ResponseHead,
    body_allowed,
    length_field_kept,
)

__all__ = ["request_from_fields", "RememberedRequests", "check_trailers", "MalformedRequest",
           "Http2Encoder", "FrameScanner", "FrameFlood", "FloodGuard", "HTTP2"]

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


class MalformedRequest(ProtocolError):
    """A header block RFC 9113 calls malformed (sections 8.1.1, 8.2, 8.3):
    a stream error (RST_STREAM PROTOCOL_ERROR) on that stream alone, never
    an answer and never the end of the connection, so that behind a proxy
    that multiplexes clients one client's bad request resets nobody else's."""

    def __init__(self, detail: str) -> None:
        super().__init__(400, detail)


# RFC 9113 8.2.1: a field name is lower-case visible ASCII other than ":"
# (a pseudo-field's leading colon aside); a value holds no NUL, CR or LF and
# neither begins nor ends with whitespace.
_BAD_NAME = re.compile(rb"[^\x21-\x39\x3b-\x40\x5b-\x7e]")
_BAD_VALUE = re.compile(rb"[\x00\r\n]|^[ \t]|[ \t]$")
# RFC 9113 8.2.2: fields HTTP/2 does not carry.
_CONNECTION_SPECIFIC = frozenset({b"connection", b"proxy-connection", b"keep-alive",
                                  b"transfer-encoding", b"upgrade"})
_REQUEST_PSEUDO = (b":method", b":scheme", b":authority", b":path")


def malformed_field(name: bytes, value: bytes) -> str | None:
    """Why one regular field (of a header section or trailers) makes its
    block malformed under RFC 9113 8.2, or None."""
    if not name or _BAD_NAME.search(name) is not None:
        return "invalid field name"
    if _BAD_VALUE.search(value) is not None:
        return "invalid field value"
    if name in _CONNECTION_SPECIFIC:
        return "connection-specific field"
    if name == b"te" and value != b"trailers":
        return "TE other than trailers"
    return None


def check_trailers(fields: Fields) -> None:
    """MalformedRequest for trailers RFC 9113 forbids: a pseudo-field, or a
    field that would be malformed in the header section."""
    for name, value in fields:
        if name[:1] == b":":
            raise MalformedRequest("pseudo-field in trailers")
        why = malformed_field(name, value)
        if why is not None:
            raise MalformedRequest(why)


class _Block:
    """A request's header block, read once: its pseudo-fields and the
    regular fields with what the policy needs of them."""

    __slots__ = ("pseudo", "headers", "size", "special")

    def __init__(self, fields: Fields) -> None:
        self.pseudo: dict[bytes, bytes] = {}
        self.headers: list[tuple[bytes, bytes]] = []
        self.size = 0  # as HTTP/1.1 would count the field lines
        self.special: Special = {}
        for name, value in fields:
            if name[:1] == b":":
                self._pseudo(name, value)
            else:
                self._regular(name, value)
        self._check_pseudo()

    def _pseudo(self, name: bytes, value: bytes) -> None:
        if self.headers:
            raise MalformedRequest("pseudo-field after a regular field")
        if name not in _REQUEST_PSEUDO:
            raise MalformedRequest("unknown pseudo-field")
        if name in self.pseudo:
            raise MalformedRequest("repeated pseudo-field")
        if _BAD_VALUE.search(value) is not None:
            raise MalformedRequest("invalid pseudo-field value")
        self.pseudo[name] = value

    def _regular(self, name: bytes, value: bytes) -> None:
        why = malformed_field(name, value)
        if why is not None:
            raise MalformedRequest(why)
        # What HTTP/1.1's field-line grammar refuses, refused alike.
        if grammar.token.fullmatch(name) is None:
            raise ProtocolError(400, "invalid field name")
        if grammar.forbidden_in_value.search(value) is not None:
            raise ProtocolError(400, "invalid octet in field value")
        self.headers.append((name, value))
        self.size += len(name) + len(value) + _LINE_OVERHEAD
        if name in SPECIAL:
            self.special.setdefault(name, []).append(value)

    def _check_pseudo(self) -> None:
        """RFC 9113 8.3.1: :method always; :scheme and a non-empty :path
        except for CONNECT, which has neither; :authority as Host says."""
        pseudo = self.pseudo
        method = pseudo.get(b":method")
        if method is None:
            raise MalformedRequest("no :method")
        if method == b"CONNECT":
            if b":scheme" in pseudo or b":path" in pseudo or b":authority" not in pseudo:
                raise MalformedRequest("CONNECT with :scheme or :path, or without :authority")
            return
        if b":scheme" not in pseudo or not pseudo.get(b":path"):
            raise MalformedRequest("no :scheme or an empty :path")
        authority = pseudo.get(b":authority")
        hosts = self.special.get(b"host", ())
        if authority is not None and any(host != authority for host in hosts):
            raise MalformedRequest("Host differs from :authority")


def request_from_fields(fields: Fields, limits: ParserLimits, ended: bool) -> Request:
    """The request a HEADERS block carries; ``ended``: END_STREAM came with it.

    A block RFC 9113 calls malformed (upper-case or invalid names,
    connection-specific fields, pseudo-fields unknown, repeated, out of
    order or missing, a Host other than :authority) raises MalformedRequest,
    a stream error. Then what HTTP/1.1's grammar would refuse (a :method
    that is not a token, a :path that is not origin-form or ``*``, a
    :scheme other than http(s)), and the policy both protocols share
    (``policy.build_request``), with the same statuses: 414, 431, 400 for
    Host, 501 for CONNECT, 413. The pseudo-fields are mapped as HTTP/1.1
    would have carried them: :authority is the Host line (counted as one
    when there is none), CONNECT's authority its target.
    """
    block = _Block(fields)
    pseudo, special = block.pseudo, block.special
    method = pseudo[b":method"]
    if grammar.token.fullmatch(method) is None:
        raise ProtocolError(400, "invalid :method")
    authority = pseudo.get(b":authority")
    count, size = len(block.headers), block.size
    if authority is not None and b"host" not in special:
        special[b"host"] = [authority]
        count, size = count + 1, size + len(b"host") + len(authority) + _LINE_OVERHEAD
    check_field_section(count, size, limits)
    if method == b"CONNECT":
        target = pseudo[b":authority"]  # RFC 9113 section 8.5: the authority-form
    else:
        target = _origin_target(method, pseudo, limits)
    return build_request(method, target, HTTP2, tuple(block.headers), special, limits,
                         ended, authority)


# What one connection remembers of its requests: at most this many, each of
# at most this many fields and bytes of names and values (a few KiB in all,
# like h2hpack's blocks: a client's repeated requests are small).
_REQUESTS_KEPT = 16
_KEPT_FIELDS = 32
_KEPT_SECTION_BYTES = 2048


class RememberedRequests:
    """``request_from_fields`` for one connection's header blocks, remembering
    the requests of the first few small blocks that passed: a client repeats
    its blocks (the same fields, which ``h2hpack`` decodes from memory) and a
    ``Request`` is immutable, so a block is checked once. Same answers, same
    errors (a block that fails is checked again each time)."""

    __slots__ = ("_limits", "_kept")

    def __init__(self, limits: ParserLimits) -> None:
        self._limits = limits
        self._kept: dict[tuple[tuple[tuple[bytes, bytes], ...], bool], Request] = {}

    def request(self, fields: Fields, ended: bool) -> Request:
        """The request a HEADERS block carries (``request_from_fields``)."""
        key = (tuple(fields), ended)
        request = self._kept.get(key)
        if request is None:
            request = request_from_fields(key[0], self._limits, ended)
            if len(self._kept) < _REQUESTS_KEPT and len(key[0]) <= _KEPT_FIELDS and \
                    sum(len(name) + len(value) for name, value in key[0]) <= _KEPT_SECTION_BYTES:
                self._kept[key] = request
        return request

def _origin_target(method: bytes, pseudo: dict[bytes, bytes], limits: ParserLimits) -> bytes:
    """:path as the request-target HTTP/1.1 would have read: within its line's
    limit, visible ASCII, origin-form or ``*`` (RFC 9113 section 8.3.1),
    under an http(s) :scheme."""
    path = pseudo[b":path"]
    # What the request-line would have been: the same limit as HTTP/1.1's.
    if len(method) + len(path) + len(b"  HTTP/1.1") > limits.max_request_line:
        raise request_line_too_long()
    if _TARGET.fullmatch(path) is None:
        raise ProtocolError(400, "invalid :path")
    if path[:1] != b"/" and path != b"*":
        # RFC 9113 section 8.3.1: origin-form, or "*" for OPTIONS; never absolute.
        raise ProtocolError(400, ":path is not origin-form")
    if pseudo[b":scheme"].lower() not in (b"http", b"https"):
        raise ProtocolError(400, "unsupported :scheme")
    return path


class Http2Encoder:
    """HTTP/2's heads: the ``HeadEncoder`` of each stream's ``ResponseState``.

    A final head becomes the field list of a HEADERS frame: ``:status``
    first, names lower-case and values without surrounding whitespace (RFC
    9113 8.2.1), the connection-specific fields dropped (8.2.2), then
    Content-Length, Date and Server as HTTP/1.1 adds them. There is no
    chunking: DATA frames carry a body of unknown length and END_STREAM
    ends it (framing CLOSE: "to the stream's end").
    """

    __slots__ = ("_date", "_server_name")

    def __init__(self, date: Callable[[], str] | None, server_name: str | None) -> None:
        self._date = date
        self._server_name = server_name.encode("latin-1") if server_name else None

    def encode_final(self, head: ResponseHead, method: bytes,
                     length: int | None) -> tuple[list[tuple[bytes, bytes]], BodyFraming]:
        """The HEADERS fields of ``head`` and its body's framing."""
        code = head.code
        if not body_allowed(method, code):
            framing = BODY_NONE
        elif length is not None:
            framing = BODY_LENGTH
        else:
            framing = BODY_CLOSE  # to END_STREAM
        fields = [(b":status", b"%d" % code)]
        for name, value in head.fields:
            lower = name.lower()
            if lower in _NOT_IN_HTTP2:
                continue
            fields.append((lower.encode("ascii"), value.strip(" \t").encode("latin-1")))
        if length is not None and length_field_kept(framing, code, length):
            fields.append((b"content-length", b"%d" % length))
        if self._date is not None and not head.has_date:
            fields.append((b"date", self._date().encode("ascii")))
        if self._server_name and not head.has_server:
            fields.append((b"server", self._server_name))
        return fields, framing

    def encode_continue(self) -> list[tuple[bytes, bytes]]:
        """The interim ``100 Continue``: HEADERS with its status alone."""
        return [(b":status", b"100")]


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
            cheap += self._frame(head)
        return cheap

    def _frame(self, head: bytes) -> int:
        """Account for one frame header; 1 if the frame is a cheap one, else 0."""
        length = int.from_bytes(head[:3], "big")
        kind, flags = head[3], head[4]
        self._skip = length
        if kind == _HEADERS or (kind == _CONTINUATION and self._block is not None):
            self._header_block(kind, flags, length)
        elif kind == _DATA:
            return int(length == 0 and not flags & _END_STREAM)
        elif kind == _SETTINGS:
            return int(not flags & _ACK)
        elif kind == _WINDOW_UPDATE:
            self.window_updates += 1
        elif kind in (_PING, _PRIORITY, _RST_STREAM) or kind > _CONTINUATION:
            return 1
        return 0

    def _header_block(self, kind: int, flags: int, length: int) -> None:
        """A HEADERS frame or a CONTINUATION of its block: the block bounded."""
        if kind == _HEADERS:
            self._block = None if flags & _END_HEADERS else length
            if length > self._limit:
                raise FrameFlood("header block too large")
            return
        block = (self._block or 0) + length
        self._block = block
        if block > self._limit:
            raise FrameFlood("header block too large")
        if flags & _END_HEADERS:
            self._block = None


# Frames that cost work and carry nothing a request needs (a burst, then a
# rate per second): beyond, the connection is closed with ENHANCE_YOUR_CALM.
_CHEAP_BURST = 1000.0
_CHEAP_PER_SECOND = 100.0
# WINDOW_UPDATE frames a client may send before any of our DATA asks for them
# (an opening enlargement of its windows, per stream of a first batch).
_WINDOW_UPDATE_ALLOWANCE = 200
# Streams the client may reset before their responses end, beyond those
# that ended well (rapid reset, CVE-2023-44487): a balance, not a rate.
_RESETS_PER_STREAM_SLOT = 2


class FloodGuard:
    """One connection's allowance of what costs the server work and gives a
    client nothing (RFC 9113 section 10.5): cheap frames as a token bucket,
    WINDOW_UPDATEs beyond what our DATA asked for, and resets of streams
    still under way (rapid reset) as a balance that well-ended streams
    refill. Each breach raises FrameFlood. Time comes from the caller."""

    __slots__ = ("_tokens", "_at", "_update_credit", "_resets", "_max_resets")

    def __init__(self, max_streams: int, now: float) -> None:
        self._tokens = _CHEAP_BURST
        self._at = now
        # WINDOW_UPDATE frames the client may still send for our DATA
        # (negative: owed to it); beyond, each counts as a cheap frame.
        self._update_credit = -_WINDOW_UPDATE_ALLOWANCE
        self._max_resets = self._resets = _RESETS_PER_STREAM_SLOT * max_streams

    def received(self, cheap: int, window_updates: int, now: float) -> None:
        """Frames read: ``cheap`` ones, and ``window_updates``, of which those
        our DATA did not call for count as cheap too (one connection sending
        them kept a core busy)."""
        credit = self._update_credit + window_updates
        if credit <= 0:
            self._update_credit = credit
        else:
            self._update_credit = 0
            cheap += credit
        if not cheap:
            return
        tokens = min(_CHEAP_BURST, self._tokens + (now - self._at) * _CHEAP_PER_SECOND)
        self._at = now
        self._tokens = tokens - cheap
        if self._tokens < 0:
            raise FrameFlood("too many control frames")

    def data_sent(self) -> None:
        """A DATA frame went out: the client may answer it for the stream and
        for the connection."""
        self._update_credit -= 2

    def reset_under_way(self) -> None:
        """The client reset a stream before its response ended."""
        self._resets -= 1
        if self._resets < 0:
            raise FrameFlood("too many streams reset by the client")

    def completed(self) -> None:
        """A response ended well: it earns back a reset."""
        self._resets = min(self._resets + 1, self._max_resets)
