"""microapp's WebSocket routes through the real server, with the independent
``websockets`` client: the bundled echo, subprotocols, 426 and refusals,
a handler's 1011, and the chat example's broadcast."""

from __future__ import annotations

import base64
import http.client
import logging
import os
import time

import pytest

from examples.chat import ChatRoom, create_chat_app
from microapp import App, create_app
from tests.conftest import connect, recv_until_closed

sync_client = pytest.importorskip("websockets.sync.client")
exceptions = pytest.importorskip("websockets.exceptions")


def url(server, path):
    host, port = server.address
    return f"ws://{host}:{port}{path}"


def receive_until(client, wanted: str, limit_seconds: float = 5.0) -> list[str]:
    """Messages received up to and including ``wanted``; fails after the limit."""
    seen = []
    deadline = time.monotonic() + limit_seconds
    while wanted not in seen:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            pytest.fail(f"no {wanted!r} within {limit_seconds}s; got {seen}")
        try:
            seen.append(client.recv(timeout=remaining))
        except TimeoutError:
            continue
    return seen


def wait_for(condition, limit_seconds: float = 5.0) -> None:
    deadline = time.monotonic() + limit_seconds
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail("condition not met in time")
        time.sleep(0.01)


# -- the bundled app's /ws/echo ------------------------------------------------

def connect_when_free(server, path, limit_seconds=5.0):
    """Connect once the server's only WebSocket slot is free again: it is
    released after the previous app call has returned and been logged."""
    deadline = time.monotonic() + limit_seconds
    while True:
        try:
            return sync_client.connect(url(server, path), open_timeout=5)
        except exceptions.InvalidStatus as refused:
            if refused.response.status_code != 503 or time.monotonic() > deadline:
                raise
            time.sleep(0.02)


def test_bundled_app_echoes_text_and_binary_through_gzip(live_server, caplog):
    server = live_server(create_app(), max_websockets=1)
    with sync_client.connect(url(server, "/ws/echo"), open_timeout=5,
                             additional_headers={"Accept-Encoding": "gzip"}) as client:
        client.send("héllo")
        assert client.recv(timeout=5) == "héllo"
        client.send(b"\x00\x01binary")
        assert client.recv(timeout=5) == b"\x00\x01binary"
        big = "x" * 200_000
        client.send(big)
        assert client.recv(timeout=5) == big
    assert client.close_code == 1000
    with connect_when_free(server, "/ws/echo") as again:
        again.send("again")
        assert again.recv(timeout=5) == "again"
    errors = [record for record in caplog.records if record.levelno >= logging.ERROR]
    assert not errors, errors[0].getMessage()


@pytest.mark.parametrize("compression", ["deflate", None])
def test_bundled_app_echoes_a_message_of_exactly_the_default_limit(live_server, compression):
    # 1 MiB of random bytes: with permessage-deflate (the client's default) its
    # compressed frames are a few bytes over 1 MiB; the limit counts the message.
    server = live_server(create_app())
    payload = os.urandom(1 << 20)
    with sync_client.connect(url(server, "/ws/echo"), open_timeout=5, compression=compression,
                             max_size=2 << 20) as client:
        assert bool(client.protocol.extensions) is (compression is not None)
        client.send(payload)
        assert client.recv(timeout=10) == payload
        # The server refuses from the frame's announced length: the close may
        # come while the client still sends (a broken pipe) or when it reads.
        with pytest.raises(exceptions.ConnectionClosedError) as closed:
            client.send(payload + b"!")
            client.recv(timeout=10)
    # 1009 as sent; a client still sending may see the reset that follows the
    # server's close first (its unread bytes), and 1006 then (the unit tests
    # pin the code itself).
    assert client.close_code in (1009, 1006), closed.value


def test_bundled_app_echo_answers_plain_http_with_426_and_upgrade(live_server):
    server = live_server(create_app())
    conn = http.client.HTTPConnection(*server.address, timeout=5)
    try:
        conn.request("GET", "/ws/echo")
        response = conn.getresponse()
        assert response.status == 426
        assert response.getheader("Upgrade") == "websocket"
        assert response.read() == b"this resource speaks WebSocket only"
    finally:
        conn.close()


def test_wrong_websocket_version_gets_426_with_the_supported_version(live_server):
    server = live_server(create_app())
    key = base64.b64encode(os.urandom(16))
    with connect(server) as sock:
        sock.sendall(b"GET /ws/echo HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                     b"Connection: Upgrade\r\nSec-WebSocket-Key: " + key + b"\r\n"
                     b"Sec-WebSocket-Version: 8\r\nConnection: close\r\n\r\n")
        answer = recv_until_closed(sock)
    head = answer.partition(b"\r\n\r\n")[0].lower()
    assert head.startswith(b"http/1.1 426 ")
    assert b"\r\nsec-websocket-version: 13" in head
    assert b"\r\nupgrade: websocket" in head


def test_cap_on_websockets_answers_503_through_microapp(live_server):
    server = live_server(create_app(), max_websockets=1)
    with sync_client.connect(url(server, "/ws/echo"), open_timeout=5) as first:
        first.send("hold")
        assert first.recv(timeout=5) == "hold"
        with pytest.raises(exceptions.InvalidStatus) as refused:
            sync_client.connect(url(server, "/ws/echo"), open_timeout=5)
        assert refused.value.response.status_code == 503


# -- subprotocols and errors ---------------------------------------------------

@pytest.fixture
def routes_app() -> App:
    app = App()

    @app.websocket("/proto", subprotocols=["chat.v2", "chat.v1"])
    def proto(websocket):
        websocket.send(str(websocket.subprotocol))

    @app.websocket("/boom/<int:after>")
    def boom(websocket, after):
        for _ in range(after):
            websocket.send(websocket.receive())
        raise RuntimeError("handler bug")

    return app


@pytest.mark.parametrize(("offered", "chosen"), [
    (["chat.v1", "chat.v2"], "chat.v1"),
    (["other", "chat.v2"], "chat.v2"),
    (["other"], None),
])
def test_subprotocol_is_the_clients_first_choice_the_app_speaks(live_server, routes_app,
                                                                offered, chosen):
    server = live_server(routes_app)
    with sync_client.connect(url(server, "/proto"), subprotocols=offered,
                             open_timeout=5) as client:
        assert client.subprotocol == chosen
        assert client.recv(timeout=5) == str(chosen)


def test_handler_exception_closes_with_1011_and_is_logged(live_server, routes_app, caplog):
    server = live_server(routes_app)
    with caplog.at_level(logging.ERROR):
        with sync_client.connect(url(server, "/boom/1"), open_timeout=5) as client:
            client.send("one")
            assert client.recv(timeout=5) == "one"
            with pytest.raises(exceptions.ConnectionClosedError):
                client.recv(timeout=5)
        assert client.close_code == 1011
        wait_for(lambda: any(record.exc_info and "handler bug" in str(record.exc_info[1])
                             for record in caplog.records))


# -- the chat example ----------------------------------------------------------

def test_chat_broadcasts_each_message_to_every_client(live_server):
    room = ChatRoom()
    server = live_server(create_chat_app(room), max_websockets=16)
    with sync_client.connect(url(server, "/ws"), open_timeout=5) as alice:
        receive_until(alice, "guest-1 joined")
        with sync_client.connect(url(server, "/ws"), open_timeout=5) as bob:
            receive_until(bob, "guest-2 joined")
            receive_until(alice, "guest-2 joined")
            alice.send("hi bob")
            receive_until(bob, "guest-1: hi bob")
            receive_until(alice, "guest-1: hi bob")  # the sender sees its own line
            bob.send("hi alice")
            receive_until(alice, "guest-2: hi alice")
            receive_until(bob, "guest-2: hi alice")
        receive_until(alice, "guest-2 left")
        wait_for(lambda: len(room) == 1)
    wait_for(lambda: len(room) == 0)


def test_chat_page_is_served_with_its_inline_script(live_server):
    server = live_server(create_chat_app(), max_websockets=16)
    conn = http.client.HTTPConnection(*server.address, timeout=5)
    try:
        conn.request("GET", "/")
        response = conn.getresponse()
        page = response.read().decode()
    finally:
        conn.close()
    assert response.status == 200
    assert response.getheader("Content-Type") == "text/html; charset=utf-8"
    assert 'new WebSocket(scheme + location.host + "/ws")' in page
    assert "http://" not in page and "https://" not in page  # no external assets
