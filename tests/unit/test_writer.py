"""The response side of the protocol layer: framing choice, heads and chunks."""

from __future__ import annotations

import pytest

from wsgiserver.protocol.writer import (
    LAST_CHUNK,
    BodyFraming,
    body_allowed,
    choose_framing,
    encode_chunk,
    encode_head,
    reason_phrase,
    status_line,
)

from .parsing import bytewise, parse


@pytest.mark.parametrize(
    "method, status, expected",
    [
        (b"GET", 200, True),
        (b"POST", 201, True),
        (b"GET", 404, True),
        (b"GET", 500, True),
        (b"GET", 302, True),
        (b"GET", 199, False),  # RFC 9110 section 15.2: 1xx has no content
        (b"GET", 100, False),
        (b"GET", 101, False),
        (b"GET", 103, False),
        (b"GET", 204, False),  # RFC 9110 section 15.3.5
        (b"GET", 304, False),  # RFC 9110 section 15.4.5
        (b"HEAD", 200, False),  # RFC 9110 section 9.3.2
        (b"HEAD", 404, False),
        (b"HEAD", 500, False),
        (b"head", 200, True),  # methods are case-sensitive: "head" is not HEAD
    ],
)
def test_body_allowed_except_for_head_1xx_204_304(method, status, expected):
    assert body_allowed(method, status) is expected


@pytest.mark.parametrize(
    "version, method, status, length, expected",
    [
        ((1, 1), b"GET", 200, 5, BodyFraming.LENGTH),
        ((1, 1), b"GET", 200, 0, BodyFraming.LENGTH),
        ((1, 0), b"GET", 200, 5, BodyFraming.LENGTH),
        ((1, 1), b"GET", 200, None, BodyFraming.CHUNKED),
        ((1, 1), b"POST", 500, None, BodyFraming.CHUNKED),
        # No Transfer-Encoding to an HTTP/1.0 peer (RFC 9112 section 6.1).
        ((1, 0), b"GET", 200, None, BodyFraming.CLOSE),
        ((1, 0), b"POST", 404, None, BodyFraming.CLOSE),
        ((1, 1), b"HEAD", 200, None, BodyFraming.NONE),
        ((1, 1), b"HEAD", 200, 5, BodyFraming.NONE),
        ((1, 0), b"HEAD", 200, None, BodyFraming.NONE),
        ((1, 1), b"GET", 204, None, BodyFraming.NONE),
        ((1, 1), b"GET", 204, 0, BodyFraming.NONE),
        ((1, 1), b"GET", 304, 5, BodyFraming.NONE),
        ((1, 1), b"GET", 100, None, BodyFraming.NONE),
        ((1, 0), b"GET", 304, None, BodyFraming.NONE),
    ],
)
def test_framing_is_length_when_known_chunked_for_1_1_close_for_1_0(
    version, method, status, length, expected
):
    assert choose_framing(version, method, status, length) is expected


@pytest.mark.parametrize(
    "status, line",
    [
        (200, b"HTTP/1.1 200 OK\r\n"),
        (404, b"HTTP/1.1 404 Not Found\r\n"),
        (431, b"HTTP/1.1 431 Request Header Fields Too Large\r\n"),
        (505, b"HTTP/1.1 505 HTTP Version Not Supported\r\n"),
        (599, b"HTTP/1.1 599 Unknown\r\n"),
    ],
)
def test_status_line_has_the_canonical_reason(status, line):
    assert status_line(status) == line
    assert reason_phrase(status) == line[13:-2].decode()


def test_encode_head_keeps_status_text_and_field_order():
    head = encode_head("201 Created Here", [("Content-Type", "text/plain"), ("X-B", "2"), ("X-A", "1")])
    assert head == (
        b"HTTP/1.1 201 Created Here\r\n"
        b"Content-Type: text/plain\r\n"
        b"X-B: 2\r\n"
        b"X-A: 1\r\n"
        b"\r\n"
    )


def test_encode_head_without_fields_is_status_line_and_empty_line():
    assert encode_head("204 No Content", []) == b"HTTP/1.1 204 No Content\r\n\r\n"


def test_encode_head_writes_values_as_latin_1():
    assert b"X-Name: caf\xe9\r\n" in encode_head("200 OK", [("X-Name", "caf\u00e9")])


def test_encode_head_repeats_a_field_given_twice():
    head = encode_head("200 OK", [("Set-Cookie", "a=1"), ("Set-Cookie", "b=2")])
    assert head.count(b"Set-Cookie: ") == 2


@pytest.mark.parametrize(
    "data, encoded",
    [
        (b"hello", b"5\r\nhello\r\n"),
        (b"x" * 10, b"a\r\n" + b"x" * 10 + b"\r\n"),
        (b"x" * 255, b"ff\r\n" + b"x" * 255 + b"\r\n"),
        (b"x" * 4096, b"1000\r\n" + b"x" * 4096 + b"\r\n"),
        (b"\r\n0\r\n\r\n", b"7\r\n\r\n0\r\n\r\n\r\n"),
    ],
)
def test_encode_chunk_is_hex_size_data_crlf(data, encoded):
    assert encode_chunk(data) == encoded


def test_encode_chunk_of_nothing_never_ends_the_body():
    # A zero-size chunk is the last-chunk (RFC 9112 section 7.1): an empty
    # write from an application must not end the response early.
    assert encode_chunk(b"") == b""


def test_last_chunk_ends_a_chunked_body_without_trailers():
    assert LAST_CHUNK == b"0\r\n\r\n"


def test_encoded_chunks_parse_back_to_the_body():
    pieces = [b"a", b"bc" * 100, b"\r\n", b"x" * 5000]
    body = b"".join(map(encode_chunk, pieces)) + LAST_CHUNK
    raw = (
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n" + body
    )
    for feed in ([raw], bytewise(raw)):
        assert parse(feed).message.body == b"".join(pieces)
