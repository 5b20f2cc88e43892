"""The access log: one line per request, in a configurable format or as JSON.

Owns the format syntax, its fields, escaping and the one write per line.
Reads a finished request from its environ and response facts; knows no
sockets, no HTTP parsing and no configuration object.

Format syntax: literal text with ``{field}`` placeholders (``{{`` and ``}}``
are literal braces). Fields: remote_addr, remote_port, time (CLF, UTC),
time_iso, request_line, method, path (the raw request-target), query,
protocol, status, bytes, duration_us, duration_ms, request_id,
``header:NAME`` (a request header) and ``response_header:NAME``.
"""

from __future__ import annotations

import json
import logging
import re
import string
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol, TextIO

from .protocol.grammar import token_text

__all__ = ["COMBINED", "COMMON", "AccessEntry", "AccessLog", "open_access_log"]

log = logging.getLogger("wsgiserver")

# Apache's "common" and "combined" formats (%h %l %u %t "%r" %>s %b ...).
COMMON = '{remote_addr} - - [{time}] "{request_line}" {status} {bytes}'
COMBINED = COMMON + ' "{header:Referer}" "{header:User-Agent}"'

_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun",
           "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")

# Everything but printable ASCII, the quote and the backslash is escaped, so
# a client can neither end a line nor close a quoted field early.
_NEEDS_ESCAPE = re.compile(r'[^\x20\x21\x23-\x5b\x5d-\x7e]')
_ESCAPES = {code: f"\\x{code:02x}" for code in (*range(0x20), *range(0x7f, 0x100))}
_ESCAPES.update({ord('"'): '\\"', ord("\\"): "\\\\"})


@dataclass(frozen=True, slots=True)
class AccessEntry:
    """One finished request as the log sees it.

    ``environ`` is the request's, when it reached the application: request
    header fields are read from it. A request refused before that has none.
    """

    remote_addr: str | None
    remote_port: str | None
    method: str | None
    target: str | None  # the raw request-target
    query: str | None
    protocol: str | None
    request_id: str | None
    status: int
    bytes_sent: int
    duration: float  # seconds
    response_headers: Sequence[tuple[str, str]] = ()
    environ: Mapping[str, Any] | None = None

    @classmethod
    def from_environ(cls, environ: Mapping[str, Any], status: int,
                     response_headers: Sequence[tuple[str, str]], bytes_sent: int,
                     duration: float) -> AccessEntry:
        """The entry of a request the application answered."""
        return cls(
            remote_addr=environ.get("REMOTE_ADDR"),
            remote_port=environ.get("REMOTE_PORT"),
            method=environ.get("REQUEST_METHOD"),
            target=_raw_target(environ),
            query=environ.get("QUERY_STRING"),
            protocol=environ.get("SERVER_PROTOCOL"),
            request_id=environ.get("wsgiserver.request_id"),
            status=status,
            bytes_sent=bytes_sent,
            duration=duration,
            response_headers=response_headers,
            environ=environ,
        )


def _raw_target(environ: Mapping[str, Any]) -> str | None:
    raw: str | None = environ.get("RAW_URI") or environ.get("REQUEST_URI")
    if raw is None and "PATH_INFO" in environ:
        query = environ.get("QUERY_STRING")
        raw = environ.get("SCRIPT_NAME", "") + environ["PATH_INFO"] + (f"?{query}" if query else "")
    return raw


Getter = Callable[[AccessEntry, float], object]

# As wsgi.py names them in SERVER_PROTOCOL (this module may not import it:
# the log sits below the WSGI layer, tests/unit/test_layers.py).
_PROTOCOLS = {(1, 1): "HTTP/1.1", (1, 0): "HTTP/1.0", (2, 0): "HTTP/2.0"}


class HeadFacts(Protocol):
    """What the log reads of a request head (protocol.events Request or RequestHead)."""

    @property
    def method(self) -> bytes: ...
    @property
    def target(self) -> bytes: ...
    @property
    def http_version(self) -> tuple[int, int]: ...
    @property
    def headers(self) -> tuple[tuple[bytes, bytes], ...]: ...


def _environ_fields(headers: tuple[tuple[bytes, bytes], ...]) -> dict[str, str]:
    """Request fields under their environ keys, so ``{header:NAME}`` reads a
    refused request as it reads an answered one (repeated fields joined)."""
    fields: dict[str, str] = {}
    for name, raw in headers:
        if b"_" in name:
            continue  # as the environ: a name with "_" could pass for one with "-"
        key = name.decode("latin-1").upper().replace("-", "_")
        if key not in ("CONTENT_TYPE", "CONTENT_LENGTH"):
            key = "HTTP_" + key
        value = raw.decode("latin-1")
        fields[key] = f"{fields[key]}, {value}" if key in fields else value
    return fields


class AccessLog:
    """Writes one line per request to ``stream``; safe to share between threads."""

    def __init__(self, stream: TextIO, format: str = COMBINED, json_lines: bool = False,
                 *, clock: Callable[[], float] = time.time) -> None:
        self._stream = stream
        self._json_lines = json_lines
        self._clock = clock
        self._lock = threading.Lock()
        self._failed = False
        self._clf_cache = (-1, "")
        self._parts = _compile(format, self._clf_time)

    def reopen(self) -> None:
        """Open the file again under its name (after logrotate moved it): the
        lines that follow go to the new file. Nothing for stdout and stderr;
        a file that cannot be opened is said once and the old one kept."""
        name = getattr(self._stream, "name", None)
        if self._stream in _standard_streams() or not isinstance(name, str):
            return
        try:
            stream = open_access_log(name)
        except ValueError as error:
            log.error("%s", error)
            return
        with self._lock:
            old, self._stream = self._stream, stream
            self._failed = False
        old.close()

    def close(self) -> None:
        """Close the stream if it is a file we opened (never stdout or stderr)."""
        if self._stream not in _standard_streams():
            with self._lock:
                self._stream.close()

    def record_exchange(self, environ: Mapping[str, Any], status: int,
                        response_headers: Sequence[tuple[str, str]], bytes_sent: int,
                        duration: float) -> None:
        """Log a request the application answered."""
        self.record(AccessEntry.from_environ(environ, status, response_headers, bytes_sent,
                                             duration))

    def record_refused(self, peer: tuple[str, int], status: int, bytes_sent: int,
                       head: HeadFacts | None = None) -> None:
        """Log a request refused before it reached the application: named by
        its request line and fields where they were read (``head``, a Request
        or a RequestHead), else ``- - -``."""
        address, port = peer
        method = target = query = protocol = None
        fields: dict[str, str] | None = None
        if head is not None:
            method = head.method.decode("latin-1")
            target = head.target.decode("latin-1")
            query = target.partition("?")[2] if "?" in target else None
            protocol = _PROTOCOLS.get(head.http_version)
            fields = _environ_fields(head.headers)
        self.record(AccessEntry(
            remote_addr=address, remote_port=str(port) if address else None,
            method=method, target=target, query=query, protocol=protocol, request_id=None,
            status=status, bytes_sent=bytes_sent, duration=0.0, environ=fields,
        ))

    def record(self, entry: AccessEntry) -> None:
        """Log one finished request."""
        start = self._clock() - entry.duration  # Apache's %t: when the request began
        line = self._json_line(entry, start) if self._json_lines else self._text_line(entry, start)
        self._write(line + "\n")

    def _text_line(self, entry: AccessEntry, start: float) -> str:
        pieces = []
        for name, getter in self._parts:
            if getter is None:
                pieces.append(name)
                continue
            pieces.append(_escape(getter(entry, start)))
        return "".join(pieces)

    def _json_line(self, entry: AccessEntry, start: float) -> str:
        record: dict[str, object] = {}
        for name, getter in self._parts:
            if getter is None:
                continue
            value = getter(entry, start)
            value = None if value == "" else value
            kind, _, header = name.partition(":")
            if header:
                record.setdefault(kind + "s", {})[header] = value  # type: ignore[index]
            else:
                record[name] = value
        # ensure_ascii escapes every control character: one object, one line.
        return json.dumps(record, ensure_ascii=True, separators=(",", ":"))

    def _clf_time(self, when: float) -> str:
        """``21/Nov/2026:09:12:00 +0000``, recomputed once a second."""
        second = int(when)
        cached_second, text = self._clf_cache
        if cached_second != second:
            moment = time.gmtime(second)
            text = (f"{moment.tm_mday:02d}/{_MONTHS[moment.tm_mon - 1]}/{moment.tm_year}:"
                    f"{moment.tm_hour:02d}:{moment.tm_min:02d}:{moment.tm_sec:02d} +0000")
            self._clf_cache = (second, text)
        return text

    def _write(self, line: str) -> None:
        with self._lock:
            try:
                self._stream.write(line)
                self._stream.flush()
            except (OSError, ValueError) as error:
                # A full disk must not fail requests; say so once, not per line.
                if not self._failed:
                    self._failed = True
                    log.error("access log write failed: %s", error)


def _standard_streams() -> tuple[object, ...]:
    return (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__)


# The --access-log target that hands each line to the "wsgiserver.access"
# logger (configured by --log-config) instead of writing it.
LOGGING_TARGET = "logging"


class _LoggerStream:
    """A stream whose every line is a record of the "wsgiserver.access"
    logger at INFO: where it goes is the logging configuration's."""

    name = LOGGING_TARGET

    def __init__(self) -> None:
        import logging

        self._logger = logging.getLogger("wsgiserver.access")

    def write(self, text: str) -> int:
        for line in text.splitlines():
            self._logger.info(line)
        return len(text)

    def flush(self) -> None:
        return None

    def close(self) -> None:
        return None


def open_access_log(target: str) -> TextIO:
    """``-``/``stderr``, ``stdout``, ``logging`` (the ``wsgiserver.access``
    logger), or a file opened for append, line-buffered."""
    if target in ("-", "stderr"):
        return sys.stderr
    if target == LOGGING_TARGET:
        return _LoggerStream()  # type: ignore[return-value]
    if target == "stdout":
        return sys.stdout
    try:
        return open(target, "a", buffering=1, encoding="utf-8", errors="backslashreplace")
    except OSError as error:
        raise ValueError(f"cannot open access log {target}: {error.strerror}") from None


# -- compiling a format -----------------------------------------------------


def _compile(format: str, clf_time: Callable[[float], str]) -> list[tuple[str, Getter | None]]:
    """(literal, None) and (field name, getter) parts; ValueError when bad."""
    try:
        parsed = list(string.Formatter().parse(format))
    except ValueError as error:
        raise ValueError(f"access log format {format!r}: {error}") from None
    parts: list[tuple[str, Getter | None]] = []
    for literal, field, spec, conversion in parsed:
        if literal:
            parts.append((literal, None))
        if field is None:
            continue
        if conversion is not None:
            raise ValueError(f"access log format: conversion !{conversion} in {{{field}}}")
        name = f"{field}:{spec}" if spec else field
        parts.append((name, _getter(name, clf_time)))
    return parts


def _getter(name: str, clf_time: Callable[[float], str]) -> Getter:
    """The function that reads field ``name`` from an entry and its start time."""
    if name == "time":
        return lambda entry, start: clf_time(start)
    if name == "time_iso":
        return _iso_time
    kind, colon, header = name.partition(":")
    if colon:
        if token_text.fullmatch(header) is None:
            raise ValueError(f"access log format: bad header name in {{{name}}}")
        if kind == "header":
            return _request_header(header)
        if kind == "response_header":
            return _response_header(header)
    elif name in _FIELDS:
        field = _FIELDS[name]
        return lambda entry, start: field(entry)
    known = ", ".join(["time", "time_iso", *_FIELDS, "header:NAME", "response_header:NAME"])
    raise ValueError(f"access log format: unknown field {{{name}}}; known: {known}")


def _request_header(name: str) -> Getter:
    key = name.upper().replace("-", "_")
    # PEP 3333: these two arrive without the HTTP_ prefix.
    if key not in ("CONTENT_TYPE", "CONTENT_LENGTH"):
        key = "HTTP_" + key

    def get(entry: AccessEntry, start: float) -> object:
        return entry.environ.get(key) if entry.environ is not None else None

    return get


def _response_header(name: str) -> Getter:
    wanted = name.lower()

    def get(entry: AccessEntry, start: float) -> str | None:
        values = [value for header, value in entry.response_headers if header.lower() == wanted]
        return ", ".join(values) if values else None

    return get


def _request_line(entry: AccessEntry) -> str:
    return f"{entry.method or '-'} {entry.target or '-'} {entry.protocol or '-'}"


def _iso_time(entry: AccessEntry, start: float) -> str:
    return datetime.fromtimestamp(start, UTC).isoformat(timespec="milliseconds")


_FIELDS: dict[str, Callable[[AccessEntry], object]] = {
    "remote_addr": lambda entry: entry.remote_addr,
    "remote_port": lambda entry: entry.remote_port,
    "request_line": _request_line,
    "method": lambda entry: entry.method,
    "path": lambda entry: entry.target,
    "query": lambda entry: entry.query,
    "protocol": lambda entry: entry.protocol,
    "status": lambda entry: entry.status,
    "bytes": lambda entry: entry.bytes_sent,
    "duration_us": lambda entry: round(entry.duration * 1_000_000),
    "duration_ms": lambda entry: round(entry.duration * 1000, 3),
    "request_id": lambda entry: entry.request_id,
}


def _escape(value: object) -> str:
    """The text for a field: ``-`` when missing, escaped when a client wrote it."""
    if value is None or value == "":
        return "-"
    text = value if type(value) is str else str(value)
    if _NEEDS_ESCAPE.search(text) is None:
        return text
    return _NEEDS_ESCAPE.sub(_escape_one, text)


def _escape_one(match: re.Match[str]) -> str:
    code = ord(match.group())
    return _ESCAPES.get(code) or f"\\u{code:04x}"
