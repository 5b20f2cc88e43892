"""Faults: clients that vanish mid-head, mid-body or mid-response, clients that
stop reading, and applications that break the WSGI contract.

After each fault the same checks hold: with one worker thread (so a stuck
worker would show) a normal request is answered, the server forgets the
faulty connection, and ``live_server`` sees no internal error logged.
Cases test_server.py already covers (an app raising before or after the
head, CR/LF in a header value, a body cut short with a clean FIN) are not
repeated here.
"""

from __future__ import annotations

import http.client
import io
import socket
import struct
import threading
import time

import pytest

from tests.conftest import connect, recv_until_closed
from tests.functional.apps import hello_app
from tests.functional.http import read_response

HELLO = b"Hello, World!"
# A cap on every endless response, never reached: the kernel buffers a few MiB.
_RESPONSE_CAP = 1024  # pieces of 64 KiB: 64 MiB
_PIECE = b"x" * 65536


def wait_until(condition, seconds: float = 10.0):
    """Poll ``condition`` until it holds or ``seconds`` pass; its last value."""
    deadline = time.monotonic() + seconds
    while not (result := condition()) and time.monotonic() < deadline:
        time.sleep(0.02)
    return result


def get_hello(server, path: str = "/") -> tuple[int, bytes]:
    """A normal request on a fresh connection."""
    conn = http.client.HTTPConnection(*server.address, timeout=10)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def assert_still_serving(server) -> None:
    """A normal request succeeds, and every closed connection is forgotten."""
    assert get_hello(server) == (200, HELLO)
    # The server's own table of open connections (a leak would stay there).
    assert wait_until(lambda: not server._connections), len(server._connections)


def with_hello(fault):
    """An app that answers "/" normally and hands every other path to ``fault``."""

    def app(environ, start_response):
        if environ["PATH_INFO"] == "/":
            return hello_app(environ, start_response)
        return fault(environ, start_response)

    return app


def reset(sock: socket.socket) -> None:
    """Close so that the kernel sends RST rather than FIN."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def close(sock: socket.socket, how: str) -> None:
    if how == "rst":
        reset(sock)
    else:
        sock.close()


# -- clients that vanish -------------------------------------------------------


@pytest.mark.parametrize("how", ["fin", "rst"])
@pytest.mark.parametrize(
    "fragment",
    [
        b"G",
        b"GET /fault HTTP/1.1\r\nHo",
        b"GET /fault HTTP/1.1\r\nHost: x\r\n\r",  # one byte short of a whole head
    ],
    ids=["first-byte", "mid-field", "one-byte-short"],
)
def test_client_gone_mid_head(live_server, fragment, how):
    calls = []
    server = live_server(with_hello(lambda e, s: calls.append(1)), threads=1)
    sock = connect(server)
    sock.sendall(fragment)
    time.sleep(0.05)  # let the server take the fragment in before the close
    close(sock, how)
    assert_still_serving(server)
    assert calls == []  # an unfinished head never reaches the app


def _body_reader(outcomes: list):
    """An app that reads the whole body and records what it got."""

    def app(environ, start_response):
        try:
            body = environ["wsgi.input"].read()
        except OSError as error:
            outcomes.append(error)
            raise
        outcomes.append(body)
        start_response("200 OK", [("Content-Length", str(len(body)))])
        return [body]

    return app


@pytest.mark.parametrize("how", ["fin", "rst"])
@pytest.mark.parametrize(
    "partial",
    [
        b"POST /fault HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n" + b"a" * 5000,
        b"POST /fault HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"1000\r\n" + b"a" * 100,
    ],
    ids=["content-length", "chunked"],
)
def test_client_gone_mid_body_never_reaches_the_app(live_server, partial, how):
    """Bodies are received whole before the app runs: a client that leaves
    half-way costs no thread and the app never sees a part of a body."""
    outcomes: list = []
    server = live_server(with_hello(_body_reader(outcomes)), threads=1)
    sock = connect(server)
    sock.sendall(partial)
    # While the body is still coming, the only worker is free.
    assert get_hello(server) == (200, HELLO)
    close(sock, how)
    assert_still_serving(server)
    assert outcomes == []


def _endless_iterable(closed: threading.Event, length: bool):
    def app(environ, start_response):
        headers = [("Content-Type", "application/octet-stream")]
        if length:
            headers.append(("Content-Length", str(len(_PIECE) * _RESPONSE_CAP)))
        start_response("200 OK", headers)

        def pieces():
            try:
                for _ in range(_RESPONSE_CAP):
                    yield _PIECE
            finally:
                closed.set()  # the server closed the iterable

        return pieces()

    return app


def _endless_write(closed: threading.Event):
    def app(environ, start_response):
        write = start_response("200 OK", [("Content-Type", "application/octet-stream")])
        try:
            for _ in range(_RESPONSE_CAP):
                write(_PIECE)
        finally:
            closed.set()
        return []

    return app


def _big_file(path: str, closed: threading.Event):
    """An app that sends a 64 MiB (sparse) file through wsgi.file_wrapper."""
    with open(path, "wb") as file:
        file.truncate(len(_PIECE) * _RESPONSE_CAP)

    class TrackedFile(io.FileIO):
        def close(self):
            super().close()
            closed.set()

    def app(environ, start_response):
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        return environ["wsgi.file_wrapper"](TrackedFile(path, "rb"))

    return app


def _response_app(kind: str, closed: threading.Event, tmp_path):
    if kind == "chunked":
        return _endless_iterable(closed, length=False)
    if kind == "content-length":
        return _endless_iterable(closed, length=True)
    if kind == "write":
        return _endless_write(closed)
    return _big_file(str(tmp_path / "big"), closed)


RESPONSE_KINDS = ["chunked", "content-length", "write", "sendfile"]


@pytest.mark.parametrize("kind", RESPONSE_KINDS)
def test_client_gone_mid_response(live_server, tmp_path, kind):
    closed = threading.Event()
    server = live_server(with_hello(_response_app(kind, closed, tmp_path)), threads=1)
    sock = connect(server)
    sock.sendall(b"GET /fault HTTP/1.1\r\nHost: x\r\n\r\n")
    assert sock.recv(65536).startswith(b"HTTP/1.1 200 ")
    reset(sock)
    assert closed.wait(10)  # the response was abandoned and its resources released
    assert_still_serving(server)


@pytest.mark.parametrize("kind", RESPONSE_KINDS)
def test_client_that_stops_reading_is_cut_off_after_the_write_timeout(
    live_server, tmp_path, kind
):
    closed = threading.Event()
    server = live_server(
        with_hello(_response_app(kind, closed, tmp_path)), threads=1, write_timeout=0.3
    )
    stalled = socket.socket()
    stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    stalled.settimeout(10)
    try:
        stalled.connect(server.address)
        stalled.sendall(b"GET /fault HTTP/1.1\r\nHost: x\r\n\r\n")
        # Never read. A producing app waits for the client until the write
        # timeout ends it; a finished response (a file) is left to the poller.
        assert closed.wait(15)
        # The worker is free while the stalled client still holds its socket.
        assert get_hello(server) == (200, HELLO)
        time.sleep(0.7)  # still nothing read, for longer than the write timeout
        received = len(recv_until_closed(stalled, limit_seconds=10))
    finally:
        stalled.close()
    # What it got was cut off: never the whole 64 MiB it was promised.
    assert received < len(_PIECE) * _RESPONSE_CAP
    assert_still_serving(server)


# -- applications that break the contract ------------------------------------


def _raises_after_start_response(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    raise RuntimeError("after start_response, before any body")


def _returns_none(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return None


def _returns_none_without_start_response(environ, start_response):
    return None


def _returns_str(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return "a str, not an iterable of bytes"


def _returns_list_of_str(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return ["a str in a list"]


def _returns_int(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return 42


def _never_starts_with_a_body(environ, start_response):
    return [b"a body without a status"]


def _never_starts_empty(environ, start_response):
    return []


def _never_starts_generator(environ, start_response):
    yield b"first"
    yield b"second"


def _generator_raises_before_yielding(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    raise RuntimeError("inside the generator, before its first piece")
    yield b"never"  # unreachable: makes this a generator


def _start_response_twice(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    start_response("404 Not Found", [("Content-Type", "text/plain")])
    return [b"never"]


def _iterable_whose_iter_raises(environ, start_response):
    class Broken:
        def __iter__(self):
            raise RuntimeError("iteration failed at once")

    start_response("200 OK", [("Content-Type", "text/plain")])
    return Broken()


def _exc_info_replaces_the_head(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    try:
        raise ValueError("changed its mind")
    except ValueError:
        import sys

        start_response("503 Service Unavailable", [("Content-Length", "4")], sys.exc_info())
    return [b"busy"]


# (app, what the client sees): "500" is a whole 500 response on a connection
# that stays usable; "replaced" the app's own 503.
BEFORE_THE_HEAD = [
    (_raises_after_start_response, "500"),
    (_returns_none, "500"),
    (_returns_none_without_start_response, "500"),
    (_returns_str, "500"),
    (_returns_list_of_str, "500"),
    (_returns_int, "500"),
    (_never_starts_with_a_body, "500"),
    (_never_starts_empty, "500"),
    (_never_starts_generator, "500"),
    (_generator_raises_before_yielding, "500"),
    (_start_response_twice, "500"),
    (_iterable_whose_iter_raises, "500"),
    (_exc_info_replaces_the_head, "replaced"),
]


@pytest.mark.parametrize(("fault", "expected"), BEFORE_THE_HEAD,
                         ids=[f.__name__.strip("_") for f, _ in BEFORE_THE_HEAD])
def test_app_fault_before_the_head_gives_a_clean_500(live_server, caplog, fault, expected):
    server = live_server(with_hello(fault), threads=1)
    with connect(server) as sock:
        sock.sendall(b"GET /fault HTTP/1.1\r\nHost: x\r\n\r\n")
        response = read_response(sock)
        if expected == "500":
            assert response.status == 500
            assert response.body == b"500 Internal Server Error\n"
            assert "error in application for GET /fault" in caplog.text
        else:
            assert (response.status, response.body) == (503, b"busy")
        # The connection stays usable: the error was answered whole.
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert read_response(sock).body == HELLO
    assert_still_serving(server)


def _raises_after_yielding_with_length(environ, start_response):
    start_response("200 OK", [("Content-Length", "100")])
    yield b"first forty bytes......................."
    raise RuntimeError("late")


def _yields_str_after_bytes(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    yield b"bytes first"
    yield "then a str"


def _yields_int_after_bytes(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    yield b"bytes first"
    yield 7


def _write_then_raise(environ, start_response):
    write = start_response("200 OK", [("Content-Type", "text/plain")])
    write(b"written")
    raise RuntimeError("after write()")


def _exc_info_after_the_head(environ, start_response):
    import sys

    start_response("200 OK", [("Content-Type", "text/plain")])
    yield b"head and a piece are out"
    try:
        raise ValueError("too late to change the status")
    except ValueError:
        start_response("500 Internal Server Error", [], sys.exc_info())  # re-raises
    yield b"never"


AFTER_THE_HEAD = [
    _raises_after_yielding_with_length,
    _yields_str_after_bytes,
    _yields_int_after_bytes,
    _write_then_raise,
    _exc_info_after_the_head,
]


@pytest.mark.parametrize("fault", AFTER_THE_HEAD,
                         ids=[f.__name__.strip("_") for f in AFTER_THE_HEAD])
def test_app_fault_after_the_head_aborts_only_its_connection(live_server, caplog, fault):
    server = live_server(with_hello(fault), threads=1)
    with connect(server) as sock:
        sock.sendall(b"GET /fault HTTP/1.1\r\nHost: x\r\n\r\n")
        data = recv_until_closed(sock)
    assert data.startswith(b"HTTP/1.1 200 ")
    head, _, body = data.partition(b"\r\n\r\n")
    if b"Content-Length: 100" in head:
        assert len(body) < 100  # short of what the head promised
    else:
        assert b"chunked" in head and not body.endswith(b"0\r\n\r\n")  # never terminated
    assert "error in application for GET /fault" in caplog.text
    assert_still_serving(server)


def test_app_that_streams_more_than_its_content_length_is_cut_at_the_length(live_server):
    def fault(environ, start_response):
        start_response("200 OK", [("Content-Length", "5")])
        yield b"12345"
        yield b"and more that would be read as the next response"

    server = live_server(with_hello(fault), threads=1)
    with connect(server) as sock:
        sock.sendall(b"GET /fault HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n")
        data = recv_until_closed(sock)
    assert data.endswith(b"\r\n\r\n12345")  # the excess never went out; the connection ends
    assert data.count(b"HTTP/1.1 ") == 1
    assert_still_serving(server)


def test_app_that_returns_more_than_its_content_length_in_a_list_gets_500(live_server):
    # The whole body is known before the head goes out: nothing is sent as if
    # the length held, and the connection goes on.
    def fault(environ, start_response):
        start_response("200 OK", [("Content-Length", "5")])
        return [b"12345", b"and more that would be read as the next response"]

    server = live_server(with_hello(fault), threads=1)
    with connect(server) as sock:
        sock.sendall(b"GET /fault HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert read_response(sock).status == 500
        assert read_response(sock).status == 200


def test_close_that_raises_after_a_whole_response(live_server, caplog):
    class Body:
        def __iter__(self):
            yield b"whole"

        def close(self):
            raise RuntimeError("close failed")

    def fault(environ, start_response):
        start_response("200 OK", [("Content-Length", "5")])
        return Body()

    server = live_server(with_hello(fault), threads=1)
    with connect(server) as sock:
        sock.sendall(b"GET /fault HTTP/1.1\r\nHost: x\r\n\r\n")
        assert read_response(sock).body == b"whole"
    assert wait_until(lambda: "close failed" in caplog.text)  # logged as the app's error
    assert_still_serving(server)


@pytest.mark.parametrize("error", [SystemExit, KeyboardInterrupt])
def test_app_raising_a_base_exception_does_not_kill_the_worker(live_server, error):
    def fault(environ, start_response):
        raise error("from the app")

    server = live_server(with_hello(fault), threads=1)
    with connect(server, timeout=1) as sock:
        sock.sendall(b"GET /fault HTTP/1.1\r\nHost: x\r\n\r\n")
        try:
            recv_until_closed(sock, limit_seconds=1)
        except OSError:
            pass
    conn = http.client.HTTPConnection(*server.address, timeout=1)
    try:
        conn.request("GET", "/")
        assert conn.getresponse().read() == HELLO
    finally:
        conn.close()


# -- response splitting: what test_server.py does not cover --------------------


@pytest.mark.parametrize(
    ("status", "headers"),
    [
        ("200 OK\r\nSet-Cookie: evil=1", [("Content-Type", "text/plain")]),
        ("200 OK\nSet-Cookie: evil=1", [("Content-Type", "text/plain")]),
        ("200 OK\r", [("Content-Type", "text/plain")]),
        ("200 OK", [("Set-Cookie: evil", "1")]),  # a colon in the name
        ("200 OK", [("X-A\r\nSet-Cookie", "evil=1")]),
        ("200 OK", [("", "evil=1")]),
        ("200 OK", [("X-Nul", "a\x00Set-Cookie: evil=1")]),
        ("200 OK", [("X-Cr", "a\rSet-Cookie: evil=1")]),
        ("200 OK", (("X-Tuple", "evil=1"),)),  # not a list
        ("200 OK", [("X-Int", 1)]),
        (b"200 OK", [("X-Bytes-Status", "evil=1")]),
        ("20 OK", [("X-Short-Status", "evil=1")]),
        ("200OK", [("X-No-Space", "evil=1")]),
    ],
    ids=[
        "status-crlf", "status-lf", "status-cr", "name-colon", "name-crlf", "name-empty",
        "value-nul", "value-cr", "headers-tuple", "value-int", "status-bytes",
        "status-short", "status-no-space",
    ],
)
def test_bad_status_or_header_gives_500_and_nothing_it_sent(live_server, status, headers):
    def fault(environ, start_response):
        start_response(status, headers)
        return [b"evil body"]

    server = live_server(with_hello(fault), threads=1)
    with connect(server) as sock:
        sock.sendall(b"GET /fault HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        data = recv_until_closed(sock)
    assert data.startswith(b"HTTP/1.1 500 ")
    assert b"evil" not in data
    assert data.count(b"HTTP/1.1 ") == 1
    assert_still_serving(server)


def test_bad_header_through_write_gives_500_and_nothing_it_sent(live_server):
    def fault(environ, start_response):
        write = start_response("200 OK", [("X-Split", "a\r\nSet-Cookie: evil=1")])
        write(b"evil body")
        return []

    server = live_server(with_hello(fault), threads=1)
    with connect(server) as sock:
        sock.sendall(b"GET /fault HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        data = recv_until_closed(sock)
    assert data.startswith(b"HTTP/1.1 500 ") and b"evil" not in data
    assert_still_serving(server)


def test_many_faults_in_a_row_leave_the_single_worker_serving(live_server):
    """Every kind of fault above, one after another, against one server."""
    closed = threading.Event()
    endless = _endless_iterable(closed, length=False)

    def fault(environ, start_response):
        path = environ["PATH_INFO"]
        if path == "/endless":
            return endless(environ, start_response)
        if path == "/read":
            environ["wsgi.input"].read()
        if path == "/none":
            return None
        raise RuntimeError(path)

    server = live_server(with_hello(fault), threads=1, write_timeout=0.5)
    for _ in range(5):
        with connect(server) as sock:  # vanish mid-head
            sock.sendall(b"GET /x HTTP/1.1\r\nHo")
        sock = connect(server)  # vanish mid-body
        sock.sendall(b"POST /read HTTP/1.1\r\nHost: x\r\nContent-Length: 50\r\n\r\nab")
        reset(sock)
        sock = connect(server)  # vanish mid-response
        sock.sendall(b"GET /endless HTTP/1.1\r\nHost: x\r\n\r\n")
        sock.recv(100)
        reset(sock)
        assert closed.wait(10)
        closed.clear()
        for path in ("/none", "/raise"):
            assert get_hello(server, path)[0] == 500
        assert get_hello(server) == (200, HELLO)
    assert_still_serving(server)
