"""GzipMiddleware: gzip content-coding around any WSGI application.

Owns Accept-Encoding negotiation (RFC 9110 section 12.5.3) and the choice of
which responses may be compressed. Plain WSGI in and out: it knows nothing
of microapp's App, so it wraps Flask or any other WSGI app as well.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from microapp.headers import (
    Environ,
    HeaderList,
    StartResponse,
    WSGIApp,
    allows_body,
    get_header,
    status_code,
    without_header,
)

__all__ = ["GzipMiddleware", "accepts_gzip", "gzip_weights"]

# RFC 9110 section 12.5.3: Accept-Encoding = #( codings [ weight ] ), with
# weight = OWS ";" OWS "q=" qvalue (section 12.4.2; "q" is case-insensitive).
_CODING = re.compile(
    r"(?P<coding>[!#$%&'*+\-.^_`|~0-9A-Za-z]+)"
    r"(?:[ \t]*;[ \t]*[qQ]=(?P<q>0(?:\.[0-9]{0,3})?|1(?:\.0{0,3})?))?"
)
# Media types whose bytes are already compressed: gzip would only cost CPU.
_COMPRESSED_TYPES = frozenset({
    "application/zip", "application/gzip", "application/x-gzip", "application/x-bzip2",
    "application/x-xz", "application/zstd", "application/x-7z-compressed",
    "application/x-rar-compressed", "application/vnd.rar", "application/font-woff",
    "application/x-font-woff", "application/pdf",
})
_COMPRESSED_FAMILIES = ("image/", "audio/", "video/", "font/")
_TEXT_IMAGES = frozenset({"image/svg+xml", "image/x-icon", "image/bmp"})
GZIP_WBITS = 31  # zlib: a gzip wrapper with mtime 0, so the output is deterministic


def gzip_weights(header: str | None) -> dict[str, float] | None:
    """The q-value of each coding listed in Accept-Encoding (lower-cased);
    None when the field is absent or invalid (which both mean identity)."""
    if header is None:
        return None
    weights: dict[str, float] = {}
    for element in header.split(","):
        element = element.strip(" \t")
        if not element:  # RFC 9110 section 5.6.1: empty list elements are allowed
            continue
        found = _CODING.fullmatch(element)
        if found is None:
            return None
        weights.setdefault(found["coding"].lower(), float(found["q"] or 1))
    return weights


def accepts_gzip(header: str | None) -> bool:
    """Whether a request with this Accept-Encoding may get a gzip response.

    ``x-gzip`` is an alias of gzip (RFC 9110 section 8.4.1.3); ``*`` covers
    codings not listed; q=0 means "not acceptable"; an explicit identity
    preferred over gzip is honoured.
    """
    weights = gzip_weights(header)
    if weights is None:
        return False
    named = [weights[coding] for coding in ("gzip", "x-gzip") if coding in weights]
    quality = max(named) if named else weights.get("*", 0.0)
    return quality > 0 and quality >= weights.get("identity", 0.0)


def _media_type(headers: HeaderList) -> str:
    return (get_header(headers, "Content-Type") or "").split(";", 1)[0].strip().lower()


def _already_compressed(media_type: str) -> bool:
    if media_type in _TEXT_IMAGES:
        return False
    return media_type in _COMPRESSED_TYPES or media_type.startswith(_COMPRESSED_FAMILIES)


def varies_by_encoding(status: int, headers: HeaderList) -> bool:
    """Whether this response (or the 200 it stands for, for a 206 or 304) has
    a gzip variant, and so must say ``Vary: Accept-Encoding``."""
    cache_control = (get_header(headers, "Cache-Control") or "").lower()
    return not (
        100 <= status < 200 or status == 204
        or get_header(headers, "Content-Encoding") is not None
        or "no-transform" in re.split(r"[\s,]+", cache_control)
        or _already_compressed(_media_type(headers))
    )


def may_compress(status: int, headers: HeaderList) -> bool:
    """Whether this response's content itself may be gzip-coded. Never a range:
    Content-Range counts bytes of the identity coding (RFC 9110 section 14.4)."""
    return (varies_by_encoding(status, headers) and allows_body(status) and status != 206
            and get_header(headers, "Content-Range") is None)


def _with_vary(headers: HeaderList) -> HeaderList:
    vary = get_header(headers, "Vary")
    if vary is None:
        return headers + [("Vary", "Accept-Encoding")]
    tokens = {token.strip().lower() for token in vary.split(",")}
    if "*" in tokens or "accept-encoding" in tokens:
        return headers
    return without_header(headers, "Vary") + [("Vary", f"{vary}, Accept-Encoding")]


def _weakened(headers: HeaderList) -> HeaderList:
    """RFC 9110 section 8.8.1: the coded bytes differ, so a strong ETag may
    no longer be claimed; the weak one still validates (If-None-Match)."""
    return [(name, "W/" + value.strip() if name.lower() == "etag" and value.strip().startswith('"')
             else value) for name, value in headers]


class _Body:
    """The iterable handed to the server; close() also closes the app's result."""

    def __init__(self, chunks: Iterable[bytes], result: Iterable[bytes]) -> None:
        self._chunks, self._result = chunks, result

    def __iter__(self) -> Iterator[bytes]:
        return iter(self._chunks)

    def close(self) -> None:
        try:
            getattr(self._chunks, "close", lambda: None)()
        finally:
            getattr(self._result, "close", lambda: None)()


class GzipMiddleware:
    """Wrap ``app`` so clients that accept gzip get gzip-coded responses.

    ``minimum_size``: bodies shorter than this many bytes are sent as they
    are: gzip's 18 bytes of framing and the client's work buy little there.
    A body of unknown length is judged by its first chunks, read until this
    many bytes are held (a ``write()`` app: by its first write). A body known
    whole is sent as it is when gzip would not make it smaller. Empty bodies
    are never compressed. ``compresslevel``: zlib's 1-9.

    ``always``: requests whose every non-empty response is gzip-coded for a
    client that accepts it, whatever its size and even when gzip makes it
    larger: for a contract that promises the coding (the HTTP server
    challenge's ``/echo/``), where the size rules above would break it.
    """

    def __init__(self, app: WSGIApp, minimum_size: int = 500,
                 compresslevel: int = 6,
                 always: Callable[[Environ], bool] | None = None) -> None:
        self.app = app
        self.minimum_size = minimum_size
        self.compresslevel = compresslevel
        self.always = always

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        exchange = _Exchange(self, environ, start_response)
        result = self.app(environ, exchange.start_response)
        try:
            return exchange.finish(result)
        except BaseException:
            getattr(result, "close", lambda: None)()
            raise


class _Exchange:
    """One request through the middleware: holds the app's head until the
    body shows whether and how to compress, then sends it to the server."""

    def __init__(self, middleware: GzipMiddleware, environ: Environ,
                 start_response: StartResponse) -> None:
        self.middleware = middleware
        self.server_start_response = start_response
        self.is_head = environ.get("REQUEST_METHOD") == "HEAD"
        self.accepted = accepts_gzip(environ.get("HTTP_ACCEPT_ENCODING"))
        # Every non-empty body, whatever its size: the request's contract says so.
        always = middleware.always
        self.forced = self.accepted and always is not None and always(environ)
        self.status: str | None = None
        self.headers: HeaderList = []
        self.server_write: Callable[[bytes], Any] | None = None
        self.compressor: Any = None

    def start_response(self, status: str, headers: HeaderList,
                       exc_info: Any = None) -> Callable[[bytes], None]:
        """The app's start_response. Before the head is sent a later call (with
        exc_info, PEP 3333) replaces it; after, the server's re-raises."""
        if self.server_write is not None:
            return self.server_start_response(status, headers, exc_info)
        self.status, self.headers = status, list(headers)
        return self.write

    def write(self, data: bytes) -> None:
        """The app's write(): settles the head as streaming, then passes data on."""
        if self.server_write is None:
            # PEP 3333: write() must pass its bytes on before it returns, so
            # nothing can be held back to wait for more: the first write (or
            # the declared Content-Length) decides.
            declared = self._declared_length()
            self._send_head(self._plan(len(data) if declared is None else declared))
        if self.is_head or self.server_write is None:
            return
        self.server_write(self._encode(data) if self.compressor else data)

    def finish(self, result: Iterable[bytes]) -> Iterable[bytes]:
        """The iterable for the server, once the app has returned ``result``."""
        if self.server_write is not None:  # the app used write(); the head is out
            return self._pass_through(iter(result), [], result)
        chunks, complete = iter(result), False
        buffered: list[bytes] = []
        if self.status is None:  # a generator app calls start_response when first iterated
            buffered, complete = self._gather(chunks, result, 1, buffered)
        if self.status is None:
            if complete and not any(buffered):
                # No head and no body: the app switched protocols (a WebSocket
                # after 101) or forgot start_response. Either way there is
                # nothing to encode; the server knows which it was.
                return result
            raise RuntimeError("the application did not call start_response")
        if not (self.accepted and may_compress(status_code(self.status), self.headers)):
            return self._pass_through(chunks, buffered, result)
        if not complete:
            goal = 1 if self.forced else max(self.middleware.minimum_size, 1)
            buffered, complete = self._gather(chunks, result, goal, buffered)
        if not complete:
            return self._pass_through(chunks, buffered, result)
        getattr(result, "close", lambda: None)()
        return self._whole(b"".join(buffered))

    @staticmethod
    def _gather(chunks: Iterator[bytes], result: Iterable[bytes], goal: int,
                buffered: list[bytes]) -> tuple[list[bytes], bool]:
        """Read chunks until ``goal`` bytes are held (False) or the body ends
        (True). A list or tuple is a whole body already."""
        if isinstance(result, (list, tuple)):
            return buffered + list(chunks), True
        held = sum(map(len, buffered))
        while held < goal:
            chunk = next(chunks, None)
            if chunk is None:
                return buffered, True
            buffered.append(chunk)
            held += len(chunk)
        return buffered, False

    def _plan(self, length: int | None) -> HeaderList:
        """The head to send for a body of ``length`` bytes (None: unknown, so
        trust Content-Length if any); sets up the compressor when compressing."""
        headers = self._identity_head()
        if length is None:
            length = self._declared_length()
        minimum = 1 if self.forced else self.middleware.minimum_size
        too_small = length is not None and (length == 0 or length < minimum)
        if too_small or not self.accepted or not may_compress(self._status(), headers):
            return headers
        self.compressor = zlib.compressobj(self.middleware.compresslevel, zlib.DEFLATED, GZIP_WBITS)
        headers = without_header(_weakened(headers), "Content-Length")
        return headers + [("Content-Encoding", "gzip")]

    def _identity_head(self) -> HeaderList:
        """The app's head as sent without gzip. ``Vary`` goes on every response
        that has a gzip variant, whatever this one's size or client: a 304 or
        a HEAD knows no body, yet must say what its 200 says, and caches must
        see one Vary per resource (RFC 9110 section 12.5.5)."""
        status, headers = self._status(), self.headers
        if not varies_by_encoding(status, headers):
            return headers
        headers = _with_vary(headers)
        if status == 304 and self.accepted:  # the 200 it confirms may carry the weakened tag
            return _weakened(headers)
        return headers

    def _status(self) -> int:
        return status_code(self.status or "500")

    def _declared_length(self) -> int | None:
        declared = get_header(self.headers, "Content-Length")
        return int(declared) if declared is not None and declared.isdigit() else None

    def _send_head(self, headers: HeaderList) -> None:
        self.server_write = self.server_start_response(self.status, headers)

    def _encode(self, chunk: bytes) -> bytes:
        """One app chunk, compressed and flushed so the client sees it now."""
        if not chunk:
            return b""
        return self.compressor.compress(chunk) + self.compressor.flush(zlib.Z_SYNC_FLUSH)

    def _pass_through(self, chunks: Iterator[bytes], buffered: list[bytes],
                      result: Iterable[bytes]) -> Iterable[bytes]:
        """Send the head if still held, then the rest of the body: compressed
        one flush per app chunk when a compressor was chosen, else as it is.
        HEAD gets the GET head and no body. The app's own iterable goes back
        untouched when possible, so a ``wsgi.file_wrapper`` reaches the server."""
        if self.server_write is None:
            self._send_head(self._plan(None))
        if self.is_head:
            getattr(result, "close", lambda: None)()
            return []
        if self.compressor is not None:
            return _Body(self._compressed(_chain(buffered, chunks)), result)
        if not buffered:
            return result
        return _Body(_chain(buffered, chunks), result)

    def _whole(self, body: bytes) -> list[bytes]:
        """A body known in full: compressed with an exact Content-Length when
        that makes it smaller, else as it is. A HEAD whose app left the body
        out is judged by its Content-Length, as a stream would be."""
        if self.is_head and not body:
            self._send_head(self._plan(None))
            return []
        headers = self._plan(len(body))
        if self.compressor is not None:
            compressed = self.compressor.compress(body) + self.compressor.flush()
            if len(compressed) < len(body) or self.forced:
                self._send_head(headers + [("Content-Length", str(len(compressed)))])
                return [] if self.is_head else [compressed]
            # Already dense (random or packed bytes): gzip only adds its framing.
            self.compressor, headers = None, self._identity_head()
        self._send_head(headers)
        return [] if self.is_head else [body]

    def _compressed(self, chunks: Iterable[bytes]) -> Iterator[bytes]:
        for chunk in chunks:
            yield self._encode(chunk)
        yield self.compressor.flush()


def _chain(first: list[bytes], rest: Iterator[bytes]) -> Iterator[bytes]:
    yield from first
    yield from rest
