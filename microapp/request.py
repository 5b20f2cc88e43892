"""Request: a read-only view over one WSGI environ, and bounded body reading.

Owns decoding what the server put in the environ (path, query, headers,
cookies, body, JSON, forms through forms.py) and closing the uploads it
opened; knows nothing of routing or responses.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from functools import cached_property
from typing import Any
from urllib.parse import parse_qsl

from microapp.errors import HTTPError
from microapp.forms import (
    DEFAULT_FORM_LIMITS,
    MULTIPART,
    Fields,
    FormLimits,
    FormPart,
    UploadedFile,
    new_multipart_reader,
    read_form,
)

__all__ = ["EnvironHeaders", "Request", "content_length", "iter_body"]

CHUNK_SIZE = 64 * 1024
DEFAULT_MAX_BODY_BYTES = 1024 * 1024
# PEP 3333: these two headers arrive without the HTTP_ prefix.
_UNPREFIXED = {"CONTENT_TYPE": "Content-Type", "CONTENT_LENGTH": "Content-Length"}


def _wsgi_to_text(value: str) -> str:
    """PEP 3333 hands over raw bytes as latin-1 text; HTTP paths mean UTF-8."""
    try:
        return value.encode("latin-1").decode("utf-8")
    except UnicodeEncodeError:  # the server already decoded it
        return value


def _wsgi_to_text_lenient(value: str) -> str:
    """Like _wsgi_to_text, replacing bytes that are not UTF-8."""
    try:
        return _wsgi_to_text(value)
    except UnicodeDecodeError:
        return value.encode("latin-1").decode("utf-8", "replace")


class EnvironHeaders(Mapping[str, str]):
    """The request's header fields, looked up case-insensitively."""

    def __init__(self, environ: Mapping[str, Any]) -> None:
        self._environ = environ

    @staticmethod
    def _key(name: str) -> str:
        key = name.upper().replace("-", "_")
        return key if key in _UNPREFIXED else "HTTP_" + key

    def __getitem__(self, name: str) -> str:
        key = self._key(name)
        value = self._environ.get(key)
        # CGI servers may set CONTENT_TYPE/CONTENT_LENGTH to "" for "absent".
        if not isinstance(value, str) or (key in _UNPREFIXED and value == ""):
            raise KeyError(name)
        return value

    def __iter__(self) -> Iterator[str]:
        for key, value in self._environ.items():
            if key in _UNPREFIXED and value:
                yield _UNPREFIXED[key]
            elif key.startswith("HTTP_"):
                yield key[5:].replace("_", "-").title()

    def __len__(self) -> int:
        return sum(1 for _ in self)


def content_length(environ: Mapping[str, Any]) -> int | None:
    """CONTENT_LENGTH as an int, None when absent; HTTPError 400 when malformed."""
    raw = environ.get("CONTENT_LENGTH") or ""
    if raw == "":
        return None
    if not raw.isdigit() or not raw.isascii():
        raise HTTPError(400, "invalid Content-Length")
    return int(raw)


def _read(stream: Any, size: int) -> bytes:
    """One read from wsgi.input; a failed read (client gone, body cut short,
    timeout) becomes an HTTPError with the status the server suggests."""
    try:
        return stream.read(size)
    except (OSError, ValueError) as error:
        status = getattr(error, "status", 400)
        if not isinstance(status, int) or not 400 <= status <= 599:
            status = 400
        raise HTTPError(status, "the request body could not be read") from error


def iter_body(environ: Mapping[str, Any], limit: int,
              chunk_size: int = CHUNK_SIZE) -> Iterator[bytes]:
    """The request body in chunks, never more than ``limit`` bytes (else 413).

    With a Content-Length, exactly that many bytes or HTTPError 400. Without
    one, read to the end only when the server says the input is terminated
    (chunked uploads, PEP 3333 ``wsgi.input_terminated``); otherwise empty.
    """
    length = content_length(environ)
    stream = environ["wsgi.input"]
    if length is None:
        if environ.get("wsgi.input_terminated"):
            yield from _read_to_end(stream, limit, chunk_size)
        return
    if length > limit:
        raise HTTPError(413, f"the request body is larger than {limit} bytes")
    remaining = length
    while remaining > 0:
        chunk = _read(stream, min(chunk_size, remaining))
        if not chunk:
            raise HTTPError(400, "the request body ended before Content-Length")
        remaining -= len(chunk)
        yield chunk


def _read_to_end(stream: Any, limit: int, chunk_size: int) -> Iterator[bytes]:
    total = 0
    while chunk := _read(stream, chunk_size):
        total += len(chunk)
        if total > limit:
            raise HTTPError(413, f"the request body is larger than {limit} bytes")
        yield chunk


def _parse_cookies(header: str) -> dict[str, str]:
    """RFC 6265 section 5.4's Cookie header; malformed pairs are skipped."""
    cookies: dict[str, str] = {}
    for pair in header.split(";"):
        name, separator, value = pair.strip().partition("=")
        if not separator or not name:
            continue
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] == '"':
            value = value[1:-1]
        cookies.setdefault(name.strip(), value)
    return cookies


class Request:
    """What the client asked for, read from ``environ``; route params in ``params``."""

    def __init__(self, environ: dict[str, Any], *,
                 max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
                 form_limits: FormLimits = DEFAULT_FORM_LIMITS) -> None:
        self.environ = environ
        self.max_body_bytes = max_body_bytes
        self.form_limits = form_limits
        self.params: dict[str, Any] = {}
        self.headers = EnvironHeaders(environ)
        self._body_reader: str | None = None  # what consumed wsgi.input
        self._form: tuple[Fields[str], Fields[UploadedFile]] | HTTPError | None = None

    @property
    def method(self) -> str:
        return str(self.environ.get("REQUEST_METHOD", "GET")).upper()

    @cached_property
    def path(self) -> str:
        """PATH_INFO as UTF-8 text; HTTPError 400 when the bytes are not UTF-8."""
        raw = self.environ.get("PATH_INFO") or "/"
        try:
            return _wsgi_to_text(raw)
        except UnicodeDecodeError:
            raise HTTPError(400, "the request path is not UTF-8") from None

    @property
    def script_name(self) -> str:
        """Where the app is mounted; prefix links with it."""
        return _wsgi_to_text(self.environ.get("SCRIPT_NAME", ""))

    @cached_property
    def query(self) -> dict[str, list[str]]:
        """Every value of every query parameter."""
        raw = _wsgi_to_text_lenient(self.environ.get("QUERY_STRING", ""))
        values: dict[str, list[str]] = {}
        for name, value in parse_qsl(raw, keep_blank_values=True, errors="replace"):
            values.setdefault(name, []).append(value)
        return values

    @property
    def args(self) -> dict[str, str]:
        """The first value of each query parameter."""
        return {name: values[0] for name, values in self.query.items()}

    @cached_property
    def cookies(self) -> dict[str, str]:
        return _parse_cookies(self.environ.get("HTTP_COOKIE", ""))

    @property
    def content_type(self) -> str:
        """The media type without parameters, lower-cased ("" when absent)."""
        return self.headers.get("Content-Type", "").split(";", 1)[0].strip().lower()

    @property
    def content_length(self) -> int | None:
        return content_length(self.environ)

    @cached_property
    def body(self) -> bytes:
        """The whole body, at most ``max_body_bytes`` (HTTPError 413 beyond)."""
        return b"".join(self._read_body("body", self.max_body_bytes))

    def _read_body(self, reader: str, limit: int) -> Iterable[bytes]:
        """The body's chunks, at most ``limit`` bytes, for one reader only:
        wsgi.input can be read once. A body already read whole is reused."""
        if "body" in self.__dict__:
            if len(self.body) > limit:
                raise HTTPError(413, f"the request body is larger than {limit} bytes")
            return [self.body]
        if self._body_reader is not None:
            raise RuntimeError(f"the request body was already read by {self._body_reader}")
        self._body_reader = reader
        return iter_body(self.environ, limit)

    @property
    def form(self) -> Fields[str]:
        """The text fields of an urlencoded or multipart/form-data body (empty
        for other bodies); ``form[name]`` is the first value, ``form.get_all(name)``
        every one. Parsed once, on first use, within ``form_limits``."""
        return self._parsed_form()[0]

    @property
    def files(self) -> Fields[UploadedFile]:
        """The file parts of a multipart/form-data body, spooled to memory or
        unnamed temporary files that are closed when the request ends."""
        return self._parsed_form()[1]

    def _parsed_form(self) -> tuple[Fields[str], Fields[UploadedFile]]:
        if self._form is None:
            try:
                self._form = read_form(self.headers.get("Content-Type", ""),
                                       lambda limit: self._read_body("form", limit),
                                       self.form_limits)
            except HTTPError as error:
                self._form = error  # the body is gone: the same answer every time
        if isinstance(self._form, HTTPError):
            raise self._form
        return self._form

    def stream_parts(self) -> Iterator[FormPart]:
        """The parts of a multipart/form-data body as they arrive, for uploads
        too big to spool: read each part's ``chunks()`` before asking for the
        next. 415 for another media type; the same limits as ``form``."""
        if self.content_type != MULTIPART:
            raise HTTPError(415, "expected a multipart/form-data body")
        reader = new_multipart_reader(self.headers["Content-Type"],
                                      lambda limit: self._read_body("stream_parts()", limit),
                                      self.form_limits)
        return reader.parts()

    def close(self) -> None:
        """Release what the request opened (the uploaded files). The App calls
        this when the response is done, whether the handler returned or raised."""
        if isinstance(self._form, tuple):
            for name in self._form[1]:
                for upload in self._form[1].get_all(name):
                    upload.close()

    @property
    def holds_files(self) -> bool:
        """Whether close() has uploads to release."""
        return isinstance(self._form, tuple) and len(self._form[1]) > 0

    def json(self) -> Any:
        """The body parsed as JSON: 415 unless it is declared JSON, 400 when invalid."""
        media_type = self.content_type
        if media_type != "application/json" and not media_type.endswith("+json"):
            raise HTTPError(415, "expected an application/json body")
        try:
            return json.loads(self.body.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise HTTPError(400, "the body is not valid JSON") from None
