"""The response state both protocols drive (protocol/response.py): alone with
a recording encoder, and with HTTP/1.1's and HTTP/2's encoders side by side,
which must decide every response the same way and differ only in bytes."""

from __future__ import annotations

import pytest

from wsgiserver.errors import ResponseError
from wsgiserver.protocol.http2 import Http2Encoder
from wsgiserver.protocol.response import ResponseState
from wsgiserver.protocol.state import ConnectionState
from wsgiserver.protocol.writer import BodyFraming, ResponseHead


class Recording:
    """An encoder that says what it was asked."""

    def __init__(self) -> None:
        self.asked: list[tuple[str, int | None]] = []

    def encode_final(self, head: ResponseHead, method: bytes,
                     length: int | None) -> tuple[str, BodyFraming]:
        self.asked.append((head.status, length))
        framing = BodyFraming.LENGTH if length is not None else BodyFraming.CLOSE
        return f"final {head.code} {method.decode()} {length}", framing

    def encode_continue(self) -> str:
        return "continue"


def test_the_head_is_replaceable_until_it_is_decided_then_refused():
    state = ResponseState(Recording())
    state.begin(b"GET")
    state.set_head("500 Oops", [])
    state.set_head("200 OK", [("Content-Type", "text/plain")])
    assert not state.head_sent and state.status_code == 200
    assert state.start(5) == "final 200 GET 5"
    assert state.head_sent and state.fields == [("Content-Type", "text/plain")]
    with pytest.raises(ResponseError):
        state.set_head("404 Not Found", [])
    with pytest.raises(ResponseError):
        state.set_error(503)


def test_a_body_is_cut_at_its_length_and_a_short_one_fails_at_its_end():
    state = ResponseState(Recording())
    state.begin(b"GET")
    state.set_head("200 OK", [("Content-Length", "4")])
    state.start(None)
    assert state.frame(b"abcdef") == b"abcd" and state.framer is not None
    assert state.framer.overflowed and state.body_bytes == 4
    assert state.end() == b"" and state.done
    short = ResponseState(Recording())
    short.begin(b"GET")
    short.set_head("200 OK", [("Content-Length", "4")])
    short.start(None)
    short.frame(b"ab")
    with pytest.raises(ResponseError):
        short.end()
    assert not short.done


def test_a_whole_body_sets_the_length_and_ends_in_one_call():
    encoder = Recording()
    state = ResponseState(encoder)
    state.begin(b"GET")
    state.set_head("200 OK", [])
    assert state.whole(b"hello") == ("final 200 GET 5", b"hello")
    assert state.done and state.body_bytes == 5 and encoder.asked == [("200 OK", 5)]
    assert state.frame(b"more") == b"" and state.end() == b""  # nothing after the end


def test_the_continue_goes_once_only_when_asked_and_never_after_a_final_head():
    state = ResponseState(Recording())
    state.begin(b"POST", expects_continue=True)
    assert state.continue_head() == "continue"
    assert state.continue_head() is None
    state.begin(b"POST", expects_continue=True)
    state.set_head("413 Too Big", [])
    state.start(0)
    assert state.continue_head() is None  # withheld: the body may never come
    state.begin(b"POST")
    assert state.continue_head() is None  # not asked


def test_an_error_of_the_servers_own_replaces_a_pending_head():
    state = ResponseState(Recording())
    state.begin(b"GET")
    state.set_head("200 OK", [("X-App", "1")])
    text = state.set_error(503, "busy", retry_after=2)
    assert state.status_code == 503 and ("Retry-After", "2") in state.fields
    assert state.whole(text)[1] == text and b"busy" in text


def test_a_switch_is_a_head_and_not_a_body():
    state = ResponseState(Recording())
    state.begin(b"GET")
    state.switch()
    assert state.head_sent and state.switched and not state.done
    assert state.status_code == 101 and state.frame(b"x") == b""
    with pytest.raises(ResponseError):
        state.switch()


def test_begin_starts_over():
    state = ResponseState(Recording())
    state.begin(b"GET")
    state.set_head("200 OK", [])
    state.whole(b"x")
    state.begin(b"HEAD")
    assert not state.head_sent and not state.done and state.framer is None
    assert state.status_code == 0 and state.body_bytes == 0
    with pytest.raises(ResponseError):
        state.start(0)  # no head set for this one


def _both(method: bytes, status: str, headers: list[tuple[str, str]],
          body_length: int | None, exact: bool = True
          ) -> tuple[tuple[bytes, BodyFraming | None], tuple[list[tuple[bytes, bytes]],
                                                           BodyFraming | None]]:
    one = ConnectionState()
    one.feed(method + b" / HTTP/1.1\r\nHost: x\r\n\r\n")
    one.next_event()
    one.response.set_head(status, headers)
    head_bytes = one.response.start(body_length, exact)
    two = ResponseState(Http2Encoder(None, None))
    two.begin(method)
    two.set_head(status, headers)
    fields = two.start(body_length, exact)
    return (head_bytes, one.response.framer and one.response.framer.framing), \
        (fields, two.framer and two.framer.framing)


def _length_of(http1: bytes) -> bytes | None:
    for line in http1.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.lower() == b"content-length":
            return value.strip()
    return None


@pytest.mark.parametrize("method,status,headers,body_length,exact", [
    (b"GET", "200 OK", [], 5, True),
    (b"GET", "200 OK", [("Content-Length", "9")], None, True),
    (b"GET", "200 OK", [], None, True),
    (b"HEAD", "200 OK", [("Content-Length", "9")], None, True),
    (b"HEAD", "200 OK", [], 12, True),
    (b"GET", "204 No Content", [("Content-Length", "3")], 0, True),
    (b"GET", "304 Not Modified", [("Content-Length", "7")], None, True),
    (b"GET", "200 OK", [], 100, False),
    (b"GET", "200 OK", [("Content-Length", "10")], 100, False),
])
def test_both_protocols_decide_a_response_alike(method, status, headers, body_length, exact):
    (http1, framing1), (http2, framing2) = _both(method, status, headers, body_length, exact)
    length2 = dict(http2).get(b"content-length")
    assert _length_of(http1) == length2
    # HTTP/1.1 chunks what HTTP/2 sends to END_STREAM; otherwise the same framing.
    expected = BodyFraming.CLOSE if framing1 is BodyFraming.CHUNKED else framing1
    assert framing2 is expected
