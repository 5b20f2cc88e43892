"""WebSocket routes: a handler ``handler(websocket, **params)`` behind a server's upgrade.

Owns the HTTP side of an upgrade (426 where no WebSocket is on offer, a
refused handshake's status, the subprotocol choice) and the end of a
handler (1011 when it raises). Duck-typed on ``environ["wsgiserver.websocket"]``
(an object with ``offered_subprotocols`` and ``accept(subprotocol=...)``):
it imports nothing from wsgiserver, and under a server without that
extension every WebSocket route simply answers 426.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

from microapp.errors import HTTPError
from microapp.request import Request
from microapp.response import Response

__all__ = ["UPGRADE_KEY", "SwitchedProtocols", "WebSocketRoute"]

UPGRADE_KEY = "wsgiserver.websocket"
# RFC 6455 section 7.4.1: "a server is terminating the connection because it
# encountered an unexpected condition that prevented it from fulfilling the request".
INTERNAL_ERROR = 1011

WebSocketHandler = Callable[..., Any]


class SwitchedProtocols(Response):
    """What a WebSocket route answers once the server has sent 101: nothing
    more for WSGI to send (no start_response, an empty body). After-request
    hooks never see it; it has no head left to change."""

    def __init__(self) -> None:
        super().__init__(b"", 101)

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        return []


class WebSocketRoute:
    """The route handler registered for ``@app.websocket(pattern)``.

    ``subprotocols``: the ones the app speaks; the first the client offers
    (in the client's order of preference) that is among them is accepted,
    and none when they share none (RFC 6455 section 4.2.2 item 5.4).
    """

    def __init__(self, handler: WebSocketHandler, subprotocols: Sequence[str] = ()) -> None:
        if isinstance(subprotocols, str):
            raise TypeError("subprotocols is a list of names, not one string")
        self.handler = handler
        self.subprotocols = tuple(subprotocols)

    def __call__(self, request: Request, **params: Any) -> Response:
        upgrade = request.environ.get(UPGRADE_KEY)
        if upgrade is None:
            # RFC 9110 section 15.5.22: a 426 MUST name the protocol in Upgrade.
            # Connection is hop-by-hop, the server's to send (PEP 3333).
            raise HTTPError(426, "this resource speaks WebSocket only",
                            headers=[("Upgrade", "websocket")])
        websocket = accept(upgrade, self.subprotocols)
        run_handler(self.handler, websocket, params)
        return SwitchedProtocols()


def choose_subprotocol(offered: Iterable[str], supported: Sequence[str]) -> str | None:
    """The first subprotocol the client offered that the app speaks, or None."""
    return next((name for name in offered if name in supported), None)


def accept(upgrade: Any, supported: Sequence[str]) -> Any:
    """Complete the handshake; a refusal that carries a ``status`` (the
    server's handshake error: 400, 426, 503, ...) becomes that HTTPError,
    with its ``headers``, before anything was sent."""
    try:
        chosen = choose_subprotocol(upgrade.offered_subprotocols, supported) if supported else None
        return upgrade.accept(subprotocol=chosen)
    except Exception as refused:
        status = getattr(refused, "status", None)
        if not isinstance(status, int) or isinstance(refused, HTTPError):
            raise
        detail = getattr(refused, "detail", None) or str(refused)
        raise HTTPError(status, detail, getattr(refused, "headers", ())) from refused


def run_handler(handler: WebSocketHandler, websocket: Any, params: dict[str, Any]) -> None:
    """Run the handler on the accepted WebSocket.

    An exception closes the WebSocket with 1011 and propagates to the
    server's error path (logged; no HTTP answer can follow a 101). A
    ConnectionError once the WebSocket is closed means the peer went away:
    the handler ends quietly, as an HTTP exchange does when its client vanishes.
    """
    try:
        handler(websocket, **params)
    except ConnectionError:
        if getattr(websocket, "closed", False):
            return
        _close_after_error(websocket)
        raise
    except HTTPError as error:
        _close_after_error(websocket)
        raise RuntimeError(f"HTTPError {error.status} raised after the WebSocket "
                           "was accepted; no HTTP response can follow a 101") from error
    except Exception:
        _close_after_error(websocket)
        raise


def _close_after_error(websocket: Any) -> None:
    try:
        websocket.close(INTERNAL_ERROR, "internal error")
    except Exception:  # the peer may be gone; the handler's error is the one to report
        pass
