"""The PEP 3333 adapter: request event + body stream -> environ -> app -> response.

Owns the environ, ``start_response``, ``write()``, ``wsgi.input``,
``wsgi.file_wrapper``, the call to the result's ``close()`` and the one 500
path for application errors. Knows no sockets and no framing: the response
goes to a ResponseSink (the connection, which frames it); the body arrives
whole, as a stream to read (memory or a spool file).
"""

from __future__ import annotations

import io
import logging
import os
import re
import stat
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from types import TracebackType
from typing import IO, Any, Protocol
from urllib.parse import unquote_to_bytes

from .errors import ClientDisconnected, ResponseError
from .protocol.events import FRAMING_CHUNKED, FRAMING_LENGTH, Request
from .protocol.grammar import token_text

__all__ = [
    "FileWrapper",
    "EnvironBuilder",
    "ResponseSink",
    "WSGIApp",
    "run_application",
]

log = logging.getLogger("wsgiserver")

Environ = dict[str, Any]
ExcInfo = tuple[type[BaseException], BaseException, TracebackType | None]
StartResponse = Callable[..., Callable[[bytes], None]]
WSGIApp = Callable[[Environ, StartResponse], Iterable[bytes]]
# A header value may hold visible latin-1, SP and HTAB; CR, LF, NUL and the
# other controls would let an application split the response (RFC 9110 5.5).
_BAD_VALUE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]|[^\x00-\xff]")
_STATUS = re.compile(r"[2-5][0-9][0-9] [\t\x20-\x7e\x80-\xff]*")


# Apache's mod_http2 and nginx say HTTP/2.0 too: applications that parse
# "HTTP/x.y" keep working.
_PROTOCOLS = {(1, 1): "HTTP/1.1", (1, 0): "HTTP/1.0", (2, 0): "HTTP/2.0"}
_UNKNOWN = "?"  # a field name not yet in the key cache (no key is "?")


def _stream_length(body: IO[bytes]) -> int | None:
    """The length of a body stream received whole, left at its start."""
    try:
        end = body.seek(0, io.SEEK_END)
        body.seek(0)
    except (AttributeError, OSError, ValueError):
        return None
    return end


class FileWrapper:
    """``wsgi.file_wrapper``: a file the server may send with sendfile."""

    def __init__(self, filelike: Any, blksize: int = 64 * 1024) -> None:
        self.filelike = filelike
        self.blksize = blksize
        if hasattr(filelike, "close"):
            self.close = filelike.close

    def __iter__(self) -> Iterator[bytes]:
        read = self.filelike.read
        while data := read(self.blksize):
            yield data


class EnvironBuilder:
    """Builds PEP 3333 environs for one listening socket."""

    def __init__(
        self,
        *,
        server_name: str,
        server_port: int,
        url_scheme: str = "http",
        multithread: bool = True,
        multiprocess: bool = False,
        directory: str | None = None,
        allowed_hosts: tuple[str, ...] = (),
    ) -> None:
        self._base = {
            "SCRIPT_NAME": "",
            "SERVER_NAME": server_name,
            "SERVER_PORT": str(server_port),
            "wsgi.version": (1, 0),
            "wsgi.url_scheme": url_scheme,
            "wsgi.errors": sys.stderr,
            "wsgi.multithread": multithread,
            "wsgi.multiprocess": multiprocess,
            "wsgi.run_once": False,
            "wsgi.file_wrapper": FileWrapper,
            "wsgi.input_terminated": True,
        }
        if directory is not None:
            self._base["wsgiserver.directory"] = directory
        if allowed_hosts:
            self._base["wsgiserver.allowed_hosts"] = allowed_hosts
        self._keys: dict[bytes, str | None] = {}

    def _key(self, name: bytes) -> str | None:
        """The environ key of a field name not seen before (None: dropped)."""
        # Names with "_" are dropped: "X_Foo" and "X-Foo" would both
        # become HTTP_X_FOO, letting one stand in for the other.
        key = None if b"_" in name else "HTTP_" + name.decode("ascii").upper().replace("-", "_")
        if len(self._keys) < 1024:
            self._keys[name] = key
        return key

    def build(self, request: Request, body: IO[bytes], remote: tuple[str, int]) -> Environ:
        """The environ for ``request`` from a peer at ``remote`` (address, port)."""
        environ = self._base.copy()
        path = request.path
        environ["REQUEST_METHOD"] = request.method.decode("ascii")
        # find: half the cost of ``in`` on bytes, which first tries the needle as an int
        escaped = path.find(b"%") >= 0
        environ["PATH_INFO"] = (unquote_to_bytes(path) if escaped else path).decode("latin-1")
        environ["QUERY_STRING"] = request.query.decode("latin-1")
        environ["REQUEST_URI"] = environ["RAW_URI"] = request.target.decode("latin-1")
        environ["SERVER_PROTOCOL"] = _PROTOCOLS.get(request.http_version, "HTTP/1.1")
        environ["REMOTE_ADDR"] = remote[0]
        environ["REMOTE_PORT"] = str(remote[1]) if remote[0] else ""
        environ["wsgi.input"] = body
        # wsgi.url_scheme is the listening socket's (or a trusted proxy's,
        # later): a client's own word for it (an absolute-form target, an
        # HTTP/2 :scheme) would let it pose as https.
        self._add_fields(environ, request)
        if request.framing is FRAMING_CHUNKED:
            # The body came whole before the application runs: its length is
            # known now, and frameworks that read CONTENT_LENGTH alone (Django)
            # see the body of a chunked or HTTP/2 upload too.
            length = _stream_length(body)
            if length is not None:
                environ["CONTENT_LENGTH"] = str(length)
        elif request.framing is FRAMING_LENGTH or request.content_length is not None:
            environ["CONTENT_LENGTH"] = str(request.content_length)
        return environ

    def _add_fields(self, environ: Environ, request: Request) -> None:
        cached = self._keys.get
        for name, raw in request.headers:
            key = cached(name, _UNKNOWN)
            if key is _UNKNOWN:
                key = self._key(name)
            if key is None:
                continue
            value = raw.decode("latin-1")
            if key in environ:
                separator = "; " if key == "HTTP_COOKIE" else ", "
                value = environ[key] + separator + value
            environ[key] = value
        environ.pop("HTTP_CONTENT_LENGTH", None)
        content_type = environ.pop("HTTP_CONTENT_TYPE", None)
        if content_type is not None:
            environ["CONTENT_TYPE"] = content_type
        if request.authority is not None:
            # RFC 9112 section 3.2.2: the absolute-form's authority wins over Host.
            environ["HTTP_HOST"] = request.authority.decode("latin-1")


class ResponseSink(Protocol):
    """Where a response goes: the connection, which frames and sends it."""

    @property
    def head_sent(self) -> bool:
        """True once the head has gone out (start_response can no longer change it)."""
        ...

    @property
    def upgraded(self) -> bool:
        """True once the application took the connection over (101)."""
        ...

    def set_head(self, status: str, headers: list[tuple[str, str]]) -> None:
        """Set or replace the head; ResponseError once it was sent."""
        ...

    def write(self, data: bytes) -> None:
        """Send body data, the head first."""
        ...

    def write_whole(self, data: bytes) -> None:
        """Send the entire body at once; its length becomes the Content-Length."""
        ...

    def write_all(self, pieces: Sequence[bytes]) -> None:
        """Send a body made in full (several pieces) and end it: never waits
        for the client, since the bytes are all in memory already."""
        ...

    def finish(self) -> None:
        """End the body; ResponseError when it fell short of its Content-Length."""
        ...

    def send_file(self, file_fd: int, offset: int, available: int) -> bool:
        """Send the body from a file raw (sendfile) and finish; False to frame
        it piece by piece instead (the head may have gone out already)."""
        ...

    def send_error(self, status: int, detail: str, close: bool) -> bool:
        """A short error response of the server's own; False if too late."""
        ...


class _Call:
    """One call of the application: start_response, write, and the result."""

    def __init__(self, sink: ResponseSink) -> None:
        self.sink = sink
        self.started = False

    def start_response(self, status: str, headers: list[tuple[str, str]],
                       exc_info: ExcInfo | None = None) -> Callable[[bytes], None]:
        """PEP 3333 start_response: check and keep the head; return write()."""
        if exc_info is not None:
            try:
                if self.sink.head_sent:
                    raise exc_info[1].with_traceback(exc_info[2])
            finally:
                exc_info = None
        elif self.started:
            raise ResponseError("start_response called a second time without exc_info")
        self.sink.set_head(_checked_status(status), _checked_headers(headers))
        self.started = True
        return self.write

    def write(self, data: bytes) -> None:
        """The legacy write() callable: send at once."""
        self._check_started()
        self.sink.write(_checked_bytes(data))

    def _check_started(self) -> None:
        if not self.started:
            raise ResponseError("the application sent a body before start_response")

    def send_result(self, result: Iterable[bytes]) -> None:
        """Send the application's iterable, using sendfile where it can."""
        if self.sink.upgraded:
            return  # the app spoke its own protocol on the connection
        if type(result) in (list, tuple):
            self._check_started()
            pieces: Sequence[bytes] = result  # type: ignore[assignment]
            if len(pieces) <= 1:
                body = pieces[0] if pieces else b""
                self.sink.write_whole(body if type(body) is bytes else _checked_bytes(body))
            else:
                self.sink.write_all([_checked_bytes(piece) for piece in pieces])
            return
        if type(result) is FileWrapper and self._send_file(result):
            return
        for data in result:
            if data:
                self.write(data)
            else:
                _checked_bytes(data)
        self._check_started()
        self.sink.finish()

    def _send_file(self, wrapper: FileWrapper) -> bool:
        """Send a regular file raw; False to fall back to iterating."""
        try:
            fd = wrapper.filelike.fileno()
            offset = wrapper.filelike.tell()
            info = os.fstat(fd)
        except (AttributeError, OSError, io.UnsupportedOperation):
            return False
        if not stat.S_ISREG(info.st_mode):
            return False
        self._check_started()
        return self.sink.send_file(fd, offset, max(info.st_size - offset, 0))


# Statuses and field names an application used before and that passed their
# check: the same few come back on every request, and a set lookup is cheaper
# than a regular expression. Bounded, so odd ones cannot grow them.
_GOOD_STATUSES: set[str] = set()
_GOOD_NAMES: set[str] = set()
_REMEMBERED = 512


def _checked_status(status: object) -> str:
    if type(status) is str and status in _GOOD_STATUSES:
        return status
    if type(status) is not str or _STATUS.fullmatch(status) is None:
        raise ResponseError(f"invalid status from the application: {status!r}")
    if len(_GOOD_STATUSES) < _REMEMBERED:
        _GOOD_STATUSES.add(status)
    return status


def _checked_headers(headers: object) -> list[tuple[str, str]]:
    if type(headers) is not list:
        raise ResponseError("response headers must be a list")
    for item in headers:
        if type(item) is not tuple or len(item) != 2:
            raise ResponseError(f"a response header must be a (name, value) tuple: {item!r}")
        name, value = item
        if type(name) is not str or name not in _GOOD_NAMES:
            _check_name(name)
        # Printable ASCII (no control, no tab) passes without the expression.
        if type(value) is not str or not (value.isascii() and value.isprintable()) \
                and _BAD_VALUE.search(value) is not None:
            raise ResponseError(f"invalid value for response header {name}: {value!r}")
    return headers


def _check_name(name: object) -> None:
    if type(name) is not str or token_text.fullmatch(name) is None:
        raise ResponseError(f"invalid response header name: {name!r}")
    if len(_GOOD_NAMES) < _REMEMBERED:
        _GOOD_NAMES.add(name)


def _checked_bytes(data: object) -> bytes:
    if type(data) is not bytes:
        raise ResponseError(f"the application yielded {type(data).__name__}, not bytes")
    return data


def run_application(app: WSGIApp, environ: Environ, sink: ResponseSink) -> None:
    """Run ``app`` for one request. Whether its response was completed, the
    sink's owner knows: a failure after the head went out leaves it unfinished."""
    call = _Call(sink)
    try:
        result = app(environ, call.start_response)
        try:
            call.send_result(result)
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                close()
    except ClientDisconnected:
        pass  # the client went away while we wrote: nothing to answer
    except ResponseError as error:
        # The response broke HTTP's rules (its framing, its head): our own
        # traceback would say nothing about the application, so one line.
        log.error("error in application for %s %s: %s",
                  environ.get("REQUEST_METHOD", "?"), environ.get("REQUEST_URI", "?"), error)
        sink.send_error(500, "", close=False)
    except BaseException:  # SystemExit and friends from an app must not kill a worker
        _log_app_error(environ)
        sink.send_error(500, "", close=False)


def _log_app_error(environ: Environ) -> None:
    log.exception(
        "error in application for %s %s",
        environ.get("REQUEST_METHOD", "?"),
        environ.get("REQUEST_URI", "?"),
    )
