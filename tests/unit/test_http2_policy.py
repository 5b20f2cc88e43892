"""HTTP/2 requests and responses under HTTP/1.1's policy (protocol/http2.py):
the same refusals with the same statuses, the same environ, the same rules
for what a response may carry; and the frame scanner's accounting."""

from __future__ import annotations

import struct

import pytest

from wsgiserver.errors import ProtocolError
from wsgiserver.protocol.events import Framing
from wsgiserver.protocol.http2 import (
    FrameFlood,
    FrameScanner,
    Http2Encoder,
    MalformedRequest,
    RememberedRequests,
    check_trailers,
    request_from_fields,
)
from wsgiserver.protocol.parser import RequestParser
from wsgiserver.protocol.policy import ParserLimits
from wsgiserver.protocol.response import ResponseState
from wsgiserver.protocol.writer import BodyFraming
from wsgiserver.wsgi import EnvironBuilder

LIMITS = ParserLimits()


def fields(path=b"/", method=b"GET", authority=b"example.test", scheme=b"https", extra=()):
    block = [(b":method", method), (b":scheme", scheme), (b":path", path)]
    if authority is not None:
        block.append((b":authority", authority))
    return block + list(extra)


def status_of(block, ended=True, limits=LIMITS) -> int:
    with pytest.raises(ProtocolError) as caught:
        request_from_fields(block, limits, ended)
    return caught.value.status


def test_a_request_becomes_the_event_http11_makes():
    request = request_from_fields(fields(b"/a%20b?x=1", extra=[(b"accept", b"*/*")]), LIMITS, True)
    assert request.http_version == (2, 0)
    assert (request.method, request.target, request.path, request.query) == \
        (b"GET", b"/a%20b?x=1", b"/a%20b", b"x=1")
    assert request.authority == b"example.test"
    assert request.headers == ((b"accept", b"*/*"),)
    assert request.framing is Framing.NONE and request.connection == frozenset()
    # The client's :scheme never decides wsgi.url_scheme.
    assert request.scheme is None


def test_a_body_to_come_is_framed_by_its_length_or_by_end_stream():
    with_length = request_from_fields(fields(extra=[(b"content-length", b"12")]), LIMITS, False)
    assert (with_length.framing, with_length.content_length) == (Framing.LENGTH, 12)
    without = request_from_fields(fields(), LIMITS, False)
    assert without.framing is Framing.CHUNKED and without.content_length is None


@pytest.mark.parametrize("block, status", [
    ([(b":method", b"CONNECT"), (b":authority", b"example.test:443")], 501),
    (fields(path=b"http://example.test/"), 400),  # never absolute-form in HTTP/2
    (fields(path=b"*"), 400),  # asterisk-form only for OPTIONS
    (fields(path=b"/a#frag"), 400),
    (fields(path=b"/a b"), 400),
    (fields(scheme=b"ftp"), 400),
    (fields(authority=b"user@example.test"), 400),
    (fields(authority=b"exa mple"), 400),
    (fields(authority=None), 400),  # neither :authority nor Host
    (fields(authority=None, extra=[(b"host", b"a"), (b"host", b"b")]), 400),
    (fields(extra=[(b"x(y", b"1")]), 400),  # not a token
    (fields(extra=[(b"x", b"a\x01b")]), 400),
    (fields(extra=[(b"content-length", b"1, 2")]), 400),
    (fields(extra=[(b"content-length", b"x")]), 400),
    (fields(extra=[(b"content-length", str(2 << 30).encode())]), 413),
])
def test_refused_as_http11_refuses_them(block, status):
    assert status_of(block) == status


@pytest.mark.parametrize("block", [
    fields(extra=[(b"X-Upper", b"1")]),  # RFC 9113 8.2.1: names are lower-case
    fields(extra=[(b"", b"1")]),
    fields(extra=[(b"a:b", b"1")]),
    fields(extra=[(b"a b", b"1")]),
    fields(extra=[(b"x", b"a\nb")]),
    fields(extra=[(b"x", b"a\x00b")]),
    fields(extra=[(b"x", b" leading")]),
    fields(extra=[(b"x", b"trailing\t")]),
    fields(extra=[(b"connection", b"keep-alive")]),  # 8.2.2
    fields(extra=[(b"keep-alive", b"timeout=5")]),
    fields(extra=[(b"proxy-connection", b"close")]),
    fields(extra=[(b"transfer-encoding", b"chunked")]),
    fields(extra=[(b"upgrade", b"websocket")]),
    fields(extra=[(b"te", b"gzip")]),
    fields(extra=[(b"x", b"1"), (b":path", b"/b")]),  # 8.3: pseudo after regular
    fields(extra=[(b":path", b"/b")]),  # repeated
    fields(extra=[(b":status", b"200")]),  # a response's
    fields(extra=[(b":protocol", b"websocket")]),  # extended CONNECT is not offered
    [(b":scheme", b"https"), (b":path", b"/"), (b":authority", b"a")],  # no :method
    fields(path=b""),
    [(b":method", b"GET"), (b":path", b"/"), (b":authority", b"a")],  # no :scheme
    [(b":method", b"GET"), (b":scheme", b"https"), (b":authority", b"a")],  # no :path
    fields(method=b"CONNECT"),  # CONNECT with :scheme and :path
    [(b":method", b"CONNECT")],  # CONNECT without :authority
    fields(authority=b"a.test", extra=[(b"host", b"b.test")]),  # Host differs
])
def test_a_malformed_block_is_a_stream_error_not_an_answer(block):
    with pytest.raises(MalformedRequest):
        request_from_fields(block, LIMITS, True)


def test_what_is_well_formed_passes_the_malformed_checks():
    request = request_from_fields(fields(extra=[(b"te", b"trailers"), (b"x", b""),
                                                (b"host", b"example.test")]), LIMITS, True)
    assert (b"te", b"trailers") in request.headers


@pytest.mark.parametrize("trailers, malformed", [
    ([(b"x-checksum", b"abc")], False),
    ([(b":path", b"/")], True),
    ([(b"X-Checksum", b"abc")], True),
    ([(b"transfer-encoding", b"chunked")], True),
])
def test_trailers_with_pseudo_or_malformed_fields_are_malformed(trailers, malformed):
    if malformed:
        with pytest.raises(MalformedRequest):
            check_trailers(trailers)
    else:
        check_trailers(trailers)


def http11_status(head: bytes, limits: ParserLimits) -> int:
    parser = RequestParser(limits)
    parser.feed(head)
    try:
        parser.next_event()
    except ProtocolError as error:
        return error.status
    return 200


def http2_status(block, limits: ParserLimits) -> int:
    try:
        request_from_fields(block, limits, True)
    except ProtocolError as error:
        return error.status
    return 200


@pytest.mark.parametrize("size", range(80, 100))
def test_the_header_size_limit_falls_on_the_same_byte_as_in_http11(size):
    limits = ParserLimits(max_header_bytes=120)
    value = b"v" * size
    http11 = b"GET / HTTP/1.1\r\nHost: example.test\r\nX-Big: " + value + b"\r\n\r\n"
    block = fields(extra=[(b"x-big", value)])
    assert http2_status(block, limits) == http11_status(http11, limits)


@pytest.mark.parametrize("count", [2, 3, 4])
def test_the_field_count_limit_is_http11s(count):
    limits = ParserLimits(max_header_count=3)
    http11 = b"GET / HTTP/1.1\r\nHost: x\r\n" + b"A: 1\r\n" * (count - 1) + b"\r\n"
    # Host is a field in HTTP/1.1; :authority counts as the Host line it replaces.
    for block in (fields(authority=None, extra=[(b"host", b"x")] + [(b"a", b"1")] * (count - 1)),
                  fields(authority=b"x", extra=[(b"a", b"1")] * (count - 1))):
        assert http2_status(block, limits) == http11_status(http11, limits)


@pytest.mark.parametrize("length", range(20, 34))
def test_the_request_line_limit_is_http11s(length):
    limits = ParserLimits(max_request_line=40)
    path = b"/" + b"p" * length
    http11 = b"GET " + path + b" HTTP/1.1\r\nHost: x\r\n\r\n"
    assert http2_status(fields(path=path), limits) == http11_status(http11, limits)


def test_options_asterisk_is_accepted():
    request = request_from_fields(fields(path=b"*", method=b"OPTIONS"), LIMITS, True)
    assert request.path == b"*"


def test_expect_continue_only_while_a_body_is_to_come():
    block = fields(extra=[(b"expect", b"100-continue")])
    assert request_from_fields(block, LIMITS, False).expect_continue
    assert not request_from_fields(block, LIMITS, True).expect_continue


def test_the_environ_is_the_http11_one_key_by_key():
    builder = EnvironBuilder(server_name="127.0.0.1", server_port=8443, url_scheme="https")
    head = (b"POST /p/%C3%A9?q=1&r HTTP/1.1\r\nHost: example.test\r\nCookie: a=1\r\n"
            b"Cookie: b=2\r\nX-Two: 1\r\nX-Two: 2\r\nX_Forged: no\r\n"
            b"Content-Type: text/plain\r\nContent-Length: 3\r\n\r\nabc")
    parser = RequestParser()
    parser.feed(head)
    http11 = parser.next_event()
    http2 = request_from_fields(
        fields(b"/p/%C3%A9?q=1&r", b"POST", b"example.test", extra=[
            (b"cookie", b"a=1"), (b"cookie", b"b=2"), (b"x-two", b"1"), (b"x-two", b"2"),
            (b"x_forged", b"no"), (b"content-type", b"text/plain"), (b"content-length", b"3")]),
        LIMITS, False)
    one = builder.build(http11, None, ("10.0.0.1", 5555))  # type: ignore[arg-type]
    two = builder.build(http2, None, ("10.0.0.1", 5555))  # type: ignore[arg-type]
    assert one.pop("SERVER_PROTOCOL") == "HTTP/1.1" and two.pop("SERVER_PROTOCOL") == "HTTP/2.0"
    assert one == two
    assert "HTTP_X_FORGED" not in two and two["HTTP_COOKIE"] == "a=1; b=2"


def head(status="200 OK", headers=()):
    return status, list(headers)


def response_fields(head_, method, body_length, date, server_name):
    """The HEADERS fields and the framer a stream's response state makes."""
    state = ResponseState(Http2Encoder((lambda: date) if date else None, server_name))
    state.begin(method)
    state.set_head(*head_)
    fields_ = state.start(body_length)
    return fields_, state.framer


def test_a_repeated_block_gets_the_same_request_checked_once():
    remembered = RememberedRequests(LIMITS)
    block = fields(b"/a?b=1", extra=[(b"accept", b"*/*")])
    first = remembered.request(block, True)
    assert first == request_from_fields(block, LIMITS, True)
    assert remembered.request(list(block), True) is first  # a new list, the same fields
    # END_STREAM is part of what the block means: a body to come is framed.
    with_body = remembered.request(block + [(b"content-length", b"3")], False)
    assert with_body.content_length == 3 and with_body is not first


@pytest.mark.parametrize("block", [
    fields(b"/", extra=[(b"Accept", b"x")]),  # malformed: a stream error
    fields(b"/x#y"),  # a 400 answer
])
def test_a_block_that_fails_fails_every_time(block):
    remembered = RememberedRequests(LIMITS)
    for _ in range(3):
        with pytest.raises(ProtocolError) as caught:
            remembered.request(block, True)
        with pytest.raises(ProtocolError) as expected:
            request_from_fields(block, LIMITS, True)
        assert type(caught.value) is type(expected.value)
        assert caught.value.status == expected.value.status


def test_only_a_few_small_blocks_are_remembered():
    remembered = RememberedRequests(LIMITS)
    large = fields(b"/", extra=[(b"cookie", b"c" * 4096)])
    assert remembered.request(large, True) is not remembered.request(large, True)
    many = fields(b"/", extra=[(b"x-%d" % number, b"v") for number in range(40)])
    assert remembered.request(many, True) is not remembered.request(many, True)
    blocks = [fields(b"/%d" % number) for number in range(40)]
    for block in blocks:
        remembered.request(block, True)
    kept = sum(remembered.request(block, True) is remembered.request(block, True)
               for block in blocks)
    assert kept == 16


def test_response_fields_drop_what_http2_forbids_and_lower_the_names():
    fields_, framer = response_fields(
        head(headers=[("Content-Type", "text/plain"), ("Connection", "close"),
                      ("Transfer-Encoding", "chunked"), ("Upgrade", "h2c"),
                      ("Keep-Alive", "timeout=5"), ("X-Pad", "  v  ")]),
        b"GET", 5, "Sat, 28 Nov 2026 00:00:00 GMT", "wsgiserver")
    assert fields_ == [(b":status", b"200"), (b"content-type", b"text/plain"),
                       (b"x-pad", b"v"), (b"content-length", b"5"),
                       (b"date", b"Sat, 28 Nov 2026 00:00:00 GMT"), (b"server", b"wsgiserver")]
    assert framer.framing is BodyFraming.LENGTH


def test_no_body_for_head_204_and_304_and_their_lengths_as_http11():
    _, framer = response_fields(head(headers=[("Content-Length", "10")]), b"HEAD", None, None, None)
    assert framer.framing is BodyFraming.NONE
    fields_, framer = response_fields(head("204 No Content"), b"GET", 0, None, None)
    assert framer.framing is BodyFraming.NONE and fields_ == [(b":status", b"204")]
    fields_, framer = response_fields(head("304 Not Modified", [("Content-Length", "7")]),
                                      b"GET", None, None, None)
    assert framer.framing is BodyFraming.NONE and (b"content-length", b"7") in fields_


def test_an_unknown_length_streams_to_end_stream_and_an_app_date_is_kept():
    fields_, framer = response_fields(head(headers=[("Date", "then")]), b"GET", None, "now", None)
    assert framer.framing is BodyFraming.CLOSE
    assert (b"date", b"then") in fields_ and (b"date", b"now") not in fields_
    assert not any(name == b"content-length" for name, _ in fields_)


def frame(kind: int, flags: int = 0, length: int = 0, stream: int = 0) -> bytes:
    return struct.pack(">I", length)[1:] + bytes([kind, flags]) + struct.pack(">I", stream) + \
        bytes(length)


PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


def test_the_scanner_counts_cheap_frames_however_the_bytes_are_split():
    stream = (PREFACE + frame(4, length=6) + frame(4, flags=1) + frame(6, length=8)
              + frame(6, flags=1, length=8) + frame(2, length=5, stream=1)
              + frame(0, length=0, stream=1) + frame(0, flags=1, stream=1)
              + frame(0, length=4, stream=1) + frame(8, length=4) + frame(0x20, length=3)
              + frame(3, length=4, stream=1))
    # SETTINGS, PING, PING ack, PRIORITY, empty DATA, unknown, RST_STREAM;
    # not: the SETTINGS ack, DATA with END_STREAM or bytes, WINDOW_UPDATE.
    whole = FrameScanner(header_block_limit=1000).feed(stream)
    assert whole == 7
    for size in (1, 2, 7, 9, 10):
        scanner = FrameScanner(header_block_limit=1000)
        assert sum(scanner.feed(stream[i:i + size]) for i in range(0, len(stream), size)) == 7


def test_the_scanner_bounds_a_header_block_and_sees_it_unfinished():
    scanner = FrameScanner(header_block_limit=100)
    scanner.feed(PREFACE + frame(1, length=40, stream=1))
    assert scanner.in_header_block
    scanner.feed(frame(9, length=40, stream=1))
    assert scanner.in_header_block
    with pytest.raises(FrameFlood):
        scanner.feed(frame(9, length=40, stream=1))
    finished = FrameScanner(header_block_limit=100)
    finished.feed(PREFACE + frame(1, length=40, stream=1) + frame(9, flags=4, length=40, stream=1))
    assert not finished.in_header_block


def test_the_flood_guard_lets_a_burst_through_then_a_rate():
    from wsgiserver.protocol.http2 import FloodGuard

    guard = FloodGuard(max_streams=10, now=0.0)
    guard.received(1000, 0, now=0.0)  # the whole burst
    with pytest.raises(FrameFlood):
        guard.received(1, 0, now=0.0)
    guard = FloodGuard(max_streams=10, now=0.0)
    guard.received(1000, 0, now=0.0)
    guard.received(100, 0, now=1.0)  # a second refills 100


def test_the_flood_guard_counts_only_window_updates_no_data_asked_for():
    from wsgiserver.protocol.http2 import FloodGuard

    guard = FloodGuard(max_streams=10, now=0.0)
    for _ in range(600):
        guard.data_sent()  # each DATA frame may be answered twice
    guard.received(0, 1400, now=0.0)  # 200 allowed + 1,200 asked for: free
    guard.received(1000, 0, now=0.0)  # the burst is still whole
    guard = FloodGuard(max_streams=10, now=0.0)
    with pytest.raises(FrameFlood):
        guard.received(0, 200 + 1001, now=0.0)


def test_the_flood_guard_balances_resets_against_streams_that_ended_well():
    from wsgiserver.protocol.http2 import FloodGuard

    guard = FloodGuard(max_streams=3, now=0.0)
    for _ in range(6):
        guard.reset_under_way()
    guard.completed()
    guard.reset_under_way()
    with pytest.raises(FrameFlood):
        guard.reset_under_way()
