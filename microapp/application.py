"""App: the WSGI callable that routes a request to a handler and answers.

Owns the request lifecycle (before hooks, routing, handler, error handlers,
after hooks, HEAD, closing the request's uploads) and the middleware stack. Exceptions other than
HTTPError propagate untouched to the server's single 500 path.

WebSocket routes (websocket.py) are GET routes in the same table: before
hooks run first and may refuse the upgrade with an HTTP answer; after
hooks and error handlers see every HTTP answer (426, a refused handshake,
404, 405), but nothing once the server has sent 101.

(Named ``application`` rather than ``app`` so the module never shadows
``microapp.app``, the bundled application object.)
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

from microapp.errors import HTTPError
from microapp.forms import DEFAULT_FORM_LIMITS, FormLimits
from microapp.headers import Environ, StartResponse, WSGIApp
from microapp.request import DEFAULT_MAX_BODY_BYTES, Request
from microapp.response import Response, make_response
from microapp.routing import Handler, Router
from microapp.websocket import SwitchedProtocols, WebSocketHandler, WebSocketRoute

__all__ = ["App"]

BeforeHook = Callable[[Request], Any]
AfterHook = Callable[[Request, Response], Response]
ErrorHandler = Callable[[Request, HTTPError], Any]


class App:
    """A WSGI application built from decorator routes::

        app = App()

        @app.get("/hello/<name>")
        def hello(request, name):
            return f"Hello, {name}"

    Handlers receive the Request and the route parameters, and return a
    Response, str, bytes or dict, or raise HTTPError. ``max_body_bytes``
    bounds ``request.body``; ``form_limits`` bounds ``request.form``,
    ``request.files`` and ``request.stream_parts()``.
    """

    def __init__(self, *, max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
                 form_limits: FormLimits = DEFAULT_FORM_LIMITS) -> None:
        self.router = Router()
        # What a server that receives bodies before the app runs should
        # accept for it (wsgiserver reads it); None: the server's own limit.
        self.max_request_body_bytes: int | None = None
        self.max_body_bytes = max_body_bytes
        self.form_limits = form_limits
        self._before: list[BeforeHook] = []
        self._after: list[AfterHook] = []
        self._error_handlers: dict[int, ErrorHandler] = {}
        self._wsgi: WSGIApp = self._dispatch

    # Registration: all of it happens before serving, never per request.

    def route(self, pattern: str,
              methods: Sequence[str] = ("GET",)) -> Callable[[Handler], Handler]:
        """Decorator: serve ``methods`` on ``pattern`` with the decorated handler."""
        def register(handler: Handler) -> Handler:
            self.router.add(pattern, methods, handler)
            return handler
        return register

    def get(self, pattern: str) -> Callable[[Handler], Handler]:
        return self.route(pattern, ["GET"])

    def post(self, pattern: str) -> Callable[[Handler], Handler]:
        return self.route(pattern, ["POST"])

    def put(self, pattern: str) -> Callable[[Handler], Handler]:
        return self.route(pattern, ["PUT"])

    def patch(self, pattern: str) -> Callable[[Handler], Handler]:
        return self.route(pattern, ["PATCH"])

    def delete(self, pattern: str) -> Callable[[Handler], Handler]:
        return self.route(pattern, ["DELETE"])

    def websocket(self, pattern: str, *, subprotocols: Sequence[str] = ()
                  ) -> Callable[[WebSocketHandler], WebSocketHandler]:
        """Decorator: ``handler(websocket, **params)`` serves WebSockets on ``pattern``.

        It runs once the server has accepted the upgrade (101), with the
        server's WebSocket (receive, send, close, iteration); the connection
        is closed when it returns, with 1011 if it raised. A request without
        the server's upgrade offer gets 426. ``subprotocols``: the ones the
        handler speaks, in no particular order; the client's preference
        picks among them. The pattern takes GET, so a GET route on the same
        pattern is refused.
        """
        def register(handler: WebSocketHandler) -> WebSocketHandler:
            self.router.add(pattern, ["GET"], WebSocketRoute(handler, subprotocols))
            return handler
        return register

    def before_request(self, hook: BeforeHook) -> BeforeHook:
        """Decorator: ``hook(request)`` runs before routing; a non-None return
        value is the response and skips the handler."""
        self._before.append(hook)
        return hook

    def after_request(self, hook: AfterHook) -> AfterHook:
        """Decorator: ``hook(request, response)`` returns the response to send;
        it runs for every response, error responses included, but not after
        a WebSocket upgrade (the 101 has gone out)."""
        self._after.append(hook)
        return hook

    def error_handler(self, status: int) -> Callable[[ErrorHandler], ErrorHandler]:
        """Decorator: ``handler(request, error)`` answers HTTPErrors with ``status``."""
        def register(handler: ErrorHandler) -> ErrorHandler:
            self._error_handlers[status] = handler
            return handler
        return register

    def add_middleware(self, middleware: Callable[..., WSGIApp], *args: Any, **kwargs: Any) -> None:
        """Wrap the app in plain WSGI middleware: ``middleware(app, *args, **kwargs)``.
        The last one added is the outermost."""
        self._wsgi = middleware(self._wsgi, *args, **kwargs)

    # Serving.

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        return self._wsgi(environ, start_response)

    def _dispatch(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        request = Request(environ, max_body_bytes=self.max_body_bytes,
                          form_limits=self.form_limits)
        try:
            response = self.handle(request)
            if request.method == "HEAD":
                response.drop_body()  # RFC 9110 section 9.3.2: the GET head, no content
            result = response(environ, start_response)
        except BaseException:
            request.close()
            raise
        if not request.holds_files:
            return result
        # The body may still read an upload (a handler may send one back):
        # release them when the server closes the response (PEP 3333).
        return _ClosingBody(result, request.close)

    def handle(self, request: Request) -> Response:
        """The Response for ``request``, with the after-request hooks applied."""
        try:
            response = self._respond(request)
        except HTTPError as error:
            response = self._error_response(request, error)
        if isinstance(response, SwitchedProtocols):
            return response
        for hook in self._after:
            response = hook(request, response)
        return response

    def _respond(self, request: Request) -> Response:
        for hook in self._before:
            early = hook(request)
            if early is not None:
                return make_response(early)
        found = self.router.match(request.method, request.path)
        if found.handler is None:  # an OPTIONS no handler claims
            return Response(status=204, headers=[("Allow", found.allow)])
        request.params = found.params
        return make_response(found.handler(request, **found.params))

    def _error_response(self, request: Request, error: HTTPError) -> Response:
        """The error handler's answer for ``error`` (a bare str, bytes or dict keeps
        the error's status and headers), or a text/plain response of its detail."""
        handler = self._error_handlers.get(error.status)
        if handler is not None:
            try:
                answer = handler(request, error)
            except HTTPError as raised:
                error = raised
            else:
                if isinstance(answer, Response):
                    return answer
                return Response(answer, error.status, error.headers)
        return Response(error.detail, error.status, error.headers)


class _ClosingBody:
    """A response iterable whose close() also runs ``release``."""

    def __init__(self, result: Iterable[bytes], release: Callable[[], None]) -> None:
        self._result, self._release = result, release

    def __iter__(self) -> Iterator[bytes]:
        return iter(self._result)

    def close(self) -> None:
        try:
            getattr(self._result, "close", lambda: None)()
        finally:
            self._release()
