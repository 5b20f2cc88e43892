"""The bundled application: ``/``, ``/echo/<text>``, ``/user-agent``,
``/files/`` (a page for people, JSON for programs), ``/files/<name>`` and the
WebSocket ``/ws/echo``, built by create_app(directory).

Owns the routes and their HTTP answers; the disk work is files.py's and the
page's markup filepage.py's.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from typing import Any
from urllib.parse import quote

from microapp.application import App
from microapp.compression import GzipMiddleware
from microapp.errors import HTTPError
from microapp.filepage import listing_json, page
from microapp.files import FileStore, NameLocks, Received, remove_stale_uploads, writable
from microapp.forms import MULTIPART, FormLimits
from microapp.hosts import check_host
from microapp.origin import refuse_cross_origin
from microapp.parameters import preferred_media_type
from microapp.request import Request, iter_body
from microapp.response import Response

__all__ = ["FileRoutes", "create_app"]

log = logging.getLogger("microapp")

TEXT_PLAIN = "text/plain"
DEFAULT_MAX_UPLOAD_BYTES = 1024 * 1024 * 1024
DIRECTORY_KEY = "wsgiserver.directory"
_CONDITIONAL_HEADERS = ("If-None-Match", "If-Modified-Since", "If-Range", "Range")
HTML, JSON = "text/html", "application/json"


def create_app(directory: str | None = None, *,
               max_upload_bytes: int = DEFAULT_MAX_UPLOAD_BYTES, compress: bool = True,
               allowed_hosts: Iterable[str] | None = None) -> App:
    """The bundled app. Files live in ``directory``, else in the directory the
    server names in ``environ["wsgiserver.directory"]``; with neither, /files
    answers 404. ``compress``: gzip for clients that accept it: ``/echo/``
    always (the HTTP server challenge expects it even for three bytes), other
    responses from GzipMiddleware's minimum size (500 bytes) when it shrinks them.
    Browsers may change files only from the app's own pages (origin.py), and
    the files routes answer only to a Host that names the server (hosts.py:
    ``allowed_hosts``, else the server's ``--allowed-hosts``, else loopback
    names for a server on loopback), 421 otherwise, against DNS rebinding.
    """
    app = App(form_limits=FormLimits(max_total_bytes=max_upload_bytes))
    files = FileRoutes(directory, max_upload_bytes,
                       tuple(allowed_hosts) if allowed_hosts is not None else None)
    app.before_request(refuse_cross_origin)
    app.get("/")(index)
    app.get("/echo/<text>")(echo)
    app.get("/user-agent")(user_agent)
    app.websocket("/ws/echo")(echo_messages)
    app.get("/files")(to_files_page)
    app.get("/files/")(files.listing)
    app.post("/files/")(files.upload_form)
    app.get("/files/<path:name>")(files.read)
    app.route("/files/<path:name>", methods=["POST", "PUT"])(files.write)
    app.delete("/files/<path:name>")(files.delete)
    if compress:
        app.add_middleware(GzipMiddleware, always=_is_echo)
    # Uploads to /files may be this large: a server that reads bodies before
    # the app runs (wsgiserver's default is 100 MiB) takes the hint.
    app.max_request_body_bytes = max_upload_bytes
    return app


PAGE_SIZE, MAX_PAGE_SIZE = 1000, 5000


def _page_size(text: str | None) -> int:
    """``?limit=``: a whole number from 1 to MAX_PAGE_SIZE; 400 otherwise."""
    if text is None:
        return PAGE_SIZE
    if not text.isascii() or not text.isdigit() or not 1 <= int(text) <= MAX_PAGE_SIZE:
        raise HTTPError(400, f"limit must be a whole number from 1 to {MAX_PAGE_SIZE}")
    return int(text)


def _warn_if_read_only(root: str) -> None:
    """Said once per directory (at start for create_app(directory)): every
    upload and delete would fail."""
    if not writable(root):
        log.warning("%s is not writable: uploads and deletes will fail (403)", root)


def _is_echo(environ: dict[str, Any]) -> bool:
    """``/echo/<text>``, whose answer the challenge expects gzip-coded whatever its size."""
    return str(environ.get("PATH_INFO", "")).startswith("/echo/")


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


def to_files_page(request: Request) -> Response:
    """GET /files: the page lives at /files/ (308, so relative links work)."""
    return Response(status=308, headers=[("Location", request.script_name + "/files/")])


class FileRoutes:
    """/files/ and /files/<name>: listing, uploads (raw and form), reads and
    deletion, with the state they share."""

    def __init__(self, directory: str | None, max_upload_bytes: int,
                 allowed_hosts: tuple[str, ...] | None = None) -> None:
        self.directory = directory
        self.max_upload_bytes = max_upload_bytes
        self.allowed_hosts = allowed_hosts
        self.locks = NameLocks()
        self._swept: set[str] = set()  # directories checked and cleared of stale uploads
        if directory is not None and os.path.isdir(directory):
            self._prepare(directory)  # at start: a read-only directory is said now

    def store_for(self, request: Request) -> FileStore:
        """The store for this request's directory; 421 for a Host that does
        not name the server; 404 when no directory is configured."""
        check_host(request.environ, self.allowed_hosts)
        root = self.directory or request.environ.get(DIRECTORY_KEY)
        if not root:
            raise HTTPError(404, "no directory is configured: start the server with "
                                 "--directory DIR (or create_app(directory))")
        if not os.path.isdir(root):
            raise HTTPError(404, "the configured directory does not exist")
        if root not in self._swept:
            self._prepare(root)
        return FileStore(root, self.locks)

    def _prepare(self, root: str) -> None:
        """Once per directory: warn if it cannot be written; remove the
        temporary upload files a killed process left."""
        self._swept.add(root)
        _warn_if_read_only(root)
        remove_stale_uploads(root)

    def read(self, request: Request, name: str) -> Response:
        headers = {field: request.headers.get(field) for field in _CONDITIONAL_HEADERS}
        return self.store_for(request).serve(name, request.method, headers)

    def listing(self, request: Request) -> Response:
        """GET /files/: the page, or JSON when Accept prefers it (Vary: Accept).
        Paged: ``?after=NAME`` (the cursor) and ``?limit=N`` (1 to 5,000,
        1,000 by default), so one request costs a bounded amount however
        many files the directory holds."""
        args = request.args
        after = args.get("after") or None
        limit = _page_size(args.get("limit"))
        listing = self.store_for(request).listing(after, limit)
        base = request.script_name + "/files/"
        if preferred_media_type(request.headers.get("Accept"), [HTML, JSON]) == JSON:
            response = Response.json(listing_json(listing, base),
                                     headers=[("Cache-Control", "no-store")])
        else:
            response = page(listing, base)
        response.add_header("Vary", "Accept")
        return response

    def delete(self, request: Request, name: str) -> Response:
        """DELETE /files/<name>: 204, or 404 when there is no such file."""
        self.store_for(request).delete(name)
        return Response(status=204)

    def write(self, request: Request, name: str) -> Response:
        """POST creates or replaces (201); PUT answers 201 or 204, and with
        ``If-None-Match: *`` refuses to replace (412). A multipart/form-data
        POST stores the form's file, not the body; PUT always stores the body."""
        if request.method == "POST" and request.content_type == MULTIPART:
            return self.upload_form(request, name)
        store = self.store_for(request)
        body = _upload_body(request, self.max_upload_bytes)
        create_only = request.method == "PUT" and _wants_new(request)
        saved = store.save(name, body, create_only=create_only)
        if request.method == "PUT" and not saved.created:
            return Response(status=204)
        location = request.script_name + "/files/" + quote(name)
        return Response(b"", 201, [("Location", location)], content_type=TEXT_PLAIN)


    def upload_form(self, request: Request, name: str | None = None) -> Response:
        """POST a multipart/form-data form to /files/ (each file under its own
        name) or to /files/<name> (one file, under that name). The files are
        streamed into the store and made visible together, only once the
        whole form has arrived intact. A browser's plain form post is sent
        back to the page (303); other clients get 201 and the stored files."""
        store = self.store_for(request)
        _check_upload_length(request, self.max_upload_bytes)
        received = _receive_files(request, store, name)
        try:
            for upload in received:
                store.commit(upload)
        finally:
            for upload in received:
                store.discard(upload)
        base = request.script_name + "/files/"
        if preferred_media_type(request.headers.get("Accept"), [JSON, HTML]) == HTML:
            return Response(status=303, headers=[("Location", base)])
        urls = [base + quote(upload.name) for upload in received]
        stored = [{"name": upload.name, "size": upload.size, "url": url}
                  for upload, url in zip(received, urls, strict=True)]
        return Response.json({"files": stored}, 201, [("Location", urls[0])])


def _receive_files(request: Request, store: FileStore, name: str | None) -> list[Received]:
    """Every file part of the form, received but not committed; 400 when
    there is none, or more than one for a named target. Text fields are
    read and ignored; a file input left empty (no file name) is skipped."""
    if request.content_type != MULTIPART:
        raise HTTPError(415, "POST /files/ takes a multipart/form-data form; "
                             "send a raw body to /files/<name>")
    received: list[Received] = []
    try:
        for part in request.stream_parts():
            if not part.filename:
                continue
            if name is not None and received:
                raise HTTPError(400, "a form posted to /files/<name> holds one file; "
                                     "post several to /files/")
            received.append(store.receive(name or part.filename, part.chunks()))
    except BaseException:
        for upload in received:
            store.discard(upload)
        raise
    if not received:
        raise HTTPError(400, "the form has no file")
    return received


def _check_upload_length(request: Request, limit: int) -> None:
    """411 when the body's length is unknowable, 413 when Content-Length
    already says it is too big (before any byte is read)."""
    length = request.content_length
    if length is None and not request.environ.get("wsgi.input_terminated"):
        raise HTTPError(411, "Content-Length or chunked transfer coding required")
    if length is not None and length > limit:
        raise HTTPError(413, f"uploads are limited to {limit} bytes")


def _upload_body(request: Request, limit: int) -> Any:
    """The raw upload body's chunks, after _check_upload_length."""
    _check_upload_length(request, limit)
    return iter_body(request.environ, limit)


def _wants_new(request: Request) -> bool:
    """``If-None-Match: *`` on PUT: create, never replace (RFC 9110 section 13.1.2)."""
    return request.headers.get("If-None-Match", "").strip() == "*"
