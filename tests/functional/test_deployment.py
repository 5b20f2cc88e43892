"""Issue 5 end to end, through the real server: Unix sockets and several binds,
TLS, trusted proxy headers, request ids, the access log, and the CLI's
--reload, systemd socket activation and --bind fd://N."""

from __future__ import annotations

import datetime
import errno
import gc
import http.client
import json
import logging
import os
import re
import shutil
import signal
import socket
import ssl
import stat
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import recv_until_closed
from tests.functional.deploy_apps import inspect_app
from tests.functional.tlsfiles import TLSFiles
from wsgiserver import Server, ServerConfig

ROOT = Path(__file__).resolve().parents[2]
APP = "tests.functional.deploy_apps:inspect_app"


# -- clients ------------------------------------------------------------------


# Client connections a test opened; closed after each test.
_CLIENTS: list[http.client.HTTPConnection] = []


@pytest.fixture(autouse=True)
def _close_clients() -> Iterator[None]:
    yield
    while _CLIENTS:
        _CLIENTS.pop().close()


def _tracked(conn):
    _CLIENTS.append(conn)
    return conn


class UnixHTTPConnection(http.client.HTTPConnection):
    """http.client over a Unix domain socket."""

    def __init__(self, path: str, timeout: float = 5.0) -> None:
        super().__init__("localhost", timeout=timeout)
        self.unix_path = path
        _tracked(self)

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self.unix_path)
        except OSError:
            sock.close()
            raise
        self.sock = sock


def fetch(conn: http.client.HTTPConnection, target: str = "/", *, method: str = "GET",
          headers: dict[str, str] | None = None, body: bytes | None = None):
    """(status, parsed JSON or raw bytes, response headers) of one request."""
    conn.request(method, target, body=body, headers=headers or {})
    response = conn.getresponse()
    data = response.read()
    try:
        payload = json.loads(data)
    except ValueError:
        payload = data
    return response.status, payload, response


def tcp_conn(server, source: str | None = None, port: int | None = None):
    host, bound = server.address
    return _tracked(http.client.HTTPConnection(host, port or bound, timeout=5,
                                               source_address=(source, 0) if source else None))


@pytest.fixture
def sock_dir() -> Iterator[str]:
    """A short directory for Unix sockets (paths are limited to 107 bytes)."""
    path = tempfile.mkdtemp(prefix="wsgi-", dir="/tmp")
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def wait_for(predicate, seconds: float = 10.0, interval: float = 0.05):
    """The first truthy value of ``predicate()``, or None after ``seconds``."""
    deadline = time.monotonic() + seconds
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval)


# -- Unix sockets and several binds ----------------------------------------------


def test_unix_socket_serves_with_mode_and_is_removed_after_stop(live_server, sock_dir):
    path = os.path.join(sock_dir, "app.sock")
    server = live_server(inspect_app, binds=("unix:" + path,), unix_socket_mode=0o660)
    info = os.lstat(path)
    assert stat.S_ISSOCK(info.st_mode)
    assert stat.S_IMODE(info.st_mode) == 0o660
    assert server.listeners[0].describe() == f"unix:{path}"

    conn = UnixHTTPConnection(path)
    status, report, _ = fetch(conn, "/x?y=1")
    assert status == 200
    assert report["PATH_INFO"] == "/x" and report["QUERY_STRING"] == "y=1"
    assert report["REMOTE_ADDR"] == ""  # a Unix peer has no address
    assert report["wsgi.url_scheme"] == "http"
    status, _, _ = fetch(conn, "/again")  # keep-alive over the Unix socket
    assert status == 200
    conn.close()

    server.stop()
    assert not os.path.lexists(path)


def test_stale_unix_socket_file_is_replaced(live_server, sock_dir):
    path = os.path.join(sock_dir, "stale.sock")
    dead = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    dead.bind(path)  # a server that died without cleaning up: file, no listener
    dead.close()
    live_server(inspect_app, binds=("unix:" + path,))
    assert stat.S_ISSOCK(os.lstat(path).st_mode)
    status, _, _ = fetch(UnixHTTPConnection(path))
    assert status == 200


def test_unix_socket_in_use_by_a_live_server_is_refused(live_server, sock_dir):
    path = os.path.join(sock_dir, "busy.sock")
    live_server(inspect_app, binds=("unix:" + path,))
    with pytest.raises(OSError, match="another server is using it"):
        live_server(inspect_app, binds=("unix:" + path,))
    # The first server keeps its socket file and keeps serving.
    status, _, _ = fetch(UnixHTTPConnection(path))
    assert status == 200


def test_regular_file_at_the_socket_path_is_refused_and_kept(live_server, sock_dir):
    path = os.path.join(sock_dir, "data.txt")
    Path(path).write_text("precious")
    with pytest.raises(OSError, match="exists and is not a socket") as caught:
        live_server(inspect_app, binds=("unix:" + path,))
    assert caught.value.errno == errno.EEXIST
    assert Path(path).read_text() == "precious"


def test_tcp_and_unix_binds_serve_at_once(live_server, sock_dir):
    path = os.path.join(sock_dir, "both.sock")
    server = live_server(inspect_app, binds=("127.0.0.1:0", "unix:" + path))
    assert len(server.listeners) == 2
    host, port = server.listeners[0].sock.getsockname()[:2]
    status, over_tcp, _ = fetch(_tracked(http.client.HTTPConnection(host, port, timeout=5)))
    assert status == 200 and over_tcp["REMOTE_ADDR"] == "127.0.0.1"
    assert over_tcp["SERVER_PORT"] == str(port)
    status, over_unix, _ = fetch(UnixHTTPConnection(path))
    assert status == 200 and over_unix["REMOTE_ADDR"] == ""
    server.stop()
    assert not os.path.lexists(path)


def _ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as probe:
            probe.bind(("::1", 0))
        return True
    except OSError:
        return False


@pytest.mark.skipif(not _ipv6_loopback(), reason="no IPv6 loopback here")
def test_ipv6_bind_beside_ipv4(live_server):
    server = live_server(inspect_app, binds=("[::1]:0", "127.0.0.1:0"))
    v6, v4 = (listener.sock.getsockname() for listener in server.listeners)
    assert server.listeners[0].describe() == f"http://[::1]:{v6[1]}"
    status, report, _ = fetch(_tracked(http.client.HTTPConnection("::1", v6[1], timeout=5)))
    assert status == 200 and report["REMOTE_ADDR"] == "::1"
    status, report, _ = fetch(_tracked(http.client.HTTPConnection("127.0.0.1", v4[1], timeout=5)))
    assert status == 200 and report["REMOTE_ADDR"] == "127.0.0.1"


def _open_fds() -> dict[str, str]:
    found = {}
    for name in os.listdir("/proc/self/fd"):
        try:
            found[name] = os.readlink(f"/proc/self/fd/{name}")
        except OSError:
            pass  # the directory's own descriptor, closed by now
    return found


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc")
def test_a_failed_start_leaks_no_descriptors(sock_dir):
    path = os.path.join(sock_dir, "not-a-socket")
    Path(path).write_text("")
    gc.collect()
    before = set(_open_fds())
    server = Server(inspect_app, ServerConfig(binds=("unix:" + path,)))
    with pytest.raises(OSError) as caught:
        server.start()
    del caught, server
    gc.collect()
    leaked = {fd: target for fd, target in _open_fds().items() if fd not in before}
    assert not leaked


# -- TLS ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tls(tmp_path_factory) -> TLSFiles:
    pytest.importorskip("trustme")
    return TLSFiles(tmp_path_factory.mktemp("tls"))


def https_fetch(server, tls: TLSFiles, target: str = "/", with_cert: bool = False):
    host, port = server.address
    conn = http.client.HTTPSConnection(host, port, timeout=5,
                                       context=tls.client_context(with_cert))
    try:
        return fetch(conn, target)
    finally:
        conn.close()


def client_hello() -> bytes:
    """The first flight of a real TLS client."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    client = context.wrap_bio(incoming, outgoing, server_hostname="localhost")
    with pytest.raises(ssl.SSLWantReadError):
        client.do_handshake()
    return outgoing.read()


def test_https_request_and_url_scheme(live_server, tls):
    server = live_server(inspect_app, certfile=tls.certfile)
    assert server.listeners[0].describe().startswith("https://127.0.0.1:")
    status, report, _ = https_fetch(server, tls, "/secure")
    assert status == 200
    assert report["wsgi.url_scheme"] == "https"
    assert report["PATH_INFO"] == "/secure"
    assert report["SERVER_PORT"] == str(server.address[1])


def test_plain_http_on_the_tls_port_gets_a_400_that_says_https(live_server, tls, caplog,
                                                               capsys):
    caplog.set_level(logging.DEBUG, logger="wsgiserver")
    server = live_server(inspect_app, certfile=tls.certfile, threads=1)
    with socket.create_connection(server.address, timeout=5) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
        answer = recv_until_closed(sock)
    assert answer.startswith(b"HTTP/1.1 400 Bad Request\r\n")
    assert b"Connection: close" in answer and b"https://" in answer
    # The only worker is free again, and TLS still works.
    assert https_fetch(server, tls)[0] == 200
    loud = [r for r in caplog.records if r.levelno >= logging.WARNING or r.exc_info]
    assert not loud, [r.getMessage() for r in loud]
    assert "Traceback" not in capsys.readouterr().err


def test_bytes_that_are_neither_tls_nor_http_are_dropped_quietly(live_server, tls):
    server = live_server(inspect_app, certfile=tls.certfile, threads=1)
    with socket.create_connection(server.address, timeout=5) as sock:
        sock.sendall(b"\x00\x01\x02 garbage")
        assert recv_until_closed(sock) == b""
    assert https_fetch(server, tls)[0] == 200


def test_half_done_handshakes_never_hold_the_only_worker(live_server, tls):
    server = live_server(inspect_app, certfile=tls.certfile, threads=1)
    hello = client_hello()
    silent = socket.create_connection(server.address, timeout=5)  # connects, sends nothing
    half_hello = socket.create_connection(server.address, timeout=5)
    half_hello.sendall(hello[: len(hello) // 2])
    stalled = socket.create_connection(server.address, timeout=5)
    stalled.sendall(hello)  # gets the server's flight, never answers it
    try:
        for _ in range(3):
            status, report, _ = https_fetch(server, tls)
            assert status == 200 and report["wsgi.url_scheme"] == "https"
    finally:
        for sock in (silent, half_hello, stalled):
            sock.close()


def test_required_client_certificates_are_enforced(live_server, tls):
    server = live_server(inspect_app, certfile=tls.certfile, ca_certs=tls.ca_pem,
                         client_certs="required")
    # TLS 1.3 clients learn of the refusal only at their first read.
    with pytest.raises((ssl.SSLError, OSError, http.client.HTTPException)):
        https_fetch(server, tls)
    status, report, _ = https_fetch(server, tls, with_cert=True)
    assert status == 200 and report["wsgi.url_scheme"] == "https"


def test_optional_client_certificates_admit_both(live_server, tls):
    server = live_server(inspect_app, certfile=tls.certfile, ca_certs=tls.ca_pem,
                         client_certs="optional")
    status, report, _ = https_fetch(server, tls)
    assert status == 200 and report["ssl"]["SSL_CLIENT_VERIFY"] == "NONE"
    assert "SSL_CLIENT_CERT" not in report["ssl"]
    assert https_fetch(server, tls, with_cert=True)[0] == 200


def test_the_verified_client_certificate_reaches_the_app_under_mod_ssl_names(live_server, tls):
    server = live_server(inspect_app, certfile=tls.certfile, ca_certs=tls.ca_pem,
                         client_certs="required")
    status, report, _ = https_fetch(server, tls, with_cert=True)
    assert status == 200
    ssl_environ = report["ssl"]
    assert ssl_environ["SSL_CLIENT_VERIFY"] == "SUCCESS"
    presented = tls.client_cert.cert_chain_pems[0].bytes().decode()
    assert ssl.PEM_cert_to_DER_cert(ssl_environ["SSL_CLIENT_CERT"]) == \
        ssl.PEM_cert_to_DER_cert(presented)
    # trustme names the CA by an organization and a unit; RFC 4514 order.
    assert ssl_environ["SSL_CLIENT_I_DN"].startswith("OU=") and ",O=" in ssl_environ[
        "SSL_CLIENT_I_DN"]
    assert ssl_environ["SSL_CLIENT_S_DN"].startswith(("OU=", "O=", "CN="))
    assert ssl_environ["SSL_PROTOCOL"] in ("TLSv1.2", "TLSv1.3")
    assert ssl_environ["SSL_CIPHER"]
    assert ssl_environ["SSL_CLIENT_V_END"] and ssl_environ["SSL_CLIENT_M_SERIAL"]


# -- trusted proxy headers and request ids -----------------------------------------

SPOOF = {
    "X-Forwarded-For": "203.0.113.7",
    "X-Forwarded-Proto": "https",
    "X-Forwarded-Host": "example.com",
    "X-Forwarded-Port": "8443",
    "Forwarded": 'for="[2001:db8::1]:4711";proto=https;host=example.org',
    "X-Real-IP": "203.0.113.8",
    "X-Forwarded-Prefix": "/evil",
}
FORWARDING_KEYS = ("HTTP_X_FORWARDED_FOR", "HTTP_X_FORWARDED_PROTO", "HTTP_X_FORWARDED_HOST",
                   "HTTP_X_FORWARDED_PORT", "HTTP_FORWARDED", "HTTP_X_REAL_IP",
                   "HTTP_X_FORWARDED_PREFIX")


def test_x_forwarded_headers_from_a_trusted_proxy(live_server):
    server = live_server(inspect_app, forwarded_allow_ips=("127.0.0.1",))
    headers = {key: value for key, value in SPOOF.items() if key.startswith("X-Forwarded-")}
    status, report, _ = fetch(tcp_conn(server), headers=headers)
    assert status == 200
    assert report["REMOTE_ADDR"] == "203.0.113.7"
    assert report["wsgi.url_scheme"] == "https"
    assert report["HTTP_HOST"] == "example.com"
    assert report["SERVER_NAME"] == "example.com"
    assert report["SERVER_PORT"] == "8443"
    assert report["wsgiserver.proxy.original"]["REMOTE_ADDR"] == "127.0.0.1"
    assert report["headers"]["HTTP_X_FORWARDED_FOR"] == "203.0.113.7"  # kept when believed


def test_forwarded_from_a_trusted_proxy_wins(live_server):
    server = live_server(inspect_app, forwarded_allow_ips=("127.0.0.0/8",))
    status, report, _ = fetch(tcp_conn(server), headers=SPOOF)
    assert status == 200
    assert report["REMOTE_ADDR"] == "2001:db8::1"
    assert report["REMOTE_PORT"] == "4711"
    assert report["wsgi.url_scheme"] == "https"
    assert report["HTTP_HOST"] == "example.org"
    assert report["SERVER_PORT"] == "443"


def test_untrusted_peer_headers_are_removed(live_server):
    # 127.0.0.1 is trusted; this client speaks from 127.0.0.2.
    server = live_server(inspect_app, forwarded_allow_ips=("127.0.0.1",))
    host, port = server.address
    status, report, _ = fetch(tcp_conn(server, source="127.0.0.2"), headers=SPOOF)
    assert status == 200
    assert report["REMOTE_ADDR"] == "127.0.0.2"
    assert report["wsgi.url_scheme"] == "http"
    assert report["HTTP_HOST"] == f"{host}:{port}"
    assert report["SERVER_PORT"] == str(port)
    assert report["wsgiserver.proxy.original"] is None
    for key in FORWARDING_KEYS:
        assert key not in report["headers"], key


def test_by_default_nobody_is_trusted(live_server):
    server = live_server(inspect_app)
    status, report, _ = fetch(tcp_conn(server), headers=SPOOF)
    assert status == 200
    assert report["REMOTE_ADDR"] == "127.0.0.1"
    assert report["wsgi.url_scheme"] == "http"
    for key in FORWARDING_KEYS:
        assert key not in report["headers"], key


def test_request_ids(live_server, tmp_path):
    log_path = tmp_path / "ids.log"
    server = live_server(inspect_app, forwarded_allow_ips=("127.0.0.1",),
                         access_log=str(log_path), access_log_format="{request_id} {path}")
    trusted, untrusted = tcp_conn(server), tcp_conn(server, source="127.0.0.2")

    _, first, _ = fetch(trusted, "/generated")
    _, second, _ = fetch(trusted, "/generated")
    assert re.fullmatch(r"[0-9a-f]{32}", first["wsgiserver.request_id"])
    assert first["wsgiserver.request_id"] != second["wsgiserver.request_id"]

    _, taken, _ = fetch(trusted, "/taken", headers={"X-Request-ID": "edge-42.abc:1"})
    assert taken["wsgiserver.request_id"] == "edge-42.abc:1"

    _, unsafe, _ = fetch(trusted, "/unsafe", headers={"X-Request-ID": "a b"})
    assert re.fullmatch(r"[0-9a-f]{32}", unsafe["wsgiserver.request_id"])

    _, ignored, _ = fetch(untrusted, "/ignored", headers={"X-Request-ID": "edge-42.abc:1"})
    assert re.fullmatch(r"[0-9a-f]{32}", ignored["wsgiserver.request_id"])

    lines = wait_for(lambda: _lines(log_path, 5))
    assert lines == [f"{report['wsgiserver.request_id']} {path}" for report, path in
                     [(first, "/generated"), (second, "/generated"), (taken, "/taken"),
                      (unsafe, "/unsafe"), (ignored, "/ignored")]]


# -- the access log -------------------------------------------------------------------


def _lines(path: Path, at_least: int) -> list[str] | None:
    """The file's lines once it has ``at_least`` of them (the line is written
    after the response, so a client can be faster than the log)."""
    try:
        lines = path.read_text().splitlines()
    except FileNotFoundError:
        return None
    return lines if len(lines) >= at_least else None


COMBINED_LINE = re.compile(
    r'(?P<addr>127\.0\.0\.1) - - \[(?P<time>\d{2}/[A-Z][a-z]{2}/\d{4}:\d{2}:\d{2}:\d{2} \+0000)\] '
    r'"(?P<request>[^"]*)" (?P<status>\d{3}) (?P<bytes>\d+|-) '
    r'"(?P<referer>(?:[^"\\]|\\.)*)" "(?P<agent>(?:[^"\\]|\\.)*)"'
)


def test_access_log_combined_format(live_server, tmp_path):
    log_path = tmp_path / "access.log"
    server = live_server(inspect_app, access_log=str(log_path))
    conn = tcp_conn(server)
    _, _, first = fetch(conn, "/where?x=1",
                        headers={"Referer": "http://example.com/from",
                                 "User-Agent": 'deploy-test/1.0 "quoted"'})
    fetch(conn, "/missing", method="POST", body=b"abc")
    lines = wait_for(lambda: _lines(log_path, 2))
    assert lines is not None and len(lines) == 2

    match = COMBINED_LINE.fullmatch(lines[0])
    assert match, lines[0]
    assert match["request"] == "GET /where?x=1 HTTP/1.1"
    assert match["status"] == "200"
    assert match["bytes"] == first.getheader("Content-Length")
    assert match["referer"] == "http://example.com/from"
    assert match["agent"] == r"deploy-test/1.0 \"quoted\""
    when = datetime.datetime.strptime(match["time"], "%d/%b/%Y:%H:%M:%S %z")
    assert abs((datetime.datetime.now(datetime.UTC) - when).total_seconds()) < 3600

    match = COMBINED_LINE.fullmatch(lines[1])
    assert match, lines[1]
    assert (match["request"], match["status"]) == ("POST /missing HTTP/1.1", "404")
    assert (match["referer"], match["agent"]) == ("-", "-")


def test_access_log_custom_format(live_server, tmp_path):
    log_path = tmp_path / "custom.log"
    server = live_server(
        inspect_app, access_log=str(log_path),
        access_log_format="{method} {path} {status} {bytes} {duration_us}us "
                          "rh={response_header:X-Custom} h={header:X-In} {{literal}}")
    fetch(tcp_conn(server), "/c", headers={"X-In": "given"})
    lines = wait_for(lambda: _lines(log_path, 1))
    assert lines is not None
    match = re.fullmatch(r"GET /c 200 (\d+) (\d+)us rh=custom-value h=given \{literal\}",
                         lines[0])
    assert match, lines[0]
    assert int(match[1]) > 0


def test_access_log_json_lines_one_per_request_including_errors(live_server, tmp_path):
    log_path = tmp_path / "access.jsonl"
    server = live_server(
        inspect_app, access_log=str(log_path), access_log_json=True,
        access_log_format="{remote_addr} {request_line} {status} {bytes} {duration_us} "
                          "{request_id} {header:User-Agent} {response_header:X-Custom}")
    conn = tcp_conn(server)
    statuses = [fetch(conn, target, headers={"User-Agent": 'json\t"agent"'})[0]
                for target in ("/ok", "/missing")]
    boom = tcp_conn(server)
    statuses.append(fetch(boom, "/boom")[0])
    assert statuses == [200, 404, 500]
    lines = wait_for(lambda: _lines(log_path, 3))
    assert lines is not None and len(lines) == 3
    # Each line is written after its response went out, so lines of requests
    # on different connections may land in either order: pair them by request.
    records = {json.loads(line)["request_line"]: json.loads(line) for line in lines}
    assert {line: record["status"] for line, record in records.items()} == {
        "GET /ok HTTP/1.1": 200, "GET /missing HTTP/1.1": 404, "GET /boom HTTP/1.1": 500}
    first = records["GET /ok HTTP/1.1"]
    assert first["remote_addr"] == "127.0.0.1"
    assert isinstance(first["bytes"], int) and first["bytes"] > 0
    assert isinstance(first["duration_us"], int)
    assert re.fullmatch(r"[0-9a-f]{32}", first["request_id"])
    assert first["headers"] == {"User-Agent": 'json\t"agent"'}
    assert first["response_headers"] == {"X-Custom": "custom-value"}


def test_access_log_has_a_line_for_a_request_the_parser_refused(live_server, tmp_path):
    log_path = tmp_path / "refused.log"
    server = live_server(inspect_app, access_log=str(log_path),
                         access_log_format="{status} {request_line}")
    with socket.create_connection(server.address, timeout=5) as sock:
        sock.sendall(b"GET /bad HTTP/1.1\r\nHost: x\r\nNo colon here\r\n\r\n")
        assert recv_until_closed(sock).startswith(b"HTTP/1.1 400 ")
    fetch(tcp_conn(server), "/after")
    lines = wait_for(lambda: _lines(log_path, 2))
    assert lines is not None and lines[-1] == "200 GET /after HTTP/1.1"
    assert any(line.startswith("400 ") for line in lines), lines


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc")
def test_access_log_file_is_closed_after_stop(live_server, tmp_path):
    log_path = tmp_path / "closed.log"
    server = live_server(inspect_app, access_log=str(log_path))
    fetch(tcp_conn(server))
    assert wait_for(lambda: _lines(log_path, 1))
    server.stop()
    assert str(log_path) not in _open_fds().values()


# -- the command line: --reload, systemd activation, fd://N ---------------------------


def _environment(**extra: str) -> dict[str, str]:
    environment = {key: value for key, value in os.environ.items()
                   if not key.startswith("LISTEN_") and key != "WSGISERVER_RELOADER_CHILD"}
    environment["PYTHONPATH"] = os.pathsep.join(
        [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])
    environment.update(extra)
    return environment


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen]]:
    """Processes a test started; each is stopped by its handle afterwards."""
    started: list[subprocess.Popen] = []
    yield started
    for process in started:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)
        for stream in (process.stdout, process.stderr):
            if stream is not None:
                stream.close()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie is dead, only not yet reaped
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def _try(make_conn, target: str = "/"):
    conn = make_conn()
    try:
        return fetch(conn, target)[1]
    except (OSError, http.client.HTTPException):
        return None
    finally:
        conn.close()


def _start_reloader(spec: str, socket_path: str, directory: Path,
                    log_path: Path) -> subprocess.Popen:
    """``wsgiserver SPEC --reload`` on a Unix socket, run in ``directory``
    (where the app's module is), its stderr into ``log_path``."""
    with open(log_path, "w") as log_file:
        return subprocess.Popen(
            [sys.executable, "-m", "wsgiserver", spec, "--reload",
             "--bind", "unix:" + socket_path, "--shutdown-timeout", "5"],
            cwd=directory, env=_environment(), stdout=subprocess.DEVNULL, stderr=log_file)


def test_reload_restarts_on_change_and_sigterm_stops_everything(processes, tmp_path, sock_dir):
    module = tmp_path / "reload_target.py"
    template = textwrap.dedent("""\
        import os

        def app(environ, start_response):
            body = ("VERSION %d" % os.getpid()).encode()
            start_response("200 OK", [("Content-Type", "text/plain")])
            return [body]
        """)
    module.write_text(template.replace("VERSION", "one"))
    path = os.path.join(sock_dir, "reload.sock")
    log_path = tmp_path / "stderr.log"
    reloader = _start_reloader("reload_target:app", path, tmp_path, log_path)
    processes.append(reloader)

    def answer(prefix: str):
        body = _try(lambda: UnixHTTPConnection(path, timeout=2))
        text = body.decode() if isinstance(body, bytes) else ""
        return text if text.startswith(prefix) else None

    first = wait_for(lambda: answer("one "), 15)
    assert first, f"no answer from the first child: {reloader.poll()}"
    first_pid = int(first.split()[1])
    assert first_pid != reloader.pid

    module.write_text(template.replace("VERSION", "two"))
    later = time.time() + 10
    os.utime(module, (later, later))  # a change even for coarse timestamps
    second = wait_for(lambda: answer("two "), 20)
    assert second, "the server was not restarted after the change"
    second_pid = int(second.split()[1])
    assert second_pid != first_pid
    assert wait_for(lambda: not _alive(first_pid), 10)
    # A child can answer before it has installed its SIGTERM handler; wait
    # for its startup line (see the report: the server's start-up window).
    assert wait_for(lambda: log_path.read_text().count("serving on") == 2, 15)

    reloader.send_signal(signal.SIGTERM)
    reloader.wait(timeout=20)
    stderr = log_path.read_text()
    assert reloader.returncode == 0, stderr
    assert "changed; restarting" in stderr
    assert wait_for(lambda: not _alive(second_pid), 10), "the child outlived the reloader"
    assert "Traceback" not in stderr
    assert not os.path.lexists(path)


def test_reload_keeps_watching_an_app_broken_at_launch_and_serves_once_fixed(
        processes, tmp_path, sock_dir):
    module = tmp_path / "reload_broken.py"
    module.write_text("raise RuntimeError('not ready yet')\n")
    path = os.path.join(sock_dir, "broken.sock")
    log_path = tmp_path / "stderr.log"
    reloader = _start_reloader("reload_broken:app", path, tmp_path, log_path)
    processes.append(reloader)
    assert wait_for(lambda: "restarting after the next change" in log_path.read_text(), 20), \
        log_path.read_text()
    assert reloader.poll() is None  # still watching
    assert "not ready yet" in log_path.read_text()  # the child said why
    module.write_text(textwrap.dedent("""\
        def app(environ, start_response):
            start_response("200 OK", [("Content-Type", "text/plain")])
            return [b"fixed"]
        """))
    later = time.time() + 10
    os.utime(module, (later, later))
    assert wait_for(lambda: _try(lambda: UnixHTTPConnection(path, timeout=2)) == b"fixed", 20), \
        log_path.read_text()
    assert wait_for(lambda: "serving on" in log_path.read_text(), 15)
    reloader.send_signal(signal.SIGTERM)
    reloader.wait(timeout=20)
    assert reloader.returncode == 0, log_path.read_text()


def _listening_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    return sock


def _serves_on(sock: socket.socket, process: subprocess.Popen):
    host, port = sock.getsockname()
    return wait_for(lambda: process.poll() is not None
                    or _try(lambda: http.client.HTTPConnection(host, port, timeout=2)), 15)


def _start_logged(command: list[str], log_path: Path, **options) -> subprocess.Popen:
    with open(log_path, "w") as log_file:
        return subprocess.Popen(command, cwd=ROOT, env=_environment(), stdout=subprocess.DEVNULL,
                                stderr=log_file, text=True, **options)


def _stop_after_startup(process: subprocess.Popen, log_path: Path) -> str:
    """SIGTERM once the server says it serves (its signal handlers come right
    after), and the whole log."""
    assert wait_for(lambda: "serving on" in log_path.read_text(), 15), log_path.read_text()
    process.send_signal(signal.SIGTERM)
    process.wait(timeout=15)
    return log_path.read_text()


def test_systemd_socket_activation(processes, tmp_path):
    log_path = tmp_path / "stderr.log"
    with _listening_socket() as sock:
        fd = sock.fileno()
        move = "" if fd == 3 else f"exec 3<&{fd} {fd}<&-; "
        script = (f"{move}LISTEN_FDS=1 LISTEN_PID=$$ "
                  f"exec {sys.executable} -m wsgiserver {APP} --port 1")
        process = _start_logged(["bash", "-c", script], log_path, pass_fds=(fd,))
        processes.append(process)
        report = _serves_on(sock, process)
        assert isinstance(report, dict), log_path.read_text()
        assert report["SERVER_PORT"] == str(sock.getsockname()[1])
        port = sock.getsockname()[1]
    stderr = _stop_after_startup(process, log_path)
    assert process.returncode == 0, stderr
    assert f"serving on http://127.0.0.1:{port} " in stderr
    assert stderr.count("serving on") == 1  # not also on --port


def test_bind_fd(processes, tmp_path):
    log_path = tmp_path / "stderr.log"
    with _listening_socket() as sock:
        fd = sock.fileno()
        process = _start_logged([sys.executable, "-m", "wsgiserver", APP, "--bind", f"fd://{fd}"],
                                log_path, pass_fds=(fd,))
        processes.append(process)
        report = _serves_on(sock, process)
        assert isinstance(report, dict), log_path.read_text()
        assert report["REMOTE_ADDR"] == "127.0.0.1"
        port = sock.getsockname()[1]
    stderr = _stop_after_startup(process, log_path)
    assert process.returncode == 0, stderr
    assert f"serving on http://127.0.0.1:{port} " in stderr


@pytest.mark.parametrize(("bind", "message"), [
    ("unix:{file}", "exists and is not a socket"),
    ("fd://{pipe}", "not a"),
])
def test_bad_binds_are_one_line_errors(tmp_path, bind, message):
    regular = tmp_path / "regular"
    regular.write_text("keep me")
    read_end, write_end = os.pipe()
    try:
        result = subprocess.run(
            [sys.executable, "-m", "wsgiserver", APP,
             "--bind", bind.format(file=regular, pipe=read_end)],
            pass_fds=(read_end,), cwd=ROOT, env=_environment(), capture_output=True,
            text=True, timeout=15)
    finally:
        os.close(read_end)
        os.close(write_end)
    assert result.returncode != 0
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert regular.read_text() == "keep me"
