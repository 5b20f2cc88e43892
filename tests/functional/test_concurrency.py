"""Slow, idle and in-flight clients: none of them may hold up anyone else."""

from __future__ import annotations

import http.client
import os
import socket
import threading
import time

import pytest

from tests.conftest import connect
from tests.functional.apps import hello_app
from tests.functional.http import read_response


def _get(server, timeout=5.0) -> bytes:
    conn = http.client.HTTPConnection(*server.address, timeout=timeout)
    try:
        conn.request("GET", "/")
        return conn.getresponse().read()
    finally:
        conn.close()


def test_trickling_head_does_not_delay_another_client(live_server):
    server = live_server(hello_app, threads=1, header_timeout=30)
    stop = threading.Event()
    request = b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 200 + b"\r\n\r\n"

    def trickle():
        with connect(server) as sock:
            for byte in request[:-4]:
                if stop.wait(0.01):
                    return
                sock.send(bytes([byte]))

    slow = threading.Thread(target=trickle)
    slow.start()
    try:
        time.sleep(0.2)  # the trickler is well into its head
        # With a single worker thread, this can only be answered if the
        # trickling connection does not hold that worker.
        assert _get(server, timeout=2.0) == b"Hello, World!"
        assert slow.is_alive()
    finally:
        stop.set()
        slow.join(5)


def test_200_idle_connections_do_not_block_a_new_one(live_server):
    server = live_server(hello_app, threads=2)
    idle = []
    try:
        for _ in range(100):
            sock = connect(server)  # never sends a byte
            idle.append(sock)
        for _ in range(100):
            sock = connect(server)
            sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            assert read_response(sock).status == 200  # now an idle keep-alive one
            idle.append(sock)
        assert _get(server, timeout=2.0) == b"Hello, World!"
    finally:
        for sock in idle:
            sock.close()


def test_connection_limit_pauses_accepting_until_one_closes(live_server):
    server = live_server(hello_app, max_connections=2)
    first, second = connect(server), connect(server)
    try:
        for sock in (first, second):
            sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            assert read_response(sock).status == 200
        third = connect(server, timeout=0.5)  # queued by the kernel, not served
        third.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        try:
            assert third.recv(100) == b"unexpected"
        except TimeoutError:
            pass
        first.close()
        third.settimeout(5)
        assert read_response(third).status == 200
        third.close()
    finally:
        first.close()
        second.close()


def test_graceful_shutdown_finishes_in_flight_request(live_server):
    entered = threading.Event()
    release = threading.Event()

    def slow_app(environ, start_response):
        entered.set()
        release.wait(5)
        start_response("200 OK", [("Content-Length", "4")])
        return [b"done"]

    server = live_server(slow_app, shutdown_timeout=5)
    idle = connect(server)
    busy = connect(server)
    busy.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert entered.wait(5)
    stopper = threading.Thread(target=server.stop)
    stopper.start()
    time.sleep(0.3)
    # New connections are refused once shutdown began; idle ones are closed.
    assert idle.recv(10) == b""
    try:
        socket.create_connection(server.address, timeout=1).close()
        refused = False
    except OSError:
        refused = True
    assert refused
    release.set()
    response = read_response(busy)
    assert response.status == 200 and response.body == b"done"
    assert response.header("connection") == "close"
    stopper.join(10)
    assert not stopper.is_alive()
    idle.close()
    busy.close()


def test_stop_returns_after_grace_period_even_if_app_hangs(live_server):
    entered = threading.Event()
    release = threading.Event()

    def stuck_app(environ, start_response):
        entered.set()
        release.wait(10)
        start_response("200 OK", [])
        return [b""]

    server = live_server(stuck_app)
    sock = connect(server)
    sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert entered.wait(5)
    started = time.monotonic()
    server.stop(timeout=0.5)
    assert time.monotonic() - started < 5
    release.set()
    sock.close()


def test_client_that_stops_reading_a_file_frees_the_worker(live_server, tmp_path):
    big = tmp_path / "big.bin"
    big.write_bytes(b"\0" * (64 * 1024 * 1024))  # far more than the socket buffers hold

    def file_app(environ, start_response):
        if environ["PATH_INFO"] == "/small":
            return hello_app(environ, start_response)
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        return environ["wsgi.file_wrapper"](open(big, "rb"))

    server = live_server(file_app, threads=1, write_timeout=0.5)
    stalled = connect(server)
    stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    try:
        stalled.sendall(b"GET /big HTTP/1.1\r\nHost: x\r\n\r\n")
        # The single worker is stuck in sendfile until the write timeout ends
        # that response; then it serves this one.
        with connect(server, timeout=10) as other:
            other.sendall(b"GET /small HTTP/1.1\r\nHost: x\r\n\r\n")
            assert read_response(other).body == b"Hello, World!"
        received = 0
        stalled.settimeout(5)
        while True:
            try:
                data = stalled.recv(1 << 20)
            except (TimeoutError, ConnectionResetError):
                break
            if not data:
                break
            received += len(data)
        assert received < big.stat().st_size  # cut off, never mistaken for whole
    finally:
        stalled.close()


def test_select_refuses_what_it_cannot_watch_and_serves_the_rest(live_server):
    """select() takes descriptors below 1024: a connection whose socket lands
    above gets a 503 and is closed; the server goes on (never a crash)."""
    resource = pytest.importorskip("resource", reason="needs the resource module (POSIX)")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < 1200:
        pytest.skip(f"the file limit ({hard}) is too low to reach descriptor 1024")
    if soft != resource.RLIM_INFINITY and soft < 1200:
        resource.setrlimit(resource.RLIMIT_NOFILE, (1200, hard))
    server = live_server(hello_app, poller="select")
    filler = []
    try:
        with socket.create_connection(server.address, timeout=5) as early:
            early.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            assert read_response(early).status == 200
            # Take every descriptor up to 1030: the next accepted socket is above.
            while (fd := os.open(os.devnull, os.O_RDONLY)) < 1030:
                filler.append(fd)
            filler.append(fd)
            with socket.create_connection(server.address, timeout=5) as late:
                late.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
                refused = read_response(late)
            assert refused.status == 503
            for fd in filler:
                os.close(fd)
            filler.clear()
            # The connection opened before is still served.
            early.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            assert read_response(early).status == 200
    finally:
        for fd in filler:
            os.close(fd)
