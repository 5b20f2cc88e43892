"""microapp:app served by the real wsgiserver: http.client, raw sockets, curl,
and the command line in a subprocess."""

from __future__ import annotations

import gzip
import http.client
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from microapp import create_app
from microapp.files import TEMPORARY_PREFIX

ROOT = Path(__file__).resolve().parents[2]
CONTENT = bytes(range(256)) * 4096  # 1 MiB: big enough for sendfile to matter


@pytest.fixture
def served(live_server, tmp_path):
    """microapp's bundled app on a live server; files in tmp_path/files via --directory."""
    directory = tmp_path / "files"
    directory.mkdir()
    server = live_server(create_app(), directory=str(directory))
    return server, directory


def request(server, method, path, body=None, headers=None):
    """One request on a fresh connection: (response, body bytes)."""
    connection = http.client.HTTPConnection(*server.address, timeout=10)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        return response, response.read()
    finally:
        connection.close()


def wait_until(condition, seconds=5.0):
    """Poll ``condition`` until it holds or ``seconds`` pass; its last value."""
    deadline = time.monotonic() + seconds
    while not (result := condition()) and time.monotonic() < deadline:
        time.sleep(0.02)
    return result


def test_root_echo_user_agent_and_404(served):
    server, _ = served
    response, body = request(server, "GET", "/")
    assert (response.status, body) == (200, b"")
    response, body = request(server, "GET", "/echo/abc")
    assert (response.status, response.reason, body) == (200, "OK", b"abc")
    assert response.getheader("Content-Type") == "text/plain"
    assert response.getheader("Content-Length") == "3"
    response, body = request(server, "GET", "/user-agent", headers={"User-Agent": "e2e/1.0"})
    assert body == b"e2e/1.0"
    response, body = request(server, "GET", "/nope")
    assert (response.status, response.reason, body) == (404, "Not Found", b"Not Found")


def test_gzip_reaches_the_client_with_a_matching_length(served):
    server, _ = served
    text = b"squeeze" * 100
    response, body = request(server, "GET", "/echo/" + text.decode(),
                             headers={"Accept-Encoding": "gzip"})
    assert response.getheader("Content-Encoding") == "gzip"
    assert response.getheader("Vary") == "Accept-Encoding"
    assert response.getheader("Content-Length") == str(len(body))
    assert gzip.decompress(body) == text


def test_upload_then_download_the_whole_file(served):
    server, directory = served
    response, _ = request(server, "POST", "/files/big.bin", body=CONTENT)
    assert (response.status, response.getheader("Location")) == (201, "/files/big.bin")
    response, body = request(server, "GET", "/files/big.bin")
    assert response.status == 200
    assert response.getheader("Content-Type") == "application/octet-stream"
    assert response.getheader("Content-Length") == str(len(CONTENT))
    assert body == CONTENT
    assert (directory / "big.bin").read_bytes() == CONTENT


def test_ranges_validators_and_head_over_the_wire(served):
    server, directory = served
    (directory / "data").write_bytes(CONTENT)
    response, body = request(server, "GET", "/files/data", headers={"Range": "bytes=-100"})
    assert response.status == 206 and body == CONTENT[-100:]
    assert response.getheader("Content-Range") == f"bytes {len(CONTENT) - 100}-" \
        f"{len(CONTENT) - 1}/{len(CONTENT)}"
    response, body = request(server, "GET", "/files/data", headers={"Range": "bytes=10-19"})
    assert response.status == 206 and body == CONTENT[10:20]
    etag = response.getheader("ETag")
    response, body = request(server, "GET", "/files/data", headers={"If-None-Match": etag})
    assert (response.status, body) == (304, b"")
    response, body = request(server, "HEAD", "/files/data")
    assert response.status == 200 and body == b""
    assert response.getheader("Content-Length") == str(len(CONTENT))
    response, _ = request(server, "GET", "/files/data", headers={"Range": "bytes=99999999-"})
    assert response.status == 416
    assert response.getheader("Content-Range") == f"bytes */{len(CONTENT)}"


def test_put_semantics_over_the_wire(served):
    server, directory = served
    assert request(server, "PUT", "/files/doc", body=b"one")[0].status == 201
    assert request(server, "PUT", "/files/doc", body=b"two")[0].status == 204
    refused = request(server, "PUT", "/files/doc", body=b"three", headers={"If-None-Match": "*"})
    assert refused[0].status == 412
    assert (directory / "doc").read_bytes() == b"two"


def test_chunked_upload_is_stored_whole(served):
    server, directory = served
    parts = [CONTENT[:100_000], CONTENT[100_000:300_000]]
    connection = http.client.HTTPConnection(*server.address, timeout=10)
    try:
        connection.request("POST", "/files/chunked", body=iter(parts),
                           headers={"Transfer-Encoding": "chunked"}, encode_chunked=True)
        response = connection.getresponse()
        response.read()
    finally:
        connection.close()
    assert response.status == 201
    assert (directory / "chunked").read_bytes() == b"".join(parts)


def test_client_that_disconnects_mid_upload_leaves_nothing_behind(served):
    server, directory = served
    with socket.create_connection(server.address, timeout=5) as sock:
        sock.sendall(b"POST /files/partial HTTP/1.1\r\nHost: localhost\r\n"
                     b"Content-Length: 1000000\r\n\r\n" + b"p" * 50_000)
        time.sleep(0.2)  # let the app start writing the temporary file
    # The app learns of the disconnect from wsgi.input, then cleans up.
    assert wait_until(lambda: os.listdir(directory) == [], seconds=10), os.listdir(directory)


def test_concurrent_puts_to_one_name_leave_one_whole_body(served):
    server, directory = served
    bodies = [bytes([97 + index]) * 200_000 for index in range(6)]
    statuses: list[int] = []

    def put(body: bytes) -> None:
        statuses.append(request(server, "PUT", "/files/shared", body=body)[0].status)

    threads = [threading.Thread(target=put, args=(body,)) for body in bodies]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert not any(thread.is_alive() for thread in threads)
    assert sorted(statuses) == [201] + [204] * (len(bodies) - 1)
    assert (directory / "shared").read_bytes() in bodies
    assert not [name for name in os.listdir(directory) if name.startswith(TEMPORARY_PREFIX)]


def test_flask_example_streams_gzip_through_the_server(live_server):
    sys.path.insert(0, str(ROOT))
    try:
        from examples.flask_gzip import app
    finally:
        sys.path.remove(str(ROOT))
    server = live_server(app)
    response, body = request(server, "GET", "/stream", headers={"Accept-Encoding": "gzip"})
    assert response.getheader("Content-Encoding") == "gzip"
    assert response.getheader("Transfer-Encoding") == "chunked"
    assert gzip.decompress(body).startswith(b"line  0 ")


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_curl_gets_echo_and_a_compressed_file(served):
    server, directory = served
    (directory / "notes.txt").write_bytes(b"curl was here\n" * 100)
    base = "http://{}:{}".format(*server.address)
    echo = subprocess.run(["curl", "-sS", "--max-time", "10", f"{base}/echo/curl"],
                          capture_output=True, timeout=20, check=True)
    assert echo.stdout == b"curl"
    compressed = subprocess.run(
        ["curl", "-sS", "--compressed", "-D", "-", "--max-time", "10", f"{base}/files/notes.txt"],
        capture_output=True, timeout=20, check=True)
    head, _, body = compressed.stdout.partition(b"\r\n\r\n")
    assert b"content-encoding: gzip" in head.lower()
    assert body == b"curl was here\n" * 100


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def cli_server(tmp_path):
    """``python -m wsgiserver microapp:app`` in a subprocess; stopped by its PID."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "wsgiserver", "microapp:app", "--host", "127.0.0.1",
         "--port", str(port), "--directory", str(tmp_path)],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and process.poll() is None:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                time.sleep(0.05)
        else:
            raise AssertionError(f"server did not start: {process.communicate(timeout=5)}")
        yield port, tmp_path
    finally:
        process.terminate()  # SIGTERM to this PID only
        try:
            process.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate(timeout=5)


def test_command_line_serves_microapp_with_directory(cli_server):
    port, directory = cli_server
    (directory / "hello.txt").write_bytes(b"from disk")
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request("GET", "/echo/cli")
        response = connection.getresponse()
        assert (response.status, response.read()) == (200, b"cli")
        connection.request("GET", "/files/hello.txt")  # same keep-alive connection
        response = connection.getresponse()
        assert (response.status, response.read()) == (200, b"from disk")
        connection.request("POST", "/files/up.txt", body=b"uploaded")
        response = connection.getresponse()
        response.read()
        assert response.status == 201
    finally:
        connection.close()
    assert (directory / "up.txt").read_bytes() == b"uploaded"
