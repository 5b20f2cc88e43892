"""WebSocketUpgrade: slots in the registry, and how an open WebSocket's reader waits."""

from __future__ import annotations

import base64
import os
import threading

import pytest

from wsgiserver.errors import ClientDisconnected
from wsgiserver.protocol import RequestParser
from wsgiserver.upgrade import WebSocketRegistry, WebSocketUpgrade


def handshake_request():
    parser = RequestParser()
    key = base64.b64encode(os.urandom(16))
    parser.feed(b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                b"Sec-WebSocket-Key: " + key + b"\r\nSec-WebSocket-Version: 13\r\n\r\n")
    return parser.next_event()


class Peer:
    """The connection's side as the upgrade sees it: records each wait; the
    client sends nothing until ``woken`` (the connection ended) or ``data``."""

    def __init__(self) -> None:
        self.waits: list[float | None] = []
        self.sent: list[bytes] = []
        self.woken = threading.Event()

    def switch(self, fields) -> None:
        pass

    def send(self, data: bytes) -> None:
        self.sent.append(data)

    def recv(self, max_bytes: int, wait: float | None) -> bytes | None:
        self.waits.append(wait)
        if self.woken.wait(10 if wait is None else wait):
            return b""  # the connection was ended: end of stream
        return None

    def wake(self) -> None:
        self.woken.set()


def upgrade_for(peer: Peer, registry: WebSocketRegistry) -> WebSocketUpgrade:
    return WebSocketUpgrade(handshake_request(), switch=peer.switch, send=peer.send,
                            recv=peer.recv, wake=peer.wake, registry=registry,
                            max_message_bytes=1 << 20)


def test_an_open_websocket_waits_for_its_client_without_waking_up():
    peer = Peer()
    websocket = upgrade_for(peer, WebSocketRegistry(1)).accept()
    reader = threading.Thread(target=websocket.receive)
    reader.start()
    try:
        deadline = threading.Event()
        while not peer.waits and not deadline.wait(0.01):
            pass
        assert peer.waits[0] is None  # in the kernel until bytes or the end: no polling
    finally:
        peer.wake()
        reader.join(10)
    assert not reader.is_alive()


def test_a_close_that_times_out_on_another_thread_ends_the_readers_wait():
    peer = Peer()
    websocket = upgrade_for(peer, WebSocketRegistry(1)).accept()
    websocket.close_timeout = 0.05
    reader = threading.Thread(target=websocket.receive)
    reader.start()
    websocket.close(1001, "going away")  # the peer never answers
    reader.join(10)
    assert not reader.is_alive()
    assert websocket.close_code == 1006 and peer.woken.is_set()


def test_a_slot_is_given_back_when_the_101_cannot_be_sent():
    registry = WebSocketRegistry(1)
    peer = Peer()

    def reset(fields) -> None:
        raise ClientDisconnected("reset by peer")

    upgrade = WebSocketUpgrade(handshake_request(), switch=reset, send=peer.send,
                               recv=peer.recv, wake=peer.wake, registry=registry,
                               max_message_bytes=1 << 20)
    with pytest.raises(ClientDisconnected):
        upgrade.accept()
    upgrade.finish()
    assert len(registry) == 0
    assert upgrade_for(Peer(), registry).accept() is not None  # the one slot is free
