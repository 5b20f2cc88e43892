"""MultipartParser: bodies fed whole, a byte at a time and in random splits;
malformed bodies and limits; the standard library's email parser as oracle."""

from __future__ import annotations

import email.parser
import email.policy
import string
from dataclasses import dataclass

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from microapp.multipart import (
    BOUNDARY,
    RFC_BOUNDARY,
    MultipartError,
    MultipartParser,
    PartData,
    PartEnded,
    PartStarted,
)

LIMITS = {"max_parts": 100, "max_part_header_bytes": 1024, "max_field_bytes": 10_000,
          "max_total_bytes": 1_000_000}


@dataclass(frozen=True)
class Part:
    name: str
    filename: str | None
    content_type: str
    content: bytes


def fold(events: list) -> list[Part]:
    """The parts the events describe; fails on any order but Started, Data*, Ended."""
    parts, current, content = [], None, b""
    for event in events:
        if isinstance(event, PartStarted):
            assert current is None, "a part started inside another"
            current, content = event, b""
        elif isinstance(event, PartData):
            assert current is not None and event.data, "data outside a part, or empty"
            content += event.data
        else:
            assert isinstance(event, PartEnded) and current is not None
            parts.append(Part(current.name, current.filename, current.content_type, content))
            current = None
    assert current is None, "a part never ended"
    return parts


def parse(pieces: list[bytes], boundary: bytes = b"B", **limits: int) -> list[Part]:
    parser = MultipartParser(boundary, **{**LIMITS, **limits})
    events = []
    for piece in pieces:
        events += parser.feed(piece)
    parser.finish()
    assert parser.finished
    return fold(events)


def whole(body: bytes) -> list[bytes]:
    return [body]


def bytewise(body: bytes) -> list[bytes]:
    return [body[index:index + 1] for index in range(len(body))]


def in_threes(body: bytes) -> list[bytes]:
    return [body[index:index + 3] for index in range(0, len(body), 3)]


SPLITS = [whole, bytewise, in_threes]


def field(name: str, content: bytes, extra: bytes = b"") -> bytes:
    return (b'--B\r\nContent-Disposition: form-data; name="' + name.encode() + b'"\r\n'
            + extra + b"\r\n" + content + b"\r\n")


def text(name: str, content: bytes) -> Part:
    return Part(name, None, "text/plain", content)


VALID = {
    "one field": (field("a", b"hello") + b"--B--\r\n", [text("a", b"hello")]),
    "two fields, one empty": (field("a", b"") + field("b", b"x") + b"--B--",
                              [text("a", b""), text("b", b"x")]),
    "no parts at all": (b"--B--\r\n", []),
    "content with line breaks and near-boundaries": (
        field("a", b"\r\n--\r\n-B\r\n--b\r\r\n\n--") + b"--B--",
        [text("a", b"\r\n--\r\n-B\r\n--b\r\r\n\n--")]),
    "content ending in CR": (field("a", b"x\r") + b"--B--", [text("a", b"x\r")]),
    "binary content": (field("a", bytes(range(256))) + b"--B--", [text("a", bytes(range(256)))]),
    "preamble and epilogue are ignored": (
        b"preamble\r\n--B\r\n" + field("a", b"1")[5:] + b"--B--\r\nepilogue --B\r\n",
        [text("a", b"1")]),
    "transport padding after boundaries": (
        b"--B \t\r\nContent-Disposition: form-data; name=a\r\n\r\n1\r\n--B\t\r\n"
        b"Content-Disposition: form-data; name=b\r\n\r\n2\r\n--B--  \r\n",
        [text("a", b"1"), text("b", b"2")]),
    "file with a type": (
        field("f", b"PNG", b'Content-Type: image/png\r\n').replace(
            b'name="f"', b'name="f"; filename="pic.png"') + b"--B--",
        [Part("f", "pic.png", "image/png", b"PNG")]),
    "a file name is cut to its last path segment": (
        field("f", b"x").replace(b'name="f"', b'name="f"; filename="../../etc/passwd"')
        + b"--B--", [Part("f", "passwd", "text/plain", b"x")]),
    "a Windows path keeps its backslashes until cut": (
        field("f", b"x").replace(b'name="f"', b'name="f"; filename="C:\\Users\\me\\a.txt"')
        + b"--B--", [Part("f", "a.txt", "text/plain", b"x")]),
    "an empty file name means no file was chosen": (
        field("f", b"").replace(b'name="f"', b'name="f"; filename=""') + b"--B--",
        [Part("f", "", "text/plain", b"")]),
    "filename* wins over filename": (
        field("f", b"x").replace(
            b'name="f"', b"name=\"f\"; filename=\"plain.txt\"; filename*=UTF-8''%C3%A9t%C3%A9.txt")
        + b"--B--", [Part("f", "\u00e9t\u00e9.txt", "text/plain", b"x")]),
    "raw UTF-8 names, as browsers send them": (
        field("\u00e9", b"x").replace(b'"\r\n', "\"; filename=\"\u00fc.txt\"\r\n".encode(), 1)
        + b"--B--", [Part("\u00e9", "\u00fc.txt", "text/plain", b"x")]),
    "quoted-pair in a name": (
        b'--B\r\nContent-Disposition: form-data; name="a\\"b"\r\n\r\nx\r\n--B--',
        [text('a"b', b"x")]),
    "header names in any case, folded values": (
        b"--B\r\ncontent-DISPOSITION: form-data;\r\n name=a\r\n"
        b"Content-Transfer-Encoding: binary\r\n\r\nx\r\n--B--", [text("a", b"x")]),
}


@pytest.mark.parametrize("split", SPLITS)
@pytest.mark.parametrize(("body", "expected"), VALID.values(), ids=VALID.keys())
def test_valid_bodies_give_their_parts_however_split(body, expected, split):
    assert parse(split(body)) == expected


def test_part_headers_are_kept_in_order():
    parser = MultipartParser(b"B", **LIMITS)
    events = parser.feed(field("a", b"x", b"X-Extra: 1\r\nContent-Type: text/csv\r\n"))
    assert events[0].headers == (("Content-Disposition", 'form-data; name="a"'),
                                 ("X-Extra", "1"), ("Content-Type", "text/csv"))
    assert events[0].content_type == "text/csv"


MALFORMED = {
    "empty body": (b"", "no boundary line"),
    "no boundary in the body": (b"just some text\r\n", "no boundary line"),
    "a boundary that never closes": (field("a", b"unfinished"), "before its closing boundary"),
    "body ends in a part's headers": (b"--B\r\nContent-Disposition: form-da", "inside a part's"),
    "body ends in a boundary line": (b"--B", "inside a boundary line"),
    "text after a boundary": (b"--Bx\r\n", "characters after the boundary"),
    "a single dash after a boundary": (field("a", b"1") + b"--B-x", "characters after"),
    "a header line without a colon": (b"--B\r\nnonsense\r\n\r\nx\r\n--B--", "malformed part"),
    "a header name with a space": (b"--B\r\nBad Name: x\r\n\r\n\r\n--B--", "malformed part header"),
    "a bare LF in the headers": (
        b"--B\r\nContent-Disposition: form-data; name=a\nX: y\r\n\r\n\r\n--B--", "bare CR, LF"),
    "a NUL in the headers": (
        b"--B\r\nContent-Disposition: form-data; name=a\x00\r\n\r\n\r\n--B--", "bare CR, LF"),
    "headers that start folded": (b"--B\r\n folded: x\r\n\r\n\r\n--B--", "start with a folded"),
    "no headers at all": (b"--B\r\n\r\nx\r\n--B--", "no Content-Disposition"),
    "not form-data": (b"--B\r\nContent-Disposition: attachment; name=a\r\n\r\n\r\n--B--",
                      "not form-data"),
    "no name": (b"--B\r\nContent-Disposition: form-data\r\n\r\n\r\n--B--", "has no name"),
    "two Content-Dispositions": (field("a", b"", b"Content-Disposition: form-data; name=b\r\n")
                                 + b"--B--", "more than one content-disposition"),
    "two Content-Types": (field("a", b"", b"Content-Type: a/b\r\nContent-Type: c/d\r\n")
                          + b"--B--", "more than one content-type"),
    "a transfer encoding to decode": (field("a", b"eA==", b"Content-Transfer-Encoding: base64\r\n")
                                      + b"--B--", "is not supported"),
    "endless padding on a boundary line": (b"--B" + b" " * 300, "too much padding"),
}


@pytest.mark.parametrize("split", SPLITS)
@pytest.mark.parametrize(("body", "detail"), MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_bodies_are_400_with_a_reason(body, detail, split):
    with pytest.raises(MultipartError) as raised:
        parse(split(body))
    assert raised.value.status == 400
    assert detail in raised.value.detail


# Limits: each is met exactly, and one more is 400 (per part) or 413 (in total).

def test_part_count_limit():
    body = field("a", b"") * 3 + b"--B--"
    assert len(parse([body], max_parts=3)) == 3
    with pytest.raises(MultipartError) as raised:
        parse([body], max_parts=2)
    assert (raised.value.status, raised.value.detail) == (400, "the form has more than 2 parts")


def test_field_size_limit_applies_to_text_fields_only():
    assert parse([field("a", b"x" * 10) + b"--B--"], max_field_bytes=10)
    with pytest.raises(MultipartError) as raised:
        parse(bytewise(field("a", b"x" * 11) + b"--B--"), max_field_bytes=10)
    assert raised.value.status == 400
    file_part = field("f", b"x" * 100).replace(b'name="f"', b'name="f"; filename="f"')
    assert parse([file_part + b"--B--"], max_field_bytes=10)[0].content == b"x" * 100


def test_total_size_limit_counts_every_byte_fed():
    body = field("a", b"x" * 50) + b"--B--\r\n" + b"epilogue"
    assert parse([body], max_total_bytes=len(body))
    with pytest.raises(MultipartError) as raised:
        parse([body], max_total_bytes=len(body) - 1)
    assert raised.value.status == 413


def test_header_limit_is_enforced_before_the_headers_end():
    parser = MultipartParser(b"B", **{**LIMITS, "max_part_header_bytes": 100})
    parser.feed(b"--B\r\nContent-Disposition: form-data; name=a\r\nX-Padding: ")
    with pytest.raises(MultipartError) as raised:
        for _ in range(100):  # the header never ends; the parser must not wait for it
            parser.feed(b"y")
    assert raised.value.status == 400


def test_header_limit_counts_the_whole_section():
    headers = b'Content-Disposition: form-data; name="a"\r\n\r\n'
    body = b"--B\r\n" + headers + b"x\r\n--B--"
    assert parse([body], max_part_header_bytes=len(headers))
    with pytest.raises(MultipartError):
        parse([body], max_part_header_bytes=len(headers) - 1)


def test_a_large_part_streams_and_is_never_held_whole():
    parser = MultipartParser(b"B", **{**LIMITS, "max_total_bytes": 2 * 1024 * 1024})
    parser.feed(b"--B\r\nContent-Disposition: form-data; name=f; filename=big\r\n\r\n")
    chunk, delivered = b"z" * 65536, 0
    for count in range(1, 17):
        delivered += sum(len(event.data) for event in parser.feed(chunk))
        assert count * len(chunk) - delivered < len(b"\r\n--B")  # held back: a delimiter, at most
    events = parser.feed(b"\r\n--B--")
    assert isinstance(events[-1], PartEnded)
    assert delivered + sum(len(e.data) for e in events if isinstance(e, PartData)) == 16 * 65536


def test_the_epilogue_is_not_parsed_but_counted():
    parser = MultipartParser(b"B", **{**LIMITS, "max_total_bytes": 30})
    assert parser.feed(b"--B--\r\n") == []
    assert parser.feed(b"--B\r\nno headers") == []
    with pytest.raises(MultipartError):
        parser.feed(b"x" * 10)


@pytest.mark.parametrize("boundary", [b"", b"a\r\nb", b"x" * 201, b"trailing ", b"\xff"])
def test_unusable_boundaries_are_refused(boundary):
    with pytest.raises(ValueError):
        MultipartParser(boundary, **LIMITS)


@pytest.mark.parametrize("boundary", ["----WebKitFormBoundary7MA4YWxkTrZu0gW",
                                      "---------------------------9051914041544843365972754266",
                                      "----------a_BoUnDaRy09643288224872326$", "a b", "x" * 200])
def test_boundaries_of_real_clients_are_accepted(boundary):
    assert BOUNDARY.fullmatch(boundary)


# Properties: the standard library's email parser as an oracle.

BCHARS = string.ascii_letters + string.digits + "'()+_,-./:=?"
NAME_CHARACTERS = string.ascii_letters + string.digits + " !#$%&'()*+,-.:;<=>?@[]^_`{|}~"
CONTENT_TYPES = ["text/plain", "text/plain; charset=utf-8", "application/octet-stream",
                 "image/png", "application/json"]

boundaries = st.builds(lambda head, tail: head + tail,
                       st.text(BCHARS + " ", max_size=40), st.sampled_from(BCHARS))
parts = st.lists(st.tuples(
    st.text(NAME_CHARACTERS, min_size=1, max_size=12),
    st.none() | st.text(NAME_CHARACTERS, min_size=1, max_size=12),
    st.none() | st.sampled_from(CONTENT_TYPES),
    st.binary(max_size=200),
), min_size=1, max_size=5)
padding = st.sampled_from(["", " ", "\t ", "  "])
surroundings = st.sampled_from([b"", b"a preamble\r\n", b"\r\n"])


def build_body(boundary: str, form: list, pad: str, preamble: bytes, epilogue: bytes) -> bytes:
    """An RFC 2046 body: preamble, parts with padded boundary lines, epilogue."""
    dash = b"--" + boundary.encode()
    body = bytearray(preamble)
    for name, filename, content_type, content in form:
        disposition = f'form-data; name="{name}"'
        if filename is not None:
            disposition += f'; filename="{filename}"'
        body += dash + pad.encode() + b"\r\nContent-Disposition: " + disposition.encode()
        if content_type is not None:
            body += b"\r\nContent-Type: " + content_type.encode()
        body += b"\r\n\r\n" + content + b"\r\n"
    return bytes(body + dash + b"--" + pad.encode() + b"\r\n" + epilogue)


def email_parts(boundary: str, body: bytes) -> list[Part]:
    """What email.parser makes of the same body, as Parts."""
    head = f'Content-Type: multipart/form-data; boundary="{boundary}"\r\n\r\n'.encode()
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + body)
    assert not message.defects
    return [Part(part.get_param("name", header="content-disposition"), part.get_filename(),
                 part.get_content_type(), part.get_payload(decode=True))
            for part in message.iter_parts()]


def random_splits(data, body: bytes) -> list[bytes]:
    cuts = sorted(data.draw(st.lists(st.integers(0, len(body)), max_size=12)))
    edges = [0, *cuts, len(body)]
    return [body[start:end] for start, end in zip(edges, edges[1:], strict=False)]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(boundaries, parts, padding, surroundings, surroundings, st.data())
def test_parts_match_the_email_parser_in_any_split(boundary, form, pad, preamble, epilogue,
                                                   data):
    dash = b"--" + boundary.encode()
    assume(not any(dash in content for *_, content in form))
    body = build_body(boundary, form, pad, preamble, epilogue)
    ours = parse(random_splits(data, body), boundary.encode())
    theirs = email_parts(boundary, body)
    # email strips spaces around file names; we keep a name as sent.
    assert [(p.name, p.filename and p.filename.strip(), p.content_type.split(";")[0], p.content)
            for p in ours] == [(p.name, p.filename, p.content_type, p.content) for p in theirs]
    assert [p.content for p in ours] == [content for *_, content in form]


@settings(max_examples=300, deadline=None)
@given(parts, st.data())
def test_damaged_bodies_raise_only_multipart_errors(form, data):
    body = bytearray(build_body("B0und", form, "", b"", b""))
    for _ in range(data.draw(st.integers(1, 4))):
        position = data.draw(st.integers(0, len(body)))
        action = data.draw(st.sampled_from(["cut", "insert", "delete"]))
        if action == "cut":
            del body[position:]
        elif action == "insert":
            body[position:position] = data.draw(st.sampled_from(
                [b"\r", b"\n", b"\r\n", b"--", b"--B0und", b"\r\n--B0und", b":", b'"', b"\x00"]))
        else:
            del body[position:position + data.draw(st.integers(1, 8))]
    try:
        parse(random_splits(data, bytes(body)), b"B0und")
    except MultipartError as error:
        assert error.status in (400, 413) and error.detail


def test_rfc_boundary_grammar_is_a_subset_of_what_is_accepted():
    assert RFC_BOUNDARY.fullmatch("a'()+_,-./:=? b")
    for character in BCHARS + " ":
        assert BOUNDARY.fullmatch("x" + character + "x")
