"""RequestParser against the protocol rules of RFC 9110/9112.

Every table case is fed three ways (see parsing.WAYS): whole, one byte at a
time, and whole with a pipelined request after it, which must come out intact
whenever the case itself is accepted. A case's expectation is either the
status of the ProtocolError, or the Request attributes (plus ``body`` and
``trailers``) of the one message it must produce.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import wsgiserver.protocol
from wsgiserver.errors import ProtocolError
from wsgiserver.protocol import (
    NEED_DATA,
    PAUSED,
    Data,
    EndOfMessage,
    Framing,
    ParserLimits,
    Request,
    RequestParser,
)

from .parsing import (
    FOLLOWING,
    WAYS,
    assert_outcome,
    bytewise,
    parse,
    parse_way,
)

CRLF = b"\r\n"
HOST = b"Host: example.com"


def request(*field_lines: bytes, line: bytes = b"GET / HTTP/1.1", body: bytes = b"") -> bytes:
    """A request head from its lines, then ``body`` as given."""
    return CRLF.join((line, *field_lines)) + CRLF + CRLF + body


def post(*field_lines: bytes, body: bytes = b"") -> bytes:
    return request(HOST, *field_lines, line=b"POST /upload HTTP/1.1", body=body)


def chunked(body: bytes, *extra_fields: bytes) -> bytes:
    return post(b"Transfer-Encoding: chunked", *extra_fields, body=body)


def table(*cases):
    """parametrize (raw, expected) over each case and each way of feeding it."""
    return pytest.mark.parametrize(
        "raw, expected, way",
        [
            pytest.param(raw, expected, way, id=f"{name}-{way}")
            for name, raw, expected in cases
            for way in WAYS
        ],
    )


def check(raw: bytes, expected, way: str, limits: ParserLimits | None = None) -> None:
    assert_outcome(parse_way(raw, way, limits), expected)


# -- request-line (RFC 9112 section 3) ---------------------------------------


@table(
    ("origin-form", request(HOST, line=b"GET /a/b?x=1&y=2 HTTP/1.1"),
     {"method": b"GET", "target": b"/a/b?x=1&y=2", "path": b"/a/b", "query": b"x=1&y=2",
      "scheme": None, "authority": None, "http_version": (1, 1)}),
    ("origin-form-empty-query", request(HOST, line=b"GET /a? HTTP/1.1"),
     {"path": b"/a", "query": b""}),
    ("absolute-form", request(b"Host: other.example", line=b"GET http://example.com:8080/p?q HTTP/1.1"),
     {"scheme": b"http", "authority": b"example.com:8080", "path": b"/p", "query": b"q"}),
    ("absolute-form-without-path", request(HOST, line=b"GET http://example.com HTTP/1.1"),
     {"path": b"/", "query": b"", "authority": b"example.com"}),
    ("absolute-form-query-without-path", request(HOST, line=b"GET http://example.com?q=1 HTTP/1.1"),
     {"path": b"/", "query": b"q=1"}),
    ("absolute-form-scheme-is-case-insensitive", request(HOST, line=b"GET HTTPS://example.com/ HTTP/1.1"),
     {"scheme": b"https"}),
    ("absolute-form-ipv6", request(HOST, line=b"GET http://[::1]:80/ HTTP/1.1"),
     {"authority": b"[::1]:80"}),
    ("asterisk-form-for-options", request(HOST, line=b"OPTIONS * HTTP/1.1"),
     {"method": b"OPTIONS", "path": b"*", "target": b"*"}),
    ("extension-method-token", request(HOST, line=b"M-SEARCH /x HTTP/1.1"), {"method": b"M-SEARCH"}),
    ("method-is-case-sensitive", request(HOST, line=b"get / HTTP/1.1"), {"method": b"get"}),
    ("http-1.0", request(line=b"GET / HTTP/1.0"), {"http_version": (1, 0)}),
    ("higher-minor-served-as-1.1", request(HOST, line=b"GET / HTTP/1.2"), {"http_version": (1, 1)}),
    ("minor-9-served-as-1.1", request(HOST, line=b"GET / HTTP/1.9"), {"http_version": (1, 1)}),
    ("one-empty-line-before-request-line-ignored", CRLF + request(HOST), {"target": b"/"}),
    ("several-empty-lines-before-request-line-ignored", CRLF * 3 + request(HOST), {"target": b"/"}),
)
def test_valid_request_line_is_accepted(raw, expected, way):
    check(raw, expected, way)


@table(
    ("two-spaces", request(HOST, line=b"GET  / HTTP/1.1"), 400),
    ("trailing-space", request(HOST, line=b"GET / HTTP/1.1 "), 400),
    ("leading-space", request(HOST, line=b" GET / HTTP/1.1"), 400),
    ("tab-separator", request(HOST, line=b"GET\t/ HTTP/1.1"), 400),
    ("lowercase-http-name", request(HOST, line=b"GET / http/1.1"), 400),
    ("leading-zero-in-version", request(HOST, line=b"GET / HTTP/01.1"), 400),
    ("two-digit-minor", request(HOST, line=b"GET / HTTP/1.10"), 400),
    ("version-without-minor", request(HOST, line=b"GET / HTTP/1"), 400),
    ("missing-target", request(HOST, line=b"GET HTTP/1.1"), 400),
    ("http-0.9-style", request(HOST, line=b"GET /"), 400),
    ("missing-version", request(HOST, line=b"GET / "), 400),
    ("space-in-target", request(HOST, line=b"GET /a b HTTP/1.1"), 400),
    ("nul-in-target", request(HOST, line=b"GET /\x00 HTTP/1.1"), 400),
    ("non-ascii-in-target", request(HOST, line=b"GET /\xc3\xa9 HTTP/1.1"), 400),
    ("method-not-a-token", request(HOST, line=b"G(T / HTTP/1.1"), 400),
    ("empty-method", request(HOST, line=b" / HTTP/1.1"), 400),
    ("empty-request-line", CRLF + b" " + CRLF + HOST + CRLF + CRLF, 400),
    ("asterisk-form-for-get", request(HOST, line=b"GET * HTTP/1.1"), 400),
    ("target-without-scheme-or-slash", request(HOST, line=b"GET example.com HTTP/1.1"), 400),
    ("absolute-form-unsupported-scheme", request(HOST, line=b"GET ftp://example.com/ HTTP/1.1"), 400),
    ("absolute-form-empty-authority", request(HOST, line=b"GET http:///p HTTP/1.1"), 400),
    ("absolute-form-userinfo", request(HOST, line=b"GET http://user@example.com/ HTTP/1.1"), 400),
    ("absolute-form-invalid-host", request(HOST, line=b"GET http://ex<ample.com/ HTTP/1.1"), 400),
    ("whitespace-line-after-request-line", request(b" Host: example.com"), 400),
    ("tls-handshake", b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03" + CRLF + CRLF, 400),
)
def test_invalid_request_line_gets_400(raw, expected, way):
    check(raw, expected, way)


@table(
    ("http-2.0", request(HOST, line=b"GET / HTTP/2.0"), 505),
    ("http-3.1", request(HOST, line=b"GET / HTTP/3.1"), 505),
    ("http-0.9-version", request(HOST, line=b"GET / HTTP/0.9"), 505),
)
def test_other_major_version_gets_505(raw, expected, way):
    check(raw, expected, way)


@table(("connect", request(HOST, line=b"CONNECT example.com:443 HTTP/1.1"), 501))
def test_connect_gets_501(raw, expected, way):
    check(raw, expected, way)


# -- field lines (RFC 9112 section 5, RFC 9110 section 5) --------------------


@table(
    ("names-lower-cased-values-kept",
     request(HOST, b"X-Mixed-Case: Value With Spaces"),
     {"headers": ((b"host", b"example.com"), (b"x-mixed-case", b"Value With Spaces"))}),
    ("ows-around-value-removed", request(HOST, b"X-A: \t a b \t "),
     {"headers": ((b"host", b"example.com"), (b"x-a", b"a b"))}),
    ("empty-value", request(HOST, b"X-Empty:"),
     {"headers": ((b"host", b"example.com"), (b"x-empty", b""))}),
    ("no-space-after-colon", request(HOST, b"X-A:b"),
     {"headers": ((b"host", b"example.com"), (b"x-a", b"b"))}),
    ("colon-inside-value", request(HOST, b"X-Url: http://a:1/"),
     {"headers": ((b"host", b"example.com"), (b"x-url", b"http://a:1/"))}),
    ("obs-text-in-value-kept", request(HOST, b"X-Latin: caf\xe9 \xa0"),
     {"headers": ((b"host", b"example.com"), (b"x-latin", b"caf\xe9 \xa0"))}),
    ("repeated-field-kept-in-order", request(HOST, b"X-A: 1", b"X-B: 2", b"X-A: 3"),
     {"headers": ((b"host", b"example.com"), (b"x-a", b"1"), (b"x-b", b"2"), (b"x-a", b"3"))}),
    # Names with "_" are dropped later by the WSGI layer, never by the parser.
    ("underscore-name-kept", request(HOST, b"X_Forwarded_For: 1.2.3.4"),
     {"headers": ((b"host", b"example.com"), (b"x_forwarded_for", b"1.2.3.4"))}),
)
def test_field_lines_are_parsed(raw, expected, way):
    check(raw, expected, way)


@table(
    ("space-before-colon", request(HOST, b"X-A : b"), 400),
    ("tab-before-colon", request(HOST, b"X-A\t: b"), 400),
    ("space-before-colon-on-content-length", post(b"Content-Length : 5", body=b"hello"), 400),
    ("obs-fold-space", request(HOST, b"X-A: b", b" c"), 400),
    ("obs-fold-tab", request(HOST, b"X-A: b", b"\tc"), 400),
    ("obs-fold-of-transfer-encoding", post(b"Transfer-Encoding: gzip", b" ,chunked", body=b"0\r\n\r\n"), 400),
    ("nul-in-value", request(HOST, b"X-A: a\x00b"), 400),
    ("bare-cr-in-value", request(HOST, b"X-A: a\rb"), 400),
    ("bare-cr-ending-value", request(HOST, b"X-A: a\r"), 400),
    ("bare-cr-in-name", request(HOST, b"X\r-A: b"), 400),
    ("vertical-tab-in-value", request(HOST, b"X-A: \x0bb"), 400),
    ("form-feed-in-value", request(HOST, b"X-A: b\x0c"), 400),
    ("del-in-value", request(HOST, b"X-A: b\x7f"), 400),
    ("escape-in-value", request(HOST, b"X-A: \x1b[31m"), 400),
    ("no-colon", request(HOST, b"X-A b"), 400),
    ("name-only-no-colon", request(HOST, b"X-A"), 400),
    ("transfer-encoding-without-colon", post(b"Transfer-Encoding", body=b"0\r\n\r\n"), 400),
    ("empty-name", request(HOST, b": b"), 400),
    ("non-ascii-name", request(HOST, b"X-\xe9: b"), 400),
    ("separator-in-name", request(HOST, b"X(A): b"), 400),
    ("name-with-slash", request(HOST, b"X/A: b"), 400),
)
def test_malformed_field_line_gets_400(raw, expected, way):
    check(raw, expected, way)


# -- line endings (RFC 9112 section 2.2): bare LF refused by choice ----------


@table(
    ("bare-lf-everywhere", b"GET / HTTP/1.1\nHost: example.com\n\n", 400),
    ("bare-lf-after-request-line", b"GET / HTTP/1.1\nHost: example.com\r\n\r\n", 400),
    ("bare-lf-after-field", b"GET / HTTP/1.1\r\nHost: example.com\nX-A: b\r\n\r\n", 400),
    ("bare-lf-ending-head", b"GET / HTTP/1.1\r\nHost: example.com\r\n\n", 400),
    ("bare-lf-lf-ending-head", b"GET / HTTP/1.1\r\nHost: example.com\n\n", 400),
    ("bare-lf-before-request-line", b"\nGET / HTTP/1.1\r\nHost: example.com\r\n\r\n", 400),
    ("bare-cr-after-request-line", b"GET / HTTP/1.1\rHost: example.com\r\n\r\n", 400),
    ("bare-cr-as-line-ends", b"GET / HTTP/1.1\rHost: example.com\r\r", 400),
    ("cr-cr-lf", b"GET / HTTP/1.1\r\r\nHost: example.com\r\n\r\n", 400),
    ("bare-cr-before-request-line", b"\rGET / HTTP/1.1\r\nHost: example.com\r\n\r\n", 400),
    ("lf-cr-line-end", b"GET / HTTP/1.1\n\rHost: example.com\r\n\r\n", 400),
)
def test_bare_cr_or_lf_in_head_gets_400(raw, expected, way):
    check(raw, expected, way)


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(b"GET / HTTP/1.1\r\nHost: a\r\r\n", id="cr-cr-lf"),
        pytest.param(b"GET / HTTP/1.1\r\nHost: a\nX", id="bare-lf"),
        pytest.param(b"GET / HTTP/1.1\r\nHost: a\rX", id="bare-cr"),
        pytest.param(b"GET /\r\r", id="cr-cr-in-request-line"),
    ],
)
def test_bare_cr_or_lf_in_an_unfinished_head_is_refused_at_once(raw):
    # It can never end the head: answer now, not after a read timeout.
    for pieces in ([raw], bytewise(raw)):
        assert parse(pieces).status == 400


def test_cr_at_the_end_of_an_unfinished_head_waits_for_its_lf():
    for raw in (b"GET / HTTP/1.1\r", b"GET / HTTP/1.1\r\nHost: a\r\n\r"):
        for pieces in ([raw], bytewise(raw)):
            outcome = parse(pieces)
            assert outcome.error is None and outcome.parser.next_event() is NEED_DATA


# -- Host (RFC 9112 section 3.2) ---------------------------------------------


@table(
    ("host-name", request(b"Host: example.com"), {"authority": None}),
    ("host-with-port", request(b"Host: example.com:8080"), {"header_host": b"example.com:8080"}),
    ("host-ipv4", request(b"Host: 127.0.0.1:80"), {"header_host": b"127.0.0.1:80"}),
    ("host-ipv6", request(b"Host: [::1]:8080"), {"header_host": b"[::1]:8080"}),
    # RFC 9112 section 3.2: a client with no authority sends an empty Host.
    ("host-empty", request(b"Host:"), {"header_host": b""}),
    ("http-1.0-without-host", request(line=b"GET / HTTP/1.0"), {"header_host": None}),
    ("absolute-form-authority-wins-over-host",
     request(b"Host: evil.example", line=b"GET http://good.example/x HTTP/1.1"),
     {"authority": b"good.example", "path": b"/x", "header_host": b"evil.example"}),
)
def test_valid_host_is_accepted(raw, expected, way):
    expected = dict(expected)
    host = expected.pop("header_host", ...)
    outcome = parse_way(raw, way)
    assert_outcome(outcome, expected)
    if host is not ...:
        assert outcome.request.header(b"host") == host


@table(
    ("missing-in-http-1.1", request(), 400),
    ("missing-with-absolute-form", request(line=b"GET http://example.com/ HTTP/1.1"), 400),
    ("duplicate-same-value", request(HOST, HOST), 400),
    ("duplicate-different-values", request(HOST, b"Host: other.example"), 400),
    ("duplicate-in-http-1.0", request(HOST, HOST, line=b"GET / HTTP/1.0"), 400),
    ("list-value", request(b"Host: a.example, b.example"), 400),
    ("space-inside", request(b"Host: a b"), 400),
    ("slash-inside", request(b"Host: a/b"), 400),
    ("userinfo", request(b"Host: user@example.com"), 400),
    ("unclosed-ipv6", request(b"Host: [::1"), 400),
    ("non-digit-port", request(b"Host: example.com:80a"), 400),
    ("non-ascii", request(b"Host: ex\xe4mple.com"), 400),
    ("invalid-in-http-1.0", request(b"Host: a b", line=b"GET / HTTP/1.0"), 400),
)
def test_host_missing_duplicate_or_invalid_gets_400(raw, expected, way):
    check(raw, expected, way)


# -- Content-Length (RFC 9110 section 8.6, RFC 9112 section 6.3) -------------


@table(
    ("plain", post(b"Content-Length: 5", body=b"hello"),
     {"framing": Framing.LENGTH, "content_length": 5, "body": b"hello", "client_persists": True}),
    ("leading-zeros-are-decimal", post(b"Content-Length: 010", body=b"0123456789"),
     {"content_length": 10, "body": b"0123456789"}),
    ("all-zeros", post(b"Content-Length: 000"), {"content_length": 0, "body": b""}),
    ("zero-means-no-body", post(b"Content-Length: 0"),
     {"framing": Framing.NONE, "content_length": 0, "body": b""}),
    ("list-of-same-values", post(b"Content-Length: 5, 5", body=b"hello"),
     {"content_length": 5, "body": b"hello"}),
    ("duplicate-lines-same-value", post(b"Content-Length: 5", b"Content-Length: 5", body=b"hello"),
     {"content_length": 5, "body": b"hello"}),
    ("same-value-with-leading-zero", post(b"Content-Length: 5", b"Content-Length: 05", body=b"hello"),
     {"content_length": 5, "body": b"hello"}),
    ("ows-around-value", post(b"Content-Length: \t5 \t", body=b"hello"), {"content_length": 5}),
    ("body-with-crlf-and-nul-is-opaque", post(b"Content-Length: 6", body=b"\r\n\x00\r\n\n"),
     {"body": b"\r\n\x00\r\n\n"}),
    # RFC 9112 section 6.3 (7): without CL or TE a request has no body; what
    # follows is the next request (the "trailing" way checks it is intact).
    ("no-framing-no-body", request(HOST, line=b"POST / HTTP/1.1"),
     {"framing": Framing.NONE, "content_length": None, "body": b""}),
)
def test_content_length_frames_the_body(raw, expected, way):
    check(raw, expected, way)


@table(
    ("plus-sign", post(b"Content-Length: +5", body=b"hello"), 400),
    ("minus-sign", post(b"Content-Length: -1"), 400),
    ("hex", post(b"Content-Length: 0x5", body=b"hello"), 400),
    ("underscore", post(b"Content-Length: 1_0", body=b"0123456789"), 400),
    ("trailing-letter", post(b"Content-Length: 5Z", body=b"hello"), 400),
    ("decimal-point", post(b"Content-Length: 5.0", body=b"hello"), 400),
    ("exponent", post(b"Content-Length: 5e0", body=b"hello"), 400),
    ("inner-space", post(b"Content-Length: 5 5", body=b"hello"), 400),
    ("empty", post(b"Content-Length:"), 400),
    ("only-spaces", post(b"Content-Length:   "), 400),
    ("vertical-tab-before", post(b"Content-Length: \x0b5", body=b"hello"), 400),
    ("vertical-tab-after", post(b"Content-Length: 5\x0b", body=b"hello"), 400),
    ("form-feed-after", post(b"Content-Length: 5\x0c", body=b"hello"), 400),
    ("nbsp-before", post(b"Content-Length: \xa05", body=b"hello"), 400),
    ("nbsp-utf8-after", post(b"Content-Length: 5\xc2\xa0", body=b"hello"), 400),
    ("arabic-indic-digit", post("Content-Length: \u0665".encode(), body=b"hello"), 400),
    ("fullwidth-digit", post("Content-Length: \uff15".encode(), body=b"hello"), 400),
    ("superscript-digit", post("Content-Length: \u00b9".encode("latin-1"), body=b"h"), 400),
    ("list-of-different-values", post(b"Content-Length: 5, 6", body=b"hello!"), 400),
    ("duplicate-lines-different-values",
     post(b"Content-Length: 5", b"Content-Length: 6", body=b"hello!"), 400),
    ("empty-list-element", post(b"Content-Length: 5,", body=b"hello"), 400),
    ("list-with-empty-middle", post(b"Content-Length: 5,,5", body=b"hello"), 400),
)
def test_invalid_content_length_gets_400(raw, expected, way):
    check(raw, expected, way)


@table(
    ("30-digits", post(b"Content-Length: " + b"9" * 30), 413),
    ("5000-digits", post(b"Content-Length: " + b"1" * 5000), 413),
    ("19-digits", post(b"Content-Length: 1000000000000000000"), 413),
    ("over-default-limit", post(b"Content-Length: %d" % ((1 << 30) + 1)), 413),
)
def test_huge_content_length_gets_413_without_overflow(raw, expected, way):
    check(raw, expected, way)


def test_long_run_of_leading_zeros_is_a_small_length():
    outcome = parse([post(b"Content-Length: " + b"0" * 40 + b"5", body=b"hello")])
    assert outcome.request.content_length == 5
    assert outcome.message.body == b"hello"


# -- Transfer-Encoding (RFC 9112 sections 6.1, 6.3) --------------------------


@table(
    ("chunked", chunked(b"5\r\nhello\r\n0\r\n\r\n"),
     {"framing": Framing.CHUNKED, "content_length": None, "body": b"hello", "client_persists": True}),
    ("chunked-any-case", post(b"Transfer-Encoding: ChUnKeD", body=b"5\r\nhello\r\n0\r\n\r\n"),
     {"framing": Framing.CHUNKED, "body": b"hello"}),
    ("empty-list-elements-ignored", post(b"Transfer-Encoding: , chunked,", body=b"0\r\n\r\n"),
     {"framing": Framing.CHUNKED, "body": b""}),
)
def test_chunked_transfer_encoding_frames_the_body(raw, expected, way):
    check(raw, expected, way)


# RFC 9112 section 6.1 lets a server refuse both framings at once (section
# 6.3 (3) makes it close either way); refusing leaves no framing to smuggle by.
@table(
    ("content-length-and-chunked", post(b"Content-Length: 3", b"Transfer-Encoding: chunked",
                                        body=b"5\r\nhello\r\n0\r\n\r\n"), 400),
    ("chunked-and-content-length", post(b"Transfer-Encoding: chunked", b"Content-Length: 30",
                                        body=b"5\r\nhello\r\n0\r\n\r\n"), 400),
    ("chunked-and-invalid-content-length",
     post(b"Transfer-Encoding: chunked", b"Content-Length: +5", body=b"5\r\nhello\r\n0\r\n\r\n"), 400),
)
def test_content_length_with_transfer_encoding_gets_400(raw, expected, way):
    check(raw, expected, way)


@table(
    ("chunked-then-gzip", post(b"Transfer-Encoding: chunked, gzip", body=b"0\r\n\r\n"), 400),
    ("chunked-then-gzip-on-two-lines",
     post(b"Transfer-Encoding: chunked", b"Transfer-Encoding: gzip", body=b"0\r\n\r\n"), 400),
    ("chunked-twice", post(b"Transfer-Encoding: chunked, chunked", body=b"0\r\n\r\n"), 400),
    ("chunked-on-two-lines",
     post(b"Transfer-Encoding: chunked", b"Transfer-Encoding: chunked", body=b"0\r\n\r\n"), 400),
    ("empty-value", post(b"Transfer-Encoding:", body=b"0\r\n\r\n"), 400),
    ("only-commas", post(b"Transfer-Encoding: ,,", body=b"0\r\n\r\n"), 400),
    ("vertical-tab-before-chunked", post(b"Transfer-Encoding: \x0bchunked", body=b"0\r\n\r\n"), 400),
    ("nbsp-before-chunked", post(b"Transfer-Encoding: \xa0chunked", body=b"0\r\n\r\n"), 400),
    ("nbsp-after-chunked", post(b"Transfer-Encoding: chunked\xa0", body=b"0\r\n\r\n"), 400),
    ("xff-after-chunked", post(b"Transfer-Encoding: chunked\xff", body=b"0\r\n\r\n"), 400),
    ("quoted-chunked", post(b'Transfer-Encoding: "chunked"', body=b"0\r\n\r\n"), 400),
    # RFC 9112 section 6.1: Transfer-Encoding in HTTP/1.0 is faulty framing.
    ("in-http-1.0", request(b"Transfer-Encoding: chunked", line=b"POST / HTTP/1.0",
                            body=b"0\r\n\r\n"), 400),
)
def test_transfer_encoding_without_final_chunked_gets_400(raw, expected, way):
    check(raw, expected, way)


@table(
    ("gzip-then-chunked", post(b"Transfer-Encoding: gzip, chunked", body=b"0\r\n\r\n"), 501),
    ("gzip-then-chunked-on-two-lines",
     post(b"Transfer-Encoding: gzip", b"Transfer-Encoding: chunked", body=b"0\r\n\r\n"), 501),
    ("identity", post(b"Transfer-Encoding: identity", body=b"hello"), 501),
    ("xchunked", post(b"Transfer-Encoding: xchunked", body=b"0\r\n\r\n"), 501),
    ("chunkedx", post(b"Transfer-Encoding: chunkedx", body=b"0\r\n\r\n"), 501),
    ("gzip-alone", post(b"Transfer-Encoding: gzip", body=b"hello"), 501),
    # Never fall back to Content-Length when the coding is unknown (CVE-2024-6827).
    ("unknown-with-content-length",
     post(b"Transfer-Encoding: foo", b"Content-Length: 5", body=b"hello"), 501),
)
def test_unknown_transfer_coding_gets_501(raw, expected, way):
    check(raw, expected, way)


# -- chunked bodies (RFC 9112 section 7.1) -----------------------------------


@table(
    ("several-chunks", chunked(b"5\r\nhello\r\n1\r\n \r\n5\r\nworld\r\n0\r\n\r\n"),
     {"body": b"hello world", "trailers": ()}),
    ("only-last-chunk", chunked(b"0\r\n\r\n"), {"body": b""}),
    ("upper-and-lower-hex", chunked(b"A\r\n0123456789\r\nb\r\n0123456789a\r\n0\r\n\r\n"),
     {"body": b"01234567890123456789a"}),
    ("leading-zeros-in-size", chunked(b"0005\r\nhello\r\n000\r\n\r\n"), {"body": b"hello"}),
    ("sixteen-hex-digits", chunked(b"0000000000000005\r\nhello\r\n0\r\n\r\n"), {"body": b"hello"}),
    ("chunk-data-with-crlf-inside", chunked(b"4\r\n\r\n\r\n\r\n0\r\n\r\n"), {"body": b"\r\n\r\n"}),
    ("extension-ignored", chunked(b"5;name\r\nhello\r\n0;last\r\n\r\n"), {"body": b"hello"}),
    ("extension-with-token-value", chunked(b"5;a=b;c=d\r\nhello\r\n0\r\n\r\n"), {"body": b"hello"}),
    ("extension-with-quoted-value", chunked(b'5;a="b; c\\"d"\r\nhello\r\n0\r\n\r\n'),
     {"body": b"hello"}),
    ("extension-with-bws", chunked(b"5 ; a = b\t;\tc\r\nhello\r\n0\r\n\r\n"), {"body": b"hello"}),
    ("trailers-reported", chunked(b"5\r\nhello\r\n0\r\nX-Checksum: abc\r\nX-Other:  d \r\n\r\n"),
     {"body": b"hello", "trailers": ((b"x-checksum", b"abc"), (b"x-other", b"d"))}),
    # RFC 9112 section 7.1.2: trailers never affect framing, whatever they say.
    ("content-length-in-trailers-ignored",
     chunked(b"5\r\nhello\r\n0\r\nContent-Length: 50\r\n\r\n"),
     {"body": b"hello", "content_length": None, "trailers": ((b"content-length", b"50"),)}),
    ("transfer-encoding-in-trailers-ignored",
     chunked(b"5\r\nhello\r\n0\r\nTransfer-Encoding: chunked\r\nHost: evil\r\n\r\n"),
     {"body": b"hello", "authority": None,
      "trailers": ((b"transfer-encoding", b"chunked"), (b"host", b"evil"))}),
)
def test_chunked_body_is_decoded(raw, expected, way):
    check(raw, expected, way)


@table(
    ("plus-sign", chunked(b"+5\r\nhello\r\n0\r\n\r\n"), 400),
    ("minus-sign", chunked(b"-5\r\nhello\r\n0\r\n\r\n"), 400),
    ("0x-prefix", chunked(b"0x5\r\nhello\r\n0\r\n\r\n"), 400),
    ("leading-space", chunked(b" 5\r\nhello\r\n0\r\n\r\n"), 400),
    ("leading-tab", chunked(b"\t5\r\nhello\r\n0\r\n\r\n"), 400),
    ("trailing-space-without-extension", chunked(b"5 \r\nhello\r\n0\r\n\r\n"), 400),
    ("trailing-tab-without-extension", chunked(b"5\t\r\nhello\r\n0\r\n\r\n"), 400),
    ("underscore", chunked(b"5_0\r\n" + b"x" * 80 + b"\r\n0\r\n\r\n"), 400),
    ("empty-size", chunked(b"\r\nhello\r\n0\r\n\r\n"), 400),
    ("empty-size-with-extension", chunked(b";a\r\nhello\r\n0\r\n\r\n"), 400),
    ("seventeen-hex-digits", chunked(b"00000000000000005\r\nhello\r\n0\r\n\r\n"), 400),
    ("non-hex-letter", chunked(b"5g\r\nhello\r\n0\r\n\r\n"), 400),
    ("unicode-digit", chunked("\u0665\r\nhello\r\n0\r\n\r\n".encode()), 400),
    ("vertical-tab-after-size", chunked(b"5\x0b\r\nhello\r\n0\r\n\r\n"), 400),
    ("bare-lf-after-size", chunked(b"5\nhello\r\n0\r\n\r\n"), 400),
    ("bare-lf-after-last-chunk", chunked(b"5\r\nhello\r\n0\n\r\n"), 400),
    ("bare-cr-after-size", chunked(b"5\rhello\r\n0\r\n\r\n"), 400),
    ("cr-cr-after-size", chunked(b"5\r\r\nhello\r\n0\r\n\r\n"), 400),
    ("bare-lf-in-extension", chunked(b"5;a\nb\r\nhello\r\n0\r\n\r\n"), 400),
    ("bare-cr-in-extension", chunked(b"5;a\rb\r\nhello\r\n0\r\n\r\n"), 400),
    ("bare-cr-in-quoted-extension", chunked(b'5;a="\r"\r\nhello\r\n0\r\n\r\n'), 400),
    ("extension-without-name", chunked(b"5;\r\nhello\r\n0\r\n\r\n"), 400),
    ("extension-without-value", chunked(b"5;a=\r\nhello\r\n0\r\n\r\n"), 400),
    ("extension-unclosed-quote", chunked(b'5;a="b\r\nhello\r\n0\r\n\r\n'), 400),
    ("extension-nul", chunked(b"5;a\x00\r\nhello\r\n0\r\n\r\n"), 400),
    ("data-longer-than-size", chunked(b"5\r\nhelloX\r\n0\r\n\r\n"), 400),
    ("data-shorter-than-size", chunked(b"6\r\nhello\r\n0\r\n\r\n"), 400),
    ("data-followed-by-lf", chunked(b"5\r\nhello\n0\r\n\r\n"), 400),
    ("data-followed-by-cr-cr", chunked(b"5\r\nhello\r\r0\r\n\r\n"), 400),
    ("data-followed-by-nothing-then-size", chunked(b"5\r\nhello0\r\n\r\n"), 400),
    ("bare-lf-ending-trailers", chunked(b"0\r\nX-A: b\n\n"), 400),
    ("bare-lf-inside-trailer", chunked(b"0\r\nX-A: b\nX-B: c\r\n\r\n"), 400),
    ("bare-lf-as-last-line", chunked(b"0\r\n\n"), 400),
    ("bare-cr-in-trailer", chunked(b"0\r\nX-A: b\rc\r\n\r\n"), 400),
    ("obs-fold-in-trailers", chunked(b"0\r\nX-A: b\r\n c\r\n\r\n"), 400),
    ("space-before-colon-in-trailer", chunked(b"0\r\nX-A : b\r\n\r\n"), 400),
    ("trailer-without-colon", chunked(b"0\r\nX-A\r\n\r\n"), 400),
)
def test_malformed_chunked_body_gets_400(raw, expected, way):
    check(raw, expected, way)


# -- limits (RFC 9112 section 3, RFC 9110 section 5.4, RFC 6585) -------------

SMALL = ParserLimits(max_request_line=32, max_header_bytes=64, max_header_count=3, max_body_bytes=10)
LINE_14 = b"GET / HTTP/1.1"  # 14 bytes; the target grows to reach a length


def line_of(length: int) -> bytes:
    return b"GET /" + b"a" * (length - len(LINE_14)) + b" HTTP/1.1"


def fields_of(total: int) -> list[bytes]:
    """Field lines (Host first) whose bytes with CRLF each add up to ``total``."""
    host = b"Host: h"
    return [host, b"X: " + b"v" * (total - len(host) - 2 - 3 - 2)]


@table(
    ("request-line-at-limit", request(HOST, line=line_of(32)), {"target": line_of(32)[4:-9]}),
    ("header-section-at-limit", request(*fields_of(64)), {"method": b"GET"}),
    ("header-count-at-limit", request(HOST, b"A: 1", b"B: 2"), {"method": b"GET"}),
    ("body-at-limit", post(b"Content-Length: 10", body=b"0123456789"), {"body": b"0123456789"}),
    ("chunked-body-at-limit", chunked(b"5\r\nhello\r\n5\r\nworld\r\n0\r\n\r\n"),
     {"body": b"helloworld"}),
    ("trailer-section-at-limit", chunked(b"0\r\nX: " + b"v" * 61 + b"\r\n\r\n"),
     {"body": b"", "trailers": ((b"x", b"v" * 61),)}),
)
def test_message_at_each_limit_is_accepted(raw, expected, way):
    check(raw, expected, way, SMALL)


@table(
    ("request-line-over-limit", request(HOST, line=line_of(33)), 414),
    ("header-section-over-limit", request(*fields_of(65)), 431),
    ("too-many-fields", request(HOST, b"A: 1", b"B: 2", b"C: 3"), 431),
    ("body-over-limit", post(b"Content-Length: 11", body=b"0123456789A"), 413),
    ("trailer-section-over-limit", chunked(b"0\r\nX: " + b"v" * 62 + b"\r\n\r\n"), 431),
    ("too-many-trailer-fields", chunked(b"0\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\n\r\n"), 431),
)
def test_message_over_a_limit_gets_its_status(raw, expected, way):
    check(raw, expected, way, SMALL)


@pytest.mark.parametrize("way", WAYS)
def test_request_line_within_its_limit_is_not_measured_as_header_section(way):
    limits = ParserLimits(max_request_line=100, max_header_bytes=30)
    raw = request(HOST, line=line_of(60))
    assert_outcome(parse_way(raw, way, limits), {"target": line_of(60)[4:-9]})


def test_long_request_line_gets_414_before_it_ends():
    outcome = parse([b"GET /" + b"a" * 40], SMALL)
    assert outcome.status == 414


def test_endless_header_section_gets_431_before_it_ends():
    outcome = parse([b"GET / HTTP/1.1\r\n" + b"X: y\r\n" * 20], SMALL)
    assert outcome.status == 431


def test_announced_body_over_limit_gets_413_at_head_time():
    # The body never arrives: the refusal must not wait for it.
    outcome = parse([post(b"Content-Length: 11")], SMALL)
    assert outcome.status == 413
    assert outcome.partial is None


@pytest.mark.parametrize("way", WAYS)
def test_chunked_body_over_limit_gets_413_mid_stream(way):
    raw = chunked(b"5\r\nhello\r\n6\r\nworld!\r\n0\r\n\r\n")
    outcome = parse_way(raw, way, SMALL)
    assert outcome.status == 413
    # The first chunk was within the limit and already handed on.
    assert outcome.partial is not None and outcome.partial.body == b"hello"


def test_huge_chunk_size_gets_413_without_overflow():
    outcome = parse([chunked(b"ffffffffffffffff\r\nhello")])
    assert outcome.status == 413


@pytest.mark.parametrize("way", WAYS)
@pytest.mark.parametrize("length, expected", [(4096, None), (4097, 400)])
def test_chunk_size_line_has_an_upper_bound(way, length, expected):
    extension = b";a=" + b"b" * (length - 4)
    raw = chunked(b"5" + extension + b"\r\nhello\r\n0\r\n\r\n")
    assert len(b"5" + extension) == length
    outcome = parse_way(raw, way)
    assert outcome.status == expected
    if expected is None:
        assert outcome.message.body == b"hello"


def test_endless_chunk_size_line_gets_400_before_it_ends():
    outcome = parse([chunked(b"5;a=" + b"b" * 5000)])
    assert outcome.status == 400


# -- persistence and Expect (RFC 9112 section 9.3, RFC 9110 section 10.1.1) --


@table(
    ("http-1.1-default-persistent", request(HOST), {"client_persists": True}),
    ("http-1.1-close", request(HOST, b"Connection: close"), {"client_persists": False}),
    ("http-1.1-close-any-case-in-list", request(HOST, b"Connection: Keep-Alive, CLOSE"),
     {"client_persists": False}),
    ("http-1.1-close-on-second-line", request(HOST, b"Connection: upgrade", b"Connection: close"),
     {"client_persists": False}),
    ("http-1.0-default-closes", request(line=b"GET / HTTP/1.0"), {"client_persists": False}),
    ("http-1.0-keep-alive", request(b"Connection: keep-alive", line=b"GET / HTTP/1.0"),
     {"client_persists": True}),
    ("http-1.0-keep-alive-and-close", request(b"Connection: keep-alive, close", line=b"GET / HTTP/1.0"),
     {"client_persists": False}),
    ("expect-100-continue", post(b"Expect: 100-continue", b"Content-Length: 5", body=b"hello"),
     {"expect_continue": True, "body": b"hello"}),
    ("expect-100-continue-any-case", post(b"Expect: 100-Continue", b"Content-Length: 5", body=b"hello"),
     {"expect_continue": True}),
    ("expect-something-else", post(b"Expect: 200-ok"), {"expect_continue": False}),
    ("no-expect", post(b"Content-Length: 5", body=b"hello"), {"expect_continue": False}),
    # RFC 9110 section 10.1.1: a server MUST ignore 100-continue from HTTP/1.0.
    ("expect-ignored-in-http-1.0", request(b"Expect: 100-continue", b"Content-Length: 5",
                                           line=b"POST / HTTP/1.0", body=b"hello"),
     {"expect_continue": False}),
)
def test_persistence_and_expect_are_reported(raw, expected, way):
    check(raw, expected, way)


# -- pipelining and the parser's life cycle ----------------------------------


def test_pipelined_requests_come_out_in_order():
    first = post(b"Content-Length: 5", body=b"hello")
    second = chunked(b"3\r\nabc\r\n0\r\n\r\n")
    third = request(HOST, line=b"GET /third HTTP/1.1")
    for pieces in ([first + second + third], bytewise(first + second + third)):
        outcome = parse(pieces)
        assert outcome.error is None
        assert [m.body for m in outcome.messages] == [b"hello", b"abc", b""]
        assert outcome.messages[2].request.target == b"/third"


@pytest.mark.parametrize("split", ["whole", "bytewise"])
def test_request_after_an_error_is_never_parsed(split):
    bad = post(b"Content-Length: 5", b"Transfer-Encoding: gzip", body=b"hello")
    raw = request(HOST) + bad + FOLLOWING
    outcome = parse([raw] if split == "whole" else bytewise(raw))
    assert len(outcome.messages) == 1
    assert outcome.status == 501
    with pytest.raises(ProtocolError) as again:
        outcome.parser.next_event()
    assert again.value.status == 501


def test_error_is_raised_again_on_every_later_call():
    parser = RequestParser()
    parser.feed(request(b"Host: a b"))
    with pytest.raises(ProtocolError) as first:
        parser.next_event()
    for _ in range(3):
        parser.feed(FOLLOWING)
        with pytest.raises(ProtocolError) as again:
            parser.next_event()
        assert again.value is first.value


def test_events_of_one_request_in_order_then_paused():
    parser = RequestParser()
    parser.feed(post(b"Content-Length: 5", body=b"hello"))
    assert parser.in_head
    event = parser.next_event()
    assert isinstance(event, Request)
    assert not parser.in_head and not parser.request_complete
    assert parser.next_event() == Data(b"hello")
    assert parser.next_event() == EndOfMessage()
    assert parser.request_complete
    assert parser.next_event() is PAUSED
    assert parser.next_event() is PAUSED


def test_paused_until_start_next_request_even_with_bytes_buffered():
    parser = RequestParser()
    parser.feed(request(HOST) + FOLLOWING)
    assert isinstance(parser.next_event(), Request)
    assert parser.next_event() == EndOfMessage()
    assert parser.next_event() is PAUSED
    assert parser.buffered == len(FOLLOWING)
    parser.start_next_request()
    assert parser.next_event().target == b"/following?x=1"


def test_start_next_request_before_the_end_is_a_programming_error():
    parser = RequestParser()
    parser.feed(post(b"Content-Length: 5", body=b"he"))
    parser.next_event()
    with pytest.raises(RuntimeError):
        parser.start_next_request()


def test_need_data_until_the_head_is_complete():
    parser = RequestParser()
    assert parser.next_event() is NEED_DATA
    parser.feed(b"GET / HTTP/1.1\r\nHost: a\r\n\r")
    assert parser.next_event() is NEED_DATA
    parser.feed(b"\n")
    assert isinstance(parser.next_event(), Request)


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(post(b"Content-Length: 10", body=b"hello"), id="length-body-short"),
        pytest.param(chunked(b"5\r\nhel"), id="chunk-data-short"),
        pytest.param(chunked(b"5\r\nhello\r"), id="chunk-crlf-half"),
        pytest.param(chunked(b"5\r\nhello\r\n"), id="no-last-chunk"),
        pytest.param(chunked(b"5\r\nhello\r\n0\r\n"), id="no-final-crlf"),
        pytest.param(chunked(b"5\r\nhello\r\n0\r\nX-A: b\r\n"), id="trailers-unfinished"),
    ],
)
def test_truncated_body_is_never_complete(raw):
    for pieces in ([raw], bytewise(raw)):
        outcome = parse(pieces)
        assert outcome.error is None
        assert outcome.messages == []
        assert outcome.partial is not None
        assert outcome.parser.next_event() is NEED_DATA


@pytest.mark.parametrize("max_data", [1, 2, 3, 100])
def test_max_data_bounds_each_data_event(max_data):
    for raw in (post(b"Content-Length: 11", body=b"hello world"),
                chunked(b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n")):
        outcome = parse([raw], max_data=max_data)
        assert outcome.message.body == b"hello world"
        assert outcome.message.data_events >= -(-11 // max_data)


def test_body_bytes_are_not_taken_from_the_next_request():
    parser = RequestParser()
    parser.feed(post(b"Content-Length: 5", body=b"hello") + FOLLOWING)
    parser.next_event()
    assert parser.next_event() == Data(b"hello")
    assert parser.buffered == len(FOLLOWING)


# -- purity: the protocol layer is sans-IO (STYLE.md habit 2) ----------------

IO_MODULES = {"socket", "threading", "time", "logging", "select", "selectors", "asyncio", "os",
              "h2", "hpack", "hyperframe"}


def test_protocol_package_imports_no_io_modules():
    package = Path(wsgiserver.protocol.__file__).parent
    imported = set()
    outside = set()  # modules of wsgiserver outside the protocol package
    for source in package.glob("*.py"):
        for node in ast.walk(ast.parse(source.read_text(), str(source))):
            if isinstance(node, ast.Import):
                imported.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                imported.add(node.module.split(".")[0])
            elif isinstance(node, ast.ImportFrom) and node.level > 1:
                outside.add(node.module)
    assert imported, "no imports found: the scan is broken"
    assert imported & IO_MODULES == set()
    assert {"state.py", "parser.py", "writer.py", "http2.py"} <= \
        {p.name for p in package.glob("*.py")}
    # Only the error types: no environ, WSGI, connection or server code.
    assert outside == {"errors"}


def test_importing_the_protocol_package_loads_no_io_modules():
    # A fresh interpreter: what importing the package pulls in, transitively,
    # beyond what the interpreter had already loaded at start-up. The parent
    # package is stubbed so that wsgiserver/__init__.py (the server) stays out.
    probe = (
        "import sys, types; before = set(sys.modules); "
        "parent = types.ModuleType('wsgiserver'); parent.__path__ = [sys.argv[1]]; "
        "sys.modules['wsgiserver'] = parent; import wsgiserver.protocol; "
        "print(' '.join(sorted(set(sys.modules) - before)))"
    )
    parent = Path(wsgiserver.protocol.__file__).parents[1]
    result = subprocess.run(
        [sys.executable, "-c", probe, str(parent)], capture_output=True, text=True, check=True
    )
    loaded = set(result.stdout.split())
    assert {"wsgiserver.protocol.parser", "wsgiserver.protocol.state"} <= loaded
    assert loaded & (IO_MODULES - {"os"}) == set()
    ours = {name for name in loaded if name.startswith("wsgiserver.")}
    assert {name for name in ours if not name.startswith("wsgiserver.protocol")} == {
        "wsgiserver.errors"
    }
