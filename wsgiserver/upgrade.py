"""WebSocket upgrades for WSGI apps: the ``environ["wsgiserver.websocket"]`` extension.

WSGI has no standard for upgrades, so an application that wants a WebSocket
calls ``environ["wsgiserver.websocket"].accept()``: the server checks the
handshake, answers ``101 Switching Protocols`` and returns a blocking
``WebSocket`` bound to the connection, which the app uses on its worker
thread until it returns. The connection is then closed; it never goes back
to HTTP keep-alive. Knows the parsed request, the handshake and the
callables the connection gives it, not sockets.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .protocol.events import Request

# The WebSocket implementation is imported on the first upgrade only: a
# server that never sees one does not pay its memory.
if TYPE_CHECKING:
    from .websocket import WebSocket

__all__ = ["KeepAlive", "WebSocketUpgrade", "WebSocketRegistry", "ENVIRON_KEY",
           "wants_websocket"]

ENVIRON_KEY = "wsgiserver.websocket"
# Reads on a closing WebSocket wait in slices this long, so that the close
# handshake's deadline can end the wait.
_POLL_SECONDS = 0.25


class WebSocketRegistry:
    """The open WebSockets of one server: a cap, and close-all on shutdown."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._open: set[WebSocket] = set()
        self._lock = threading.Lock()

    def add(self, websocket: WebSocket) -> bool:
        """Register an accepted WebSocket, unless the cap is reached."""
        with self._lock:
            if len(self._open) >= self.limit:
                return False
            self._open.add(websocket)
            return True

    def remove(self, websocket: WebSocket) -> None:
        """Forget a WebSocket that ended."""
        with self._lock:
            self._open.discard(websocket)

    def close_all(self, code: int = 1001, reason: str = "server shutting down",
                  timeout: float = 10.0) -> None:
        """Run the close handshake on every open WebSocket (1001 Going Away),
        all at once, within ``timeout`` seconds in all: a peer that does not
        answer its Close by then is given up on (1006), so the shutdown's
        grace period bounds WebSockets too."""
        deadline = time.monotonic() + timeout
        with self._lock:
            sessions = list(self._open)
        threads = []
        for websocket in sessions:
            websocket.close_timeout = min(websocket.close_timeout, max(timeout, 0.0))
            threads.append(threading.Thread(target=_close_quietly, args=(websocket, code, reason),
                                            daemon=True))
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(max(deadline - time.monotonic(), 0.0))

    def __len__(self) -> int:
        return len(self._open)


def _close_quietly(websocket: WebSocket, code: int, reason: str) -> None:
    try:
        websocket.close(code, reason)
    except Exception:  # the peer may be gone: nothing left to tell it
        pass


@dataclass(frozen=True)
class KeepAlive:
    """How an open WebSocket's peer is kept honest: a Ping after
    ``ping_interval`` seconds without a byte from it, closed with 1011 when
    nothing comes back within ``ping_timeout`` (it vanished without a FIN,
    or does not answer); closed with 1001 after ``idle_timeout`` seconds
    without a message. 0 turns each off."""

    ping_interval: float = 20.0
    ping_timeout: float = 20.0
    idle_timeout: float = 0.0


class WebSocketUpgrade:
    """``environ["wsgiserver.websocket"]``: accept the handshake of this request."""

    def __init__(
        self,
        request: Request,
        *,
        switch: Callable[[list[tuple[str, str]]], None],
        send: Callable[[bytes], None],
        recv: Callable[[int, float | None], bytes | None],
        wake: Callable[[], None] = lambda: None,
        registry: WebSocketRegistry,
        max_message_bytes: int,
        keepalive: KeepAlive | None = None,
        on_timeout: Callable[[], None] | None = None,
    ) -> None:
        self._request = request
        self._switch = switch
        self._send = send
        self._recv = recv
        self._wake = wake
        self._registry = registry
        self._max_message_bytes = max_message_bytes
        self._keepalive = keepalive or KeepAlive(0.0, 0.0, 0.0)
        self._on_timeout = on_timeout  # counts a WebSocket closed by the keepalive
        self._heard_at = 0.0  # when the peer last sent a byte
        self._ping_sent_at: float | None = None  # a Ping waiting for its answer
        self.websocket: WebSocket | None = None

    @property
    def offered_subprotocols(self) -> list[str]:
        """The subprotocols the client offered, in its order of preference."""
        from .websocket import check_handshake

        return check_handshake(*self._handshake_inputs())[1]

    def _handshake_inputs(self) -> tuple[str, dict[str, str], str]:
        from .websocket import headers_from_request

        request = self._request
        version = "1.1" if request.http_version >= (1, 1) else "1.0"
        return request.method.decode("ascii"), headers_from_request(request.headers), version

    def accept(self, subprotocol: str | None = None, compression: bool = True) -> WebSocket:
        """Answer 101 and return the WebSocket.

        ``compression``: agree to permessage-deflate (RFC 7692) when the
        client offers it, as browsers do. Raises HandshakeError (with the
        HTTP status to answer, such as 400, 426, or 503 when the server's
        WebSocket cap is reached) before anything is sent, so the app can
        still send an ordinary response.
        """
        from .websocket import HandshakeError, WebSocket, check_handshake, response_headers
        from .websocket.deflate import negotiate

        if self.websocket is not None:
            raise RuntimeError("this request was already upgraded")
        method, headers_in, version = self._handshake_inputs()
        key, offered = check_handshake(method, headers_in, version)
        if subprotocol is not None and subprotocol not in offered:
            raise ValueError(f"the client did not offer subprotocol {subprotocol!r}")
        deflate = negotiate(headers_in.get("sec-websocket-extensions")) if compression else None
        headers = response_headers(key, subprotocol)
        if deflate is not None:
            headers.append(("Sec-WebSocket-Extensions", deflate.response))
        websocket = WebSocket(
            self._receive,
            self._send,
            subprotocol=subprotocol,
            max_message_bytes=self._max_message_bytes,
            deflate=deflate,
            on_finish=self._wake,
        )
        # The slot is held from the cap's check, so the 503 can still be
        # answered, and given back if the 101 never goes out (the client
        # reset during the handshake): a slot belongs to an open WebSocket.
        if not self._registry.add(websocket):
            raise HandshakeError(503, "too many WebSocket connections")
        try:
            self._switch(headers)
        except BaseException:
            self._registry.remove(websocket)
            raise
        self.websocket = websocket
        self._heard_at = time.monotonic()
        return websocket

    def _receive(self, max_bytes: int) -> bytes:
        """Block until bytes arrive for the WebSocket. An open one waits in
        the kernel without limit or wake-up (1,000 idle WebSockets cost no
        CPU): another thread that ends the session (a close that timed out,
        the shutdown) ends the connection, which ends the wait. Once a close
        handshake is under way the wait is cut into short slices, so the
        handshake's own deadline can end it on this thread too."""
        closing_since: float | None = None
        while (data := self._recv(max_bytes, self._wait())) is None:
            websocket = self.websocket
            if websocket is None:
                continue
            if websocket.closed:
                raise ConnectionAbortedError("the WebSocket is closed")
            if websocket.closing:
                closing_since = closing_since or time.monotonic()
                if time.monotonic() - closing_since > websocket.close_timeout + 1:
                    raise TimeoutError("no Close frame from the peer")
            else:
                self._keep_alive(websocket, time.monotonic())
        self._heard_at = time.monotonic()
        self._ping_sent_at = None  # whatever came, the peer is there
        return data

    def _wait(self) -> float | None:
        """How long the next read may wait: until bytes come (None) while open,
        but no later than the keepalive's next step; in slices while closing."""
        websocket = self.websocket
        if websocket is None:
            return None
        if websocket.closing or websocket.closed:
            return _POLL_SECONDS
        due = self._keepalive_due(websocket)
        return None if due is None else max(due - time.monotonic(), 0.0)

    def _keepalive_due(self, websocket: WebSocket) -> float | None:
        keepalive, due = self._keepalive, None
        if self._ping_sent_at is not None:
            due = self._ping_sent_at + keepalive.ping_timeout
        elif keepalive.ping_interval:
            due = self._heard_at + keepalive.ping_interval
        if keepalive.idle_timeout:
            idle_due = websocket.last_message_at + keepalive.idle_timeout
            due = idle_due if due is None else min(due, idle_due)
        return due

    def _keep_alive(self, websocket: WebSocket, now: float) -> None:
        """A read waited its whole time: ping, or give up on the peer (RFC
        6455 section 5.5.2 lets either side ping; 1011 and 1001 per 7.4.1)."""
        from .websocket import WebSocketError

        keepalive = self._keepalive
        if keepalive.idle_timeout and now >= websocket.last_message_at + keepalive.idle_timeout:
            self._timed_out()
            raise WebSocketError(1001, f"no message for {keepalive.idle_timeout:g} s")
        if self._ping_sent_at is not None:
            if now >= self._ping_sent_at + keepalive.ping_timeout:
                self._timed_out()
                raise WebSocketError(1011, f"no answer to a ping in {keepalive.ping_timeout:g} s")
        elif keepalive.ping_interval and now >= self._heard_at + keepalive.ping_interval:
            self._ping_sent_at = now
            websocket.ping(b"wsgiserver")

    def _timed_out(self) -> None:
        if self._on_timeout is not None:
            self._on_timeout()

    def finish(self) -> None:
        """After the app returned: close the WebSocket if it left it open."""
        if self.websocket is None:
            return
        try:
            if not self.websocket.closed:
                _close_quietly(self.websocket, 1000, "")
        finally:
            self._registry.remove(self.websocket)


def wants_websocket(request: Request) -> bool:
    """Whether ``request`` asks to upgrade to a WebSocket (the handshake is
    checked only when the application accepts)."""
    return any(name == b"upgrade" and b"websocket" in value.lower()
               for name, value in request.headers)
