"""The access log: formats, fields, escaping (no forged lines), JSON lines,
one write per line under threads, and opening targets."""

from __future__ import annotations

import io
import json
import sys
import threading

import pytest

from wsgiserver.accesslog import COMBINED, COMMON, AccessEntry, AccessLog, open_access_log

# 2026-11-21 09:12:00.250 UTC, the moment each test request ends.
NOW = 1795252320.25


def environ_for(**extra: str) -> dict:
    environ = {
        "REQUEST_METHOD": "GET",
        "RAW_URI": "/a%20b?x=1",
        "REQUEST_URI": "/a%20b?x=1",
        "PATH_INFO": "/a b",
        "QUERY_STRING": "x=1",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "192.0.2.7",
        "REMOTE_PORT": "51000",
        "HTTP_USER_AGENT": "curl/8.0",
        "HTTP_REFERER": "http://example.com/",
        "wsgiserver.request_id": "req-1",
    }
    environ.update(extra)
    return environ


def logged(format: str = COMBINED, json_lines: bool = False, environ: dict | None = None,
           status: int = 200, headers=None, bytes_sent: int = 1234, duration: float = 0.25) -> str:
    """The text one request writes to the log."""
    stream = io.StringIO()
    log = AccessLog(stream, format, json_lines, clock=lambda: NOW)
    log.record(AccessEntry.from_environ(
        environ if environ is not None else environ_for(), status,
        headers if headers is not None else [("Content-Type", "text/plain")],
        bytes_sent, duration))
    return stream.getvalue()


def test_combined_format_matches_apache():
    assert logged() == (
        '192.0.2.7 - - [21/Nov/2026:09:12:00 +0000] "GET /a%20b?x=1 HTTP/1.1" 200 1234 '
        '"http://example.com/" "curl/8.0"\n'
    )


def test_common_format_has_no_headers():
    assert logged(COMMON).endswith('"GET /a%20b?x=1 HTTP/1.1" 200 1234\n')


def test_time_is_when_the_request_began():
    assert "[21/Nov/2026:09:11:58 +0000]" in logged("[{time}]", duration=2.0)


@pytest.mark.parametrize(
    ("field", "text"),
    [
        ("remote_addr", "192.0.2.7"),
        ("remote_port", "51000"),
        ("time_iso", "2026-11-21T09:12:00.000+00:00"),
        ("method", "GET"),
        ("path", "/a%20b?x=1"),
        ("query", "x=1"),
        ("protocol", "HTTP/1.1"),
        ("status", "200"),
        ("bytes", "1234"),
        ("duration_us", "250000"),
        ("duration_ms", "250.0"),
        ("request_id", "req-1"),
        ("header:user-agent", "curl/8.0"),
        ("header:X-Missing", "-"),
        ("response_header:content-type", "text/plain"),
        ("response_header:ETag", "-"),
    ],
)
def test_each_field(field, text):
    assert logged("{" + field + "}") == text + "\n"


def test_content_type_request_header_has_no_http_prefix():
    environ = environ_for(CONTENT_TYPE="application/json")
    assert logged("{header:Content-Type}", environ=environ) == "application/json\n"


def test_repeated_response_headers_are_joined():
    headers = [("Set-Cookie", "a=1"), ("set-cookie", "b=2")]
    assert logged("{response_header:Set-Cookie}", headers=headers) == "a=1, b=2\n"


def test_missing_and_empty_values_print_a_dash():
    environ = {"REQUEST_METHOD": "GET", "REMOTE_ADDR": ""}
    assert logged("{remote_addr}|{query}|{request_id}|{path}", environ=environ) == "-|-|-|-\n"


def test_request_line_rebuilt_without_raw_uri():
    environ = {"REQUEST_METHOD": "GET", "PATH_INFO": "/p", "QUERY_STRING": "q=1",
               "SERVER_PROTOCOL": "HTTP/1.0"}
    assert logged("{request_line}", environ=environ) == "GET /p?q=1 HTTP/1.0\n"


def test_literal_braces():
    assert logged("{{x}} {status}") == "{x} 200\n"


@pytest.mark.parametrize(
    ("agent", "text"),
    [
        ('evil"\n1.2.3.4 - - [x] "GET / HTTP/1.1" 200 1', r'evil\"\x0a1.2.3.4'),
        ("back\\slash", r"back\\slash"),
        ("tab\tnul\x00del\x7f", r"tab\x09nul\x00del\x7f"),
        ("latin-1 \xe9", r"latin-1 \xe9"),
        ("wide \u2028", r"wide \u2028"),
    ],
)
def test_client_values_cannot_forge_lines(agent, text):
    line = logged('"{header:User-Agent}"', environ=environ_for(HTTP_USER_AGENT=agent))
    assert line.count("\n") == 1
    assert line.startswith('"' + text)
    assert line.endswith('"\n')
    assert line[1:-2].replace('\\"', "").count('"') == 0


def test_json_lines_holds_the_fields_used():
    line = logged('{remote_addr} {status} {bytes} {duration_ms} {request_line} '
                  "{header:Referer} {header:User-Agent} {response_header:Content-Type} "
                  "{request_id} {query}", json_lines=True,
                  environ=environ_for(QUERY_STRING=""))
    assert line.endswith("\n") and line.count("\n") == 1
    assert json.loads(line) == {
        "remote_addr": "192.0.2.7",
        "status": 200,
        "bytes": 1234,
        "duration_ms": 250.0,
        "request_line": "GET /a%20b?x=1 HTTP/1.1",
        "headers": {"Referer": "http://example.com/", "User-Agent": "curl/8.0"},
        "response_headers": {"Content-Type": "text/plain"},
        "request_id": "req-1",
        "query": None,
    }


def test_json_lines_escape_control_characters():
    line = logged(COMBINED, json_lines=True, environ=environ_for(HTTP_USER_AGENT="a\nb\x1b"))
    assert line.count("\n") == 1
    assert json.loads(line)["headers"]["User-Agent"] == "a\nb\x1b"
    assert json.loads(line)["time"] == "21/Nov/2026:09:12:00 +0000"


@pytest.mark.parametrize(
    ("format", "says"),
    [
        ("{nope}", "unknown field {nope}"),
        ("{status", "format"),
        ("status}", "format"),
        ("{status!r}", "conversion"),
        ("{header:}", "unknown field {header}"),
        ("{header:bad name}", "bad header name"),
        ("{other:Referer}", "unknown field {other:Referer}"),
    ],
)
def test_bad_format_is_a_one_line_value_error(format, says):
    with pytest.raises(ValueError) as caught:
        AccessLog(io.StringIO(), format)
    assert says in str(caught.value)
    assert "\n" not in str(caught.value)


class CountingStream(io.StringIO):
    """Counts write() calls: each line must be one write."""

    def __init__(self) -> None:
        super().__init__()
        self.writes = 0

    def write(self, text: str) -> int:
        self.writes += 1
        return super().write(text)


def test_threads_never_interleave_lines():
    stream = CountingStream()
    log = AccessLog(stream, COMBINED)

    def hammer(number: int) -> None:
        for _ in range(200):
            log.record(AccessEntry.from_environ(environ_for(REMOTE_ADDR=f"10.0.0.{number}"), 200, [], 10, 0.001))

    threads = [threading.Thread(target=hammer, args=(number,)) for number in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    lines = stream.getvalue().splitlines()
    assert len(lines) == stream.writes == 1600
    assert all(line.startswith("10.0.0.") and line.endswith('"curl/8.0"') for line in lines)


def test_write_failure_is_reported_once_and_not_raised(caplog):
    stream = io.StringIO()
    log = AccessLog(stream)
    stream.close()
    log.record(AccessEntry.from_environ(environ_for(), 200, [], 0, 0.0))
    log.record(AccessEntry.from_environ(environ_for(), 200, [], 0, 0.0))
    assert [record.message.startswith("access log write failed") for record in caplog.records] \
        == [True]


@pytest.mark.parametrize(("target", "stream"), [("-", "stderr"), ("stderr", "stderr"),
                                                 ("stdout", "stdout")])
def test_open_access_log_standard_streams(target, stream):
    assert open_access_log(target) is getattr(sys, stream)


def test_open_access_log_appends_to_a_file(tmp_path):
    path = tmp_path / "access.log"
    path.write_text("earlier\n")
    stream = open_access_log(str(path))
    try:
        AccessLog(stream, "{status}").record(AccessEntry.from_environ(environ_for(), 204, [], 0, 0.0))
        # Line-buffered: the line is on disk before the file is closed.
        assert path.read_text() == "earlier\n204\n"
    finally:
        stream.close()


def test_open_access_log_unopenable_path_is_a_one_line_error(tmp_path):
    with pytest.raises(ValueError, match="cannot open access log") as caught:
        open_access_log(str(tmp_path / "missing-dir" / "access.log"))
    assert "\n" not in str(caught.value)
