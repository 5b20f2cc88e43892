"""The connection over an in-memory transport and a manual clock: the order of
things, timeouts without sleeping, drain or close, and draining for shutdown."""

from __future__ import annotations

import io
import re

import pytest

from wsgiserver.accesslog import AccessLog
from wsgiserver.connection import DRAIN_QUIET_SECONDS

from .fakes import Client

GET = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"


def hello(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"hello"]


def echo(environ, start_response):
    body = environ["wsgi.input"].read()
    start_response("200 OK", [("Content-Type", "application/octet-stream")])
    return [body]


def status_of(response: bytes) -> int:
    return int(response.split(b" ", 2)[1])


def statuses(response: bytes) -> list[int]:
    return [int(status) for status in re.findall(rb"HTTP/1\.1 (\d{3}) ", response)]


# -- keep-alive and pipelining --------------------------------------------------


def test_requests_on_one_connection_are_answered_in_order():
    client = Client(hello)
    assert client.send(GET).endswith(b"\r\n\r\nhello")
    assert statuses(client.send(GET + GET + GET)) == [200, 200, 200]
    assert client.watched and not client.closed


def test_connection_close_from_the_client_closes_after_the_response():
    client = Client(hello)
    response = client.send(b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
    assert b"Connection: close" in response and client.closed


def test_bytes_after_a_close_request_are_never_served():
    client = Client(hello)
    closing = b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"
    assert statuses(client.send(closing + GET)) == [200]


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


def test_small_body_still_arriving_past_the_body_timeout_gets_408():
    calls = []

    def app(environ, start_response):
        calls.append(1)
        return hello(environ, start_response)

    client = Client(app, body_timeout=30.0)
    client.send(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nabc")
    assert calls == []  # the body is received before a worker runs the app
    assert status_of(client.wait(30.1)) == 408 and calls == []


def test_body_the_app_waits_for_times_out_with_408_and_the_connection_ends():
    client = Client(echo, body_timeout=30.0)
    head = b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
    response = client.send(head + b"3\r\nabc\r\n")
    assert status_of(response) == 408 and b"Connection: close" in response
    assert client.clock.monotonic() == pytest.approx(1030.0)  # waited on the clock, not in time
    assert client.transport.write_shut  # lingers, then closes


def test_client_vanishing_mid_body_gets_400_and_no_500():
    client = Client(echo)
    client.transport.arrive(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 100000\r\n\r\nabc")
    client.transport.hang_up(after=1.0)
    response = client.readable()
    assert status_of(response) == 400 and b"before the body ended" in response


def test_client_that_reads_nothing_is_cut_off_after_the_write_timeout():
    def big(environ, start_response):
        start_response("200 OK", [])
        return [b"x" * 100_000, b"y" * 100_000]

    client = Client(big, reads=50_000, write_timeout=30.0)
    client.send(GET)
    assert client.closed and client.transport.aborted  # reset: no short body passes for whole
    assert client.clock.monotonic() == pytest.approx(1030.0)


# -- 100-continue -----------------------------------------------------------------


EXPECT = b"POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n"


def test_100_continue_goes_out_once_when_the_app_reads():
    client = Client(echo)
    client.transport.arrive(EXPECT)
    client.transport.arrive(b"hello", after=0.5)
    response = client.readable()
    assert response.startswith(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n")
    assert response.count(b"100 Continue") == 1 and response.endswith(b"hello")


def test_app_that_answers_without_reading_gets_no_100_and_the_connection_ends():
    client = Client(hello)
    response = client.send(EXPECT)
    assert b"100 Continue" not in response and status_of(response) == 200
    assert b"Connection: close" in response and client.transport.write_shut


# -- drain or close ---------------------------------------------------------------


def test_unread_chunked_body_is_drained_and_the_next_request_served():
    client = Client(hello)
    body = b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
    assert statuses(client.send(body + GET)) == [200, 200]
    assert client.watched


def test_unread_body_over_the_drain_budget_closes():
    client = Client(hello, max_drain_bytes=4)
    body = b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n8\r\n12345678\r\n"
    assert statuses(client.send(body + GET)) == [200]
    assert client.transport.write_shut


def test_malformed_request_gets_400_then_lingers_and_closes():
    client = Client(hello)
    response = client.send(b"GET / HTTP/1.1\r\nHost: a\r\nBad Name: x\r\n\r\n")
    assert status_of(response) == 400 and b"Connection: close" in response
    assert client.transport.write_shut and not client.closed
    assert client.send(GET) == b""  # discarded: the framing is lost
    client.wait(2.1)
    assert client.closed


def test_refused_request_is_logged_without_an_environ():
    stream = io.StringIO()
    client = Client(hello, access_log=AccessLog(stream, "{remote_addr} {request_line} {status} "
                                                       "{header:User-Agent}"))
    client.send(b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n")
    assert stream.getvalue() == "192.0.2.7 - - - 400 -\n"


# -- files -------------------------------------------------------------------------


def test_file_wrapper_goes_out_with_sendfile(tmp_path):
    path = tmp_path / "data"
    path.write_bytes(b"0123456789" * 1000)

    def app(environ, start_response):
        start_response("200 OK", [])
        handle = open(path, "rb")
        handle.seek(10)
        return environ["wsgi.file_wrapper"](handle)

    response = Client(app).send(GET)
    head, body = response.split(b"\r\n\r\n", 1)
    assert b"Content-Length: 9990" in head and body == (b"0123456789" * 1000)[10:]


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
