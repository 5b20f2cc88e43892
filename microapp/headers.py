"""Header lists and status lines as WSGI carries them (``[(name, value), ...]``),
and the WSGI type names the package shares.

Owns the small, pure helpers every other module shares; knows no environ,
no request and no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from http import HTTPStatus
from typing import Any

__all__ = [
    "Environ",
    "HeaderList",
    "StartResponse",
    "WSGIApp",
    "allows_body",
    "check_header",
    "get_header",
    "reason_phrase",
    "status_code",
    "status_line",
    "without_header",
]

HeaderList = list[tuple[str, str]]
Environ = dict[str, Any]
StartResponse = Callable[..., Any]
WSGIApp = Callable[[Environ, StartResponse], Iterable[bytes]]

# RFC 9110 section 5.1: field-name = token.
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
# RFC 9110 section 5.5: field values never contain CR, LF or NUL.
_FORBIDDEN_IN_VALUE = re.compile(r"[\r\n\x00]")


# RFC 9110 renamed these; older Pythons' HTTPStatus still has the RFC 7231 names.
_RFC9110_PHRASES = {
    413: "Content Too Large",
    414: "URI Too Long",
    416: "Range Not Satisfiable",
    422: "Unprocessable Content",
}


def reason_phrase(status: int) -> str:
    """The canonical (RFC 9110) reason phrase for ``status``, else a generic one."""
    if status in _RFC9110_PHRASES:
        return _RFC9110_PHRASES[status]
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Unknown Status"


def status_line(status: int) -> str:
    """``404`` -> ``"404 Not Found"``, the form start_response wants."""
    return f"{status} {reason_phrase(status)}"


def status_code(line: str) -> int:
    """``"404 Not Found"`` -> ``404``."""
    return int(line.split(" ", 1)[0])


def allows_body(status: int) -> bool:
    """RFC 9110 sections 15.2, 15.3.5, 15.4.5: 1xx, 204 and 304 never carry content."""
    return not (100 <= status < 200 or status in (204, 304))


def get_header(headers: Iterable[tuple[str, str]], name: str) -> str | None:
    """The first value of header ``name`` (case-insensitive), or None."""
    wanted = name.lower()
    for key, value in headers:
        if key.lower() == wanted:
            return value
    return None


def without_header(headers: Iterable[tuple[str, str]], name: str) -> HeaderList:
    """A copy of ``headers`` with every ``name`` field removed."""
    unwanted = name.lower()
    return [(key, value) for key, value in headers if key.lower() != unwanted]


def check_header(name: str, value: str) -> None:
    """Refuse names that are not tokens and values that could split the head."""
    if not _TOKEN.fullmatch(name):
        raise ValueError(f"invalid header name {name!r}")
    if _FORBIDDEN_IN_VALUE.search(value):
        raise ValueError(f"invalid characters in the value of header {name!r}")
    value.encode("latin-1")  # WSGI header values are latin-1 strings (PEP 3333)
