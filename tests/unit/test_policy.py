"""The request policy both protocols share (protocol/policy.py): the parts of
a request in, a Request or the status to answer with out; and the two
protocols, each through it, agreeing."""

from __future__ import annotations

import pytest

from wsgiserver.errors import ProtocolError
from wsgiserver.protocol.events import Framing, RequestHead
from wsgiserver.protocol.http2 import request_from_fields
from wsgiserver.protocol.parser import RequestParser
from wsgiserver.protocol.policy import (
    SPECIAL,
    ParserLimits,
    build_request,
    check_field_section,
)

LIMITS = ParserLimits()
HTTP10, HTTP11, HTTP2 = (1, 0), (1, 1), (2, 0)


def request(fields=((b"host", b"example.test"),), target=b"/", method=b"GET", version=HTTP11,
            limits=LIMITS, **http2):
    """build_request with ``special`` collected from ``fields``, as both protocols do."""
    special: dict[bytes, list[bytes]] = {}
    for name, value in fields:
        if name in SPECIAL:
            special.setdefault(name, []).append(value)
    return build_request(method, target, version, tuple(fields), special, limits, **http2)


def refusal(**parts) -> ProtocolError:
    with pytest.raises(ProtocolError) as caught:
        request(**parts)
    return caught.value


def test_the_parts_become_a_request_with_its_target_split():
    made = request(fields=[(b"host", b"example.test"), (b"accept", b"*/*")], target=b"/a?b=1")
    assert (made.method, made.target, made.http_version) == (b"GET", b"/a?b=1", HTTP11)
    assert (made.path, made.query, made.scheme, made.authority) == (b"/a", b"b=1", None, None)
    assert made.headers == ((b"host", b"example.test"), (b"accept", b"*/*"))
    assert (made.framing, made.content_length) == (Framing.NONE, None)
    assert made.connection == frozenset() and not made.expect_continue


def test_an_absolute_form_target_gives_its_scheme_and_authority():
    made = request(target=b"HTTP://other.test:8080/p?q")
    assert (made.path, made.query, made.scheme, made.authority) == \
        (b"/p", b"q", b"http", b"other.test:8080")


@pytest.mark.parametrize("parts, status", [
    ({"method": b"CONNECT", "target": b"example.test:443"}, 501),
    ({"target": b"/a#fragment"}, 400),
    ({"target": b"*"}, 400),  # asterisk-form is OPTIONS's
    ({"target": b"ftp://example.test/"}, 400),
    ({"target": b"http://user@example.test/"}, 400),
    ({"target": b"http:///nothing"}, 400),
    ({"fields": ()}, 400),  # HTTP/1.1 without Host
    ({"fields": ((b"host", b"a"), (b"host", b"a"))}, 400),
    ({"fields": ((b"host", b"exa mple"),)}, 400),
    ({"fields": ((b"host", b"a"), (b"content-length", b"1, 2"))}, 400),
    ({"fields": ((b"host", b"a"), (b"content-length", b"-1"))}, 400),
    ({"fields": ((b"host", b"a"), (b"content-length", b"11"))}, 413),
    ({"fields": ((b"host", b"a"), (b"content-length", b"9" * 40))}, 413),
    ({"fields": ((b"host", b"a"), (b"transfer-encoding", b"chunked"),
                 (b"content-length", b"3"))}, 400),
    ({"fields": ((b"host", b"a"), (b"transfer-encoding", b"chunked, chunked"))}, 400),
    ({"fields": ((b"host", b"a"), (b"transfer-encoding", b"gzip"))}, 501),
    ({"fields": ((b"transfer-encoding", b"chunked"),), "version": HTTP10}, 400),
    ({"authority": b""}, 400),  # HTTP/2's :authority is the target's: never empty
    ({"authority": b"user@example.test"}, 400),
])
def test_what_is_refused_and_with_which_status(parts, status):
    parts.setdefault("limits", ParserLimits(max_body_bytes=10))
    assert refusal(**parts).status == status


def test_a_refusal_carries_the_head_for_the_access_log():
    error = refusal(fields=[(b"host", b"a"), (b"host", b"b")], target=b"/x")
    assert error.head == RequestHead(b"GET", b"/x", HTTP11, ((b"host", b"a"), (b"host", b"b")))


def test_http10_needs_no_host_but_http11_and_http2_do():
    assert request(fields=(), version=HTTP10).http_version == HTTP10
    assert "HTTP/1.1" in refusal(fields=()).detail
    assert ":authority" in refusal(fields=(), version=HTTP2, ended=True).detail


@pytest.mark.parametrize("fields, ended, framing, length", [
    # HTTP/1.1 (ended None): the fields alone frame the body.
    ((), None, Framing.NONE, None),
    (((b"content-length", b"0"),), None, Framing.NONE, 0),
    (((b"content-length", b"5"),), None, Framing.LENGTH, 5),
    (((b"transfer-encoding", b"chunked"),), None, Framing.CHUNKED, None),
    # HTTP/2: END_STREAM with the head means no body, whatever the fields say;
    # else the body runs to END_STREAM, its Content-Length only checked.
    (((b"content-length", b"5"),), True, Framing.NONE, 5),
    ((), True, Framing.NONE, None),
    ((), False, Framing.CHUNKED, None),
    (((b"content-length", b"0"),), False, Framing.LENGTH, 0),
    (((b"content-length", b"5"),), False, Framing.LENGTH, 5),
])
def test_the_framing_by_fields_or_by_the_end_of_the_stream(fields, ended, framing, length):
    made = request(fields=((b"host", b"a"),) + fields, ended=ended)
    assert (made.framing, made.content_length) == (framing, length)


@pytest.mark.parametrize("version, ended, expected", [
    (HTTP11, None, True),
    (HTTP10, None, False),  # RFC 9110 section 10.1.1: ignored from HTTP/1.0
    (HTTP2, False, True),
    (HTTP2, True, False),  # no body is to come
])
def test_expect_100_continue_only_where_a_body_may_follow(version, ended, expected):
    made = request(fields=((b"host", b"a"), (b"expect", b"100-Continue")), version=version,
                   ended=ended)
    assert made.expect_continue is expected


def test_connection_options_are_lower_cased_facts():
    made = request(fields=((b"host", b"a"), (b"connection", b"Keep-Alive, Upgrade")))
    assert made.connection == frozenset({b"keep-alive", b"upgrade"})


def test_an_authority_beside_the_target_is_the_requests():
    made = request(fields=((b"host", b"example.test"),), authority=b"example.test",
                   version=HTTP2, ended=True)
    assert made.authority == b"example.test" and made.scheme is None


@pytest.mark.parametrize("count, size, status", [
    (3, 64, None),
    (4, 64, 431),
    (3, 65, 431),
])
def test_the_field_section_limits_fall_on_their_last_byte(count, size, status):
    limits = ParserLimits(max_header_count=3, max_header_bytes=64)
    if status is None:
        check_field_section(count, size, limits)
    else:
        with pytest.raises(ProtocolError) as caught:
            check_field_section(count, size, limits)
        assert caught.value.status == status


# -- the two protocols, each through the policy ---------------------------------


def http11(fields: list[tuple[bytes, bytes]], method=b"POST", target=b"/", limits=LIMITS):
    head = method + b" " + target + b" HTTP/1.1\r\n" + b"".join(
        name + b": " + value + b"\r\n" for name, value in fields) + b"\r\n"
    parser = RequestParser(limits)
    parser.feed(head)
    try:
        return parser.next_event()
    except ProtocolError as error:
        return error.status


def http2(fields: list[tuple[bytes, bytes]], method=b"POST", target=b"/", limits=LIMITS):
    block = [(b":method", method), (b":scheme", b"https"), (b":path", target)] + fields
    try:
        return request_from_fields(block, limits, False)
    except ProtocolError as error:
        return error.status


@pytest.mark.parametrize("fields", [
    [(b"host", b"a"), (b"content-length", b"5")],
    [(b"host", b"a"), (b"content-length", b"5, 5"), (b"content-length", b"05")],
    [(b"host", b"a"), (b"content-length", b"5, 6")],
    [(b"host", b"a"), (b"content-length", b"")],
    [(b"host", b"a"), (b"content-length", b"1" * 30)],
    [(b"host", b"a"), (b"content-length", b"2000")],
    [(b"host", b"a"), (b"expect", b"100-continue")],
    [(b"host", b"a"), (b"host", b"a")],
    [(b"host", b"a b")],
    [(b"host", b"a@b")],
    [],
])
def test_both_protocols_answer_the_same_fields_alike(fields):
    limits = ParserLimits(max_body_bytes=1000)
    one, two = http11(fields, limits=limits), http2(fields, limits=limits)
    if isinstance(one, int) or isinstance(two, int):
        assert one == two
    else:
        assert (one.content_length, one.expect_continue, one.path) == \
            (two.content_length, two.expect_continue, two.path)


@pytest.mark.parametrize("method, target", [
    (b"OPTIONS", b"*"), (b"GET", b"*"), (b"GET", b"/a#b"), (b"GET", b"/a?b#c"),
])
def test_both_protocols_read_the_target_alike(method, target):
    one = http11([(b"host", b"a")], method, target)
    two = http2([(b"host", b"a")], method, target)
    if isinstance(one, int) or isinstance(two, int):
        assert one == two
    else:
        assert (one.path, one.query) == (two.path, two.query)
