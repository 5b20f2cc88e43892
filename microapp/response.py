"""Response: status, header list and body; a Response is itself a WSGI app.

Owns turning bodies (bytes, text, JSON, iterables, files) into what WSGI
sends, and cookies. Knows nothing of routing or of the request.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from functools import singledispatch
from typing import IO, Any

from microapp.headers import (
    HeaderList,
    allows_body,
    check_header,
    get_header,
    status_line,
    without_header,
)

__all__ = ["FileBody", "Response", "make_response"]

TEXT = "text/plain; charset=utf-8"
JSON = "application/json"
BINARY = "application/octet-stream"
BLOCK_SIZE = 64 * 1024

# RFC 6265 section 4.1.1: cookie-name is a token, cookie-value is cookie-octets.
_COOKIE_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_COOKIE_VALUE = re.compile(r'[\x21\x23-\x2b\x2d-\x3a\x3c-\x5b\x5d-\x7e]*')


@dataclass
class FileBody:
    """``length`` bytes of an open binary file from ``offset``; closed after sending."""

    file: IO[bytes]
    offset: int = 0
    length: int | None = None
    block_size: int = BLOCK_SIZE
    reaches_end: bool = field(init=False)

    def __post_init__(self) -> None:
        size = os.fstat(self.file.fileno()).st_size
        if self.length is None:
            self.length = max(size - self.offset, 0)
        self.reaches_end = self.offset + self.length >= size

    def iterable(self, environ: dict[str, Any]) -> Iterable[bytes]:
        """The server's ``wsgi.file_wrapper`` when it may be used, else bounded chunks.

        PEP 3333 lets a server send a wrapped file to its end, so the wrapper
        is only handed a file whose selected part runs to the end.
        """
        self.file.seek(self.offset)
        wrapper = environ.get("wsgi.file_wrapper")
        if wrapper is not None and self.reaches_end:
            return wrapper(self.file, self.block_size)
        return FileChunks(self.file, self.length or 0, self.block_size)

    def close(self) -> None:
        self.file.close()


class FileChunks:
    """Iterate at most ``length`` bytes of ``file`` in blocks; close() closes it."""

    def __init__(self, file: IO[bytes], length: int, block_size: int) -> None:
        self.file, self.remaining, self.block_size = file, length, block_size

    def __iter__(self) -> Iterator[bytes]:
        while self.remaining > 0:
            block = self.file.read(min(self.block_size, self.remaining))
            if not block:
                return
            self.remaining -= len(block)
            yield block

    def close(self) -> None:
        self.file.close()


@dataclass
class _Prepared:
    """A body in the form WSGI sends, with the type and length it implies."""

    body: Any
    content_type: str | None
    length: int | None


@singledispatch
def _prepare(body: object) -> _Prepared:
    if hasattr(body, "read"):
        return _prepare(FileBody(body))  # type: ignore[arg-type]
    if isinstance(body, Iterable):
        return _Prepared(body, BINARY, None)
    raise TypeError(f"cannot send a {type(body).__name__} as a response body")


@_prepare.register
def _(body: bytes) -> _Prepared:
    return _Prepared(body, BINARY, len(body))


@_prepare.register
def _(body: str) -> _Prepared:
    encoded = body.encode("utf-8")
    return _Prepared(encoded, TEXT, len(encoded))


@_prepare.register
def _(body: dict) -> _Prepared:
    encoded = json.dumps(body, ensure_ascii=False).encode("utf-8")
    return _Prepared(encoded, JSON, len(encoded))


@_prepare.register
def _(body: FileBody) -> _Prepared:
    return _Prepared(body, BINARY, body.length)


class Response:
    """An HTTP response a handler returns; call it as a WSGI app to send it.

    ``body`` may be bytes, str (UTF-8), a dict (JSON), a binary file or
    FileBody (streamed), or any iterable of bytes (streamed, no length).
    ``content_type`` overrides the type the body implies.
    """

    def __init__(
        self,
        body: Any = b"",
        status: int = 200,
        headers: Iterable[tuple[str, str]] = (),
        content_type: str | None = None,
    ) -> None:
        self.status = status
        self.headers: HeaderList = []
        for name, value in headers:
            self.add_header(name, value)
        prepared = _prepare(body)
        self.body = prepared.body
        if get_header(self.headers, "Content-Type") is None:
            self.set_header("Content-Type", content_type or prepared.content_type or BINARY)
        if prepared.length is not None and get_header(self.headers, "Content-Length") is None:
            self.set_header("Content-Length", str(prepared.length))

    @classmethod
    def json(cls, value: Any, status: int = 200,
             headers: Iterable[tuple[str, str]] = ()) -> Response:
        """Any JSON-serialisable value as an application/json response."""
        encoded = json.dumps(value, ensure_ascii=False).encode("utf-8")
        return cls(encoded, status, headers, content_type=JSON)

    @property
    def status_line(self) -> str:
        """``"200 OK"``: the status with its canonical reason phrase."""
        return status_line(self.status)

    def get_header(self, name: str) -> str | None:
        """The first value of header ``name`` (case-insensitive), or None."""
        return get_header(self.headers, name)

    def set_header(self, name: str, value: str) -> None:
        """Replace every ``name`` field with one ``name: value``."""
        check_header(name, value)
        self.headers = without_header(self.headers, name)
        self.headers.append((name, value))

    def add_header(self, name: str, value: str) -> None:
        """Add a field, keeping any existing ones (Set-Cookie, Vary, ...)."""
        check_header(name, value)
        self.headers.append((name, value))

    def delete_header(self, name: str) -> None:
        """Remove every ``name`` field."""
        self.headers = without_header(self.headers, name)

    def set_cookie(
        self,
        name: str,
        value: str,
        *,
        max_age: int | None = None,
        path: str = "/",
        domain: str | None = None,
        secure: bool = False,
        httponly: bool = True,
        samesite: str | None = "Lax",
    ) -> None:
        """Add a Set-Cookie field (RFC 6265 section 4.1)."""
        if not _COOKIE_NAME.fullmatch(name):
            raise ValueError(f"invalid cookie name {name!r}")
        if not _COOKIE_VALUE.fullmatch(value):
            raise ValueError(f"invalid characters in the value of cookie {name!r}")
        attributes = [f"{name}={value}", f"Path={path}"]
        optional = {
            f"Max-Age={max_age}": max_age is not None,
            f"Domain={domain}": domain is not None,
            "Secure": secure,
            "HttpOnly": httponly,
            f"SameSite={samesite}": samesite is not None,
        }
        attributes += [attribute for attribute, wanted in optional.items() if wanted]
        self.add_header("Set-Cookie", "; ".join(attributes))

    def delete_cookie(self, name: str, path: str = "/", domain: str | None = None) -> None:
        """Ask the client to forget cookie ``name``."""
        self.set_cookie(name, "", max_age=0, path=path, domain=domain)

    def drop_body(self) -> None:
        """Keep the head, send no content (HEAD). Closes a file body unread."""
        close = getattr(self.body, "close", None)
        if close is not None:
            close()
        self.body = b""

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        """Send this response through WSGI."""
        headers = self.headers
        if not allows_body(self.status):
            self.drop_body()
            for name in ("Content-Type", "Content-Length"):
                headers = without_header(headers, name)
        start_response(self.status_line, list(headers))
        if isinstance(self.body, bytes):
            return [self.body] if self.body else []
        if isinstance(self.body, FileBody):
            return self.body.iterable(environ)
        return self.body


def make_response(value: Any) -> Response:
    """What a handler returned, as a Response: a Response, str, bytes or dict."""
    if isinstance(value, Response):
        return value
    if isinstance(value, (str, bytes, dict)):
        return Response(value)
    raise TypeError(f"a handler returned {type(value).__name__}; "
                    "return a Response, str, bytes or dict")
