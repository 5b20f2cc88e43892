"""What request bodies share across connections, over real sockets: bytes in
memory, bytes spooled, spool files as descriptors; each refusal a 503 with
Retry-After before the body's bytes are taken, never a crash."""

from __future__ import annotations

import socket
import time

from tests.functional.http import read_response

KiB, MiB = 1024, 1024 * 1024


def body_length(environ, start_response):
    body = environ["wsgi.input"].read()
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [str(len(body)).encode()]


def start_upload(server, length: int, first: bytes = b"") -> socket.socket:
    sock = socket.create_connection(server.address, timeout=10)
    sock.sendall(b"POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % length + first)
    return sock


def wait_for(condition, seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.02)


def test_a_body_the_spool_has_no_room_for_gets_503_with_retry_after_before_it_is_read(
        live_server):
    server = live_server(body_length, body_memory_bytes=64 * KiB, max_spool_bytes=4 * MiB)
    admitted = start_upload(server, 3 * MiB, b"a" * 1000)
    try:
        wait_for(lambda: server._spool_budget.used >= 3 * MiB)  # reserved for all of it
        refused = start_upload(server, 2 * MiB)
        with refused:
            response = read_response(refused)
        assert response.status == 503
        assert response.header("retry-after") == "5"
        small = start_upload(server, 1000, b"s" * 1000)  # in memory: no spool needed
        with small:
            assert read_response(small).body == b"1000"
        admitted.sendall(b"a" * (3 * MiB - 1000))  # the admitted body finishes
        assert read_response(admitted).body == str(3 * MiB).encode()
    finally:
        admitted.close()
    wait_for(lambda: server._spool_budget.used == 0)


def test_bodies_in_memory_are_bounded_across_connections(live_server):
    server = live_server(body_length, body_memory_bytes=64 * KiB,
                         max_body_memory_bytes=256 * KiB)
    socks = [start_upload(server, 60 * KiB, b"m" * (30 * KiB)) for _ in range(10)]
    try:
        wait_for(lambda: server._spool_files.open >= 2)  # past the budget (8 x 30 KiB): to disk
        assert server._body_memory.used <= 256 * KiB
        for sock in socks:
            sock.sendall(b"m" * (30 * KiB))
        for sock in socks:
            assert read_response(sock).body == str(60 * KiB).encode()
    finally:
        for sock in socks:
            sock.close()
    wait_for(lambda: server._body_memory.used == 0 and server._spool_files.open == 0)


def test_spool_files_count_with_connections_against_the_descriptor_limit(live_server):
    server = live_server(body_length, body_memory_bytes=1 * KiB, max_connections=12)
    socks = [start_upload(server, 64 * KiB, b"f" * (2 * KiB)) for _ in range(5)]
    try:
        wait_for(lambda: server._spool_files.open == 5)
        # 5 connections and 5 spool files: room for 2 more descriptors. A new
        # upload's connection is one; its spool file is the last.
        late = [start_upload(server, 64 * KiB, b"g" * (2 * KiB)) for _ in range(2)]
        answers = []
        for sock in late:
            sock.settimeout(2)
            try:
                answers.append(read_response(sock).status)
            except (TimeoutError, OSError):
                answers.append(None)  # admitted and still waiting for its body
        assert 503 in answers
        # One more spool file at most: the rest of the descriptors stay the
        # application's (a connection accepted just before may overshoot by one).
        assert server._spool_files.open <= 6
        for sock in late:
            sock.close()
        for sock in socks:
            sock.sendall(b"f" * (62 * KiB))
            assert read_response(sock).status == 200
    finally:
        for sock in socks:
            sock.close()
