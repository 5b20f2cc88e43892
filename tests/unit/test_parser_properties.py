"""Properties of the protocol layer, checked with hypothesis.

- a valid message parses to the same events however its bytes are split;
- arbitrary or mutated bytes make the parser raise ProtocolError or wait,
  never anything else, and its verdict does not depend on the split;
- Content-Length and chunk sizes are accepted exactly when the grammar says;
- encode_chunk output round-trips through the parser's chunked reader;
- encode_head output parses back to the same status and fields.
"""

from __future__ import annotations

import re

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from wsgiserver.protocol import ParserLimits
from wsgiserver.protocol.state import client_persists
from wsgiserver.protocol.writer import LAST_CHUNK, encode_chunk, encode_head

from .parsing import events_of, parse, split_at

PROPERTY = settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)

TCHARS = "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
tokens = st.text(TCHARS, min_size=1, max_size=12).map(str.encode)
# Framing and persistence fields are added by the message builder itself.
RESERVED = {b"host", b"content-length", b"transfer-encoding", b"connection", b"expect"}
field_names = tokens.filter(lambda name: name.lower() not in RESERVED)
# RFC 9110 section 5.5: VCHAR and obs-text, with SP/HTAB only inside.
VALUE_OCTETS = [bytes([octet]) for octet in (*range(0x21, 0x7F), *range(0x80, 0x100))]
field_values = st.lists(
    st.sampled_from([*VALUE_OCTETS, b" ", b"\t"]), max_size=20
).map(lambda octets: b"".join(octets).strip(b" \t"))
PATH_CHARS = "abcxyzABC0129-._~!$&'()*+,;=:@/%?"
targets = st.text(PATH_CHARS, max_size=20).map(lambda path: b"/" + path.encode())
chunk_extensions = st.sampled_from([b"", b";a", b";a=b", b' ; a="q \\" ;"', b";x=1;y"])


@st.composite
def chunked_bodies(draw, body: bytes) -> tuple[bytes, tuple[tuple[bytes, bytes], ...]]:
    """``body`` chunked at random, with random extensions and trailers."""
    cuts = draw(st.lists(st.integers(0, len(body)), max_size=4))
    encoded = b""
    for piece in split_at(body, cuts):
        if piece:
            size = b"%x" % len(piece)
            if draw(st.booleans()):
                size = size.upper().rjust(4, b"0")
            encoded += size + draw(chunk_extensions) + b"\r\n" + piece + b"\r\n"
    trailers = tuple(draw(st.lists(st.tuples(field_names, field_values), max_size=2)))
    encoded += b"0" + draw(chunk_extensions) + b"\r\n"
    encoded += b"".join(name + b": " + value + b"\r\n" for name, value in trailers)
    encoded += b"\r\n"
    return encoded, tuple((name.lower(), value) for name, value in trailers)


@st.composite
def valid_messages(draw) -> tuple[bytes, dict]:
    """A valid request and what the parser must report for it."""
    version = draw(st.sampled_from([(1, 0), (1, 1)]))
    method, target = draw(tokens), draw(targets)
    fields = draw(st.lists(st.tuples(field_names, field_values), max_size=5))
    fields.append((b"Host", draw(st.sampled_from([b"example.com", b"[::1]:80", b""]))))
    framings = ["none", "length"] + (["chunked"] if version == (1, 1) else [])
    framing = draw(st.sampled_from(framings))
    body = draw(st.binary(max_size=60)) if framing != "none" else b""
    encoded, trailers = body, ()
    if framing == "length":
        fields.append((b"Content-Length", b"%d" % len(body)))
    elif framing == "chunked":
        fields.append((b"Transfer-Encoding", b"chunked"))
        encoded, trailers = draw(chunked_bodies(body))
    fields = draw(st.permutations(fields))
    head = b"%s %s HTTP/%d.%d\r\n" % (method, target, *version)
    head += b"".join(name + b":" + draw(st.sampled_from([b"", b" ", b"\t "])) + value
                     + draw(st.sampled_from([b"", b" "])) + b"\r\n" for name, value in fields)
    expected = {
        "method": method,
        "target": target,
        "http_version": version,
        "headers": tuple((name.lower(), value) for name, value in fields),
        "client_persists": version == (1, 1),
        "body": body,
        "trailers": trailers,
    }
    return head + b"\r\n" + encoded, expected


def splits_of(raw: bytes):
    return st.lists(st.integers(0, len(raw)), max_size=10).map(lambda cuts: split_at(raw, cuts))


@PROPERTY
@given(st.lists(valid_messages(), min_size=1, max_size=3), st.data())
def test_valid_messages_parse_the_same_in_any_split(messages, data):
    raw = b"".join(message for message, _ in messages)
    whole = parse([raw])
    assert whole.error is None, repr(whole.error)
    assert len(whole.messages) == len(messages)
    for parsed, (_, expected) in zip(whole.messages, messages, strict=True):
        request = parsed.request
        for name in ("method", "target", "http_version", "headers"):
            assert getattr(request, name) == expected[name], name
        assert client_persists(request) == expected["client_persists"]
        assert parsed.body == expected["body"]
        assert parsed.trailers == expected["trailers"]
    pieces = data.draw(splits_of(raw))
    assert events_of(parse(pieces)) == events_of(whole)
    assert events_of(parse(pieces, max_data=7)) == events_of(whole)


# Octets that matter to the grammar, to mutate valid messages with.
INTERESTING = [b"\r", b"\n", b"\r\n", b" ", b"\t", b":", b";", b",", b"0", b"f", b"\x00",
               b"\x0b", b"\xa0", b"\xff", b'"', b"\\", b"-", b"+", b"x", b"\r\n\r\n"]


@st.composite
def mutated_messages(draw) -> bytes:
    raw = bytearray(draw(valid_messages())[0])
    for _ in range(draw(st.integers(1, 4))):
        position = draw(st.integers(0, len(raw)))
        action = draw(st.sampled_from(["insert", "delete", "replace"]))
        octets = draw(st.sampled_from(INTERESTING) | st.binary(min_size=1, max_size=3))
        if action == "insert":
            raw[position:position] = octets
        elif action == "delete":
            del raw[position : position + len(octets)]
        else:
            raw[position : position + len(octets)] = octets
    return bytes(raw)


SMALL = ParserLimits(max_request_line=40, max_header_bytes=80, max_header_count=4, max_body_bytes=30)
hostile_inputs = st.binary(max_size=300) | mutated_messages()


@PROPERTY
@given(hostile_inputs, st.sampled_from([None, SMALL]), st.data())
@example(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n" + b"\r\n" * 10, None, None)
def test_any_bytes_give_events_or_protocol_error_whatever_the_split(raw, limits, data):
    # parse() lets anything but ProtocolError escape, which fails the test.
    whole = parse([raw], limits)
    if data is None:
        return
    pieces = data.draw(splits_of(raw))
    split = parse(pieces, limits)
    # The verdict may not depend on the split: the same messages come out,
    # and an error in one feeding is an error in the other (with several
    # faults in one head, which of them is reported first may differ).
    assert [m[:3] for m in events_of(split) if len(m) == 3] == [
        m[:3] for m in events_of(whole) if len(m) == 3
    ]
    assert (split.error is None) == (whole.error is None), (whole.error, split.error)


def test_bytewise_feeding_of_any_bytes_is_covered_too():
    # A fixed sample fed one byte at a time (the slowest split), kept cheap.
    @PROPERTY
    @given(mutated_messages())
    def check(raw):
        whole = parse([raw])
        bytewise = parse([raw[i : i + 1] for i in range(len(raw))])
        assert (whole.error is None) == (bytewise.error is None), (whole.error, bytewise.error)

    check()


def post_with(field: bytes, body: bytes = b"") -> bytes:
    return b"POST / HTTP/1.1\r\nHost: a\r\n" + field + b"\r\n\r\n" + body


# Text an int() would accept as a number in some form.
NUMBERISH = st.text(
    st.sampled_from(list("0123456789+-_ \t\x0b\x0c\xa0\x85xXaAfF.,e") + ["\u0665", "\uff15", "\u00b9"]),
    min_size=0, max_size=8,
)


@PROPERTY
@given(NUMBERISH)
@example("+5")
@example("\u0665")
@example("1_0")
def test_content_length_accepted_exactly_when_it_is_digits(text):
    value = text.encode("utf-8")
    outcome = parse([post_with(b"Content-Length: " + value, b"x" * 100)], stop_after=1)
    elements = [element.strip(b" \t") for element in value.split(b",")]
    grammatical = all(re.fullmatch(rb"[0-9]+", element) for element in elements)
    agreeing = len({int(element) for element in elements}) == 1 if grammatical else False
    if not (grammatical and agreeing):
        assert outcome.status == 400
        return
    length = int(elements[0])
    if length > (1 << 30):
        assert outcome.status == 413
    elif length > 100:
        assert outcome.error is None and outcome.partial.request.content_length == length
    else:
        assert outcome.message.body == b"x" * length


@PROPERTY
@given(NUMBERISH)
@example(" 5")
@example("5 ")
@example("0x5")
@example("3e9")  # 1001: a chunk one byte longer than the data, then CRLF
def test_chunk_size_accepted_exactly_when_it_is_hex_digits(text):
    size = text.encode("utf-8")
    grammatical = re.fullmatch(rb"[0-9A-Fa-f]{1,16}", size) is not None
    length = int(size, 16) if grammatical else 16
    data = b"y" * min(length, 1000)
    # A chunk longer than the data sent is left unfinished: what would follow
    # (CRLF, the last chunk) would be read as its data.
    body = size + b"\r\n" + data + (b"\r\n0\r\n\r\n" if length <= len(data) else b"")
    outcome = parse([post_with(b"Transfer-Encoding: chunked", body)], stop_after=1)
    if not grammatical:
        assert outcome.status == 400
    elif length > (1 << 30):
        assert outcome.status == 413
    elif length > len(data):
        assert outcome.error is None and outcome.partial is not None  # waits for the rest
    else:
        assert outcome.message.body == data


@PROPERTY
@given(st.lists(st.binary(max_size=300), max_size=6), st.data())
def test_encoded_chunks_round_trip_through_the_parser(pieces, data):
    body = b"".join(map(encode_chunk, pieces)) + LAST_CHUNK
    raw = post_with(b"Transfer-Encoding: chunked", body)
    split = data.draw(splits_of(raw))
    outcome = parse(split)
    assert outcome.message.body == b"".join(pieces)
    assert outcome.message.trailers == ()
    assert outcome.parser.buffered == 0


def parse_response_head(head: bytes) -> tuple[int, bytes, list[tuple[bytes, bytes]]]:
    """A strict response-head reader, only for this test (RFC 9112 sections 4, 5)."""
    assert head.endswith(b"\r\n\r\n")
    status_line, *lines = head[:-4].split(b"\r\n")
    match = re.fullmatch(rb"HTTP/1\.1 ([0-9]{3}) ([\t \x21-\x7e\x80-\xff]*)", status_line)
    assert match is not None, status_line
    fields = []
    for line in lines:
        match_field = re.fullmatch(rb"([!#$%&'*+\-.^_`|~0-9A-Za-z]+): (.*)", line, re.DOTALL)
        assert match_field is not None, line
        name, value = match_field.groups()
        assert b"\r" not in value and b"\n" not in value
        fields.append((name, value))
    return int(match.group(1)), match.group(2), fields


latin_values = st.text(
    st.characters(min_codepoint=0x20, max_codepoint=0xFF, blacklist_characters="\x7f"),
    max_size=30,
).map(lambda value: value.strip(" \t"))
reason_texts = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=20)


@PROPERTY
@given(
    st.integers(100, 599),
    reason_texts,
    st.lists(st.tuples(tokens.map(bytes.decode), latin_values), max_size=8),
)
def test_encoded_head_parses_back_to_the_same_status_and_fields(status, reason, fields):
    head = encode_head(f"{status} {reason}", fields)
    code, parsed_reason, parsed_fields = parse_response_head(head)
    assert code == status
    assert parsed_reason == reason.encode("latin-1")
    assert parsed_fields == [(n.encode("latin-1"), v.encode("latin-1")) for n, v in fields]
