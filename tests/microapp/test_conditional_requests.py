"""Validators and ranges as pure functions (RFC 9110 sections 13 and 14)."""

from __future__ import annotations

import pytest

from microapp.conditional import (
    ByteRange,
    Unsatisfiable,
    http_date,
    if_range_holds,
    is_not_modified,
    none_match,
    parse_range,
)

MTIME = 1_700_000_000.5


@pytest.mark.parametrize(("field", "size", "expected"), [
    ("bytes=0-4", 10, ByteRange(0, 4, 10)),
    ("bytes=5-", 10, ByteRange(5, 9, 10)),
    ("bytes=-3", 10, ByteRange(7, 9, 10)),
    ("bytes=-30", 10, ByteRange(0, 9, 10)),  # longer suffix: the whole thing
    ("bytes=2-100", 10, ByteRange(2, 9, 10)),  # last-pos clamped
    ("BYTES = 1-1", 10, ByteRange(1, 1, 10)),
    (None, 10, None),
    ("bytes=0-1,4-5", 10, None),  # several ranges: served whole
    ("items=0-1", 10, None),
    ("bytes=5-2", 10, None),  # invalid range-spec: ignored
    ("bytes=-", 10, None),
    ("bytes=a-b", 10, None),
    ("bytes=-5", 0, None),  # nothing to take a suffix of
])
def test_range_selects_one_range_or_the_whole(field, size, expected):
    assert parse_range(field, size) == expected


@pytest.mark.parametrize(("field", "size"), [
    ("bytes=10-", 10), ("bytes=10-20", 10), ("bytes=-0", 10), ("bytes=0-0", 0),
])
def test_range_past_the_end_is_unsatisfiable(field, size):
    with pytest.raises(Unsatisfiable):
        parse_range(field, size)


def test_byte_range_reports_length_and_content_range():
    byte_range = ByteRange(7, 9, 10)
    assert (byte_range.length, byte_range.content_range) == (3, "bytes 7-9/10")


@pytest.mark.parametrize(("field", "matches"), [
    ('"abc"', True),
    ('W/"abc"', True),  # weak comparison
    ('"x", W/"abc"', True),
    ('"x" , "y"', False),
    ("*", True),
    ("abc", False),  # not a quoted tag
    ('"ab', False),
])
def test_if_none_match_compares_weakly(field, matches):
    assert none_match(field, '"abc"') is matches


def test_if_modified_since_gives_304_for_unchanged_files():
    assert is_not_modified({"If-Modified-Since": http_date(MTIME)}, '"t"', MTIME)
    assert not is_not_modified({"If-Modified-Since": http_date(MTIME - 10)}, '"t"', MTIME)
    assert not is_not_modified({"If-Modified-Since": "yesterday"}, '"t"', MTIME)
    assert not is_not_modified({}, '"t"', MTIME)


def test_if_none_match_takes_precedence_over_if_modified_since():
    headers = {"If-None-Match": '"other"', "If-Modified-Since": http_date(MTIME)}
    assert not is_not_modified(headers, '"t"', MTIME)


@pytest.mark.parametrize(("if_range", "holds"), [
    (None, True),
    ('"t"', True),
    ('W/"t"', False),  # If-Range needs a strong match
    ('"other"', False),
    (http_date(MTIME), True),
    (http_date(MTIME - 1), False),
    ("garbage", False),
])
def test_if_range_holds_only_for_the_current_validator(if_range, holds):
    assert if_range_holds(if_range, '"t"', MTIME) is holds
