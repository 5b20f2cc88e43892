"""The real server over real sockets on 127.0.0.1: framing, keep-alive,
pipelining, bodies both ways, 100-continue, HEAD, limits, errors."""

from __future__ import annotations

import http.client
import logging
import re
import socket
import threading
import time

import pytest

from tests.conftest import connect, recv_until_closed
from tests.functional.apps import (
    echo_body_app,
    environ_app,
    hello_app,
    raising_app,
    streaming_app,
)
from tests.functional.http import read_response


def test_hello_with_content_length(live_server):
    server = live_server(hello_app)
    conn = http.client.HTTPConnection(*server.address, timeout=5)
    conn.request("GET", "/")
    response = conn.getresponse()
    assert response.status == 200
    assert response.read() == b"Hello, World!"
    assert response.getheader("Content-Length") == "13"
    assert response.getheader("Server") == "wsgiserver"
    assert response.getheader("Date")


def test_keep_alive_serves_many_requests_on_one_connection(live_server):
    server = live_server(hello_app)
    with connect(server) as sock:
        for _ in range(20):
            sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            response = read_response(sock)
            assert response.status == 200
            assert response.body == b"Hello, World!"


def test_pipelined_requests_are_answered_in_order(live_server):
    server = live_server(environ_app("PATH_INFO"))
    requests = b"".join(b"GET /%d HTTP/1.1\r\nHost: x\r\n\r\n" % n for n in range(10))
    with connect(server) as sock:
        sock.sendall(requests)
        paths = [read_response(sock).body for _ in range(10)]
    assert paths == [b"/%d" % n for n in range(10)]


def test_connection_close_from_client_closes_after_response(live_server):
    server = live_server(hello_app)
    with connect(server) as sock:
        sock.sendall(
            b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
            b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"
        )
        data = recv_until_closed(sock)
    assert data.count(b"HTTP/1.1 200 OK") == 1
    assert b"Connection: close" in data


def test_http10_closes_unless_keep_alive_requested(live_server):
    server = live_server(hello_app)
    with connect(server) as sock:
        sock.sendall(b"GET / HTTP/1.0\r\n\r\n")
        data = recv_until_closed(sock)
    assert data.startswith(b"HTTP/1.1 200 OK") and b"Connection: close" in data
    with connect(server) as sock:
        sock.sendall(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        first = read_response(sock)
        sock.sendall(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        second = read_response(sock)
    assert first.header("connection") == "keep-alive"
    assert second.status == 200


def test_streamed_response_is_chunked_for_http11(live_server):
    server = live_server(streaming_app([b"one", b"two", b"three"]))
    with connect(server) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        response = read_response(sock)
    assert response.header("transfer-encoding") == "chunked"
    assert response.raw_body == b"3\r\none\r\n3\r\ntwo\r\n5\r\nthree\r\n0\r\n\r\n"
    assert response.body == b"onetwothree"


def test_streamed_response_is_close_delimited_for_http10(live_server):
    server = live_server(streaming_app([b"one", b"two"]))
    with connect(server) as sock:
        sock.sendall(b"GET / HTTP/1.0\r\n\r\n")
        data = recv_until_closed(sock)
    head, _, body = data.partition(b"\r\n\r\n")
    assert b"Transfer-Encoding" not in head and b"Content-Length" not in head
    assert body == b"onetwo"


def test_chunked_request_body_is_dechunked(live_server):
    server = live_server(echo_body_app)
    with connect(server) as sock:
        sock.sendall(
            b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n"
        )
        response = read_response(sock)
    assert response.status == 200
    assert response.body == b"hello world"


def test_content_length_body_is_read(live_server):
    server = live_server(echo_body_app)
    conn = http.client.HTTPConnection(*server.address, timeout=5)
    payload = bytes(range(256)) * 1000
    conn.request("POST", "/", body=payload)
    response = conn.getresponse()
    assert response.read() == payload


def test_expect_100_continue_sends_one_interim_response(live_server):
    server = live_server(echo_body_app)
    with connect(server) as sock:
        sock.sendall(
            b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n"
        )
        interim = sock.recv(1024)
        assert interim == b"HTTP/1.1 100 Continue\r\n\r\n"
        sock.sendall(b"hello")
        response = read_response(sock)
    assert response.status == 200 and response.body == b"hello"


def test_expect_100_continue_is_ignored_for_http10(live_server):
    server = live_server(echo_body_app)
    with connect(server) as sock:
        sock.sendall(
            b"POST / HTTP/1.0\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\nhello"
        )
        data = recv_until_closed(sock)
    assert b"100 Continue" not in data
    assert data.startswith(b"HTTP/1.1 200 OK") and data.endswith(b"hello")


def test_100_continue_goes_out_once_the_head_passes_the_servers_checks(live_server):
    calls = []

    def app(environ, start_response):
        calls.append(environ["wsgi.input"].read())
        return hello_app(environ, start_response)

    server = live_server(app)
    with connect(server) as sock:
        sock.sendall(
            b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n"
        )
        # Before the app runs: the server receives the body itself.
        assert sock.recv(1024) == b"HTTP/1.1 100 Continue\r\n\r\n"
        assert calls == []
        sock.sendall(b"hello")
        assert read_response(sock).status == 200
    assert calls == [b"hello"]


def test_no_100_continue_for_a_body_over_the_limit(live_server):
    server = live_server(hello_app, max_body_bytes=4)
    with connect(server) as sock:
        sock.sendall(
            b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n"
        )
        data = recv_until_closed(sock)
    assert b"100 Continue" not in data
    assert data.startswith(b"HTTP/1.1 413 ") and b"Connection: close" in data


def test_head_response_has_no_body_but_keeps_length(live_server):
    server = live_server(hello_app)
    with connect(server) as sock:
        sock.sendall(b"HEAD / HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n")
        head = read_response(sock, method="HEAD")
        get = read_response(sock)
    assert head.status == 200 and head.body == b""
    assert head.header("content-length") == "13"
    assert get.body == b"Hello, World!"


@pytest.mark.parametrize("streamed", [False, True], ids=["list", "generator"])
def test_205_is_sent_with_length_0_and_no_body_whatever_the_app_returns(live_server, streamed):
    # RFC 9110 15.3.6: no content. The app's body and its length are dropped,
    # and the next response on the connection is read as itself.
    def app(environ, start_response):
        if environ["PATH_INFO"] == "/next":
            start_response("200 OK", [("Content-Length", "4")])
            return [b"next"]
        start_response("205 Reset Content", [("Content-Length", "5")])
        return (piece for piece in [b"hel", b"lo"]) if streamed else [b"hello"]

    server = live_server(app)
    with connect(server) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\nGET /next HTTP/1.1\r\nHost: x\r\n\r\n")
        reset = read_response(sock)
        following = read_response(sock)
    assert reset.status == 205
    assert reset.header("content-length") == "0" and reset.raw_body == b""
    assert (following.status, following.body) == (200, b"next")


def length_liar(declared: int, pieces: list[bytes], streamed: bool):
    def app(environ, start_response):
        if environ["PATH_INFO"] == "/next":
            start_response("200 OK", [("Content-Length", "4")])
            return [b"next"]
        start_response("200 OK", [("Content-Length", str(declared))])
        return (piece for piece in pieces) if streamed else list(pieces)
    return app


@pytest.mark.parametrize("declared, pieces", [(100, [b"hello"]), (3, [b"hello"]),
                                              (100, [b"hel", b"lo"])])
def test_a_whole_body_that_disagrees_with_its_content_length_gets_500_and_one_log_line(
        live_server, caplog, declared, pieces):
    server = live_server(length_liar(declared, pieces, streamed=False))
    with caplog.at_level(logging.ERROR, logger="wsgiserver"), connect(server) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\nGET /next HTTP/1.1\r\nHost: x\r\n\r\n")
        refused = read_response(sock)
        following = read_response(sock)
    assert refused.status == 500
    assert (following.status, following.body) == (200, b"next")
    [record] = [r for r in caplog.records if "Content-Length" in r.getMessage()]
    assert f"Content-Length: {declared}" in record.getMessage()
    assert record.exc_info is None  # one line, not a traceback of ours


def test_a_stream_that_runs_short_of_its_content_length_ends_the_connection(live_server, caplog):
    server = live_server(length_liar(100, [b"hel", b"lo"], streamed=True))
    with caplog.at_level(logging.ERROR, logger="wsgiserver"), connect(server) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\nGET /next HTTP/1.1\r\nHost: x\r\n\r\n")
        answer = recv_until_closed(sock)
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 ") and b"Content-Length: 100" in head
    assert body == b"hello"  # and then the end: never the next response as its body
    assert any("95 bytes short" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("status", ["204 No Content", "304 Not Modified"])
def test_no_body_for_204_and_304_even_if_app_returns_one(live_server, status):
    def app(environ, start_response):
        start_response(status, [("Content-Type", "text/plain")])
        return [b"should not be sent"]

    server = live_server(app)
    with connect(server) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n")
        first = read_response(sock, method="HEAD")
        second = read_response(sock, method="HEAD")
    assert first.status == second.status == int(status[:3])
    assert first.raw_body == b"" and second.raw_body == b""
    assert first.header("content-length") is None


def test_unread_body_is_drained_to_keep_the_connection(live_server):
    server = live_server(hello_app)
    with connect(server) as sock:
        sock.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n0123456789")
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert read_response(sock).status == 200
        assert read_response(sock).body == b"Hello, World!"


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        (b"GET / HTTP/1.1\r\n\r\n", 400),  # no Host
        (b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 1, 2\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n", 501),
        (b"GET / HTTP/2.0\r\nHost: x\r\n\r\n", 505),
        (b"GET / HTTP/1.1\r\nHost : x\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nHost: x\r\n folded\r\n\r\n", 400),
        (b"GARBAGE\r\n\r\n", 400),
    ],
)
def test_bad_requests_get_their_status_and_a_close(live_server, request_bytes, status):
    calls = []
    server = live_server(lambda environ, start_response: calls.append(1))
    with connect(server) as sock:
        sock.sendall(request_bytes + b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        data = recv_until_closed(sock)
    assert data.startswith(b"HTTP/1.1 %d " % status)
    assert len(re.findall(rb"HTTP/1\.1 \d{3} ", data)) == 1  # nothing after the error
    assert b"Connection: close" in data
    assert calls == []  # a refused request never reaches the app


def test_request_line_over_limit_gets_414(live_server):
    server = live_server(hello_app, max_request_line=1024)
    with connect(server) as sock:
        sock.sendall(b"GET /" + b"a" * 2000 + b" HTTP/1.1\r\nHost: x\r\n\r\n")
        assert recv_until_closed(sock).startswith(b"HTTP/1.1 414 ")


def test_header_section_over_limit_gets_431(live_server):
    server = live_server(hello_app, max_header_bytes=4096)
    with connect(server) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 5000 + b"\r\n\r\n")
        assert recv_until_closed(sock).startswith(b"HTTP/1.1 431 ")


def test_too_many_header_fields_get_431(live_server):
    server = live_server(hello_app, max_header_count=10)
    fields = b"".join(b"X-%d: y\r\n" % n for n in range(20))
    with connect(server) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n" + fields + b"\r\n")
        assert recv_until_closed(sock).startswith(b"HTTP/1.1 431 ")


def test_announced_body_over_limit_is_refused_before_reading(live_server):
    calls = []

    def app(environ, start_response):
        calls.append(1)
        return hello_app(environ, start_response)

    server = live_server(app, max_body_bytes=1000)
    with connect(server) as sock:
        sock.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1001\r\n\r\n")
        assert recv_until_closed(sock).startswith(b"HTTP/1.1 413 ")
    assert calls == []


def test_chunked_body_over_limit_gets_413(live_server):
    server = live_server(echo_body_app, max_body_bytes=1000)
    with connect(server) as sock:
        sock.sendall(
            b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
            + b"400\r\n" + b"a" * 1024 + b"\r\n0\r\n\r\n"
        )
        data = recv_until_closed(sock)
    assert data.startswith(b"HTTP/1.1 413 ")


def test_app_exception_before_headers_gives_500(live_server, caplog):
    server = live_server(raising_app)
    conn = http.client.HTTPConnection(*server.address, timeout=5)
    conn.request("GET", "/")
    response = conn.getresponse()
    assert response.status == 500
    assert response.read() == b"500 Internal Server Error\n"
    assert "RuntimeError: boom" in caplog.text


def test_app_exception_after_headers_aborts_the_connection(live_server):
    def app(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain")])
        yield b"partial"
        raise RuntimeError("late boom")

    server = live_server(app)
    with connect(server) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        data = recv_until_closed(sock)
    assert b"partial" in data
    assert not data.endswith(b"0\r\n\r\n")  # never a complete chunked body


@pytest.mark.parametrize(
    "headers",
    [
        [("X-Split", "a\r\nSet-Cookie: evil=1")],
        [("X-Split", "a\nb")],
        [("X-Bad", "caf\u0113")],
        [("Bad Name", "x")],
    ],
)
def test_invalid_response_headers_give_500_and_are_never_sent(live_server, headers):
    def app(environ, start_response):
        start_response("200 OK", headers)
        return [b"body"]

    server = live_server(app)
    conn = http.client.HTTPConnection(*server.address, timeout=5)
    conn.request("GET", "/")
    response = conn.getresponse()
    assert response.status == 500
    assert response.getheader("Set-Cookie") is None
    assert response.getheader("X-Split") is None


def test_short_content_length_stream_aborts_the_connection(live_server):
    def app(environ, start_response):
        start_response("200 OK", [("Content-Length", "100")])
        yield b"only"
        yield b" a little"

    server = live_server(app)
    with connect(server) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n")
        data = recv_until_closed(sock)
    assert data.count(b"HTTP/1.1 200") == 1


def test_client_cut_off_mid_body_never_reaches_the_app(live_server):
    seen = []

    def app(environ, start_response):
        seen.append(environ["wsgi.input"].read())
        return hello_app(environ, start_response)

    server = live_server(app)
    with connect(server) as sock:
        sock.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\nshort")
        sock.shutdown(socket.SHUT_WR)
        assert recv_until_closed(sock) == b""  # nothing to answer: the client is gone
    with connect(server) as sock:
        sock.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nwhole")
        assert read_response(sock).status == 200
    assert seen == [b"whole"]


def test_idle_keep_alive_connection_is_closed_after_timeout(live_server):
    server = live_server(hello_app, keepalive_timeout=0.5)
    with connect(server) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        read_response(sock)
        started = time.monotonic()
        assert sock.recv(10) == b""
        assert time.monotonic() - started < 4


def test_slow_head_gets_408(live_server):
    server = live_server(hello_app, header_timeout=0.5)
    with connect(server) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHo")
        assert recv_until_closed(sock).startswith(b"HTTP/1.1 408 ")


def test_environ_carries_the_directory_option(live_server, tmp_path):
    server = live_server(environ_app("wsgiserver.directory"), directory=str(tmp_path))
    conn = http.client.HTTPConnection(*server.address, timeout=5)
    conn.request("GET", "/")
    assert conn.getresponse().read() == str(tmp_path).encode()


def test_absolute_form_authority_wins_over_host(live_server):
    server = live_server(environ_app("HTTP_HOST", "PATH_INFO", "QUERY_STRING"))
    with connect(server) as sock:
        sock.sendall(b"GET http://example.test:8080/a%20b?q=1 HTTP/1.1\r\nHost: other\r\n\r\n")
        response = read_response(sock)
    assert response.body == b"example.test:8080|/a b|q=1"


def test_underscore_header_names_are_dropped(live_server):
    server = live_server(environ_app("HTTP_X_USER"))
    with connect(server) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nX_User: admin\r\n\r\n")
        dropped = read_response(sock)
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nX-User: me\r\n\r\n")
        kept = read_response(sock)
    assert dropped.body == b"None"
    assert kept.body == b"me"


def test_date_and_server_headers_can_be_turned_off(live_server):
    server = live_server(hello_app, send_date_header=False, send_server_header=False)
    conn = http.client.HTTPConnection(*server.address, timeout=5)
    conn.request("GET", "/")
    response = conn.getresponse()
    response.read()
    assert response.getheader("Date") is None
    assert response.getheader("Server") is None


def test_concurrent_clients_all_get_answers(live_server):
    server = live_server(hello_app, threads=4)
    results = []

    def client():
        conn = http.client.HTTPConnection(*server.address, timeout=10)
        for _ in range(25):
            conn.request("GET", "/")
            results.append(conn.getresponse().read())
        conn.close()

    threads = [threading.Thread(target=client) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert results == [b"Hello, World!"] * 200


def test_small_body_cut_off_never_reaches_the_app(live_server):
    calls = []

    def app(environ, start_response):
        if environ["REQUEST_METHOD"] == "POST":
            calls.append(environ["wsgi.input"].read())
        return hello_app(environ, start_response)

    server = live_server(app)
    with connect(server) as sock:
        sock.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nshort")
        sock.shutdown(socket.SHUT_WR)
        assert recv_until_closed(sock) == b""
    assert _get_ok(server)
    assert calls == []  # read ahead in the poller, found incomplete, dropped


def _get_ok(server) -> bool:
    conn = http.client.HTTPConnection(*server.address, timeout=5)
    conn.request("GET", "/")
    return conn.getresponse().status == 200
