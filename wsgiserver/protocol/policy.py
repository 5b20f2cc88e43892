"""The request policy both protocols share: what a request may be, whoever carried it.

Sans-IO and free of wire formats: a method, target, version and field list
in, as the HTTP/1.1 parser splits them from its lines or HTTP/2 maps them
from a stream's pseudo-fields, a ``Request`` out, or a
``ProtocolError(status)``. The limits (414, 431, 413), the request-target's
forms and CONNECT (501), Host (400), Content-Length and Transfer-Encoding,
and Expect: 100-continue are decided here once. How a protocol reads its
fields, and what only it forbids (HTTP/1.1's line grammar, HTTP/2's
malformed blocks), stays with that protocol; where the two legitimately
differ (a body delimited by the end of an HTTP/2 stream, its :authority
beside the target), the difference is passed in.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from ..errors import ProtocolError
from . import grammar
from .events import FRAMING_CHUNKED, FRAMING_LENGTH, FRAMING_NONE, Framing, Request, RequestHead

__all__ = ["ParserLimits", "SPECIAL", "build_request", "check_field_section", "split_target",
           "content_length", "body_too_large", "request_line_too_long",
           "header_section_too_large"]

Version = tuple[int, int]
Fields = tuple[tuple[bytes, bytes], ...]
# The values of the fields in SPECIAL, by name, collected by each protocol as
# it reads its fields, so that no step here scans them all again.
Special = dict[bytes, list[bytes]]

# The fields that frame a request or decide its handling.
SPECIAL = frozenset({b"host", b"content-length", b"transfer-encoding", b"connection", b"expect"})

# The largest Content-Length we convert; longer digit strings are refused
# before int() sees them (int() of thousands of digits raises ValueError).
_MAX_LENGTH_DIGITS = 18
_NO_OPTIONS: frozenset[bytes] = frozenset()


class ParserLimits:
    """The sizes a request is held to, each with the status it answers."""

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


def request_line_too_long() -> ProtocolError:
    """The 414 for a request-line (or HTTP/2's method and :path) over the limit."""
    return ProtocolError(414, "request-line too long")


def header_section_too_large() -> ProtocolError:
    """The 431 for a header section over its limit in bytes."""
    return ProtocolError(431, "request header section too large")


def check_field_section(count: int, size: int, limits: ParserLimits) -> None:
    """431 for a header section of ``count`` fields and ``size`` bytes as
    HTTP/1.1 counts them (each line with its CRLF). Apart from
    ``build_request`` because HTTP/1.1 must check it before it parses a
    line: a section refused for its size is refused whatever its lines are,
    however the bytes arrived."""
    if count > limits.max_header_count:
        raise ProtocolError(431, "too many header fields")
    if size > limits.max_header_bytes:
        raise header_section_too_large()


def build_request(
    method: bytes, target: bytes, version: Version, headers: Fields, special: Special,
    limits: ParserLimits, ended: bool | None = None, authority: bytes | None = None,
) -> Request:
    """The request these parts make, or the ProtocolError to answer it with.

    ``special`` holds the values of the SPECIAL fields among ``headers``.
    What HTTP/2 alone passes: ``ended`` says whether END_STREAM came with the
    head (no body, whatever its fields say) or a body follows to the
    stream's end (its Content-Length only checked); None, HTTP/1.1's, leaves
    the framing to the fields. ``authority`` is an authority named beside
    the target (:authority). A refusal carries the ``RequestHead`` for the log.
    """
    try:
        path, query, scheme, target_authority = split_target(method, target)
        if authority is not None and not _valid_authority(authority):
            raise ProtocolError(400, "invalid :authority")  # RFC 9113 section 8.3.1
        hosts = special.get(b"host")
        if hosts is None or len(hosts) != 1 or grammar.host.fullmatch(hosts[0]) is None:
            _refuse_hosts(version, hosts)
        framing, length = _framing(special, version, limits, ended)
    except ProtocolError as error:
        error.head = RequestHead(method, target, version, headers)
        raise
    connection = special.get(b"connection")
    expect = special.get(b"expect")
    return Request(  # positionally: a NamedTuple's keywords cost a mapping per request
        method, target, version, headers, path, query, scheme,
        target_authority if authority is None else authority, framing, length,
        _NO_OPTIONS if connection is None else _connection_options(connection),
        expect is not None and not ended and _expects_continue(version, expect),
    )


def split_target(
    method: bytes, target: bytes
) -> tuple[bytes, bytes, bytes | None, bytes | None]:
    """(path, query, scheme, authority) of a request-target (RFC 9112 section 3.2)."""
    if method == b"CONNECT":
        raise ProtocolError(501, "CONNECT is not supported")
    if target.find(b"#") >= 0:  # find: half the cost of ``in`` on bytes
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
    if not _valid_authority(authority):
        raise ProtocolError(400, "invalid authority in request-target")
    path, _, query = rest.partition(b"?")
    return path or b"/", query, scheme, authority


def _valid_authority(authority: bytes) -> bool:
    """RFC 9110 section 4.2.1: an http(s) URI has a non-empty host and no userinfo."""
    return bool(authority) and b"@" not in authority and \
        grammar.host.fullmatch(authority) is not None


def _refuse_hosts(version: Version, hosts: list[bytes] | None) -> None:
    """Host fields other than one valid one (the caller checked that case):
    refused, save none at all from HTTP/1.0."""
    if hosts is not None and len(hosts) > 1:
        raise ProtocolError(400, "more than one Host field")
    if not hosts:
        if version < (1, 1):
            return
        # RFC 9112 section 3.2; RFC 9113 section 8.3.1 lets :authority stand for it.
        raise ProtocolError(400, "HTTP/1.1 request without Host" if version < (2, 0)
                            else "request without :authority or Host")
    raise ProtocolError(400, "invalid Host field")


def _framing(
    special: Special, version: Version, limits: ParserLimits, ended: bool | None
) -> tuple[Framing, int | None]:
    lengths = special.get(b"content-length")
    codings = special.get(b"transfer-encoding")
    if codings is not None:  # HTTP/1.1's alone: HTTP/2 calls the field malformed
        return _chunked(codings, lengths, version)
    length = None if lengths is None else content_length(lengths)
    if length is not None and length > limits.max_body_bytes:
        raise body_too_large(limits.max_body_bytes)
    if ended is None:
        # HTTP/1.1: the fields alone frame the body; RFC 9112 section 6.3 (7):
        # without them, there is none.
        return (FRAMING_LENGTH if length else FRAMING_NONE), length
    if ended:
        return FRAMING_NONE, length
    # RFC 9113 section 8.1: without a length, the body runs to END_STREAM.
    return (FRAMING_CHUNKED if length is None else FRAMING_LENGTH), length


def _chunked(
    codings: list[bytes], lengths: list[bytes] | None, version: Version
) -> tuple[Framing, None]:
    _check_transfer_codings(codings)
    if version < (1, 1):
        # RFC 9112 section 6.1: Transfer-Encoding in HTTP/1.0 is faulty framing.
        raise ProtocolError(400, "Transfer-Encoding in an HTTP/1.0 request")
    if lengths:
        # RFC 9112 section 6.1 lets a server refuse both at once, and
        # section 6.3 (3) says to close either way: refusing is safer
        # behind a proxy that framed the body by the other one.
        raise ProtocolError(400, "both Content-Length and Transfer-Encoding")
    return FRAMING_CHUNKED, None


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
