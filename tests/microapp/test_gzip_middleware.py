"""GzipMiddleware: negotiation, what is (not) compressed, headers, streaming.

Raw WSGI calls throughout: WebTest would decode the gzip and hide the bytes.
"""

from __future__ import annotations

import gzip
import random
import sys
import zlib

import flask
import pytest
from hypothesis import given
from hypothesis import strategies as st
from wsgi_calls import call_wsgi

from microapp import GzipMiddleware
from microapp.compression import accepts_gzip

TEXT = [("Content-Type", "text/plain")]
GZIP = {"Accept-Encoding": "gzip"}
# Compressible text that gzip makes smaller; 300 bytes, under the default minimum.
BODY = b"hello " * 50
# Bytes gzip cannot shrink: its output is longer by its framing.
NOISE = random.Random(12).randbytes(1200)


def fixed(body=BODY, status="200 OK", headers=TEXT):
    """A WSGI app with one whole body, Content-Length included."""
    def app(environ, start_response):
        start_response(status, list(headers) + [("Content-Length", str(len(body)))])
        return [body]
    return app


def streaming(*chunks, headers=TEXT):
    """A generator app: start_response runs on first iteration, no length."""
    def app(environ, start_response):
        start_response("200 OK", list(headers))
        yield from chunks
    return app


@pytest.mark.parametrize(("header", "accepted"), [
    (None, False),
    ("", False),
    ("gzip", True),
    ("GZip", True),
    ("x-gzip", True),
    ("deflate, gzip;q=0.5", True),
    ("gzip;q=0", False),
    ("gzip; q=0.000", False),
    ("gzip;Q=1.0", True),
    ("*", True),
    ("*;q=0", False),
    ("*, gzip;q=0", False),
    ("br;q=1, *;q=0.1", True),
    ("encoding-1, gzip, encoding-2", True),
    ("identity", False),
    ("identity;q=1, gzip;q=0.5", False),
    ("gzip, , deflate", True),
    ("gzip;q=2", False),  # invalid qvalue: the whole field means identity
    ("gzip;q=0.5000", False),
    ("gzip;level=9", False),
    ("gzip;;q=1", False),
    ("gz ip", False),
])
def test_accept_encoding_is_negotiated_per_rfc_9110(header, accepted):
    assert accepts_gzip(header) is accepted


def test_whole_body_is_compressed_with_rewritten_length_and_vary():
    answer = call_wsgi(GzipMiddleware(fixed(), minimum_size=0), headers=GZIP)
    assert answer.header("Content-Encoding") == "gzip"
    assert answer.header("Vary") == "Accept-Encoding"
    assert answer.header("Content-Length") == str(len(answer.body))
    assert gzip.decompress(answer.body) == BODY


def test_output_is_deterministic_with_mtime_zero():
    app = GzipMiddleware(fixed(b"same bytes" * 50), minimum_size=0)
    first, second = (call_wsgi(app, headers=GZIP).body for _ in range(2))
    assert first == second
    assert first[4:8] == b"\x00\x00\x00\x00"  # MTIME field, RFC 1952 section 2.3


def test_strong_etag_is_weakened_and_weak_etag_kept():
    strong = fixed(headers=TEXT + [("ETag", '"v1"')])
    weak = fixed(headers=TEXT + [("ETag", 'W/"v1"')])
    assert call_wsgi(GzipMiddleware(strong, 0), headers=GZIP).header("ETag") == 'W/"v1"'
    assert call_wsgi(GzipMiddleware(weak, 0), headers=GZIP).header("ETag") == 'W/"v1"'


def test_client_without_gzip_gets_identity_but_still_vary():
    answer = call_wsgi(GzipMiddleware(fixed(), 0))
    assert answer.header("Content-Encoding") is None
    assert answer.header("Vary") == "Accept-Encoding"
    assert answer.body == BODY


def test_existing_vary_is_extended_not_replaced():
    app = fixed(headers=TEXT + [("Vary", "Cookie")])
    assert call_wsgi(GzipMiddleware(app, 0), headers=GZIP).header("Vary") == (
        "Cookie, Accept-Encoding")


def test_vary_already_naming_accept_encoding_is_left_alone():
    app = fixed(headers=TEXT + [("Vary", "accept-encoding")])
    assert call_wsgi(GzipMiddleware(app, 0), headers=GZIP).header("Vary") == "accept-encoding"


def test_body_under_minimum_size_is_sent_as_is():
    answer = call_wsgi(GzipMiddleware(fixed(b"x" * 99), minimum_size=100), headers=GZIP)
    assert answer.header("Content-Encoding") is None
    assert answer.body == b"x" * 99


def test_empty_body_is_never_compressed():
    answer = call_wsgi(GzipMiddleware(fixed(b""), minimum_size=0), headers=GZIP)
    assert answer.header("Content-Encoding") is None
    assert answer.body == b""


# Size: what is too small or too dense to compress, and Vary all the same.


@pytest.mark.parametrize(("length", "coding"), [(0, None), (499, None), (500, "gzip")])
def test_default_minimum_size_is_500_bytes(length, coding):
    answer = call_wsgi(GzipMiddleware(fixed(b"a" * length)), headers=GZIP)
    assert answer.header("Content-Encoding") == coding


def test_three_byte_body_is_sent_as_is_even_without_a_minimum():
    answer = call_wsgi(GzipMiddleware(fixed(b"abc"), minimum_size=0), headers=GZIP)
    assert answer.header("Content-Encoding") is None
    assert (answer.header("Content-Length"), answer.body) == ("3", b"abc")


def always_everything(environ):
    return True


@pytest.mark.parametrize("body", [b"abc", NOISE], ids=["tiny", "dense"])
def test_always_gzips_a_body_gzip_enlarges_when_the_request_asks(body):
    answer = call_wsgi(GzipMiddleware(fixed(body), always=always_everything), headers=GZIP)
    assert answer.header("Content-Encoding") == "gzip"
    assert answer.header("Content-Length") == str(len(answer.body))
    assert gzip.decompress(answer.body) == body


def test_always_gzips_a_tiny_stream_from_its_first_chunk():
    def streamed(environ, start_response):
        start_response("200 OK", TEXT)
        yield b"ab"
        yield b"c"

    answer = call_wsgi(GzipMiddleware(streamed, always=always_everything), headers=GZIP)
    assert answer.header("Content-Encoding") == "gzip"
    assert gzip.decompress(answer.body) == b"abc"


def test_always_never_codes_for_a_client_without_gzip_nor_an_empty_body():
    plain = call_wsgi(GzipMiddleware(fixed(b"abc"), always=always_everything))
    empty = call_wsgi(GzipMiddleware(fixed(b""), always=always_everything), headers=GZIP)
    assert plain.header("Content-Encoding") is None and plain.body == b"abc"
    assert empty.header("Content-Encoding") is None and empty.body == b""


def test_always_is_asked_per_request():
    app = GzipMiddleware(fixed(b"abc"), always=lambda environ: environ["PATH_INFO"] == "/yes")
    assert call_wsgi(app, path="/yes", headers=GZIP).header("Content-Encoding") == "gzip"
    assert call_wsgi(app, path="/no", headers=GZIP).header("Content-Encoding") is None


def test_whole_body_gzip_would_enlarge_is_sent_as_is_with_its_strong_etag():
    app = fixed(NOISE, headers=TEXT + [("ETag", '"n1"')])
    answer = call_wsgi(GzipMiddleware(app, minimum_size=0), headers=GZIP)
    assert answer.header("Content-Encoding") is None
    assert answer.header("ETag") == '"n1"'
    assert (answer.header("Content-Length"), answer.body) == ("1200", NOISE)


@pytest.mark.parametrize("request_headers", [GZIP, {}])
@pytest.mark.parametrize("body", [b"hi", BODY * 4, NOISE], ids=["small", "large", "dense"])
def test_vary_is_sent_whether_or_not_this_response_was_compressed(body, request_headers):
    # One resource can be small today and large tomorrow; a cache must see
    # the same Vary on every answer, or it may store one for all clients.
    answer = call_wsgi(GzipMiddleware(fixed(body)), headers=request_headers)
    assert answer.header("Vary") == "Accept-Encoding"


@pytest.mark.parametrize("body", [b"hi", BODY * 4, NOISE], ids=["small", "large", "dense"])
def test_head_gets_exactly_the_get_head_when_the_app_gives_the_body(body):
    app = GzipMiddleware(fixed(body))
    get = call_wsgi(app, "GET", headers=GZIP)
    head = call_wsgi(app, "HEAD", headers=GZIP)
    assert head.headers == get.headers
    assert head.body == b""


def test_streamed_body_is_judged_once_the_minimum_is_buffered():
    pulled: list[int] = []

    def app(environ, start_response):
        start_response("200 OK", TEXT)
        for number in range(5):
            pulled.append(number)
            yield b"abcd" * 50  # 200 bytes

    heads: list[tuple[int, list]] = []

    def server_start_response(status, headers, exc_info=None):
        heads.append((len(pulled), headers))

    result = GzipMiddleware(app, minimum_size=500)({"HTTP_ACCEPT_ENCODING": "gzip"},
                                                   server_start_response)
    body = b"".join(result)
    assert heads[0][0] == 3  # 600 bytes held: enough to decide, not the whole body
    assert ("Content-Encoding", "gzip") in heads[0][1]
    assert gzip.decompress(body) == b"abcd" * 250


def test_streamed_chunks_that_end_under_the_minimum_are_sent_as_is():
    answer = call_wsgi(GzipMiddleware(streaming(b"a" * 200, b"b" * 200)), headers=GZIP)
    assert answer.header("Content-Encoding") is None
    assert answer.header("Vary") == "Accept-Encoding"
    assert answer.body == b"a" * 200 + b"b" * 200


@pytest.mark.parametrize(("first", "coding"), [(b"a" * 10, None), (b"a" * 600, "gzip")])
def test_write_callable_app_is_judged_by_its_first_write(first, coding):
    def app(environ, start_response):
        write = start_response("200 OK", TEXT)
        write(first)
        write(b"b" * 1000)
        return []

    answer = call_wsgi(GzipMiddleware(app, minimum_size=500), headers=GZIP)
    assert answer.header("Content-Encoding") == coding
    assert answer.header("Vary") == "Accept-Encoding"
    body = gzip.decompress(answer.body) if coding else answer.body
    assert body == first + b"b" * 1000


@pytest.mark.parametrize(("status", "headers"), [
    ("206 Partial Content", TEXT + [("Content-Range", "bytes 0-16/100")]),
    ("200 OK", TEXT + [("Content-Range", "bytes 0-16/100")]),
    ("200 OK", TEXT + [("Content-Encoding", "br")]),
    ("200 OK", TEXT + [("Cache-Control", "public, No-Transform")]),
    ("200 OK", [("Content-Type", "image/png")]),
    ("200 OK", [("Content-Type", "audio/ogg")]),
    ("200 OK", [("Content-Type", "video/mp4")]),
    ("200 OK", [("Content-Type", "font/woff2")]),
    ("200 OK", [("Content-Type", "application/zip")]),
    ("200 OK", [("Content-Type", "application/gzip")]),
])
def test_responses_that_must_not_be_recoded_pass_unchanged(status, headers):
    answer = call_wsgi(GzipMiddleware(fixed(status=status, headers=headers), 0), headers=GZIP)
    assert answer.header("Content-Encoding") in (None, "br")
    assert answer.body == BODY


@pytest.mark.parametrize("status", ["204 No Content", "304 Not Modified"])
def test_statuses_without_content_are_not_compressed(status):
    def app(environ, start_response):
        start_response(status, [("ETag", '"t"')])
        return []

    answer = call_wsgi(GzipMiddleware(app, 0), headers=GZIP)
    assert answer.header("Content-Encoding") is None
    assert answer.body == b""


def test_not_modified_carries_the_vary_and_weak_etag_its_200_would():
    def app(environ, start_response):
        start_response("304 Not Modified", [("ETag", '"t"')])
        return []

    answer = call_wsgi(GzipMiddleware(app, 0), headers=GZIP)
    assert (answer.header("Vary"), answer.header("ETag")) == ("Accept-Encoding", 'W/"t"')


def test_svg_is_compressed_although_it_is_an_image():
    app = fixed(headers=[("Content-Type", "image/svg+xml")])
    assert call_wsgi(GzipMiddleware(app, 0), headers=GZIP).header("Content-Encoding") == "gzip"


def test_streaming_body_drops_length_and_flushes_once_per_chunk():
    app = GzipMiddleware(streaming(b"first ", b"", b"second"), minimum_size=0)
    answer = call_wsgi(app, headers=GZIP)
    assert answer.header("Content-Length") is None
    assert answer.header("Content-Encoding") == "gzip"
    decoder = zlib.decompressobj(zlib.MAX_WBITS | 16)
    # Each app chunk's compressed form decodes on its own: nothing held back.
    decoded = [decoder.decompress(chunk) for chunk in answer.chunks]
    assert decoded[:3] == [b"first ", b"", b"second"]
    assert b"".join(decoded) + decoder.flush() == b"first second"


def test_app_declared_length_over_minimum_streams_compressed():
    def app(environ, start_response):
        start_response("200 OK", TEXT + [("Content-Length", "12")])
        yield b"abcdef"
        yield b"ghijkl"

    answer = call_wsgi(GzipMiddleware(app, minimum_size=4), headers=GZIP)
    assert answer.header("Content-Length") is None
    assert gzip.decompress(answer.body) == b"abcdefghijkl"


def test_short_generator_body_is_known_whole_and_gets_a_length():
    answer = call_wsgi(GzipMiddleware(streaming(b"ab", b"cd"), minimum_size=100), headers=GZIP)
    assert answer.header("Content-Encoding") is None
    assert answer.body == b"abcd"


def test_write_callable_output_is_compressed_and_ordered_before_the_iterable():
    def app(environ, start_response):
        write = start_response("200 OK", TEXT)
        write(b"written ")
        return [b"returned"]

    answer = call_wsgi(GzipMiddleware(app, 0), headers=GZIP)
    assert answer.header("Content-Encoding") == "gzip"
    assert gzip.decompress(answer.body) == b"written returned"


def test_start_response_with_exc_info_before_the_body_replaces_the_head():
    def app(environ, start_response):
        start_response("200 OK", TEXT)
        try:
            raise ValueError("late failure")
        except ValueError:
            start_response("500 Internal Server Error", TEXT, sys.exc_info())
        return [b"sorry " * 20]

    answer = call_wsgi(GzipMiddleware(app, 0), headers=GZIP)
    assert answer.status == "500 Internal Server Error"
    assert gzip.decompress(answer.body) == b"sorry " * 20


def test_start_response_with_exc_info_after_the_head_is_sent_reraises():
    def app(environ, start_response):
        write = start_response("200 OK", TEXT)
        write(b"partial")
        try:
            raise ValueError("too late")
        except ValueError:
            start_response("500 Internal Server Error", TEXT, sys.exc_info())
        return [b"never"]

    def server_start_response(status, headers, exc_info=None):
        if exc_info and sent:
            raise exc_info[1].with_traceback(exc_info[2])
        sent.append(status)
        return lambda data: None

    sent: list[str] = []
    with pytest.raises(ValueError, match="too late"):
        GzipMiddleware(app, 0)({"HTTP_ACCEPT_ENCODING": "gzip"}, server_start_response)


class Closable:
    def __init__(self, chunks):
        self.chunks, self.closed = chunks, False

    def __iter__(self):
        return iter(self.chunks)

    def close(self):
        self.closed = True


@pytest.mark.parametrize("request_headers", [GZIP, {}])
@pytest.mark.parametrize("chunks", [[b"x" * 10, b"y" * 10], []])
def test_close_of_the_app_result_is_always_called(request_headers, chunks):
    result = Closable(chunks)

    def app(environ, start_response):
        start_response("200 OK", TEXT)
        return result

    call_wsgi(GzipMiddleware(app, 0), headers=request_headers)
    assert result.closed


def test_uncompressed_result_is_handed_to_the_server_untouched():
    result = Closable([b"data"])

    def app(environ, start_response):
        start_response("200 OK", [("Content-Type", "image/png")])
        return result

    returned = GzipMiddleware(app, 0)({"HTTP_ACCEPT_ENCODING": "gzip"},
                                      lambda status, headers, exc_info=None: None)
    assert returned is result  # a wsgi.file_wrapper survives for sendfile


def test_head_gets_the_same_encoding_and_vary_as_get_without_a_body():
    app = GzipMiddleware(fixed(b"some text"), 0)
    get = call_wsgi(app, "GET", headers=GZIP)
    head = call_wsgi(app, "HEAD", headers=GZIP)
    for name in ("Content-Encoding", "Vary", "Content-Type"):
        assert head.header(name) == get.header(name)
    assert head.body == b""


def test_head_of_an_empty_body_is_not_marked_compressed():
    head = call_wsgi(GzipMiddleware(fixed(b""), 0), "HEAD", headers=GZIP)
    assert head.header("Content-Encoding") is None


def test_exception_while_reading_the_first_chunk_propagates_and_closes():
    class Failing(Closable):
        def __iter__(self):
            raise RuntimeError("app broke")

    result = Failing([])

    def app(environ, start_response):
        start_response("200 OK", TEXT)
        return result

    with pytest.raises(RuntimeError, match="app broke"):
        GzipMiddleware(app, 0)({"HTTP_ACCEPT_ENCODING": "gzip"},
                               lambda status, headers, exc_info=None: None)
    assert result.closed


@given(chunks=st.lists(st.binary(max_size=300), max_size=8),
       minimum_size=st.integers(min_value=0, max_value=600),
       as_list=st.booleans())
def test_decoded_output_always_equals_the_app_body(chunks, minimum_size, as_list):
    app = fixed(b"".join(chunks)) if as_list else streaming(*chunks)
    answer = call_wsgi(GzipMiddleware(app, minimum_size), headers=GZIP)
    body = answer.body
    if answer.header("Content-Encoding") == "gzip":
        body = gzip.decompress(body)
    assert body == b"".join(chunks)
    length = answer.header("Content-Length")
    assert length is None or int(length) == len(answer.body)
    if as_list and answer.header("Content-Encoding") == "gzip":
        assert len(answer.body) < len(b"".join(chunks))  # known whole: never larger


def test_wraps_a_flask_app():
    flask_app = flask.Flask(__name__)

    @flask_app.get("/")
    def index():
        return "flask says hello " * 10

    answer = call_wsgi(GzipMiddleware(flask_app, minimum_size=50), headers=GZIP)
    assert answer.header("Content-Encoding") == "gzip"
    assert gzip.decompress(answer.body) == b"flask says hello " * 10
