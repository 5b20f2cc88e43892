"""One request's exchange with the application, on a worker thread.

Owns what happens between a parsed request and its response: the environ
(built by wsgi.py), proxy trust (decided once), the request id, the
WebSocket offer made from the parsed request, the application call and its
access-log entry. Knows no sockets and no framing: the connection gives it
an ExchangeIO, which reads the body and frames and sends the response.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING, Any, Protocol

from .clock import SYSTEM_CLOCK, Clock
from .protocol.events import Request
from .protocol.response import ResponseState
from .proxy import ProxyTrust, apply_proxy_headers, request_id
from .upgrade import ENVIRON_KEY, KeepAlive, WebSocketRegistry, WebSocketUpgrade, wants_websocket
from .wsgi import EnvironBuilder, ResponseSink, WSGIApp, run_application

if TYPE_CHECKING:
    from .accesslog import AccessLog
    from .metrics import Recorder

__all__ = ["Exchange", "ExchangeIO", "ExchangeSettings"]


@dataclass(frozen=True)
class ExchangeSettings:
    """What every exchange of one listening socket shares."""

    app: WSGIApp
    environ: EnvironBuilder
    proxy_trust: ProxyTrust | None = None
    access_log: AccessLog | None = None
    websockets: WebSocketRegistry | None = None
    max_websocket_message_bytes: int = 1 << 20
    websocket_keepalive: KeepAlive = KeepAlive()
    clock: Clock = SYSTEM_CLOCK
    metrics: Recorder | None = None


class ExchangeIO(ResponseSink, Protocol):
    """What an exchange needs from its connection, beyond the response sink."""

    @property
    def peer(self) -> tuple[str, int]:
        """The client's (address, port); ("", 0) on a Unix socket."""
        ...

    @property
    def connection_environ(self) -> Mapping[str, str]:
        """What the connection adds to the environ (TLS facts, under mod_ssl's names)."""
        ...

    @property
    def response(self) -> ResponseState[Any]:
        """The response's state, whichever protocol: its status, the
        application's fields and the body bytes sent (for the log)."""
        ...

    @property
    def body(self) -> IO[bytes]:
        """The request body, received whole before the application runs."""
        ...

    def switch_protocols(self, fields: list[tuple[str, str]]) -> None:
        """Send ``101 Switching Protocols``: the connection leaves HTTP."""
        ...

    def upgraded_recv(self, max_bytes: int, wait: float | None) -> bytes | None:
        """After 101: the next bytes from the client (b"" at the end), or None
        when nothing arrived within ``wait`` seconds (None: wait until bytes
        come or ``upgraded_wake`` is called)."""
        ...

    def upgraded_wake(self) -> None:
        """After 101, from any thread: end the connection, so that a thread
        waiting in ``upgraded_recv`` returns (the WebSocket is over)."""
        ...

    def upgraded_send(self, data: bytes) -> None:
        """After 101: send all of ``data``."""
        ...


class Exchange:
    """Runs one request: ``run()`` returns once the application is done with it."""

    def __init__(self, settings: ExchangeSettings, request: Request, io: ExchangeIO) -> None:
        self.settings = settings
        self.request = request
        self.io = io
        self.upgrade: WebSocketUpgrade | None = None

    def run(self) -> None:
        """Build the environ, call the application, log the request."""
        settings, io = self.settings, self.io
        environ = settings.environ.build(self.request, io.body, io.peer)
        if io.connection_environ:
            environ.update(io.connection_environ)
        trusted = apply_proxy_headers(environ, settings.proxy_trust)
        environ["wsgiserver.request_id"] = request_id(environ, trusted)
        if "HTTP_UPGRADE" in environ:
            self._offer_upgrade(environ)
        access_log, metrics = settings.access_log, settings.metrics
        timed = access_log is not None or metrics is not None
        started = settings.clock.monotonic() if timed else 0.0
        try:
            run_application(settings.app, environ, io)
            if timed:
                duration = settings.clock.monotonic() - started
                if access_log is not None:
                    response = io.response
                    access_log.record_exchange(environ, response.status_code, response.fields,
                                               response.body_bytes, duration)
                if metrics is not None:
                    metrics.request(io.response.status_code, duration)
        finally:
            if self.upgrade is not None:
                self.upgrade.finish()

    def _offer_upgrade(self, environ: dict[str, object]) -> None:
        """Offer ``environ["wsgiserver.websocket"]`` to a WebSocket handshake."""
        registry = self.settings.websockets
        if registry is None or not wants_websocket(self.request):
            return
        self.upgrade = WebSocketUpgrade(
            self.request,
            switch=self.io.switch_protocols,
            send=self.io.upgraded_send,
            recv=self.io.upgraded_recv,
            wake=self.io.upgraded_wake,
            registry=registry,
            max_message_bytes=self.settings.max_websocket_message_bytes,
            keepalive=self.settings.websocket_keepalive,
            on_timeout=self.settings.metrics.websocket_timeout
            if self.settings.metrics is not None else None,
        )
        environ[ENVIRON_KEY] = self.upgrade
