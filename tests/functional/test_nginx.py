"""wsgiserver behind a real nginx, over TCP and over a Unix socket: the
client's address and scheme travel, upstream keep-alive is used, chunked
uploads stream through, and forged forwarding headers never reach the app.

nginx runs as one foreground process with its own prefix, configuration,
logs and temporary paths under tmp_path; it is stopped by its PID.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.functional.deploy_apps import inspect_app
from wsgiserver import Server, ServerConfig
from wsgiserver.server import Listener

NGINX = shutil.which("nginx") or next(
    (path for path in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if os.access(path, os.X_OK)),
    None)

pytestmark = pytest.mark.skipif(
    NGINX is None, reason="nginx is not installed (Debian: apt-get install -y nginx)")

CLIENT = "127.0.0.5"  # the client's source address; nginx reaches us from 127.0.0.1

# The location block under test, and the one in the README.
LOCATION = """\
        location / {
            proxy_pass http://wsgiserver;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-For $remote_addr;
            proxy_set_header X-Forwarded-Proto https;
            proxy_set_header X-Forwarded-Port $server_port;
            proxy_set_header X-Forwarded-Host "";
            proxy_set_header Forwarded "";
            proxy_set_header X-Real-IP $remote_addr;
            proxy_set_header X-Request-ID $request_id;
            add_header X-Request-ID $request_id always;
            proxy_request_buffering off;
            client_max_body_size 16m;
        }
"""


def nginx_conf(prefix: Path, port: int, upstream: str) -> str:
    paths = "\n".join(f"    {kind}_temp_path {prefix / kind};"
                      for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    return f"""\
pid {prefix / "nginx.pid"};
error_log {prefix / "error.log"} info;
events {{
    worker_connections 64;
}}
http {{
    access_log {prefix / "access.log"};
{paths}
    upstream wsgiserver {{
        server {upstream};
        keepalive 4;
    }}
    server {{
        listen 127.0.0.1:{port};
{LOCATION}    }}
}}
"""


class CountingSocket(socket.socket):
    """A listening socket that counts the connections it accepted."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.accepted = 0

    def accept(self):
        connection = super().accept()
        self.accepted += 1  # the server accepts one at a time
        return connection


class Upstream:
    def __init__(self, server: Server, sock: CountingSocket, nginx_address: str) -> None:
        self.server = server
        self.sock = sock
        self.nginx_address = nginx_address
        self.kind = "unix" if nginx_address.startswith("unix:") else "tcp"

    @property
    def accepted(self) -> int:
        return self.sock.accepted


@pytest.fixture(params=["tcp", "unix"])
def upstream(request, caplog) -> Iterator[Upstream]:
    """wsgiserver on TCP (trusting 127.0.0.1) or a Unix socket (trusting unix)."""
    directory = None
    if request.param == "tcp":
        sock = CountingSocket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        address = f"127.0.0.1:{sock.getsockname()[1]}"
        trusted = ("127.0.0.1",)
    else:
        directory = tempfile.mkdtemp(prefix="wsgi-nginx-", dir="/tmp")
        os.chmod(directory, 0o755)
        path = os.path.join(directory, "app.sock")
        sock = CountingSocket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.bind(path)
        address = "unix:" + path
        trusted = ("unix",)
    sock.listen(64)
    config = ServerConfig(threads=4, forwarded_allow_ips=trusted, shutdown_timeout=5.0)
    server = Server(inspect_app, config, listeners=[Listener(sock)])
    server.start()
    try:
        yield Upstream(server, sock, address)
    finally:
        server.stop()
        if directory is not None:
            shutil.rmtree(directory, ignore_errors=True)
    internal = [r for r in caplog.records if r.getMessage().startswith("unexpected error")]
    assert not internal, f"the server hit an internal error: {internal[0].exc_text}"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def nginx(upstream, tmp_path) -> Iterator[int]:
    """nginx on 127.0.0.1:<port> in front of ``upstream``; the port."""
    prefix = tmp_path / "nginx"
    prefix.mkdir()
    port = free_port()
    conf = prefix / "nginx.conf"
    conf.write_text(nginx_conf(prefix, port, upstream.nginx_address))
    error_log = prefix / "error.log"
    process = subprocess.Popen(
        [NGINX, "-p", str(prefix), "-e", str(error_log), "-c", str(conf),
         "-g", "daemon off; master_process off;"],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    log = error_log.read_text() if error_log.exists() else ""
                    pytest.fail(f"nginx did not start: {process.stderr.read()!r} {log}")
                time.sleep(0.05)
        yield port
    finally:
        if process.poll() is None:
            process.terminate()  # SIGTERM: nginx's fast shutdown
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)
        process.stderr.close()


_CLIENTS: list[http.client.HTTPConnection] = []


@pytest.fixture(autouse=True)
def _close_clients() -> Iterator[None]:
    yield
    while _CLIENTS:
        _CLIENTS.pop().close()


def client(port: int) -> http.client.HTTPConnection:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10, source_address=(CLIENT, 0))
    _CLIENTS.append(conn)
    return conn


def fetch(conn, target="/", method="GET", headers=None, body=None, **options):
    conn.request(method, target, body=body, headers=headers or {}, **options)
    response = conn.getresponse()
    data = response.read()
    assert response.status == 200, data
    return json.loads(data), response


def test_client_address_and_scheme_arrive(nginx, upstream):
    report, response = fetch(client(nginx), "/where?q=1")
    assert report["REMOTE_ADDR"] == CLIENT
    assert report["wsgi.url_scheme"] == "https"
    assert report["SERVER_PORT"] == str(nginx)
    assert report["HTTP_HOST"] == "127.0.0.1"
    assert report["PATH_INFO"] == "/where" and report["QUERY_STRING"] == "q=1"
    # nginx's request id is the app's, and nginx tells the client.
    assert report["wsgiserver.request_id"] == response.getheader("X-Request-ID")
    original = report["wsgiserver.proxy.original"]
    assert original["REMOTE_ADDR"] == ("127.0.0.1" if upstream.kind == "tcp" else "")


def test_upstream_keepalive_carries_several_requests(nginx, upstream):
    reports = []
    for number in range(6):  # a new client connection each time
        conn = client(nginx)
        reports.append(fetch(conn, f"/{number}")[0])
        conn.close()
    assert [report["PATH_INFO"] for report in reports] == [f"/{n}" for n in range(6)]
    assert 1 <= upstream.accepted < len(reports)
    if upstream.kind == "tcp":
        ports = {report["wsgiserver.proxy.original"]["REMOTE_PORT"] for report in reports}
        assert len(ports) < len(reports)


def test_chunked_upload_streams_through(nginx, upstream):
    pieces = [os.urandom(size) for size in (1, 70_000, 4096, 200_000, 13)]
    body = b"".join(pieces)
    report, _ = fetch(client(nginx), "/upload", method="POST", body=iter(pieces),
                      headers={"Transfer-Encoding": "chunked",
                               "Content-Type": "application/octet-stream"},
                      encode_chunked=True)
    assert report["body_length"] == len(body)
    assert report["body_sha256"] == hashlib.sha256(body).hexdigest()
    # Not buffered into a Content-Length: nginx streamed it on, chunked; we
    # received it whole before the app ran, so the app is told its length.
    assert report["headers"].get("HTTP_TRANSFER_ENCODING") == "chunked"
    assert report["CONTENT_LENGTH"] == str(len(body))


def test_forged_forwarding_headers_do_not_reach_the_app(nginx, upstream):
    forged = {
        "X-Forwarded-For": "6.6.6.6",
        "Forwarded": 'for=6.6.6.6;proto=http;host="evil.example"',
        "X-Forwarded-Host": "evil.example",
        "X-Forwarded-Port": "6666",
        "X-Forwarded-Proto": "http",
        "X-Real-IP": "6.6.6.6",
        "X-Request-ID": "forged-id",
    }
    report, _ = fetch(client(nginx), headers=forged)
    assert report["REMOTE_ADDR"] == CLIENT
    assert report["wsgi.url_scheme"] == "https"
    assert report["SERVER_PORT"] == str(nginx)
    assert "evil" not in report["HTTP_HOST"] and "evil" not in report["SERVER_NAME"]
    headers = report["headers"]
    assert "HTTP_FORWARDED" not in headers
    assert "HTTP_X_FORWARDED_HOST" not in headers
    assert headers["HTTP_X_FORWARDED_FOR"] == CLIENT
    assert headers["HTTP_X_REAL_IP"] == CLIENT
    assert "6.6.6.6" not in json.dumps(report)
    assert report["wsgiserver.request_id"] != "forged-id"
