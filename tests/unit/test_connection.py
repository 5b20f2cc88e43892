"""The connection over an in-memory transport and a manual clock: the order of
things, bodies received before the app runs, responses finished as the client
reads, timeouts without sleeping, and draining for shutdown."""

from __future__ import annotations

import io
import re

import pytest

from wsgiserver.accesslog import AccessLog
from wsgiserver.drive import DRAIN_QUIET_SECONDS

from .fakes import Client

GET = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"


def hello(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"hello"]


def echo(environ, start_response):
    body = environ["wsgi.input"].read()
    start_response("200 OK", [("Content-Type", "application/octet-stream")])
    return [body]


def recording(app, calls: list):
    def wrapped(environ, start_response):
        calls.append(environ["wsgi.input"].read())
        environ["wsgi.input"].seek(0)
        return app(environ, start_response)

    return wrapped


def status_of(response: bytes) -> int:
    return int(response.split(b" ", 2)[1])


def statuses(response: bytes) -> list[int]:
    return [int(status) for status in re.findall(rb"HTTP/1\.1 (\d{3}) ", response)]


# -- keep-alive and pipelining --------------------------------------------------


def test_requests_on_one_connection_are_answered_in_order():
    client = Client(hello)
    assert client.send(GET).endswith(b"\r\n\r\nhello")
    assert statuses(client.send(GET + GET + GET)) == [200, 200, 200]
    assert not client.closed


def test_connection_close_from_the_client_closes_after_the_response():
    client = Client(hello)
    response = client.send(b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
    assert b"Connection: close" in response and client.closed


def test_bytes_after_a_close_request_are_never_served():
    client = Client(hello)
    closing = b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"
    assert statuses(client.send(closing + GET)) == [200]


# -- bodies: received whole before the app runs ------------------------------------


@pytest.mark.parametrize("framing", ["length", "chunked"])
def test_the_app_runs_once_the_whole_body_has_arrived(framing):
    calls: list = []
    client = Client(recording(echo, calls))
    if framing == "length":
        head, pieces = b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 9\r\n\r\n", [b"abc", b"def",
                                                                                  b"ghi"]
    else:
        head = b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
        pieces = [b"3\r\nabc\r\n", b"6\r\ndefghi\r\n", b"0\r\n\r\n"]
    assert client.send(head) == b""
    for piece in pieces[:-1]:
        assert client.send(piece) == b"" and calls == []
    assert client.send(pieces[-1]).endswith(b"abcdefghi")
    assert calls == [b"abcdefghi"]


def test_a_body_past_the_memory_threshold_is_spooled_and_read_whole(tmp_path):
    calls: list = []
    client = Client(recording(echo, calls), body_memory_bytes=1024, spool_dir=str(tmp_path))
    body = bytes(range(256)) * 40  # 10 KiB
    head = b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: %d\r\n\r\n" % len(body)
    client.send(head + body[:5000])
    assert client.connection._body.spooled  # the rest will go to the spool file too
    assert client.send(body[5000:]).endswith(body)
    assert calls == [body]


def test_an_unread_body_costs_the_connection_nothing():
    client = Client(hello)
    post = b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
    assert statuses(client.send(post + GET)) == [200, 200]
    assert not client.closed


def test_a_body_over_the_limit_gets_413_before_the_app_runs():
    from wsgiserver.protocol import ParserLimits

    calls: list = []
    client = Client(recording(hello, calls), limits=ParserLimits(max_body_bytes=10))
    head = b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
    response = client.send(head + b"8\r\n12345678\r\n8\r\n12345678\r\n")
    assert status_of(response) == 413 and b"Connection: close" in response
    assert calls == []


def test_client_vanishing_mid_body_never_reaches_the_app():
    calls: list = []
    client = Client(recording(hello, calls))
    client.send(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 100000\r\n\r\nabc")
    client.transport.hang_up()
    assert client.events() == b"" and client.closed
    assert calls == []


# -- timeouts, on the injected clock ------------------------------------------


def test_idle_keep_alive_connection_closes_quietly_after_its_timeout():
    client = Client(hello, keepalive_timeout=15.0)
    client.send(GET)
    assert client.wait(14.9) == b"" and not client.closed
    assert client.wait(0.2) == b"" and client.closed


def test_head_slower_than_the_header_timeout_gets_408():
    client = Client(hello, header_timeout=10.0)
    assert client.send(b"GET / HTTP/1.1\r\nHo") == b""
    assert client.wait(5) == b""
    client.send(b"st: a\r\n")  # progress does not extend the head's deadline
    response = client.wait(5.1)
    assert status_of(response) == 408 and b"Connection: close" in response
    assert client.closed


@pytest.mark.parametrize("framing", ["length", "chunked"])
def test_a_body_that_stops_arriving_gets_408_and_the_app_never_runs(framing):
    calls: list = []
    client = Client(recording(hello, calls), body_timeout=30.0)
    if framing == "length":
        client.send(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nabc")
    else:
        client.send(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n")
    assert client.wait(29.9) == b""
    response = client.wait(0.2)
    assert status_of(response) == 408 and calls == []


def test_body_timeout_bounds_the_whole_body_with_a_minimum_rate():
    """A byte every 20 s never lets 30 s pass without one, yet the body is
    refused once it falls behind 30 s plus a second per KiB received."""
    client = Client(hello, body_timeout=30.0, min_body_rate=1024)
    client.send(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\n")
    assert client.wait(20) == b""
    client.send(b"x")
    assert client.wait(9.9) == b"" and not client.closed
    response = client.wait(0.2)  # 30.1 s in, 10 s after the last byte
    assert status_of(response) == 408 and client.closed


def test_a_body_that_trickles_after_a_fast_start_is_cut_by_the_sliding_window():
    # Nearly all of it at once, then a byte every 29 s: the old allowance
    # (30 s plus a second per KiB received) gave this about 12 days.
    calls: list = []
    client = Client(recording(hello, calls), body_timeout=30.0, min_body_rate=1024,
                    body_memory_bytes=1 << 20)
    size = 1 << 20
    client.send(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: %d\r\n\r\n" % size
                + b"z" * (size - 100))
    answers = b""
    for _ in range(10):
        answers += client.wait(29)
        if client.closed:
            break
        client.send(b"z")
    assert status_of(answers) == 408 and client.closed
    assert client.clock.monotonic() - 1000.0 < 90  # within a window or two, not days
    assert calls == []


def test_a_body_may_not_take_more_than_max_body_seconds():
    client = Client(hello, body_timeout=30.0, min_body_rate=0, max_body_seconds=60.0)
    client.send(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\n")
    answers = b""
    for _ in range(5):
        answers += client.wait(20)
        if client.closed:
            break
        client.send(b"x")
    assert status_of(answers) == 408 and client.closed


def test_a_fast_large_body_may_take_longer_than_the_body_timeout():
    calls: list = []
    client = Client(recording(hello, calls), body_timeout=30.0, min_body_rate=1024,
                    body_memory_bytes=1 << 20)
    size = 100 * 1024
    client.send(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: %d\r\n\r\n" % size)
    for _ in range(10):  # 10 KiB every 9 s: 90 s in all, a little over 1 KiB/s
        assert client.wait(8.9) == b""
        client.send(b"z" * (size // 10))
    assert calls == [b"z" * size]


# -- responses: finished as the client reads --------------------------------------


def big(environ, start_response):
    start_response("200 OK", [("Content-Length", "200000")])
    return [b"x" * 100_000, b"y" * 100_000]


def test_a_finished_response_is_left_to_the_poller_and_sent_as_the_client_reads():
    client = Client(big, reads=50_000)
    first = client.send(GET)
    assert len(first) == 50_000 and client.exchanges == 1  # the app is done with it
    rest = client.read(10 ** 6)
    assert (first + rest).endswith(b"x" * 100_000 + b"y" * 100_000)
    assert statuses(client.send(GET)) == [200]  # and the connection goes on


def test_client_that_reads_nothing_is_cut_off_after_the_write_timeout():
    client = Client(big, reads=50_000, write_timeout=30.0)
    client.send(GET)
    assert not client.closed
    client.wait(29.9)
    assert not client.closed
    client.wait(0.2)
    assert client.closed and client.transport.aborted  # reset: no short body passes for whole


def test_a_producing_app_waits_for_a_slow_client_then_is_cut_off():
    closed = []

    def stream(environ, start_response):
        start_response("200 OK", [])

        def pieces():
            try:
                for _ in range(100):
                    yield b"z" * 100_000
            finally:
                closed.append(True)

        return pieces()

    client = Client(stream, reads=0, write_timeout=30.0, output_high_water=256 * 1024)
    client.send(GET)
    # The app's thread waited for the client (backpressure), on the clock,
    # and gave up after the write timeout: at most ~the bound was made.
    assert closed == [True] and client.closed and client.transport.aborted
    assert client.clock.monotonic() == pytest.approx(1030.0)


def test_file_wrapper_goes_out_with_sendfile(tmp_path):
    path = tmp_path / "data"
    path.write_bytes(b"0123456789" * 1000)

    def app(environ, start_response):
        start_response("200 OK", [])
        handle = open(path, "rb")
        handle.seek(10)
        return environ["wsgi.file_wrapper"](handle)

    for can_sendfile in (True, False):  # plain socket, and TLS (read and send)
        response = Client(app, can_sendfile=can_sendfile).send(GET)
        head, body = response.split(b"\r\n\r\n", 1)
        assert b"Content-Length: 9990" in head and body == (b"0123456789" * 1000)[10:]


def test_the_rest_of_a_file_is_sent_after_the_app_closed_it(tmp_path):
    path = tmp_path / "data"
    path.write_bytes(bytes(range(256)) * 1000)
    handles = []

    def app(environ, start_response):
        start_response("200 OK", [])
        handles.append(open(path, "rb"))
        return environ["wsgi.file_wrapper"](handles[-1])

    client = Client(app, reads=1000)
    first = client.send(GET)
    assert handles[0].closed  # the server called close() when the app was done
    rest = client.read()
    assert (first + rest).split(b"\r\n\r\n", 1)[1] == path.read_bytes()


# -- 100-continue -----------------------------------------------------------------


EXPECT = b"POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n"


def test_100_continue_goes_out_once_the_head_passed_the_checks():
    calls: list = []
    client = Client(recording(echo, calls))
    assert client.send(EXPECT) == b"HTTP/1.1 100 Continue\r\n\r\n"
    assert calls == []
    response = client.send(b"hello")
    assert b"100 Continue" not in response and response.endswith(b"hello")


def test_no_100_continue_for_a_body_over_the_limit():
    from wsgiserver.protocol import ParserLimits

    client = Client(hello, limits=ParserLimits(max_body_bytes=4))
    response = client.send(EXPECT)
    assert b"100 Continue" not in response and status_of(response) == 413


# -- errors ----------------------------------------------------------------------


def test_malformed_request_gets_400_then_lingers_and_closes():
    client = Client(hello)
    response = client.send(b"GET / HTTP/1.1\r\nHost: a\r\nBad Name: x\r\n\r\n")
    assert status_of(response) == 400 and b"Connection: close" in response
    assert client.transport.write_shut and not client.closed
    assert client.send(GET) == b""  # discarded: the framing is lost
    client.wait(2.1)
    assert client.closed


LOG_FORMAT = "{remote_addr} \"{request_line}\" {status} {header:User-Agent} {query}"
UA = b"User-Agent: ua/1\r\n"


def logged(raw: bytes, wait: float = 0.0, **settings) -> str:
    """The access log line of a request refused by the server itself."""
    stream = io.StringIO()
    client = Client(hello, access_log=AccessLog(stream, LOG_FORMAT), **settings)
    client.send(raw)
    if wait:
        client.wait(wait)
    return stream.getvalue()


@pytest.mark.parametrize("raw, status", [
    (b"GET / HTTP/1.1\r\nHost: a\r\nBad Name: x\r\n\r\n", 400),  # the fields did not parse
    (b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\n\r\n", 414),
    (b"GET / HTTP/1.1\r\n" + b"X-A: b\r\n" * 200 + b"\r\n", 431),
    (b"GET / HTTP/1.1\r\nHost: a\r\nX: \x00\r\n\r\n", 400),
], ids=["bad-field", "414", "431", "nul"])
def test_a_request_refused_before_its_head_was_read_is_logged_without_one(raw, status):
    assert logged(raw) == f'192.0.2.7 "- - -" {status} - -\n'


@pytest.mark.parametrize("raw, status", [
    (b"POST /upload?x=1 HTTP/1.1\r\nHost: a\r\n" + UA + b"Content-Length: 100\r\n\r\n", 413),
    (b"POST /upload?x=1 HTTP/1.1\r\nHost: a\r\nHost: b\r\n" + UA + b"\r\n", 400),
    (b"POST /upload?x=1 HTTP/1.1\r\nHost: a\r\n" + UA
     + b"Content-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
    (b"POST /upload?x=1 HTTP/1.1\r\nHost: a\r\n" + UA
     + b"Transfer-Encoding: chunked\r\n\r\nzz\r\n", 400),  # a bad chunk
    (b"POST /upload?x=1 HTTP/1.1\r\nHost: a\r\n" + UA
     + b"Transfer-Encoding: chunked\r\n\r\n20\r\n" + b"x" * 32 + b"\r\n", 413),
], ids=["413-length", "400-host", "400-framing", "400-chunk", "413-chunked"])
def test_a_request_refused_after_its_head_was_read_is_logged_by_its_request_line(raw, status):
    from wsgiserver.protocol import ParserLimits

    line = logged(raw, limits=ParserLimits(max_body_bytes=10))
    assert line == f'192.0.2.7 "POST /upload?x=1 HTTP/1.1" {status} ua/1 x=1\n'


def test_a_body_that_stops_arriving_is_logged_408_by_its_request_line():
    line = logged(b"POST /u HTTP/1.1\r\nHost: a\r\n" + UA + b"Content-Length: 10\r\n\r\nabc",
                  wait=31, body_timeout=30.0)
    assert line == '192.0.2.7 "POST /u HTTP/1.1" 408 ua/1 -\n'


def test_a_head_that_stops_arriving_is_logged_408_without_a_request_line():
    line = logged(b"GET / HTTP/1.1\r\nHo", wait=11, header_timeout=10.0)
    assert line == '192.0.2.7 "- - -" 408 - -\n'


def test_a_cut_exchange_answers_503_when_no_head_went_out():
    holder: list = []

    def waiting(environ, start_response):
        holder[0].connection.cut()  # what the watchdog does to a long request over the cap
        start_response("200 OK", [])
        return [b"too late"]

    client = Client(waiting)
    holder.append(client)
    response = client.send(GET)
    assert status_of(response) == 503 and b"too late" not in response
    assert b"Connection: close" in response


# -- draining for shutdown --------------------------------------------------------------


def test_request_that_arrives_while_draining_is_answered_with_close():
    draining = [False]
    client = Client(hello, draining=lambda: draining[0])
    assert b"Connection" not in client.send(GET)
    draining[0] = True
    response = client.send(GET)
    assert status_of(response) == 200 and b"Connection: close" in response and client.closed


def test_idle_connection_closes_once_quiet_while_draining():
    draining = [False]
    client = Client(hello, draining=lambda: draining[0])
    client.send(GET)
    client.clock.advance(0.1)
    draining[0] = True
    client.connection.begin_draining()
    assert client.connection.deadline == pytest.approx(1000.0 + DRAIN_QUIET_SECONDS)
    assert client.wait(DRAIN_QUIET_SECONDS) == b"" and client.closed


def test_half_received_request_keeps_its_deadline_while_draining():
    draining = [False]
    client = Client(hello, draining=lambda: draining[0], header_timeout=10.0)
    client.send(b"GET / HTTP/1.1\r\n")
    draining[0] = True
    client.connection.begin_draining()
    assert client.connection.deadline == pytest.approx(1010.0)
    response = client.send(b"Host: a\r\n\r\n")
    assert status_of(response) == 200 and b"Connection: close" in response


def test_in_flight_request_finishes_with_close_when_draining_starts_during_it():
    draining = [False]

    def slow(environ, start_response):
        draining[0] = True  # shutdown begins while the app runs
        return hello(environ, start_response)

    client = Client(slow, draining=lambda: draining[0])
    response = client.send(GET + GET)
    assert statuses(response) == [200] and b"Connection: close" in response
    assert client.transport.write_shut  # the second request is never served
