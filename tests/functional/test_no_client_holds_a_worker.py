"""No slow or long-lived client holds a worker thread: while three times
``threads`` of them are connected, ordinary requests are answered in under a
second.

One kind per test, each on a server with 4 threads: uploads trickled with a
Content-Length or chunked (received by the poller), slow readers of a large
response made in memory or sent from a file (finished by the poller),
WebSockets and endless streams (their threads replaced in the pool). And the
README's chat example with 200 WebSockets open. Every client is bounded in
time and closed at the end.
"""

from __future__ import annotations

import base64
import logging
import os
import socket
import struct
import threading
import time
from collections.abc import Callable

import pytest

from examples.chat import create_chat_app
from tests.functional.http import read_response

THREADS = 4
CLIENTS = 3 * THREADS
HELLO = b"Hello, World!"
BIG = 16 * 1024 * 1024


def timed_get(server) -> float:
    """Seconds one ordinary GET / takes on a fresh connection (asserting it worked)."""
    started = time.monotonic()
    with socket.create_connection(server.address, timeout=5) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        response = read_response(sock)
    assert (response.status, response.body) == (200, HELLO)
    return time.monotonic() - started


def assert_ordinary_requests_are_fast(server, count: int = 5) -> None:
    times = [timed_get(server) for _ in range(count)]
    assert max(times) < 1.0, times


class Background:
    """Runs ``step(index, sock)`` for each of ``count`` sockets, round after
    round, from one thread, until stopped; sockets closed at the end."""

    def __init__(self, socks: list[socket.socket], step: Callable[[int, socket.socket], None],
                 interval: float) -> None:
        self.socks = socks
        self.step = step
        self.interval = interval
        self.errors: list[BaseException] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Background:
        self._thread.start()
        return self

    def _run(self) -> None:
        deadline = time.monotonic() + 60  # bounded whatever the test does
        while not self._stop.wait(self.interval) and time.monotonic() < deadline:
            for index, sock in enumerate(self.socks):
                try:
                    self.step(index, sock)
                except (BlockingIOError, InterruptedError):
                    pass
                except OSError as error:
                    self.errors.append(error)

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join(10)
        for sock in self.socks:
            sock.close()


def hello_or_body(file_path: str | None = None):
    """GET / hello; POST: the body's length; /big: 16 MiB made in memory;
    /file: a 16 MiB file; /stream: a piece every 0.2 s, forever."""

    def app(environ, start_response):
        path = environ["PATH_INFO"]
        if path == "/big":
            start_response("200 OK", [("Content-Length", str(BIG))])
            return [b"x" * BIG]
        if path == "/file":
            assert file_path is not None
            start_response("200 OK", [])
            return environ["wsgi.file_wrapper"](open(file_path, "rb"))
        if path == "/stream":
            start_response("200 OK", [("Content-Type", "text/event-stream")])
            return _forever()
        if environ["REQUEST_METHOD"] == "POST":
            body = environ["wsgi.input"].read()
            start_response("200 OK", [])
            return [str(len(body)).encode()]
        start_response("200 OK", [("Content-Length", "13")])
        return [HELLO]

    return app


def _forever():
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        yield b"data: tick\n\n"
        time.sleep(0.2)


def open_clients(server, request: bytes, count: int = CLIENTS,
                 receive_buffer: int | None = None) -> list[socket.socket]:
    socks = []
    for _ in range(count):
        sock = socket.socket()
        if receive_buffer is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
        sock.connect(server.address)
        sock.sendall(request)
        sock.setblocking(False)
        socks.append(sock)
    return socks


@pytest.mark.parametrize("framing", ["content-length", "chunked"])
def test_slow_uploads_hold_no_worker(live_server, framing):
    server = live_server(hello_or_body(), threads=THREADS)
    if framing == "content-length":
        head = b"POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: 1048576\r\n\r\n"
        piece = b"u" * 1024
    else:
        head = b"POST /up HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        piece = b"64\r\n" + b"u" * 100 + b"\r\n"
    socks = open_clients(server, head)
    with Background(socks, lambda index, sock: sock.send(piece), interval=0.1) as uploads:
        time.sleep(0.3)
        assert_ordinary_requests_are_fast(server)
        assert uploads.errors == []


@pytest.mark.parametrize("path", ["/big", "/file"])
def test_slow_readers_hold_no_worker(live_server, tmp_path, path):
    file_path = tmp_path / "big.bin"
    file_path.write_bytes(os.urandom(BIG))
    server = live_server(hello_or_body(str(file_path)), threads=THREADS)
    socks = open_clients(server, b"GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % path.encode(),
                         receive_buffer=4096)
    received = [0] * len(socks)

    def read_a_little(index: int, sock: socket.socket) -> None:
        received[index] += len(sock.recv(1024))

    with Background(socks, read_a_little, interval=0.1):
        # Every response under way first (making 24 bodies of 16 MiB takes a
        # while on a busy machine), then the ordinary requests, while all
        # of them are.
        deadline = time.monotonic() + 20
        while not all(received) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert all(received), received
        assert_ordinary_requests_are_fast(server)
    assert all(count < BIG for count in received), received


def websocket_handshake(sock: socket.socket) -> None:
    key = base64.b64encode(os.urandom(16))
    sock.sendall(b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                 b"Sec-WebSocket-Key: " + key + b"\r\nSec-WebSocket-Version: 13\r\n\r\n")
    head = b""
    while b"\r\n\r\n" not in head:
        data = sock.recv(4096)
        assert data, "closed during the handshake"
        head += data
    assert head.startswith(b"HTTP/1.1 101 "), head


def websocket_echo_or_hello(environ, start_response):
    upgrade = environ.get("wsgiserver.websocket")
    if upgrade is None:
        start_response("200 OK", [("Content-Length", "13")])
        return [HELLO]
    websocket = upgrade.accept()
    for message in websocket:
        websocket.send(message)
    return []


def test_many_websockets_hold_no_worker(live_server):
    server = live_server(websocket_echo_or_hello, threads=THREADS)
    socks = []
    try:
        for _ in range(CLIENTS):
            sock = socket.create_connection(server.address, timeout=5)
            socks.append(sock)
            websocket_handshake(sock)
        assert_ordinary_requests_are_fast(server)
        # Each still echoes: its thread is its own.
        for sock in socks:
            sock.sendall(bytes([0x81, 0x82]) + b"abcd" + bytes(a ^ b for a, b in zip(
                b"hi", b"abcd", strict=False)))
        for sock in socks:
            assert sock.recv(16) == b"\x81\x02hi"
    finally:
        for sock in socks:
            sock.close()


def test_many_endless_streams_hold_no_worker(live_server):
    server = live_server(hello_or_body(), threads=THREADS, long_request_seconds=0.3)
    socks = open_clients(server, b"GET /stream HTTP/1.1\r\nHost: x\r\n\r\n")
    received = [0] * len(socks)

    def read(index: int, sock: socket.socket) -> None:
        received[index] += len(sock.recv(65536))

    with Background(socks, read, interval=0.1):
        time.sleep(1.0)  # past long_request_seconds: each stream runs on a thread of its own
        assert_ordinary_requests_are_fast(server)
        time.sleep(0.3)
    assert all(received), received


def test_streams_beyond_the_cap_are_cut_off_with_503(live_server):
    def waits(environ, start_response):
        if environ["PATH_INFO"] == "/":
            start_response("200 OK", [("Content-Length", "13")])
            return [HELLO]
        time.sleep(1.2)  # a long poll that has not answered yet
        start_response("200 OK", [])
        return [b"late"]

    server = live_server(waits, threads=2, long_request_seconds=0.3, max_long_requests=2)
    socks = [socket.create_connection(server.address, timeout=10) for _ in range(3)]
    try:
        for sock in socks:
            sock.sendall(b"GET /poll HTTP/1.1\r\nHost: x\r\n\r\n")
            time.sleep(0.05)
        statuses = sorted(read_response(sock).status for sock in socks)
    finally:
        for sock in socks:
            sock.close()
    assert statuses == [200, 200, 503]


def test_the_chat_example_serves_200_websockets_while_get_stays_fast(live_server):
    server = live_server(create_chat_app(), threads=8)
    socks = []
    try:
        for _ in range(200):
            sock = socket.create_connection(server.address, timeout=10)
            socks.append(sock)
            websocket_handshake(sock)
        times = []
        for _ in range(5):
            started = time.monotonic()
            with socket.create_connection(server.address, timeout=5) as sock:
                sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
                response = read_response(sock)
            assert response.status == 200 and b"<html" in response.body.lower()
            times.append(time.monotonic() - started)
        assert max(times) < 1.0, times
    finally:
        for sock in socks:
            sock.close()


def test_a_websocket_whose_101_cannot_be_sent_gives_its_slot_back(live_server):
    # Two clients reset while the app is about to accept: the 101 fails on
    # each. With --max-websockets 2, a third client must still get its 101.
    client_gone = threading.Event()
    accepted: list[str] = []

    def app(environ, start_response):
        upgrade = environ["wsgiserver.websocket"]
        if environ["PATH_INFO"] == "/late":
            client_gone.wait(5)
        try:
            websocket = upgrade.accept()
        except OSError as error:  # the client is gone: nothing to answer
            accepted.append(type(error).__name__)
            return []
        accepted.append("open")
        for message in websocket:
            websocket.send(message)
        return []

    server = live_server(app, threads=2, max_websockets=2)
    for _ in range(2):
        client_gone.clear()
        sock = socket.create_connection(server.address, timeout=5)
        key = base64.b64encode(os.urandom(16))
        sock.sendall(b"GET /late HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                     b"Connection: Upgrade\r\nSec-WebSocket-Key: " + key +
                     b"\r\nSec-WebSocket-Version: 13\r\n\r\n")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()  # a reset
        client_gone.set()
        deadline = time.monotonic() + 5
        while not accepted and time.monotonic() < deadline:
            time.sleep(0.01)
        assert accepted and accepted != ["open"], accepted  # the 101 did fail
        accepted.clear()
    with socket.create_connection(server.address, timeout=5) as sock:
        sock.sendall(b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                     b"Sec-WebSocket-Key: " + base64.b64encode(os.urandom(16)) +
                     b"\r\nSec-WebSocket-Version: 13\r\n\r\n")
        head = sock.recv(4096)
    assert head.startswith(b"HTTP/1.1 101 "), head


# -- streamed responses to slow readers: spooled, so the thread is released ------

STREAMED = 8 * 1024 * 1024


def streamer(finished: list[str]):
    """GET / hello; /streamed: 8 MiB made as it goes (a generator), which
    records when the application has produced all of it."""

    def app(environ, start_response):
        if environ["PATH_INFO"] != "/streamed":
            start_response("200 OK", [("Content-Length", "13")])
            return [HELLO]
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        return pieces()

    def pieces():
        chunk = b"s" * 65536
        for _ in range(STREAMED // len(chunk)):
            yield chunk
        finished.append("done")

    return app


def test_readers_of_streamed_responses_that_read_nothing_hold_no_thread(live_server):
    finished: list[str] = []
    server = live_server(streamer(finished), threads=THREADS, long_request_seconds=0.5,
                         max_long_requests=2)
    socks = open_clients(server, b"GET /streamed HTTP/1.1\r\nHost: x\r\n\r\n",
                         count=3 * THREADS, receive_buffer=4096)
    try:
        deadline = time.monotonic() + 20
        while len(finished) < len(socks) and time.monotonic() < deadline:
            time.sleep(0.05)
        # Every application is done: what the clients have not taken waits on disk.
        assert len(finished) == len(socks)
        time.sleep(0.6)  # past long_request_seconds: none of them went long
        assert server._pool.long_requests == 0
        assert_ordinary_requests_are_fast(server)
    finally:
        for sock in socks:
            sock.close()


def read_at(sock: socket.socket, rate: int, seconds: float) -> int:
    """Read from ``sock`` at about ``rate`` bytes a second; the total, once the
    response ends (or ``seconds`` pass)."""
    sock.setblocking(True)
    sock.settimeout(5)
    total, started = 0, time.monotonic()
    while time.monotonic() - started < seconds:
        try:
            data = sock.recv(max(1, rate // 10))
        except (ConnectionResetError, TimeoutError):
            break
        if not data:
            break
        total += len(data)
        time.sleep(max(0.0, started + total / rate - time.monotonic()))
    return total


def test_a_client_slower_than_the_minimum_response_rate_is_cut(live_server, monkeypatch,
                                                               caplog):
    import wsgiserver.output

    monkeypatch.setattr(wsgiserver.output, "RATE_WINDOW", 1.0)
    finished: list[str] = []
    server = live_server(streamer(finished), threads=THREADS, min_response_rate=64 * 1024)
    caplog.set_level(logging.INFO, logger="wsgiserver")
    [sock] = open_clients(server, b"GET /streamed HTTP/1.1\r\nHost: x\r\n\r\n", count=1,
                          receive_buffer=4096)
    try:
        started = time.monotonic()
        taken = read_at(sock, 8 * 1024, seconds=15)  # an eighth of the rate asked for
        took = time.monotonic() - started
    finally:
        sock.close()
    assert taken < STREAMED and took < 10  # cut, long before it could finish
    assert any("slower than 65536 bytes/s" in r.getMessage() for r in caplog.records)


def test_a_slow_but_steady_download_completes(live_server):
    def small(environ, start_response):  # 256 KiB at 64 KiB/s: four seconds
        start_response("200 OK", [("Content-Length", str(256 * 1024))])
        return (b"d" * 4096 for _ in range(64))

    server = live_server(small, threads=THREADS)
    [sock] = open_clients(server, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", count=1,
                          receive_buffer=4096)
    try:
        taken = read_at(sock, 64 * 1024, seconds=20)
    finally:
        sock.close()
    head_bytes = taken - 256 * 1024
    assert 0 < head_bytes < 200  # the whole body, and its head
