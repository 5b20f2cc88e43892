"""Response: status lines, header lists, body kinds, cookies."""

from __future__ import annotations

import io

import pytest
from wsgi_calls import call_wsgi

from microapp import Response
from microapp.response import FileBody, make_response


@pytest.mark.parametrize(("status", "line"), [
    (200, "200 OK"), (201, "201 Created"), (206, "206 Partial Content"),
    (404, "404 Not Found"), (413, "413 Content Too Large"), (416, "416 Range Not Satisfiable"),
    (599, "599 Unknown Status"),
])
def test_status_line_uses_the_canonical_reason_phrase(status, line):
    assert Response(status=status).status_line == line


def test_bytes_body_gets_length_and_octet_stream_type():
    answer = call_wsgi(Response(b"\x00\x01"))
    assert answer.header("Content-Type") == "application/octet-stream"
    assert answer.header("Content-Length") == "2"
    assert answer.body == b"\x00\x01"


def test_text_body_is_utf8_with_charset():
    answer = call_wsgi(Response("h\u00e9"))
    assert answer.header("Content-Type") == "text/plain; charset=utf-8"
    assert answer.header("Content-Length") == "3"
    assert answer.body == "h\u00e9".encode()


def test_dict_body_and_json_constructor_are_application_json():
    assert call_wsgi(Response({"a": 1})).body == b'{"a": 1}'
    answer = call_wsgi(Response.json([1, "\u00e9"], status=202))
    assert answer.status == "202 Accepted"
    assert answer.header("Content-Type") == "application/json"
    assert answer.body == '[1, "\u00e9"]'.encode()


def test_explicit_content_type_wins():
    answer = call_wsgi(Response(b"x", content_type="text/plain"))
    assert answer.header("Content-Type") == "text/plain"


def test_iterable_body_streams_without_content_length():
    answer = call_wsgi(Response(iter([b"a", b"b"]), content_type="text/plain"))
    assert answer.chunks == [b"a", b"b"]
    assert answer.header("Content-Length") is None


def test_file_body_is_sent_in_blocks_and_bounded_by_its_length(tmp_path):
    path = tmp_path / "f"
    path.write_bytes(b"0123456789")
    body = FileBody(open(path, "rb"), offset=2, length=5, block_size=2)
    answer = call_wsgi(Response(body))
    assert answer.chunks == [b"23", b"45", b"6"]
    assert answer.header("Content-Length") == "5"
    assert body.file.closed


def test_open_file_is_a_file_body(tmp_path):
    path = tmp_path / "f"
    path.write_bytes(b"abc")
    answer = call_wsgi(Response(open(path, "rb")))
    assert (answer.body, answer.header("Content-Length")) == (b"abc", "3")


@pytest.mark.parametrize("status", [204, 304])
def test_statuses_without_content_send_no_body_type_or_length(status):
    answer = call_wsgi(Response(b"ignored", status=status))
    assert answer.body == b""
    assert answer.header("Content-Type") is None
    assert answer.header("Content-Length") is None


def test_headers_are_a_list_of_str_tuples():
    response = Response("x", headers=[("X-One", "1")])
    response.add_header("X-One", "2")
    assert [pair for pair in response.headers if pair[0] == "X-One"] == [("X-One", "1"),
                                                                        ("X-One", "2")]
    response.set_header("x-one", "3")
    assert response.get_header("X-ONE") == "3"
    assert all(type(pair) is tuple and all(type(part) is str for part in pair)
               for pair in response.headers)


@pytest.mark.parametrize(("name", "value"), [
    ("X-Bad", "a\r\nSet-Cookie: evil=1"), ("Bad Name", "x"), ("X-Nul", "a\x00b"),
])
def test_header_splitting_is_refused(name, value):
    with pytest.raises(ValueError):
        Response().set_header(name, value)


def test_set_cookie_writes_attributes():
    response = Response()
    response.set_cookie("session", "abc123", max_age=60, secure=True)
    assert response.get_header("Set-Cookie") == (
        "session=abc123; Path=/; Max-Age=60; Secure; HttpOnly; SameSite=Lax")


def test_delete_cookie_expires_it():
    response = Response()
    response.delete_cookie("session")
    assert response.get_header("Set-Cookie").startswith("session=; Path=/; Max-Age=0")


@pytest.mark.parametrize("value", ["a;b", "a b", 'a"b', "a,b", "\u00e9"])
def test_cookie_values_that_would_break_the_field_are_refused(value):
    with pytest.raises(ValueError):
        Response().set_cookie("name", value)


def test_make_response_accepts_the_handler_return_types():
    assert make_response("t").get_header("Content-Type") == "text/plain; charset=utf-8"
    assert make_response(b"b").get_header("Content-Length") == "1"
    assert make_response({"k": 1}).get_header("Content-Type") == "application/json"
    same = Response()
    assert make_response(same) is same
    with pytest.raises(TypeError):
        make_response(None)


def test_unsupported_body_type_is_a_type_error():
    with pytest.raises(TypeError):
        Response(3.5)


def test_drop_body_closes_a_stream_unread():
    stream = io.BytesIO(b"data")
    response = Response(iter([b"x"]))
    response.body = stream
    response.drop_body()
    assert stream.closed and response.body == b""
