"""Request: headers, query, cookies, bounded bodies and JSON."""

from __future__ import annotations

import io

import pytest
from wsgi_calls import make_environ

from microapp import HTTPError, Request
from microapp.request import iter_body


def request_for(**kwargs) -> Request:
    max_body_bytes = kwargs.pop("max_body_bytes", 1024)
    return Request(make_environ(**kwargs), max_body_bytes=max_body_bytes)


def test_headers_are_looked_up_case_insensitively():
    request = request_for(headers={"User-Agent": "curl/8", "Content-Type": "text/plain"})
    assert request.headers["user-agent"] == "curl/8"
    assert request.headers["USER-AGENT"] == "curl/8"
    assert request.headers.get("content-type") == "text/plain"
    assert request.headers.get("X-Missing") is None
    assert "User-Agent" in list(request.headers)


def test_empty_content_type_counts_as_absent():
    request = Request(make_environ(CONTENT_TYPE=""))
    assert "Content-Type" not in request.headers
    assert request.content_type == ""


def test_query_args_keep_every_value_and_decode_utf8():
    request = request_for(QUERY_STRING="a=1&a=2&name=%C3%A9t%C3%A9&empty=")
    assert request.query["a"] == ["1", "2"]
    assert request.args == {"a": "1", "name": "\u00e9t\u00e9", "empty": ""}


def test_cookies_are_parsed_and_malformed_pairs_skipped():
    request = request_for(headers={"Cookie": 'session=abc; theme="dark"; junk; =x'})
    assert request.cookies == {"session": "abc", "theme": "dark"}


def test_method_and_path_default_sensibly():
    request = request_for(method="post", path="")
    assert request.method == "POST"
    assert request.path == "/"


def test_body_is_read_exactly_to_content_length():
    assert request_for(body=b"hello").body == b"hello"


def test_body_over_the_limit_is_413_before_reading():
    environ = make_environ(body=b"x" * 2000)
    environ["wsgi.input"] = None  # reading anything would fail
    with pytest.raises(HTTPError) as raised:
        _ = Request(environ, max_body_bytes=1024).body
    assert raised.value.status == 413


def test_body_shorter_than_content_length_is_400():
    environ = make_environ(body=b"hello", CONTENT_LENGTH="10")
    with pytest.raises(HTTPError) as raised:
        _ = Request(environ).body
    assert raised.value.status == 400


def test_malformed_content_length_is_400():
    with pytest.raises(HTTPError) as raised:
        _ = request_for(CONTENT_LENGTH="12a").body
    assert raised.value.status == 400


class BrokenInput:
    """wsgi.input whose client vanished: an OSError subclass carrying a status."""

    class Gone(OSError):
        status = 408

    def read(self, size=-1):
        raise self.Gone("client went away")


def test_failed_body_read_becomes_the_status_the_server_suggests():
    environ = make_environ(CONTENT_LENGTH="5", **{"wsgi.input": BrokenInput()})
    with pytest.raises(HTTPError) as raised:
        _ = Request(environ).body
    assert raised.value.status == 408


def test_failed_body_read_without_status_is_400():
    class Closed:
        def read(self, size=-1):
            raise ValueError("I/O operation on closed file")

    environ = make_environ(CONTENT_LENGTH="5", **{"wsgi.input": Closed()})
    with pytest.raises(HTTPError) as raised:
        _ = Request(environ).body
    assert raised.value.status == 400


def test_terminated_input_without_length_is_read_to_the_end():
    environ = make_environ(**{"wsgi.input": io.BytesIO(b"a" * 100_000),
                              "wsgi.input_terminated": True})
    assert len(b"".join(iter_body(environ, limit=200_000, chunk_size=4096))) == 100_000


def test_terminated_input_over_the_limit_is_413():
    environ = make_environ(**{"wsgi.input": io.BytesIO(b"a" * 5000),
                              "wsgi.input_terminated": True})
    with pytest.raises(HTTPError) as raised:
        list(iter_body(environ, limit=4096, chunk_size=1024))
    assert raised.value.status == 413


def test_no_length_and_unterminated_input_means_no_body():
    environ = make_environ(**{"wsgi.input": io.BytesIO(b"ignored")})
    assert Request(environ).body == b""


def test_json_body_is_parsed():
    request = request_for(body=b'{"a": [1, 2]}', headers={"Content-Type": "application/json"})
    assert request.json() == {"a": [1, 2]}


def test_json_with_a_suffix_media_type_is_accepted():
    request = request_for(body=b"1", headers={"Content-Type": "application/problem+json"})
    assert request.json() == 1


@pytest.mark.parametrize(("content_type", "body", "status"), [
    ("text/plain", b"{}", 415),
    ("", b"{}", 415),
    ("application/json", b"{not json", 400),
    ("application/json", b"", 400),
    ("application/json", b'"\xff"', 400),
])
def test_bad_json_bodies_are_refused(content_type, body, status):
    request = request_for(body=body, headers={"Content-Type": content_type})
    with pytest.raises(HTTPError) as raised:
        request.json()
    assert raised.value.status == status
