"""The PEP 3333 adapter, without sockets: environ, start_response, write(),
wsgi.input, file_wrapper, close(), and the 500 path. Apps run under
wsgiref.validate.validator, which fails on any breach of the spec."""

from __future__ import annotations

import io
from wsgiref.validate import validator

import pytest

from wsgiserver.errors import ResponseError
from wsgiserver.protocol import After, ConnectionState, Data, EndOfMessage
from wsgiserver.wsgi import EnvironBuilder, FileWrapper, run_application


class StateSink:
    """A ResponseSink over the connection state that keeps the bytes it would send."""

    def __init__(self, state: ConnectionState, sendfile: bool) -> None:
        self.state = state
        self.sent: list[bytes] = []
        self.files: list[tuple[int, int, int]] = []
        self.sendfile = sendfile
        self.upgraded = False

    @property
    def head_sent(self) -> bool:
        return self.state.response.head_sent

    def set_head(self, status, headers) -> None:
        self.state.response.set_head(status, headers)

    def write(self, data: bytes) -> None:
        self.sent.append(self.state.write(data))

    def write_whole(self, data: bytes) -> None:
        self.sent.append(self.state.write_whole(data))

    def write_all(self, pieces) -> None:
        for piece in pieces:
            self.sent.append(self.state.write(piece))
        self.sent.append(self.state.finish())

    def finish(self) -> None:
        self.sent.append(self.state.finish())

    def send_file(self, file_fd: int, offset: int, available: int) -> bool:
        if not self.sendfile:
            return False
        self.sent.append(self.state.file_head(available))
        count = self.state.raw_count(available)
        if count is None:
            return False
        if count:
            self.files.append((file_fd, offset, count))
            self.state.sent_raw(count)
        self.finish()
        return True

    def send_error(self, status: int, detail: str, close: bool) -> bool:
        if self.state.response.head_sent:
            return False
        try:
            self.sent.append(self.state.error_response(status, detail, close=close))
        except ResponseError:
            return False
        return True


class Exchange:
    """Runs an app on raw request bytes; collects what would go to the socket."""

    def __init__(self, request: bytes, **builder_options) -> None:
        self.state = ConnectionState()
        self.state.feed(request)
        self.request = self.state.next_event()
        self.builder = EnvironBuilder(server_name="127.0.0.1", server_port=8080, **builder_options)

    def body(self) -> io.BytesIO:
        """The whole body, received before the app runs (as the server does)."""
        stream = io.BytesIO()
        while type(event := self.state.next_event()) is Data:
            stream.write(event.data)
        assert type(event) is EndOfMessage
        stream.seek(0)
        return stream

    def run(self, app, *, sendfile=False):
        self.sink = StateSink(self.state, sendfile)
        environ = self.builder.build(self.request, self.body(), ("10.0.0.1", 5555))
        run_application(app, environ, self.sink)
        self.completed = self.state.after_response() is not After.ABORT
        self.files = self.sink.files
        return b"".join(self.sink.sent)


GET = b"GET /a%20b/c?x=1&y=%20 HTTP/1.1\r\nHost: example.test\r\nX-Two: 1\r\nX-Two: 2\r\n\r\n"


def capture_environ(store):
    def app(environ, start_response):
        store.update(environ)
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]

    return app


def test_environ_has_every_required_key_with_latin1_rules():
    environ = {}
    Exchange(GET).run(validator(capture_environ(environ)))
    assert environ["REQUEST_METHOD"] == "GET"
    assert environ["PATH_INFO"] == "/a b/c"
    assert environ["QUERY_STRING"] == "x=1&y=%20"
    assert environ["SCRIPT_NAME"] == ""
    assert environ["SERVER_NAME"] == "127.0.0.1" and environ["SERVER_PORT"] == "8080"
    assert environ["SERVER_PROTOCOL"] == "HTTP/1.1"
    assert environ["REMOTE_ADDR"] == "10.0.0.1" and environ["REMOTE_PORT"] == "5555"
    assert environ["HTTP_HOST"] == "example.test"
    assert environ["HTTP_X_TWO"] == "1, 2"
    assert environ["wsgi.url_scheme"] == "http"
    assert environ["wsgi.multithread"] is True and environ["wsgi.multiprocess"] is False
    assert environ["wsgi.input_terminated"] is True
    assert "CONTENT_LENGTH" not in environ


def test_path_info_is_percent_decoded_to_latin1_string():
    environ = {}
    request = b"GET /caf%C3%A9 HTTP/1.1\r\nHost: x\r\n\r\n"
    Exchange(request).run(capture_environ(environ))
    assert environ["PATH_INFO"] == "/caf\u00c3\u00a9"
    assert environ["PATH_INFO"].encode("latin-1").decode("utf-8") == "/caf\u00e9"


def test_multiprocess_flag_is_what_the_builder_is_told():
    environ = {}
    Exchange(GET, multiprocess=True).run(capture_environ(environ))
    assert environ["wsgi.multiprocess"] is True


def test_content_length_and_type_are_cgi_keys():
    environ = {}
    request = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\nContent-Length: 3\r\n\r\nabc"
    Exchange(request).run(validator(capture_environ(environ)))
    assert environ["CONTENT_LENGTH"] == "3" and environ["CONTENT_TYPE"] == "text/plain"
    assert "HTTP_CONTENT_LENGTH" not in environ and "HTTP_CONTENT_TYPE" not in environ


def test_cookie_fields_are_joined_with_semicolons():
    environ = {}
    request = b"GET / HTTP/1.1\r\nHost: x\r\nCookie: a=1\r\nCookie: b=2\r\n\r\n"
    Exchange(request).run(capture_environ(environ))
    assert environ["HTTP_COOKIE"] == "a=1; b=2"


def test_input_read_past_the_end_returns_empty_bytes():
    seen = []

    def app(environ, start_response):
        body = environ["wsgi.input"]
        seen.extend([body.read(2), body.read(100), body.read(100), body.read(10)])
        start_response("200 OK", [("Content-Type", "text/plain")])
        return []

    request = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhelloGET / HTTP/1.1\r\n"
    Exchange(request).run(validator(app))
    assert seen == [b"he", b"llo", b"", b""]


def test_input_readline_and_iteration_on_a_chunked_body():
    seen = []

    def app(environ, start_response):
        body = environ["wsgi.input"]
        seen.append(body.readline())
        seen.append(body.readline(3))
        seen.extend(list(body))
        start_response("200 OK", [("Content-Type", "text/plain")])
        return []

    request = (b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
               b"4\r\none\n\r\n9\r\ntwo\nthree\r\n0\r\n\r\n")
    Exchange(request).run(validator(app))
    assert seen == [b"one\n", b"two", b"\n", b"three"]


def test_write_callable_sends_before_the_iterable():
    def app(environ, start_response):
        write = start_response("200 OK", [("Content-Type", "text/plain")])
        write(b"first ")
        return [b"second"]

    exchange = Exchange(GET)
    out = exchange.run(validator(app))
    assert out.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"Transfer-Encoding: chunked" in out
    assert out.endswith(b"6\r\nfirst \r\n6\r\nsecond\r\n0\r\n\r\n")


def test_single_item_list_gets_a_content_length():
    # Not under the validator: it wraps the list, hiding that it is one.
    out = Exchange(GET).run(capture_environ({}))
    assert b"Content-Length: 2\r\n" in out and out.endswith(b"\r\n\r\nok")


def test_empty_iterable_gets_content_length_zero():
    def app(environ, start_response):
        start_response("200 OK", [])
        return iter([])

    out = Exchange(GET).run(app)
    assert b"Content-Length: 0\r\n" in out


def test_close_is_called_on_the_result_even_when_iteration_fails():
    closed = []

    class Result:
        def __iter__(self):
            yield b"a"
            raise RuntimeError("broken iterator")

        def close(self):
            closed.append(True)

    def app(environ, start_response):
        start_response("200 OK", [])
        return Result()

    exchange = Exchange(GET)
    exchange.run(app)
    assert closed == [True]
    assert exchange.completed is False  # head went out: the connection must abort


def test_exception_before_headers_gives_500_and_is_logged(caplog):
    def app(environ, start_response):
        raise ValueError("bad things")

    exchange = Exchange(GET)
    out = exchange.run(app)
    assert out.startswith(b"HTTP/1.1 500 Internal Server Error\r\n")
    assert "ValueError: bad things" in caplog.text


def test_exc_info_replaces_headers_before_they_are_sent():
    import sys

    def app(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain"), ("X-First", "1")])
        try:
            raise KeyError("oops")
        except KeyError:
            start_response(
                "503 Service Unavailable",
                [("Content-Type", "text/plain"), ("X-Second", "2")],
                sys.exc_info(),
            )
        return [b"sorry"]

    out = Exchange(GET).run(validator(app))
    assert out.startswith(b"HTTP/1.1 503 ")
    assert b"X-Second: 2" in out and b"X-First" not in out


def test_second_start_response_without_exc_info_is_an_error():
    def app(environ, start_response):
        start_response("200 OK", [])
        start_response("200 OK", [])
        return [b""]

    assert Exchange(GET).run(app).startswith(b"HTTP/1.1 500 ")


@pytest.mark.parametrize("result", [None, "a str body", ["a str item"], 42])
def test_bad_results_give_500(result):
    def app(environ, start_response):
        start_response("200 OK", [])
        return result

    assert Exchange(GET).run(app).startswith(b"HTTP/1.1 500 ")


def test_bad_item_after_body_started_aborts():
    def app(environ, start_response):
        start_response("200 OK", [])
        return iter([b"ok", "a str item"])

    exchange = Exchange(GET)
    out = exchange.run(app)
    assert out.startswith(b"HTTP/1.1 200 ") and not out.endswith(b"0\r\n\r\n")
    assert exchange.completed is False


def test_app_that_never_calls_start_response_gives_500():
    assert Exchange(GET).run(lambda environ, start_response: [b"x"]).startswith(b"HTTP/1.1 500 ")


@pytest.mark.parametrize(
    "status", ["200", "OK", "99 Too Low", "200 OK\r\nX: y", b"200 OK", "2000 OK"]
)
def test_invalid_status_lines_give_500(status):
    def app(environ, start_response):
        start_response(status, [])
        return [b""]

    assert Exchange(GET).run(app).startswith(b"HTTP/1.1 500 ")


def test_file_wrapper_uses_sendfile_from_current_position(tmp_path):
    path = tmp_path / "data.bin"
    path.write_bytes(b"0123456789" * 100)

    def app(environ, start_response):
        handle = open(path, "rb")
        handle.seek(10)
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        return environ["wsgi.file_wrapper"](handle)

    exchange = Exchange(GET)
    out = exchange.run(app, sendfile=True)  # the validator would hide the wrapper
    assert b"Content-Length: 990\r\n" in out
    assert [(offset, count) for _, offset, count in exchange.files] == [(10, 990)]


def test_file_wrapper_honours_the_apps_content_length(tmp_path):
    path = tmp_path / "data.bin"
    path.write_bytes(b"x" * 1000)

    def app(environ, start_response):
        start_response("200 OK", [("Content-Length", "100")])
        return environ["wsgi.file_wrapper"](open(path, "rb"))

    exchange = Exchange(GET)
    exchange.run(app, sendfile=True)
    assert [count for _, _, count in exchange.files] == [100]


def test_file_wrapper_is_iterated_without_sendfile(tmp_path):
    path = tmp_path / "data.bin"
    path.write_bytes(b"abc" * 10)

    def app(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "30")])
        return environ["wsgi.file_wrapper"](open(path, "rb"), 7)

    out = Exchange(GET).run(validator(app))
    assert out.endswith(b"\r\n\r\n" + b"abc" * 10)


def test_file_wrapper_on_a_non_file_falls_back_to_iteration():
    def app(environ, start_response):
        start_response("200 OK", [])
        return FileWrapper(io.BytesIO(b"in memory"))

    out = Exchange(GET).run(app, sendfile=True)
    assert out.endswith(b"9\r\nin memory\r\n0\r\n\r\n")


def test_head_of_a_file_sends_no_body_and_no_file(tmp_path):
    path = tmp_path / "data.bin"
    path.write_bytes(b"x" * 50)

    def app(environ, start_response):
        start_response("200 OK", [])
        return environ["wsgi.file_wrapper"](open(path, "rb"))

    exchange = Exchange(b"HEAD / HTTP/1.1\r\nHost: x\r\n\r\n")
    out = exchange.run(app, sendfile=True)
    assert exchange.files == []
    assert out.endswith(b"\r\n\r\n") and b"Content-Length: 50" in out


@pytest.mark.parametrize("value, allowed", [
    ("plain ascii", True), ("tab\tinside", True), ("caf\u00e9 latin-1", True),
    ("del\x7f", False), ("nul\x00", False), ("cr\rlf", False), ("caf\u0113", False),
    ("vt\x0b", False), ("", True),
])
def test_response_field_values_are_checked_past_the_fast_path(value, allowed):
    # The printable-ASCII shortcut must not let a control through, nor refuse
    # what the expression allows (tab, latin-1), however often a name was seen.
    def app(environ, start_response):
        start_response("200 OK", [("X-Seen", "ok"), ("X-Seen", value)])
        return [b""]

    out = Exchange(GET).run(app)
    assert out.startswith(b"HTTP/1.1 200 ") is allowed, out


@pytest.mark.parametrize("status", [["200 OK"], {"200": "OK"}, 200])
def test_unhashable_or_odd_statuses_give_500_after_a_good_one(status):
    def good(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b""]

    def bad(environ, start_response):
        start_response(status, [])
        return [b""]

    assert Exchange(GET).run(good).startswith(b"HTTP/1.1 200 ")
    assert Exchange(GET).run(bad).startswith(b"HTTP/1.1 500 ")


def test_a_name_seen_before_does_not_excuse_a_bad_one():
    def app(name):
        def run(environ, start_response):
            start_response("200 OK", [(name, "x")])
            return [b""]
        return run

    assert Exchange(GET).run(app("X-Good")).startswith(b"HTTP/1.1 200 ")
    for bad in ["X-Good ", "X Good", b"X-Good", "X-Good\r\n"]:
        assert Exchange(GET).run(app(bad)).startswith(b"HTTP/1.1 500 "), bad
