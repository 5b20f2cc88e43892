"""A chat room on microapp: one HTML page and a WebSocket that broadcasts.

Run it with:  wsgiserver examples.chat:app --port 8000 --max-websockets 16
and open http://127.0.0.1:8000/ in two browser tabs.

``GET /`` serves the page (inline script, no external assets). ``/ws``
gives each connection a guest name, and sends every text message it
receives, as ``"guest-1: hello"``, to every connected client, the sender
included; joins and departures are announced the same way.
"""

from __future__ import annotations

import itertools
import threading
from typing import Any

from microapp import App, Response

# The server's per-message cap applies too; this keeps one line readable.
MAX_MESSAGE_CHARS = 2000


class ChatRoom:
    """The connected WebSockets and their names, safe to use from every
    connection's worker thread."""

    def __init__(self) -> None:
        self._members: dict[Any, str] = {}
        self._lock = threading.Lock()
        self._numbers = itertools.count(1)

    def join(self, websocket: Any) -> str:
        """Add a connection; returns the name it is given."""
        with self._lock:
            name = f"guest-{next(self._numbers)}"
            self._members[websocket] = name
        return name

    def leave(self, websocket: Any) -> None:
        """Forget a connection (idempotent)."""
        with self._lock:
            self._members.pop(websocket, None)

    def __len__(self) -> int:
        with self._lock:
            return len(self._members)

    def broadcast(self, text: str) -> None:
        """Send ``text`` to every member; one that can no longer be reached
        is dropped. Sends happen outside the lock, so a slow client delays
        only this broadcast, never joins or leaves."""
        with self._lock:
            members = list(self._members)
        for websocket in members:
            try:
                websocket.send(text)
            except ConnectionError:  # closed or closing: its own handler ends soon
                self.leave(websocket)


def create_chat_app(room: ChatRoom | None = None) -> App:
    """A chat app around ``room`` (a fresh, empty one by default)."""
    app = App()
    room = ChatRoom() if room is None else room

    @app.get("/")
    def page(request: Any) -> Response:
        return Response(PAGE, content_type="text/html; charset=utf-8")

    @app.websocket("/ws")
    def chat(websocket: Any) -> None:
        name = room.join(websocket)
        try:
            room.broadcast(f"{name} joined")
            for message in websocket:
                if isinstance(message, str) and message.strip():
                    room.broadcast(f"{name}: {message[:MAX_MESSAGE_CHARS]}")
        finally:
            room.leave(websocket)
            room.broadcast(f"{name} left")

    return app


PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Chat</title>
<style>
  body { font: 16px system-ui, sans-serif; max-width: 40em; margin: 2em auto; }
  #messages { list-style: none; padding: 0; min-height: 10em; border: 1px solid #ccc; }
  #messages li { padding: .2em .5em; }
  #status { color: #666; }
</style>
</head>
<body>
<h1>Chat</h1>
<p id="status">connecting…</p>
<ul id="messages"></ul>
<form id="form">
  <input id="message" autocomplete="off" placeholder="Say something" maxlength="2000">
  <button id="send" type="submit" disabled>Send</button>
</form>
<script>
"use strict";
const status = document.getElementById("status");
const list = document.getElementById("messages");
const input = document.getElementById("message");
const button = document.getElementById("send");
const scheme = location.protocol === "https:" ? "wss://" : "ws://";
const socket = new WebSocket(scheme + location.host + "/ws");

socket.addEventListener("open", () => {
  status.textContent = "connected";
  button.disabled = false;
});
socket.addEventListener("message", (event) => {
  const item = document.createElement("li");
  item.textContent = event.data;  // text, never markup
  list.appendChild(item);
});
socket.addEventListener("close", (event) => {
  status.textContent = "disconnected (" + event.code + ")";
  button.disabled = true;
});
document.getElementById("form").addEventListener("submit", (event) => {
  event.preventDefault();
  if (input.value.trim() && socket.readyState === WebSocket.OPEN) {
    socket.send(input.value);
    input.value = "";
  }
  input.focus();
});
</script>
</body>
</html>
"""

app = create_chat_app()
