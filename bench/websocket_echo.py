"""A WebSocket echo on /ws (and 13 bytes on anything else), for bench/websockets_memory.py."""

from __future__ import annotations


def app(environ, start_response):
    upgrade = environ.get("wsgiserver.websocket")
    if upgrade is None:
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "13")])
        return [b"Hello, World!"]
    websocket = upgrade.accept()
    for message in websocket:
        websocket.send(message)
    return []
