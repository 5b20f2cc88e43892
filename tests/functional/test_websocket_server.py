"""WebSockets through the real server: handshake, echo, limits, shutdown,
checked with the independent ``websockets`` client and with raw frames."""

from __future__ import annotations

import base64
import os
import struct
import threading
import time

import pytest

from tests.conftest import connect

sync_client = pytest.importorskip("websockets.sync.client")
ConnectionClosed = pytest.importorskip("websockets.exceptions").ConnectionClosed


def echo_app(environ, start_response):
    """Echoes every message; plain HTTP requests get 426."""
    upgrade = environ.get("wsgiserver.websocket")
    if upgrade is None:
        start_response("426 Upgrade Required", [("Content-Type", "text/plain")])
        return [b"WebSocket only\n"]
    try:
        offered = upgrade.offered_subprotocols
        websocket = upgrade.accept("chat" if "chat" in offered else None)
    except Exception as refused:  # HandshakeError: answer with its status
        status = getattr(refused, "status", 400)
        start_response(f"{status} Refused", [("Content-Type", "text/plain")])
        return [str(refused).encode()]
    for message in websocket:
        websocket.send(message)
    return []


def url(server, path="/ws"):
    host, port = server.address
    return f"ws://{host}:{port}{path}"


def test_echo_text_and_binary_with_the_websockets_client(live_server):
    server = live_server(echo_app)
    with sync_client.connect(url(server), subprotocols=["chat"]) as client:
        assert client.subprotocol == "chat"
        client.send("héllo")
        assert client.recv(timeout=5) == "héllo"
        client.send(b"\x00\x01binary")
        assert client.recv(timeout=5) == b"\x00\x01binary"
        big = "x" * 300_000
        client.send(big)
        assert client.recv(timeout=5) == big


def test_plain_request_to_a_websocket_app_gets_its_http_answer(live_server):
    import http.client

    server = live_server(echo_app)
    conn = http.client.HTTPConnection(*server.address, timeout=5)
    conn.request("GET", "/ws")
    assert conn.getresponse().status == 426


def test_websocket_cap_answers_503(live_server):
    server = live_server(echo_app, max_websockets=1)
    with sync_client.connect(url(server)) as first:
        first.send("hold")
        assert first.recv(timeout=5) == "hold"
        with pytest.raises(Exception) as refused:
            sync_client.connect(url(server), open_timeout=5)
        assert "503" in str(refused.value)
    # once the first has closed, a new one is accepted
    with sync_client.connect(url(server)) as again:
        again.send("ok")
        assert again.recv(timeout=5) == "ok"


def test_graceful_shutdown_closes_websockets_with_1001(live_server):
    server = live_server(echo_app)
    client = sync_client.connect(url(server))  # closed by hand below
    client.send("ping")
    assert client.recv(timeout=5) == "ping"
    stopper = threading.Thread(target=server.stop)
    stopper.start()
    with pytest.raises(ConnectionClosed):
        client.recv(timeout=10)
    assert client.close_code == 1001
    stopper.join(15)
    assert not stopper.is_alive()
    client.close()


def test_shutdown_with_silent_websockets_fits_in_the_grace_period(live_server):
    # Three peers that never answer the Close: the stop as a whole, WebSockets
    # included, fits in --shutdown-timeout (each used to get 5 s first).
    server = live_server(echo_app, shutdown_timeout=1.0)
    socks = [connect(server) for _ in range(3)]
    try:
        for sock in socks:
            handshake(sock)
        started = time.monotonic()
        server.stop()
        took = time.monotonic() - started
    finally:
        for sock in socks:
            sock.close()
    assert took < 1.0 + 1.5, took  # the grace period, and a margin for a loaded machine


def handshake(sock):
    key = base64.b64encode(os.urandom(16))
    sock.sendall(b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                 b"Sec-WebSocket-Key: " + key + b"\r\nSec-WebSocket-Version: 13\r\n\r\n")
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(1024)
    assert data.startswith(b"HTTP/1.1 101 ")
    return data.partition(b"\r\n\r\n")[2]


def read_close_code(sock, leftover=b""):
    data = leftover
    while len(data) < 4:
        chunk = sock.recv(1024)
        if not chunk:
            break
        data += chunk
    assert data[0] & 0x0F == 0x8  # a Close frame
    return struct.unpack("!H", data[2:4])[0]


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        (b"\x81\x05hello", 1002),  # unmasked client frame
        (b"\xc1\x80" + b"\x00" * 4, 1002),  # RSV1 without an extension
        (b"\x81\x82" + b"\x00" * 4 + b"\xff\xfe", 1007),  # invalid UTF-8
    ],
)
def test_protocol_errors_close_with_their_code(live_server, frame, code):
    server = live_server(echo_app)
    with connect(server) as sock:
        leftover = handshake(sock)
        sock.sendall(frame)
        assert read_close_code(sock, leftover) == code


def test_message_over_the_limit_closes_with_1009(live_server):
    server = live_server(echo_app, max_websocket_message_bytes=1000)
    with connect(server) as sock:
        leftover = handshake(sock)
        sock.sendall(b"\x82\xfe" + struct.pack("!H", 2000) + b"\x00" * 4)
        assert read_close_code(sock, leftover) == 1009


def test_a_4_mib_message_in_64_byte_fragments_is_echoed_whole(live_server):
    server = live_server(echo_app, max_websocket_message_bytes=8 << 20)
    data = os.urandom(4 << 20)
    host, port = server.address
    with sync_client.connect(f"ws://{host}:{port}/", max_size=None,
                             compression=None) as client:
        client.send(data[i:i + 64] for i in range(0, len(data), 64))  # fragments
        assert client.recv(timeout=60) == data


def test_the_websockets_client_negotiates_compression(live_server):
    server = live_server(echo_app)
    host, port = server.address
    with sync_client.connect(f"ws://{host}:{port}/") as client:
        assert client.response.headers["Sec-WebSocket-Extensions"].startswith(
            "permessage-deflate")
        message = "compress me " * 1000
        client.send(message)
        assert client.recv(timeout=10) == message


def read_frames_until_close(sock, limit_seconds: float = 10.0) -> tuple[list[int], int | None]:
    """Opcodes of the frames the server sends (unmasked), until its Close;
    the Close's code."""
    sock.settimeout(limit_seconds)
    data, opcodes = b"", []
    deadline = time.monotonic() + limit_seconds
    while time.monotonic() < deadline:
        chunk = sock.recv(4096)
        if not chunk:
            return opcodes, None
        data += chunk
        while len(data) >= 2 and len(data) >= 2 + (data[1] & 0x7F):
            opcode, length = data[0] & 0x0F, data[1] & 0x7F
            payload, data = data[2:2 + length], data[2 + length:]
            opcodes.append(opcode)
            if opcode == 0x8:
                return opcodes, struct.unpack("!H", payload[:2])[0] if payload else None
    return opcodes, None


def test_a_peer_that_never_answers_pings_is_closed_with_1011_and_its_slot_freed(live_server):
    server = live_server(echo_app, max_websockets=1, websocket_ping_interval=0.3,
                         websocket_ping_timeout=0.3)
    with connect(server) as silent:
        handshake(silent)  # then never reads a ping, never answers one
        opcodes, code = read_frames_until_close(silent)
    assert opcodes[0] == 0x9 and code == 1011  # a ping, then the close
    deadline = time.monotonic() + 5
    while len(server._websockets) and time.monotonic() < deadline:
        time.sleep(0.02)
    with sync_client.connect(url(server), open_timeout=5) as client:  # the one slot is free
        client.send("again")
        assert client.recv(timeout=5) == "again"


def test_a_peer_that_answers_pings_stays_open(live_server):
    server = live_server(echo_app, websocket_ping_interval=0.2, websocket_ping_timeout=0.5)
    with sync_client.connect(url(server), open_timeout=5) as client:  # answers pings itself
        time.sleep(1.5)  # several pings
        client.send("still here")
        assert client.recv(timeout=5) == "still here"


def test_a_websocket_without_messages_for_the_idle_timeout_is_closed_with_1001(live_server):
    server = live_server(echo_app, websocket_idle_timeout=0.5, websocket_ping_interval=0.2)
    with sync_client.connect(url(server), open_timeout=5) as client:
        with pytest.raises(ConnectionClosed):
            client.recv(timeout=10)
    assert client.close_code == 1001
