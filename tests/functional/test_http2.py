"""HTTP/2 over real sockets: ALPN on TLS, h2c by prior knowledge and by
upgrade (trusted peers only), streams side by side, one request policy for
both protocols, flow control, the denial-of-service guards, graceful
shutdown; with the h2 library, httpx, curl and Chromium as clients."""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time

import pytest

pytest.importorskip("h2", reason="HTTP/2 needs h2: pip install '.[http2]'")

import h2.events  # noqa: E402
import h2.exceptions  # noqa: E402
import h2.settings  # noqa: E402

from tests.functional.h2client import H2Socket, frame  # noqa: E402
from tests.functional.http import read_response  # noqa: E402
from tests.functional.tlsfiles import TLSFiles  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TRUSTED = ("127.0.0.1",)
ELSEWHERE = ("192.0.2.1",)  # a trusted proxy that is not us: we are untrusted
BIG = bytes(range(256)) * 12_000  # about 3 MiB


@pytest.fixture(scope="module")
def tls(tmp_path_factory) -> TLSFiles:
    pytest.importorskip("trustme")
    return TLSFiles(tmp_path_factory.mktemp("tls"))


def app(environ, start_response):
    """/sleep, /big, /file, /stream, /echo, /environ, /fail-*, else hello."""
    path = environ["PATH_INFO"]
    if path == "/sleep":
        time.sleep(float(environ["QUERY_STRING"] or "0.3"))
    if path == "/big":
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        return [BIG]
    if path == "/stream":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return (b"%06d\n" % n for n in range(20_000))
    if path == "/file":
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        return environ["wsgi.file_wrapper"](open(environ["wsgiserver.directory"] + "/f", "rb"))
    if path == "/echo":
        data = environ["wsgi.input"].read()
        start_response("200 OK", [("Content-Type", "application/octet-stream"),
                                  ("X-Length", environ.get("CONTENT_LENGTH", ""))])
        return [data]
    if path == "/environ":
        report = {key: value for key, value in environ.items() if isinstance(value, str)}
        report["wsgi.url_scheme"] = environ["wsgi.url_scheme"]
        report["body"] = environ["wsgi.input"].read().decode("latin-1")
        start_response("200 OK", [("Content-Type", "application/json")])
        return [json.dumps(report, sort_keys=True).encode()]
    if path == "/fail-before":
        raise RuntimeError("boom")
    if path == "/fail-after":
        start_response("200 OK", [])

        def failing():
            yield b"part"
            raise RuntimeError("boom")
        return failing()
    body = f"{environ['SERVER_PROTOCOL']} {path}".encode()
    start_response("200 OK", [("Content-Type", "text/plain"),
                              ("Content-Length", str(len(body)))])
    return [body]


@pytest.fixture
def h2c(live_server, tmp_path):
    """A server taking h2c by prior knowledge and upgrade from 127.0.0.1."""
    (tmp_path / "f").write_bytes(BIG)

    def start(**settings):
        settings.setdefault("h2c_prior_knowledge", True)
        settings.setdefault("h2c_upgrade", True)
        settings.setdefault("forwarded_allow_ips", TRUSTED)
        return live_server(settings.pop("application", app), directory=str(tmp_path),
                           **settings)
    return start


@pytest.fixture
def https2(live_server, tls, tmp_path):
    (tmp_path / "f").write_bytes(BIG)

    def start(**settings):
        return live_server(settings.pop("application", app), certfile=tls.certfile,
                           http2=True, directory=str(tmp_path), **settings)
    return start


# -- choosing HTTP/2 -----------------------------------------------------------


def test_alpn_chooses_h2_and_http11_clients_keep_http11(https2, tls):
    httpx = pytest.importorskip("httpx")
    server = https2()
    url = f"https://127.0.0.1:{server.address[1]}"
    with httpx.Client(http2=True, verify=tls.client_context()) as client:
        answers = [client.get(f"{url}/{n}") for n in range(3)]
    assert [(a.http_version, a.text) for a in answers] == \
        [("HTTP/2", f"HTTP/2.0 /{n}") for n in range(3)]
    conn = http.client.HTTPSConnection("127.0.0.1", server.address[1], timeout=5,
                                       context=tls.client_context())
    conn.request("GET", "/one")
    assert conn.getresponse().read() == b"HTTP/1.1 /one"
    conn.close()


def test_h2c_by_prior_knowledge_from_a_trusted_peer(h2c):
    server = h2c()
    with H2Socket(server.address) as client:
        ids = [client.request(f"/{n}") for n in range(5)]
        answers = [client.response(stream) for stream in ids]
    assert [(status, body) for status, _, body in answers] == \
        [(200, f"HTTP/2.0 /{n}".encode()) for n in range(5)]


def test_h2c_preface_from_an_untrusted_peer_is_http11(h2c):
    server = h2c(forwarded_allow_ips=ELSEWHERE)
    with socket.create_connection(server.address, timeout=5) as sock:
        sock.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
        response = read_response(sock)
    assert response.status == 505  # what HTTP/1.1 says to "HTTP/2.0"


def upgrade_request(settings: bytes = b"AAMAAABkAAQAAP__") -> bytes:
    return (b"GET /upgraded HTTP/1.1\r\nHost: localhost\r\nConnection: Upgrade, HTTP2-Settings\r\n"
            b"Upgrade: h2c\r\nHTTP2-Settings: " + settings + b"\r\n\r\n")


def test_upgrade_h2c_answers_stream_1_in_http2(h2c):
    server = h2c()
    with H2Socket(server.address, preface=False) as client:
        client.send_raw(upgrade_request())
        head = b""
        while b"\r\n\r\n" not in head:
            head += client.sock.recv(1)
        assert head.startswith(b"HTTP/1.1 101 ")
        assert b"Upgrade: h2c" in head
        client.h2.initiate_upgrade_connection()
        client.flush()
        status, _, body = client.response(1)
        assert (status, body) == (200, b"HTTP/1.1 /upgraded")  # as the request was sent
        later = client.request("/later")
        assert client.response(later)[2] == b"HTTP/2.0 /later"


@pytest.mark.parametrize("allowed, settings", [(ELSEWHERE, b"AAMAAABkAAQAAP__"),
                                               (TRUSTED, b"not base64!")])
def test_upgrade_h2c_is_ignored_when_untrusted_or_malformed(h2c, allowed, settings):
    server = h2c(forwarded_allow_ips=allowed)
    with socket.create_connection(server.address, timeout=5) as sock:
        sock.sendall(upgrade_request(settings))
        response = read_response(sock)
    assert (response.status, response.body) == (200, b"HTTP/1.1 /upgraded")


# -- streams run side by side ------------------------------------------------------


def test_streams_of_one_connection_run_side_by_side(h2c):
    # Each application waits until all sixteen are running: served one after
    # another (gunicorn's gthread), the first would wait out the barrier's
    # timeout and every one would fail. No sleeps, so a loaded machine
    # cannot make it pass or fail by timing.
    together = threading.Barrier(16, timeout=20)

    def meet(environ, start_response):
        try:
            together.wait()
        except threading.BrokenBarrierError:
            start_response("500 Alone", [])
            return [b"alone"]
        start_response("200 OK", [])
        return [b"met"]

    server = h2c(application=meet, threads=16)
    with H2Socket(server.address) as client:
        ids = [client.request("/") for _ in range(16)]
        answers = [client.response(stream) for stream in ids]
    assert [(status, body) for status, _, body in answers] == [(200, b"met")] * 16


def test_the_environ_is_the_same_over_http11_and_http2(h2c):
    server = h2c()
    fields = [("X-Forwarded-For", "203.0.113.9"), ("X-Forwarded-Proto", "https"),
              ("Cookie", "a=1"), ("X-Many", "1"), ("X_Under", "dropped"),
              ("Content-Type", "text/plain"), ("Accept-Language", "fr")]
    conn = http.client.HTTPConnection(*server.address, timeout=5)
    conn.putrequest("POST", "/environ?x=%20y", skip_accept_encoding=True, skip_host=True)
    conn.putheader("Host", "localhost")
    for name, value in fields:
        conn.putheader(name, value)
    conn.putheader("Content-Length", "4")
    conn.endheaders(b"body")
    over11 = json.loads(conn.getresponse().read())
    conn.close()
    with H2Socket(server.address) as client:
        stream = client.request("/environ?x=%20y", "POST", body=b"body",
                                headers=[(n.lower(), v) for n, v in fields]
                                + [("content-length", "4")])
        over2 = json.loads(client.response(stream)[2])
    differ = {"SERVER_PROTOCOL", "REMOTE_PORT", "wsgiserver.request_id"}
    assert (over11["SERVER_PROTOCOL"], over2["SERVER_PROTOCOL"]) == ("HTTP/1.1", "HTTP/2.0")
    assert {k: v for k, v in over11.items() if k not in differ} == \
        {k: v for k, v in over2.items() if k not in differ}
    # The trusted proxy's word was taken in both; the underscore field in neither.
    assert over2["REMOTE_ADDR"] == "203.0.113.9" and over2["wsgi.url_scheme"] == "https"
    assert "HTTP_X_UNDER" not in over2 and over2["body"] == "body"


def test_an_untrusted_h2c_scheme_never_makes_https(h2c):
    server = h2c(forwarded_allow_ips=TRUSTED)
    with H2Socket(server.address) as client:
        stream = client.request("/environ")  # :scheme https, on a cleartext port
        report = json.loads(client.response(stream)[2])
    assert report["wsgi.url_scheme"] == "http"


# -- bodies and responses ---------------------------------------------------------


def test_large_bodies_files_and_streams_over_tls_with_httpx(https2, tls):
    httpx = pytest.importorskip("httpx")
    server = https2()
    url = f"https://127.0.0.1:{server.address[1]}"
    upload = os.urandom(3 << 20)
    with httpx.Client(http2=True, verify=tls.client_context(), timeout=20) as client:
        echoed = client.post(f"{url}/echo", content=upload)
        big = client.get(f"{url}/big")
        file = client.get(f"{url}/file")
        streamed = client.get(f"{url}/stream")
    assert echoed.http_version == "HTTP/2"
    assert hashlib.sha256(echoed.content).digest() == hashlib.sha256(upload).digest()
    assert echoed.headers["x-length"] == str(len(upload))
    assert big.content == BIG and file.content == BIG
    assert file.headers["content-length"] == str(len(BIG))
    assert streamed.content == b"".join(b"%06d\n" % n for n in range(20_000))


def test_head_204_and_304_carry_no_data(h2c):
    def statuses(environ, start_response):
        status = environ["PATH_INFO"][1:] or "200"
        start_response(f"{status} X", [("Content-Length", "5")] if status == "200" else [])
        return [b"hello"] if status == "200" else []

    server = h2c(application=statuses)
    with H2Socket(server.address) as client:
        ids = [client.request("/", "HEAD"), client.request("/204"), client.request("/304")]
        answers = [client.response(stream) for stream in ids]
        data = [e for e in client.of_type(h2.events.DataReceived) if e.stream_id in ids]
    assert [(status, body) for status, _, body in answers] == [(200, b""), (204, b""), (304, b"")]
    assert answers[0][1][b"content-length"] == b"5" and data == []


def test_205_carries_content_length_0_and_no_data(h2c):
    def reset_content(environ, start_response):
        start_response("205 Reset Content", [("Content-Length", "5")])
        return [b"hello"]

    server = h2c(application=reset_content)
    with H2Socket(server.address) as client:
        stream = client.request("/")
        status, fields, body = client.response(stream)
        data = [e for e in client.of_type(h2.events.DataReceived) if e.stream_id == stream]
    assert (status, body, data) == (205, b"", [])
    assert fields[b"content-length"] == b"0"


def test_a_whole_body_that_disagrees_with_its_content_length_is_a_500(h2c):
    def liar(environ, start_response):
        start_response("200 OK", [("Content-Length", "100")])
        return [b"hello"]

    server = h2c(application=liar)
    with H2Socket(server.address) as client:
        status, _, _ = client.response(client.request("/"))
    assert status == 500


def test_an_app_error_is_a_500_before_the_head_and_a_reset_after_and_others_go_on(h2c):
    server = h2c()
    with H2Socket(server.address) as client:
        before, after, fine = (client.request("/fail-before"), client.request("/fail-after"),
                               client.request("/fine"))
        assert client.response(before)[0] == 500
        client.wait_for(lambda: client.ended(after), "the reset")
        resets = [e for e in client.of_type(h2.events.StreamReset) if e.stream_id == after]
        assert resets and resets[0].error_code == 2
        assert client.response(fine)[2] == b"HTTP/2.0 /fine"


def test_a_small_client_window_with_one_thread_still_completes(h2c):
    server = h2c(threads=1)
    with H2Socket(server.address, settings={
            h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 1024}) as client:
        streamed, big = client.request("/stream"), client.request("/big")
        assert client.response(streamed, timeout=20)[2] == \
            b"".join(b"%06d\n" % n for n in range(20_000))
        assert client.response(big, timeout=20)[2] == BIG


def test_expect_100_continue_gets_its_interim_response(h2c):
    server = h2c()
    with H2Socket(server.address) as client:
        stream = client.request("/echo", "POST", end=False,
                                headers=[("expect", "100-continue")])
        client.wait_for(lambda: client.of_type(h2.events.InformationalResponseReceived),
                        "100 Continue")
        client.send_body(stream, b"after the 100")
        assert client.response(stream)[2] == b"after the 100"


# -- guards --------------------------------------------------------------------------


def still_serves(server) -> None:
    with H2Socket(server.address) as client:
        assert client.response(client.request("/after"))[2] == b"HTTP/2.0 /after"


def test_rapid_reset_is_cut_off(h2c):
    server = h2c()
    with H2Socket(server.address) as client:
        for _ in range(400):
            stream = client.request("/sleep", headers=[])
            client.h2.reset_stream(stream)
        client.flush()
        assert client.goaway().error_code == 0xB  # ENHANCE_YOUR_CALM
        client.wait_closed()
    still_serves(server)


@pytest.mark.parametrize("flood", ["ping", "settings", "window_update"])
def test_ping_settings_and_window_update_floods_are_cut_off(h2c, flood):
    server = h2c()
    with H2Socket(server.address) as client:
        for number in range(3000):
            if flood == "ping":
                client.h2.ping(number.to_bytes(8, "big"))
            elif flood == "settings":
                client.h2.update_settings({h2.settings.SettingCodes.ENABLE_PUSH: 0})
            else:  # one byte more of window each time, no DATA asked for it
                client.h2.increment_flow_control_window(1)
        try:
            client.flush()
        except OSError:
            pass  # closed on us mid-flood: what the test wants
        assert client.goaway().error_code == 0xB
    still_serves(server)


def test_window_updates_answering_a_large_download_are_not_a_flood(h2c):
    # A client that acknowledges every DATA frame, per stream and for the
    # connection, as some do: thousands of WINDOW_UPDATEs, all asked for.
    server = h2c()
    with H2Socket(server.address) as client:
        sent = []

        def ack_every_frame(length: int, stream_id: int) -> None:
            if not length:
                return
            client.h2.increment_flow_control_window(length)
            sent.append(stream_id)
            try:
                client.h2.increment_flow_control_window(length, stream_id=stream_id)
            except h2.exceptions.StreamClosedError:
                pass

        client.h2.acknowledge_received_data = ack_every_frame
        streams = [client.request("/big") for _ in range(4)]
        bodies = [client.response(stream)[2] for stream in streams]
    assert all(len(body) == len(BIG) for body in bodies)
    assert len(sent) > 500  # far past the flood budget's burst, had they counted
    still_serves(server)


def test_a_continuation_flood_is_cut_off_before_it_is_buffered(h2c):
    server = h2c()
    with H2Socket(server.address) as client:
        client.send_raw(frame(0x1, 0x0, 1, b"\x82"))  # HEADERS without END_HEADERS
        try:
            for _ in range(200):
                client.send_raw(frame(0x9, 0x0, 1, b"\x00" * 16_000))
        except OSError:
            pass  # the server closed: good
        goaway = client.goaway()
        assert goaway.error_code in (0xB, 0x1)
    still_serves(server)


def test_an_hpack_bomb_is_refused(h2c):
    server = h2c()
    with H2Socket(server.address) as client:
        # One 4 KB field in the dynamic table, then referenced again and again:
        # a few bytes on the wire, far beyond the header list size decoded.
        bomb = [("x-bomb", "a" * 4000)] * 40
        client.request("/", headers=bomb)
        goaway = client.goaway()
        assert goaway.error_code in (0xB, 0x1)
    still_serves(server)


def test_a_window_held_shut_resets_the_stream(h2c):
    server = h2c(write_timeout=1.0)
    with H2Socket(server.address, settings={
            h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 0}) as client:
        stream = client.request("/big")
        client.wait_for(lambda: client.ended(stream), "the reset", timeout=10)
        resets = [e for e in client.of_type(h2.events.StreamReset) if e.stream_id == stream]
        assert resets and resets[0].error_code == 8  # CANCEL
    still_serves(server)


def test_a_body_that_never_ends_gets_408(h2c):
    server = h2c(body_timeout=1.0, min_body_rate=0)
    with H2Socket(server.address) as client:
        stream = client.request("/echo", "POST", body=b"some", end=False)
        status, _, body = client.response(stream, timeout=10)
    assert status == 408 and b"not received in time" in body


def test_a_body_over_the_limit_gets_413(h2c):
    server = h2c(max_body_bytes=1000)
    with H2Socket(server.address) as client:
        stream = client.request("/echo", "POST", body=b"x" * 5000)
        assert client.response(stream)[0] == 413


# -- shutdown, errors, other clients -----------------------------------------------------


def raw_frames(data: bytes) -> list:
    """Frames parsed from raw bytes: h2 as a client stops at a GOAWAY, so
    what follows one is read here."""
    from hyperframe.frame import Frame

    frames = []
    while len(data) >= 9:
        parsed, length = Frame.parse_frame_header(memoryview(data[:9]))
        parsed.parse_body(memoryview(data[9:9 + length]))
        frames.append(parsed)
        data = data[9 + length:]
    return frames


def test_graceful_shutdown_says_goaway_and_finishes_the_open_stream(h2c):
    from hpack import Decoder

    server = h2c()
    with H2Socket(server.address) as client:
        client.wait_for(lambda: client.of_type(h2.events.SettingsAcknowledged), "settings")
        stream = client.request("/sleep", headers=[])
        time.sleep(0.1)  # the request is in its application
        stopping = threading.Thread(target=server.stop)
        stopping.start()
        received = b""
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            chunk = client.sock.recv(65536)
            if not chunk:
                break
            received += chunk
        stopping.join(10)
    frames = raw_frames(received)
    kinds = [(f.type, f.stream_id) for f in frames]
    goaway = next(f for f in frames if f.type == 0x7)
    assert (goaway.error_code, goaway.last_stream_id) == (0, stream)
    # After the GOAWAY, the open stream's answer, whole.
    assert kinds.index((0x7, 0)) < kinds.index((0x1, stream))
    headers = dict(Decoder().decode(next(f for f in frames if f.type == 0x1).data, raw=True))
    body = b"".join(f.data for f in frames if f.type == 0x0 and f.stream_id == stream)
    assert (headers[b":status"], body) == (b"200", b"HTTP/2.0 /sleep")
    assert not stopping.is_alive()


def run_cli(*args: str, block_h2: bool = False) -> subprocess.CompletedProcess:
    prelude = "import sys; sys.modules['h2'] = None; " if block_h2 else "import sys; "
    code = prelude + "from wsgiserver.cli import main; sys.exit(main(sys.argv[1:]))"
    return subprocess.run([sys.executable, "-c", code, "tests.functional.apps:hello_app",
                           "--port", "0", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=30)


def test_http2_without_h2_installed_is_one_line_saying_what_to_install():
    result = run_cli("--h2c-prior-knowledge", "--forwarded-allow-ips", "127.0.0.1",
                     block_h2=True)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "wsgiserver: error: HTTP/2 needs the h2 package: pip install 'h2>=4.1,<5'"]


@pytest.mark.parametrize("args, needs", [(("--http2",), "--certfile"),
                                         (("--h2c-upgrade",), "--forwarded-allow-ips")])
def test_http2_options_without_what_they_need_are_a_warning_line(args, needs):
    result = run_cli(*args, "--check-config")
    assert result.returncode == 0, result.stderr
    assert f"WARNING {args[0]} has no effect without {needs}" in result.stderr


def curl_or_skip() -> str:
    curl = shutil.which("curl")
    if curl is None:
        pytest.skip("needs curl: apt-get install curl")
    if "HTTP2" not in subprocess.run([curl, "--version"], capture_output=True,
                                     text=True).stdout:
        pytest.skip("needs a curl with HTTP/2 (nghttp2)")
    return curl


@pytest.mark.parametrize("how", ["--http2-prior-knowledge", "--http2"])
def test_curl_speaks_h2c(h2c, how):
    curl = curl_or_skip()
    server = h2c()
    result = subprocess.run([curl, "-sS", how, "-w", " %{http_version}",
                             f"http://127.0.0.1:{server.address[1]}/curl"],
                            capture_output=True, text=True, timeout=20)
    expected = "HTTP/1.1 /curl 2" if how == "--http2" else "HTTP/2.0 /curl 2"
    assert result.stdout == expected, result.stderr


def test_curl_speaks_h2_over_tls(https2, tls):
    curl = curl_or_skip()
    server = https2()
    result = subprocess.run([curl, "-sS", "--http2", "--cacert", tls.ca_pem, "-w",
                             " %{http_version}", "--data-binary", "@" + tls.certfile,
                             f"https://127.0.0.1:{server.address[1]}/echo"],
                            capture_output=True, timeout=20)
    with open(tls.certfile, "rb") as file:
        assert result.stdout == file.read() + b" 2", result.stderr


def test_chromium_loads_a_page_over_h2(https2, browser):
    from tests.functional.browser import Page

    server = https2()
    page = Page(browser, "about:blank")
    page.call("Security.setIgnoreCertificateErrors", ignore=True)
    page.call("Page.navigate", url=f"https://127.0.0.1:{server.address[1]}/page")
    protocol = page.wait_for(
        "performance.getEntriesByType('navigation')[0]?.nextHopProtocol", "navigation")
    assert protocol == "h2"
    assert page.evaluate("document.body.innerText") == "HTTP/2.0 /page"


@pytest.mark.parametrize("opening", [b"INVALID CONNECTION PREFACE\r\n\r\n",
                                     b"PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n"])
def test_a_broken_preface_from_a_prior_knowledge_peer_gets_goaway_not_http11(h2c, opening):
    # h2spec 3.5/2: RFC 9113 section 3.4, a connection error (PROTOCOL_ERROR).
    server = h2c()
    with socket.create_connection(server.address, timeout=5) as sock:
        sock.sendall(opening)
        answer = b""
        while chunk := sock.recv(4096):
            answer += chunk
    assert not answer.startswith(b"HTTP/1.1")
    assert answer[3] == 0x4 and answer[9 + 3] == 0x7  # SETTINGS, then GOAWAY
    assert answer[-4:] == b"\x00\x00\x00\x01"  # PROTOCOL_ERROR
