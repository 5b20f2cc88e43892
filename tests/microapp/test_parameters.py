"""Field values with parameters: Content-Type, Content-Disposition, Accept."""

from __future__ import annotations

import pytest

from microapp.parameters import (
    extended_value,
    filename_of,
    parse_parameters,
    preferred_media_type,
)


@pytest.mark.parametrize(("value", "expected"), [
    ("text/plain", ("text/plain", {})),
    ("Multipart/Form-Data; Boundary=abc", ("multipart/form-data", {"boundary": "abc"})),
    ('multipart/form-data; boundary="a b;c"', ("multipart/form-data", {"boundary": "a b;c"})),
    ('form-data; name="a\\"b\\\\c"', ("form-data", {"name": 'a"b\\c'})),
    ('form-data; filename="C:\\dir\\a.txt"', ("form-data", {"filename": "C:\\dir\\a.txt"})),
    ("form-data; filename=my file.txt", ("form-data", {"filename": "my file.txt"})),
    ('form-data; name="first"; name="second"', ("form-data", {"name": "first"})),
    ("a/b;; junk; x=1;=2;y", ("a/b", {"x": "1"})),
    ('a/b; x="unterminated; y=2', ("a/b", {"y": "2"})),
    ("a/b ; x = 1 ", ("a/b", {"x": "1"})),
    ("", ("", {})),
])
def test_parameters_are_parsed_leniently(value, expected):
    assert parse_parameters(value) == expected


@pytest.mark.parametrize(("value", "expected"), [
    ("UTF-8''%C3%A9t%C3%A9.txt", "\u00e9t\u00e9.txt"),
    ("utf-8'en'a%20b", "a b"),
    ("ISO-8859-1''%E9", "\u00e9"),
    ("UTF-8''%FF", None),          # not UTF-8
    ("koi8-r''%C1", None),         # a charset nobody has to support
    ("no-quotes", None),
])
def test_extended_values_follow_rfc_8187(value, expected):
    assert extended_value(value) == expected


@pytest.mark.parametrize(("parameters", "expected"), [
    ({}, None),
    ({"filename": "a.txt"}, "a.txt"),
    ({"filename": "../../etc/passwd"}, "passwd"),
    ({"filename": "C:\\Users\\me\\a.txt"}, "a.txt"),
    ({"filename": "dir/"}, ""),
    ({"filename": ""}, ""),
    ({"filename": "plain", "filename*": "UTF-8''%C3%A9"}, "\u00e9"),
    ({"filename": "plain", "filename*": "UTF-8''%FF"}, "plain"),
    ({"filename*": "UTF-8''..%2F..%2Fx"}, "x"),
])
def test_file_names_keep_only_their_last_segment(parameters, expected):
    assert filename_of(parameters) == expected


HTML, JSON = "text/html", "application/json"


@pytest.mark.parametrize(("accept", "expected"), [
    (None, HTML),
    ("", HTML),
    ("*/*", HTML),
    ("application/json", JSON),
    ("application/json, text/html", HTML),     # a tie goes to the first offer
    ("text/html;q=0.5, application/json", JSON),
    ("text/*;q=0.1, */*;q=0.2", JSON),         # text/* covers HTML, JSON falls to */*
    ("text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8", HTML),
    ("application/json;q=0", HTML),
    ("application/json;q=2", HTML),            # an invalid weight drops the range
    ("APPLICATION/JSON", JSON),
])
def test_preferred_media_type_weighs_accept(accept, expected):
    assert preferred_media_type(accept, [HTML, JSON]) == expected
