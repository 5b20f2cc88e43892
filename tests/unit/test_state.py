"""The connection state machine in bytes: persistence, 100-continue, drain or
close, draining for shutdown, response framing and the server's own heads.

Each request goes in as bytes, whole or a byte at a time; what comes out
is the response bytes and the decision of what happens next."""

from __future__ import annotations

import itertools

import pytest

from wsgiserver.errors import ProtocolError, ResponseError
from wsgiserver.protocol import (
    NEED_DATA,
    PAUSED,
    After,
    ConnectionState,
    Data,
    EndOfMessage,
    Request,
)

HOST = b"Host: example.test\r\n"


def request_bytes(line: bytes = b"GET / HTTP/1.1", *fields: bytes, body: bytes = b"") -> bytes:
    return line + b"\r\n" + b"".join(field + b"\r\n" for field in fields) + b"\r\n" + body


def receive(state: ConnectionState, raw: bytes, bytewise: bool = False) -> Request:
    """Feed ``raw`` and return the request it starts with."""
    pieces = [raw[i:i + 1] for i in range(len(raw))] if bytewise else [raw]
    for piece in pieces:
        state.feed(piece)
        event = state.next_event()
        if type(event) is Request:
            return event
        assert event is NEED_DATA
    raise AssertionError("no request")


def read_body(state: ConnectionState) -> bytes:
    body = b""
    while True:
        event = state.next_event()
        if type(event) is Data:
            body += event.data
        elif type(event) is EndOfMessage:
            return body
        else:
            raise AssertionError(f"body incomplete: {event!r}")


def head_of(response: bytes) -> dict[str, str]:
    head = response.split(b"\r\n\r\n", 1)[0].decode("latin-1")
    fields = {}
    for line in head.split("\r\n")[1:]:
        name, _, value = line.partition(": ")
        fields[name.lower()] = value
    return fields


# -- persistence: the keep-alive matrix (RFC 9112 section 9.3) ---------------

VERSIONS = [b"HTTP/1.0", b"HTTP/1.1"]
CONNECTION_FIELDS = [None, b"close", b"keep-alive", b"Keep-Alive, Close", b"upgrade"]
FRAMINGS = ["none", "length", "chunked"]
RESPONSES = ["whole", "streamed"]


def matrix_request(version: bytes, connection: bytes | None, framing: str) -> bytes:
    fields = [HOST]
    if connection is not None:
        fields.append(b"Connection: " + connection + b"\r\n")
    body = b""
    if framing == "length":
        fields.append(b"Content-Length: 5\r\n")
        body = b"hello"
    elif framing == "chunked" and version == b"HTTP/1.1":
        fields.append(b"Transfer-Encoding: chunked\r\n")
        body = b"5\r\nhello\r\n0\r\n\r\n"
    return b"POST / " + version + b"\r\n" + b"".join(fields) + b"\r\n" + body


@pytest.mark.parametrize(
    "version, connection, framing, response, app_close, draining",
    list(itertools.product(VERSIONS, CONNECTION_FIELDS, FRAMINGS, RESPONSES,
                           [False, True], [False, True])),
)
def test_keep_alive_matrix(version, connection, framing, response, app_close, draining):
    state = ConnectionState(draining=lambda: draining)
    receive(state, matrix_request(version, connection, framing))
    read_body(state)
    headers = [("Content-Type", "text/plain")] + ([("Connection", "close")] if app_close else [])
    state.response.set_head("200 OK", headers)
    if response == "whole":
        sent = state.write_whole(b"body")
    else:
        sent = state.write(b"bo") + state.write(b"dy") + state.finish()
    options = {o.strip().lower() for o in (connection or b"").decode().split(",") if o.strip()}
    client_persists = "close" not in options and (version == b"HTTP/1.1" or "keep-alive" in options)
    # HTTP/1.0 cannot take chunked: a streamed body is delimited by the close.
    close_delimited = version == b"HTTP/1.0" and response == "streamed"
    persists = client_persists and not app_close and not draining and not close_delimited
    said = head_of(sent).get("connection")
    if persists:
        assert said == ("keep-alive" if version == b"HTTP/1.0" else None)
        assert state.after_response() is After.NEXT_REQUEST
    else:
        assert said == "close"
        assert state.after_response() is After.CLOSE


def test_draining_that_starts_after_the_head_keeps_its_promise_once():
    draining = [False]
    state = ConnectionState(draining=lambda: draining[0])
    twice = request_bytes(b"GET / HTTP/1.1", HOST[:-2]) * 2
    receive(state, twice)
    read_body(state)
    state.response.set_head("200 OK", [])
    assert "connection" not in head_of(state.write_whole(b"x"))
    draining[0] = True
    # The client may be sending its next request already: it gets an answer.
    assert state.after_response() is After.NEXT_REQUEST
    state.start_next_request()
    assert type(state.next_event()) is Request
    state.response.set_head("200 OK", [])
    assert head_of(state.write_whole(b"x"))["connection"] == "close"
    assert state.after_response() is After.CLOSE


def test_next_request_comes_out_after_start_next_request():
    state = ConnectionState()
    first = request_bytes(b"GET /1 HTTP/1.1", HOST[:-2])
    second = request_bytes(b"GET /2 HTTP/1.1", HOST[:-2])
    request = receive(state, first + second)
    assert request.target == b"/1"
    assert read_body(state) == b""
    assert state.next_event() is PAUSED
    state.response.set_head("204 No Content", [])
    state.finish()
    assert state.after_response() is After.NEXT_REQUEST
    state.start_next_request()
    assert state.next_event().target == b"/2"
    assert not state.response.head_sent and state.response.status_code == 0


# -- 100-continue (RFC 9110 section 10.1.1) ----------------------------------

CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"


def expect_request(version: bytes = b"HTTP/1.1", length: int = 5) -> bytes:
    return request_bytes(b"POST / " + version, HOST[:-2], b"Expect: 100-continue",
                         b"Content-Length: %d" % length)


@pytest.mark.parametrize("bytewise", [False, True])
def test_exactly_one_100_continue_before_the_body(bytewise):
    state = ConnectionState()
    receive(state, expect_request(), bytewise)
    assert state.continue_head() == CONTINUE
    assert state.continue_head() == b""
    state.feed(b"hello")
    assert read_body(state) == b"hello"
    state.response.set_head("200 OK", [])
    assert state.write_whole(b"ok").startswith(b"HTTP/1.1 200 OK\r\n")
    assert state.after_response() is After.NEXT_REQUEST


def test_no_100_continue_once_a_final_response_started():
    state = ConnectionState()
    receive(state, expect_request())
    state.response.set_head("413 Content Too Large", [])
    sent = state.write_whole(b"too big")
    assert state.continue_head() == b""
    # The client may never send the body: say so, and do not wait for it.
    assert head_of(sent)["connection"] == "close"
    assert state.after_response() is After.LINGER


@pytest.mark.parametrize("raw", [
    expect_request(b"HTTP/1.0"),  # MUST NOT send a 1xx to an HTTP/1.0 client
    expect_request(length=0),  # no body to wait for
    request_bytes(b"POST / HTTP/1.1", HOST[:-2], b"Content-Length: 5"),  # not asked
])
def test_no_100_continue_where_it_is_not_wanted(raw):
    state = ConnectionState()
    receive(state, raw)
    assert state.continue_head() == b""


# -- an unread body ---------------------------------------------------------------


def test_a_body_not_read_to_its_end_ends_the_connection():
    # The server reads every body before the app runs; should a body still be
    # pending, the connection's framing is unknown: it is not reused.
    state = ConnectionState()
    receive(state, request_bytes(b"POST / HTTP/1.1", HOST[:-2], b"Content-Length: 5", body=b"hel"))
    state.response.set_head("200 OK", [])
    assert head_of(state.write_whole(b"x"))["connection"] == "close"
    assert state.after_response() is After.LINGER


def test_failed_input_ends_the_connection_after_the_response():
    state = ConnectionState()
    receive(state, request_bytes(b"POST / HTTP/1.1", HOST[:-2], b"Content-Length: 5", body=b"he"))
    state.input_failed()
    sent = state.error_response(408, "request body not received in time", close=True)
    assert sent.startswith(b"HTTP/1.1 408 Request Timeout\r\n")
    assert head_of(sent)["connection"] == "close"
    assert state.after_response() is After.LINGER


# -- the server's own responses --------------------------------------------------


@pytest.mark.parametrize("raw, status", [
    (b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400),
    (b"GET / HTTP/2.0\r\n\r\n", 505),
    (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
])
def test_protocol_error_answer_closes_and_lingers(raw, status):
    state = ConnectionState(date=lambda: "Sun, 06 Nov 1994 08:49:37 GMT", server_name="test")
    state.feed(raw)
    with pytest.raises(ProtocolError) as caught:
        state.next_event()
    assert caught.value.status == status
    sent = state.error_response(status, caught.value.detail, close=True)
    head, body = sent.split(b"\r\n\r\n", 1)
    assert head.startswith(b"HTTP/1.1 %d " % status)
    fields = head_of(sent)
    assert fields["connection"] == "close" and fields["content-length"] == str(len(body))
    assert fields["content-type"] == "text/plain; charset=utf-8"
    assert fields["date"] == "Sun, 06 Nov 1994 08:49:37 GMT" and fields["server"] == "test"
    assert body.startswith(b"%d " % status) and caught.value.detail.encode() in body
    assert state.after_response() is After.LINGER


def test_error_response_to_head_has_a_length_and_no_body():
    state = ConnectionState()
    receive(state, request_bytes(b"HEAD / HTTP/1.1", HOST[:-2]))
    sent = state.error_response(500)
    head, body = sent.split(b"\r\n\r\n", 1)
    assert body == b"" and b"Content-Length: 26" in head  # "500 Internal Server Error\n"


def test_error_response_replaces_a_head_not_yet_sent():
    state = ConnectionState()
    receive(state, request_bytes(b"GET / HTTP/1.1", HOST[:-2]))
    state.response.set_head("200 OK", [("X-App", "1")])
    sent = state.error_response(500)
    assert sent.startswith(b"HTTP/1.1 500 Internal Server Error\r\n") and b"X-App" not in sent
    assert state.after_response() is After.NEXT_REQUEST  # an app error keeps the connection


def test_no_error_response_once_the_head_went_out():
    state = ConnectionState()
    receive(state, request_bytes(b"GET / HTTP/1.1", HOST[:-2]))
    state.response.set_head("200 OK", [])
    state.write(b"partial")
    with pytest.raises(ResponseError):
        state.error_response(500)
    assert state.after_response() is After.ABORT


def test_error_before_any_request_is_http11_with_close():
    state = ConnectionState()
    sent = state.error_response(408, "request not received in time", close=True)
    assert sent.startswith(b"HTTP/1.1 408 Request Timeout\r\n")
    assert head_of(sent)["connection"] == "close"


def test_switching_protocols_hands_over_the_bytes_that_follow():
    state = ConnectionState()
    upgrade = request_bytes(b"GET /ws HTTP/1.1", HOST[:-2], b"Connection: Upgrade",
                            b"Upgrade: websocket")
    receive(state, upgrade + b"\x81\x80frame")
    sent = state.switch_protocols([("Upgrade", "websocket"), ("Connection", "Upgrade")])
    assert sent == (b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                    b"Connection: Upgrade\r\n\r\n")
    assert state.take_buffered() == b"\x81\x80frame"
    assert state.response.status_code == 101 and state.after_response() is After.SWITCHED


# -- response framing (RFC 9112 section 6, RFC 9110 sections 6.6, 8.6) --------------


def responding(method=b"GET", version=b"HTTP/1.1", **options) -> ConnectionState:
    state = ConnectionState(**options)
    receive(state, request_bytes(method + b" / " + version, HOST[:-2]))
    return state


def test_hop_by_hop_fields_from_the_app_are_dropped_and_close_is_honoured():
    state = responding()
    state.response.set_head("200 OK", [("Connection", "close"), ("Transfer-Encoding", "chunked"),
                              ("Keep-Alive", "timeout=5"), ("X-Kept", "1")])
    head = state.write_whole(b"body").split(b"\r\n\r\n")[0]
    assert b"Transfer-Encoding" not in head and b"Keep-Alive" not in head
    assert b"X-Kept: 1" in head and b"Connection: close" in head
    assert state.after_response() is After.CLOSE


def test_body_longer_than_content_length_is_cut_and_the_connection_closed():
    state = responding()
    state.response.set_head("200 OK", [("Content-Length", "3")])
    sent = state.write(b"abcdef") + state.finish()
    assert sent.endswith(b"\r\n\r\nabc")
    assert state.after_response() is After.CLOSE


def test_body_shorter_than_content_length_is_an_error_and_aborts():
    state = responding()
    state.response.set_head("200 OK", [("Content-Length", "10")])
    state.write(b"abc")
    with pytest.raises(ResponseError):
        state.finish()
    assert state.after_response() is After.ABORT


@pytest.mark.parametrize("value", ["-1", "1e3", "ten", "\u0661", "5, 6", "1" * 19])
def test_invalid_content_length_from_the_app_is_an_error(value):
    with pytest.raises(ResponseError):
        responding().response.set_head("200 OK", [("Content-Length", value)])


def test_http10_without_length_is_close_delimited():
    state = responding(version=b"HTTP/1.0")
    state.response.set_head("200 OK", [])
    sent = state.write(b"abc") + state.finish()
    assert b"Transfer-Encoding" not in sent and sent.endswith(b"\r\n\r\nabc")
    assert state.after_response() is After.CLOSE


def test_streamed_http11_body_is_chunked():
    state = responding()
    state.response.set_head("200 OK", [])
    sent = state.write(b"abc") + state.write(b"") + state.write(b"de") + state.finish()
    assert sent.endswith(b"Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n")


@pytest.mark.parametrize("method, status, expect_length, expect_body", [
    (b"HEAD", "200 OK", "5", b""),  # HEAD keeps the GET's length (RFC 9110 9.3.2)
    (b"GET", "304 Not Modified", None, b""),  # a 304 body is no length at all
    (b"GET", "204 No Content", None, b""),
    (b"GET", "205 Reset Content", "0", b""),  # RFC 9110 15.3.6: no content, length 0
    (b"HEAD", "205 Reset Content", "0", b""),
    (b"GET", "200 OK", "5", b"hello"),
])
def test_no_body_for_head_204_205_304(method, status, expect_length, expect_body):
    state = responding(method)
    state.response.set_head(status, [])
    sent = state.write_whole(b"hello")
    assert head_of(sent).get("content-length") == expect_length
    assert sent.split(b"\r\n\r\n", 1)[1] == expect_body
    assert state.after_response() is After.NEXT_REQUEST


@pytest.mark.parametrize("send", ["whole", "streamed", "pieces"])
def test_205_with_a_body_and_its_length_from_the_app_sends_length_0_and_no_body(send):
    state = responding()
    state.response.set_head("205 Reset Content", [("Content-Length", "5")])
    if send == "whole":
        sent = state.write_whole(b"hello")
    elif send == "streamed":
        sent = state.write(b"hel") + state.write(b"lo") + state.finish()
    else:
        sent = b"".join(state.write_pieces([b"hel", b"lo"]))
    head, body = sent.split(b"\r\n\r\n", 1)
    assert head_of(sent).get("content-length") == "0"
    assert body == b""
    assert state.after_response() is After.NEXT_REQUEST  # the framing holds


@pytest.mark.parametrize("declared, body", [("100", [b"hello"]), ("3", [b"hello"]),
                                            ("10", [b"hel", b"lo"]), ("1", [])])
def test_a_whole_body_that_disagrees_with_its_content_length_is_refused_before_the_head(
        declared, body):
    state = responding()
    state.response.set_head("200 OK", [("Content-Length", declared)])
    with pytest.raises(ResponseError, match="Content-Length"):
        if len(body) > 1:
            state.write_pieces(body)
        else:
            state.write_whole(b"".join(body))
    assert not state.response.head_sent  # so the server can still answer 500 instead
    answer = state.error_response(500)
    assert answer.startswith(b"HTTP/1.1 500 ")


@pytest.mark.parametrize("method, status", [(b"HEAD", "200 OK"), (b"GET", "304 Not Modified")])
def test_a_declared_length_without_a_body_stands_where_no_body_is_sent(method, status):
    state = responding(method)
    state.response.set_head(status, [("Content-Length", "100")])
    assert head_of(state.write_whole(b"")).get("content-length") == "100"


def test_a_file_may_send_only_the_part_its_content_length_announces():
    state = responding()
    state.response.set_head("200 OK", [("Content-Length", "10")])
    assert head_of(state.file_head(1000)).get("content-length") == "10"
    assert state.raw_count(1000) == 10


def test_pieces_of_a_body_made_in_full_get_a_content_length_not_chunks():
    state = responding()
    state.response.set_head("200 OK", [])
    sent = b"".join(state.write_pieces([b"abc", b"de"]))
    assert head_of(sent).get("content-length") == "5"
    assert sent.endswith(b"\r\n\r\nabcde")


def test_empty_head_body_says_nothing_of_the_length():
    state = responding(b"HEAD")
    state.response.set_head("200 OK", [])
    assert "content-length" not in head_of(state.write_whole(b""))


def test_date_and_server_are_added_unless_the_app_set_them():
    state = responding(date=lambda: "D", server_name="S")
    state.response.set_head("200 OK", [("Server", "app")])
    fields = head_of(state.write_whole(b""))
    assert fields["date"] == "D" and fields["server"] == "app"


def test_upgrade_field_is_listed_in_connection():
    state = responding()
    state.response.set_head("426 Upgrade Required", [("Upgrade", "websocket")])
    assert b"Connection: upgrade\r\n" in state.write_whole(b"")
    state = responding(version=b"HTTP/1.0")
    state.response.set_head("426 Upgrade Required", [("Upgrade", "websocket")])
    assert b"Connection: close, upgrade\r\n" in state.write_whole(b"")


def test_head_cannot_change_once_sent():
    state = responding()
    state.response.set_head("200 OK", [])
    state.write(b"x")
    with pytest.raises(ResponseError):
        state.response.set_head("500 Internal Server Error", [])


def test_file_body_goes_out_raw_with_its_length():
    state = responding()
    state.response.set_head("200 OK", [])
    head = state.file_head(1000)
    assert head_of(head)["content-length"] == "1000"
    assert state.raw_count(1000) == 1000
    state.sent_raw(1000)
    assert state.finish() == b"" and state.response.body_bytes == 1000
    assert state.after_response() is After.NEXT_REQUEST


def test_file_body_under_an_apps_shorter_length_is_cut():
    state = responding()
    state.response.set_head("200 OK", [("Content-Length", "100")])
    state.file_head(1000)
    assert state.raw_count(1000) == 100
