"""The bundled application: ``/``, ``/echo/<text>``, ``/user-agent``,
``/files/<name>`` and the WebSocket ``/ws/echo``, built by create_app(directory).

Owns the routes and their HTTP answers; the disk work is files.py's.
"""

from __future__ import annotations

import os
from typing import Any
from urllib.parse import quote

from microapp.application import App
from microapp.compression import GzipMiddleware
from microapp.errors import HTTPError
from microapp.files import FileStore, NameLocks
from microapp.request import Request, iter_body
from microapp.response import Response

__all__ = ["FileRoutes", "create_app"]

TEXT_PLAIN = "text/plain"
DEFAULT_MAX_UPLOAD_BYTES = 1024 * 1024 * 1024
DIRECTORY_KEY = "wsgiserver.directory"
_CONDITIONAL_HEADERS = ("If-None-Match", "If-Modified-Since", "If-Range", "Range")


def create_app(directory: str | None = None, *,
               max_upload_bytes: int = DEFAULT_MAX_UPLOAD_BYTES, compress: bool = True) -> App:
    """The bundled app. Files live in ``directory``, else in the directory the
    server names in ``environ["wsgiserver.directory"]``; with neither, /files
    answers 404. ``compress``: gzip every compressible response, however small.
    """
    app = App()
    files = FileRoutes(directory, max_upload_bytes)
    app.get("/")(index)
    app.get("/echo/<text>")(echo)
    app.get("/user-agent")(user_agent)
    app.websocket("/ws/echo")(echo_messages)
    app.get("/files/<path:name>")(files.read)
    app.route("/files/<path:name>", methods=["POST", "PUT"])(files.write)
    if compress:
        app.add_middleware(GzipMiddleware, minimum_size=0)
    return app


def index(request: Request) -> Response:
    """GET /: 200 with an empty body."""
    return Response(b"", content_type=TEXT_PLAIN)


def echo(request: Request, text: str) -> Response:
    """GET /echo/<text>: the text back, as text/plain."""
    return Response(text.encode("utf-8"), content_type=TEXT_PLAIN)


def user_agent(request: Request) -> Response:
    """GET /user-agent: the User-Agent field back, as text/plain."""
    return Response(request.headers.get("User-Agent", "").encode("latin-1"),
                    content_type=TEXT_PLAIN)


def echo_messages(websocket: Any) -> None:
    """WebSocket /ws/echo: every message back, text as text, binary as binary."""
    for message in websocket:
        websocket.send(message)


class FileRoutes:
    """GET/HEAD and POST/PUT of /files/<name>, with the state they share."""

    def __init__(self, directory: str | None, max_upload_bytes: int) -> None:
        self.directory = directory
        self.max_upload_bytes = max_upload_bytes
        self.locks = NameLocks()

    def store_for(self, request: Request) -> FileStore:
        """The store for this request's directory; 404 when none is configured."""
        root = self.directory or request.environ.get(DIRECTORY_KEY)
        if not root or not os.path.isdir(root):
            raise HTTPError(404)
        return FileStore(root, self.locks)

    def read(self, request: Request, name: str) -> Response:
        headers = {field: request.headers.get(field) for field in _CONDITIONAL_HEADERS}
        return self.store_for(request).serve(name, request.method, headers)

    def write(self, request: Request, name: str) -> Response:
        """POST creates or replaces (201); PUT answers 201 or 204, and with
        ``If-None-Match: *`` refuses to replace (412)."""
        store = self.store_for(request)
        body = _upload_body(request, self.max_upload_bytes)
        create_only = request.method == "PUT" and _wants_new(request)
        saved = store.save(name, body, create_only=create_only)
        if request.method == "PUT" and not saved.created:
            return Response(status=204)
        location = request.script_name + "/files/" + quote(name)
        return Response(b"", 201, [("Location", location)], content_type=TEXT_PLAIN)


def _upload_body(request: Request, limit: int) -> Any:
    """The upload body's chunks; 411 when its length is unknowable, 413 when
    Content-Length already says it is too big (before any byte is read)."""
    environ = request.environ
    length = request.content_length
    if length is None and not environ.get("wsgi.input_terminated"):
        raise HTTPError(411, "Content-Length or chunked transfer coding required")
    if length is not None and length > limit:
        raise HTTPError(413, f"uploads are limited to {limit} bytes")
    return iter_body(environ, limit)


def _wants_new(request: Request) -> bool:
    """``If-None-Match: *`` on PUT: create, never replace (RFC 9110 section 13.1.2)."""
    return request.headers.get("If-None-Match", "").strip() == "*"
