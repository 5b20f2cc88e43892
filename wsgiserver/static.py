"""Static files served by the server itself (``--static /static=DIR``),
without calling the application.

Owns the mounts (a URL prefix, a directory), which request paths map to a
file inside the directory and which do not (a dot segment, a hidden name,
a NUL or backslash, a symlink that leads outside: all 404, never a file
elsewhere), and the answer: GET and HEAD, the body through
``wsgi.file_wrapper`` (sendfile where the server can), ETag and
Last-Modified with 304s (RFC 9110 13.1), one byte range (206, 416, If-Range;
RFC 9110 14), and a precompressed ``NAME.gz`` beside a file for a client
that accepts gzip. A WSGI application in front of the user's: knows nothing
of sockets or the server.
"""

from __future__ import annotations

import email.utils
import mimetypes
import os
import re
import stat
from collections.abc import Callable, Iterable, Sequence
from typing import Any

__all__ = ["StaticFiles", "parse_mount"]

StartResponse = Callable[..., Any]
WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]

_RANGE = re.compile(r"bytes=(\d*)-(\d*)")
_TEXT_TYPES = ("application/javascript", "application/json", "image/svg+xml")


def parse_mount(text: str) -> tuple[str, str]:
    """``/PREFIX=DIR`` as (prefix without a trailing slash, the directory's
    real path); ValueError saying what is wrong."""
    prefix, equals, directory = text.partition("=")
    if not equals or not prefix.startswith("/") or not directory:
        raise ValueError(f"expected /PREFIX=DIR, got {text!r}")
    if any(part in (".", "..") for part in prefix.split("/")):
        raise ValueError(f"{text!r}: the prefix may not hold . or ..")
    if not os.path.isdir(directory):
        raise ValueError(f"{text!r}: not a directory: {directory!r}")
    return prefix.rstrip("/"), os.path.realpath(directory)


class StaticFiles:
    """``app`` with ``mounts`` ((prefix, directory) pairs) in front of it:
    a request under a prefix is answered from its directory (404 when no
    file is there), never by ``app``."""

    def __init__(self, app: WSGIApp, mounts: Sequence[tuple[str, str]]) -> None:
        self.app = app
        # Longest prefix first: /static/admin wins over /static.
        self.mounts = sorted(mounts, key=lambda mount: len(mount[0]), reverse=True)

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO") or "/"
        for prefix, directory in self.mounts:
            if path.startswith(prefix + "/"):
                return _serve(environ, start_response, directory, path[len(prefix) + 1:])
        return self.app(environ, start_response)


def _serve(environ: dict[str, Any], start_response: StartResponse, root: str,
           relative: str) -> Iterable[bytes]:
    method = environ.get("REQUEST_METHOD", "GET")
    if method not in ("GET", "HEAD"):
        return _short(start_response, "405 Method Not Allowed", [("Allow", "GET, HEAD")])
    target = _inside(root, relative)
    info = _regular(target) if target is not None else None
    if target is None or info is None:
        return _short(start_response, "404 Not Found", [])
    fields = [("Content-Type", _content_type(target)), ("Accept-Ranges", "bytes")]
    tag = _etag(info)
    sibling = _gzip_sibling(root, target)
    if sibling is not None:
        # The answer depends on Accept-Encoding whichever one goes out.
        fields.append(("Vary", "Accept-Encoding"))
        accepted = _accepts_gzip(environ.get("HTTP_ACCEPT_ENCODING", ""))
        if accepted and "HTTP_RANGE" not in environ:  # ranges are of the file itself
            target, info, tag = sibling[0], sibling[1], _etag(sibling[1], "-gz")
            fields.append(("Content-Encoding", "gzip"))
    fields += [("ETag", tag), ("Last-Modified", email.utils.formatdate(info.st_mtime,
                                                                          usegmt=True))]
    if _not_modified(environ, tag, info.st_mtime):
        return _short(start_response, "304 Not Modified",
                      [(name, value) for name, value in fields
                       if name in ("ETag", "Last-Modified", "Vary")])
    size = info.st_size
    start, end = 0, size - 1
    status = "200 OK"
    wanted = _range(environ, tag, info.st_mtime, size)
    if isinstance(wanted, str):  # unsatisfiable
        return _short(start_response, "416 Range Not Satisfiable",
                      [("Content-Range", f"bytes */{size}")])
    if wanted is not None:
        start, end = wanted
        status = "206 Partial Content"
        fields.append(("Content-Range", f"bytes {start}-{end}/{size}"))
    fields.append(("Content-Length", str(end - start + 1 if size else 0)))
    if method == "HEAD":
        start_response(status, fields)
        return []
    try:
        file = open(target, "rb")  # noqa: SIM115 - closed by the server through the wrapper
    except OSError:
        return _short(start_response, "404 Not Found", [])
    file.seek(start)
    start_response(status, fields)
    wrapper = environ.get("wsgi.file_wrapper")
    if wrapper is not None:
        result: Iterable[bytes] = wrapper(file, 256 * 1024)
        return result
    return _read_part(file, end - start + 1)


def _inside(root: str, relative: str) -> str | None:
    """The real path of ``relative`` under ``root``, or None when a segment
    is empty, a dot name, hidden, holds a NUL or backslash, or the path (a
    symlink on the way included) resolves outside ``root``."""
    segments = relative.split("/")
    for segment in segments:
        if not segment or segment.startswith(".") or "\0" in segment or "\\" in segment:
            return None
        if os.name == "nt" and ":" in segment:  # a drive or an alternate data stream
            return None
    return _confined(root, os.path.join(root, *segments))


def _confined(root: str, path: str) -> str | None:
    """The real path of ``path`` when it (a symlink on the way included)
    resolves strictly inside ``root``, else None."""
    target = os.path.realpath(path)
    try:
        inside = os.path.commonpath([root, target]) == root
    except ValueError:  # another drive
        return None
    return target if inside and target != root else None


def _regular(path: str) -> os.stat_result | None:
    """The stat of a regular file at ``path`` (one system call), else None."""
    try:
        info = os.stat(path)
    except (OSError, ValueError):
        return None
    return info if stat.S_ISREG(info.st_mode) else None


def _content_type(path: str) -> str:
    kind, _ = mimetypes.guess_type(path)
    kind = kind or "application/octet-stream"
    if kind.startswith("text/") or kind in _TEXT_TYPES:
        return f"{kind}; charset=utf-8"
    return kind


def _etag(info: os.stat_result, suffix: str = "") -> str:
    return f'"{info.st_mtime_ns:x}-{info.st_size:x}{suffix}"'


def _gzip_sibling(root: str, target: str) -> tuple[str, os.stat_result] | None:
    """``target.gz`` with its stat, when it is a file inside ``root``."""
    candidate = _confined(root, target + ".gz")
    info = _regular(candidate) if candidate is not None else None
    if candidate is None or info is None:
        return None
    return candidate, info


def _accepts_gzip(header: str) -> bool:
    """Whether Accept-Encoding names gzip (or *) with a q above 0."""
    for item in header.split(","):
        name, _, parameters = item.strip().partition(";")
        if name.strip().lower() not in ("gzip", "x-gzip", "*"):
            continue
        quality = parameters.strip().lower()
        if quality.startswith("q="):
            try:
                return float(quality[2:]) > 0
            except ValueError:
                return False
        return True
    return False


def _not_modified(environ: dict[str, Any], tag: str, mtime: float) -> bool:
    """RFC 9110 13.2.2: If-None-Match (weak comparison) first; else
    If-Modified-Since against the file's time, to the second."""
    none_match = environ.get("HTTP_IF_NONE_MATCH")
    if none_match is not None:
        wanted = tag.removeprefix("W/")
        return any(item.strip() == "*" or item.strip().removeprefix("W/") == wanted
                   for item in none_match.split(","))
    since = environ.get("HTTP_IF_MODIFIED_SINCE")
    if since is None:
        return False
    try:
        moment = email.utils.parsedate_to_datetime(since).timestamp()
    except (TypeError, ValueError, IndexError, OverflowError):
        return False
    return int(mtime) <= moment


def _range(environ: dict[str, Any], tag: str, mtime: float,
           size: int) -> tuple[int, int] | str | None:
    """(first, last) of a single satisfiable range; "unsatisfiable"; or
    None for the whole file (no Range, several ranges, a syntax we do not
    read, or an If-Range that no longer matches)."""
    header = environ.get("HTTP_RANGE")
    if header is None:
        return None
    if_range = environ.get("HTTP_IF_RANGE")
    if if_range is not None:
        if if_range.startswith(("\"", "W/")):
            if if_range != tag:  # a strong comparison (RFC 9110 13.1.5)
                return None
        elif if_range != email.utils.formatdate(mtime, usegmt=True):
            return None
    found = _RANGE.fullmatch(header.strip())
    if found is None:
        return None
    first, last = found.groups()
    if not first and not last:
        return None
    if not first:  # the last N bytes
        count = int(last)
        if count == 0 or size == 0:
            return "unsatisfiable"
        return max(size - count, 0), size - 1
    start = int(first)
    if start >= size:
        return "unsatisfiable"
    end = min(int(last), size - 1) if last else size - 1
    if end < start:
        return None  # invalid: ignored, the whole file
    return start, end


def _short(start_response: StartResponse, status: str,
           fields: list[tuple[str, str]]) -> list[bytes]:
    body = b"" if status.startswith("304") else status.encode() + b"\n"
    if body:
        fields = [*fields, ("Content-Type", "text/plain; charset=utf-8")]
    start_response(status, [*fields, ("Content-Length", str(len(body)))]
                   if not status.startswith("304") else fields)
    return [body] if body else []


def _read_part(file: Any, count: int) -> Iterable[bytes]:
    try:
        while count > 0:
            data = file.read(min(count, 256 * 1024))
            if not data:
                break
            count -= len(data)
            yield data
    finally:
        file.close()
