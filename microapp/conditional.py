"""Validators and ranges: ETag, Last-Modified, If-* preconditions, Range.

Owns the HTTP meaning of RFC 9110 sections 8.8, 13 and 14 as pure functions
over header values and a file's stat; knows no I/O, environ or responses.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from email.utils import formatdate, parsedate_to_datetime

__all__ = [
    "ByteRange",
    "Unsatisfiable",
    "entity_tag",
    "http_date",
    "if_range_holds",
    "is_not_modified",
    "none_match",
    "parse_range",
]

# RFC 9110 section 8.8.3: entity-tag = [ weak ] opaque-tag; weak = %s"W/".
_ENTITY_TAG = re.compile(r'\s*(W/)?("[\x21\x23-\x7e\x80-\xff]*")\s*(?:,|$)')
# RFC 9110 section 14.1.1: a single byte range or suffix range.
_BYTE_RANGE = re.compile(r"bytes[ \t]*=[ \t]*(?P<first>[0-9]*)-(?P<last>[0-9]*)[ \t]*",
                         re.IGNORECASE)


def entity_tag(stat: os.stat_result) -> str:
    """A strong ETag from inode, size and mtime: uploads replace files by
    rename, so new content always means a new inode or time."""
    return f'"{stat.st_ino:x}-{stat.st_size:x}-{stat.st_mtime_ns:x}"'


def http_date(timestamp: float) -> str:
    """RFC 9110 section 5.6.7's IMF-fixdate."""
    return formatdate(timestamp, usegmt=True)


def _parse_date(value: str) -> float | None:
    try:
        return parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError, IndexError, OverflowError):
        return None


def _tags(field: str) -> list[tuple[bool, str]] | None:
    """``W/"a", "b"`` -> [(True, '"a"'), (False, '"b"')]; None when malformed."""
    tags, position = [], 0
    while position < len(field):
        found = _ENTITY_TAG.match(field, position)
        if found is None or found.end() == position:
            return None
        tags.append((found[1] is not None, found[2]))
        position = found.end()
    return tags


def none_match(if_none_match: str, etag: str) -> bool:
    """RFC 9110 section 13.1.2: True when If-None-Match lists ``etag`` under
    weak comparison, or is ``*`` (the resource exists)."""
    if if_none_match.strip() == "*":
        return True
    opaque = etag.removeprefix("W/")
    return any(tag == opaque for _, tag in _tags(if_none_match) or ())


def is_not_modified(headers: dict[str, str | None], etag: str, modified: float) -> bool:
    """RFC 9110 section 13.2.2, steps 3-4 for GET/HEAD: whether to answer 304.
    If-Modified-Since counts only when If-None-Match is absent."""
    if_none_match = headers.get("If-None-Match")
    if if_none_match is not None:
        return none_match(if_none_match, etag)
    since = headers.get("If-Modified-Since")
    if since is None:
        return False
    since_time = _parse_date(since)
    return since_time is not None and int(modified) <= since_time


def if_range_holds(if_range: str | None, etag: str, modified: float) -> bool:
    """RFC 9110 section 13.1.5: honour Range only if the validator still holds.
    An entity-tag must match strongly; a date must equal Last-Modified."""
    if if_range is None:
        return True
    if_range = if_range.strip()
    if if_range.startswith(('"', "W/")):
        return not if_range.startswith("W/") and if_range == etag
    since_time = _parse_date(if_range)
    return since_time is not None and since_time == int(modified)


@dataclass(frozen=True)
class ByteRange:
    """Bytes ``start`` to ``end`` inclusive of a representation of ``size`` bytes."""

    start: int
    end: int
    size: int

    @property
    def length(self) -> int:
        return self.end - self.start + 1

    @property
    def content_range(self) -> str:
        return f"bytes {self.start}-{self.end}/{self.size}"


class Unsatisfiable(Exception):
    """The Range asks for no byte that exists: answer 416 (RFC 9110 section 15.5.17)."""


def parse_range(field: str | None, size: int) -> ByteRange | None:
    """The one byte range a Range field selects, or None to send the whole
    representation (absent, malformed, several ranges, other units; RFC 9110
    section 14.2 lets a server ignore those). Raises Unsatisfiable."""
    found = _BYTE_RANGE.fullmatch(field or "")
    if found is None:
        return None
    first, last = found["first"], found["last"]
    if not first:
        if not last:
            return None
        suffix = int(last)
        if suffix == 0:
            raise Unsatisfiable
        if size == 0:  # no byte to send; the whole (empty) representation will do
            return None
        return ByteRange(max(size - suffix, 0), size - 1, size)
    start = int(first)
    if last and int(last) < start:
        return None  # an invalid range-spec: the field is ignored
    if start >= size:
        raise Unsatisfiable
    end = min(int(last), size - 1) if last else size - 1
    return ByteRange(start, end, size)
