"""ResponseWriter and the Date field, without sockets."""

from __future__ import annotations

from email.utils import formatdate

import pytest

from wsgiserver.response import ResponseError, ResponseWriter, format_http_date


@pytest.mark.parametrize("seconds", [0, 784111777, 951782400, 1_700_000_000, 4_102_444_799])
def test_http_date_is_imf_fixdate(seconds):
    assert format_http_date(seconds) == formatdate(seconds, usegmt=True)


def writer(method=b"GET", version=(1, 1), keep_alive=True):
    sent: list[bytes] = []
    return sent, ResponseWriter(sent.append, method=method, http_version=version,
                                keep_alive=keep_alive, date=None, server_name=None)


def test_hop_by_hop_fields_from_the_app_are_dropped_and_close_is_honoured():
    sent, out = writer()
    out.set_head("200 OK", [("Connection", "close"), ("Transfer-Encoding", "chunked"),
                            ("Keep-Alive", "timeout=5"), ("X-Kept", "1")])
    out.write_whole(b"body")
    head = b"".join(sent).split(b"\r\n\r\n")[0]
    assert b"Transfer-Encoding" not in head and b"Keep-Alive" not in head
    assert b"X-Kept: 1" in head and b"Connection: close" in head
    assert out.keep_alive is False


def test_body_longer_than_content_length_is_cut_and_the_connection_closed():
    sent, out = writer()
    out.set_head("200 OK", [("Content-Length", "3")])
    out.write(b"abcdef")
    out.finish()
    assert b"".join(sent).endswith(b"\r\n\r\nabc")
    assert out.keep_alive is False


def test_body_shorter_than_content_length_is_an_error():
    sent, out = writer()
    out.set_head("200 OK", [("Content-Length", "10")])
    out.write(b"abc")
    with pytest.raises(ResponseError):
        out.finish()
    assert out.keep_alive is False


@pytest.mark.parametrize("value", ["-1", "1e3", "ten", "\u0661", "5, 6"])
def test_invalid_content_length_from_the_app_is_an_error(value):
    _, out = writer()
    with pytest.raises(ResponseError):
        out.set_head("200 OK", [("Content-Length", value)])


def test_http10_without_length_is_close_delimited():
    sent, out = writer(version=(1, 0), keep_alive=True)
    out.set_head("200 OK", [])
    out.write(b"abc")
    out.finish()
    data = b"".join(sent)
    assert b"Transfer-Encoding" not in data and data.endswith(b"\r\n\r\nabc")
    assert out.keep_alive is False


def test_shutdown_turns_keep_alive_off_when_the_head_goes_out():
    closing = [False]
    sent: list[bytes] = []
    out = ResponseWriter(sent.append, method=b"GET", http_version=(1, 1), keep_alive=True,
                         date=None, server_name=None, closing=lambda: closing[0])
    out.set_head("200 OK", [])
    closing[0] = True
    out.write_whole(b"x")
    assert b"Connection: close" in sent[0]


def test_upgrade_field_is_listed_in_connection():
    sent, out = writer()
    out.set_head("426 Upgrade Required", [("Upgrade", "websocket")])
    out.write_whole(b"")
    assert b"Connection: upgrade\r\n" in sent[0]
    sent, out = writer(keep_alive=False)
    out.set_head("426 Upgrade Required", [("Upgrade", "websocket")])
    out.write_whole(b"")
    assert b"Connection: close, upgrade\r\n" in sent[0]
