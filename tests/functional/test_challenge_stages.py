"""The CodeCrafters "Build your own HTTP server" stages, replayed over raw sockets.

The project began as that challenge, and the bundled app must still pass every
stage of it. Each test sends the requests a stage's tester sends, byte for
byte, to the server started as the challenge starts it (``wsgiserver
microapp:app --port P --no-date-header --no-server-header --directory DIR``),
and checks what the tester checks (plus that the framing is exact).
"""

from __future__ import annotations

import gzip
import socket
import threading

import pytest

from tests.functional.http import read_response

HOST = b"Host: localhost:4221\r\n"


@pytest.fixture
def challenge(start_cli, tmp_path):
    """The bundled app as the challenge runs it: (port, its files directory)."""
    directory = tmp_path / "files"
    directory.mkdir()
    _, port = start_cli("microapp:app", "--no-date-header", "--no-server-header",
                        "--directory", str(directory))
    return port, directory


def exchange(port: int, *requests: bytes):
    """Send each request on one connection in turn; the responses read."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        responses = []
        for request in requests:
            sock.sendall(request)
            responses.append(read_response(sock))
        return responses


def get(path: str, *fields: bytes) -> bytes:
    return b"GET " + path.encode() + b" HTTP/1.1\r\n" + HOST + b"".join(fields) + b"\r\n"


def test_stage_respond_with_200(challenge):
    port, _ = challenge
    [response] = exchange(port, get("/"))
    assert (response.status, response.body) == (200, b"")


def test_stage_extract_url_path_gives_404_elsewhere(challenge):
    port, _ = challenge
    [response] = exchange(port, get("/grape"))
    assert response.status == 404


def test_stage_respond_with_body(challenge):
    port, _ = challenge
    [response] = exchange(port, get("/echo/pineapple"))
    assert response.status == 200
    assert response.header("content-type") == "text/plain"
    assert response.header("content-length") == "9"
    assert response.body == b"pineapple"


def test_stage_read_header(challenge):
    port, _ = challenge
    [response] = exchange(port, get("/user-agent", b"User-Agent: grape/mango-raspberry\r\n"))
    assert response.status == 200
    assert response.header("content-type") == "text/plain"
    assert (response.header("content-length"), response.body) == ("21", b"grape/mango-raspberry")


def test_stage_concurrent_connections(challenge):
    port, _ = challenge
    clients = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(3)]
    try:
        # Every connection is open before any sends: none may wait for another.
        for client in reversed(clients):
            client.sendall(get("/"))
        assert [read_response(client).status for client in clients] == [200, 200, 200]
    finally:
        for client in clients:
            client.close()


def test_stage_return_a_file(challenge):
    port, directory = challenge
    (directory / "foo").write_bytes(b"Hello, World!")
    found, missing = exchange(port, get("/files/foo"), get("/files/non_existant_file"))
    assert found.status == 200
    assert found.header("content-type") == "application/octet-stream"
    assert (found.header("content-length"), found.body) == ("13", b"Hello, World!")
    assert missing.status == 404


def test_stage_read_request_body(challenge):
    port, directory = challenge
    body = b"12345"
    request = (b"POST /files/number HTTP/1.1\r\n" + HOST
               + b"Content-Type: application/octet-stream\r\nContent-Length: 5\r\n\r\n" + body)
    [response] = exchange(port, request)
    assert response.status == 201
    assert (directory / "number").read_bytes() == body


def assert_gzip_echo(response, text: bytes) -> None:
    assert response.status == 200
    assert response.header("content-type") == "text/plain"
    assert response.header("content-encoding") == "gzip"
    assert response.header("content-length") == str(len(response.body))
    assert gzip.decompress(response.body) == text


def test_stage_compression_headers(challenge):
    port, _ = challenge
    accepted, refused = exchange(port, get("/echo/raspberry", b"Accept-Encoding: gzip\r\n"),
                                 get("/echo/raspberry", b"Accept-Encoding: invalid-encoding\r\n"))
    assert_gzip_echo(accepted, b"raspberry")
    assert refused.header("content-encoding") is None
    assert refused.body == b"raspberry"


def test_stage_multiple_compression_schemes(challenge):
    port, _ = challenge
    listed = b"Accept-Encoding: invalid-encoding-1, gzip, invalid-encoding-2\r\n"
    none_known = b"Accept-Encoding: invalid-encoding-1, invalid-encoding-2\r\n"
    accepted, refused = exchange(port, get("/echo/apple", listed), get("/echo/apple", none_known))
    assert_gzip_echo(accepted, b"apple")
    assert refused.header("content-encoding") is None
    assert refused.body == b"apple"


@pytest.mark.parametrize("text", [b"abc", b"banana", b"x" * 600])
def test_stage_gzip_compression_whatever_the_length(challenge, text):
    port, _ = challenge
    [response] = exchange(port, get("/echo/" + text.decode(), b"Accept-Encoding: gzip\r\n"))
    assert_gzip_echo(response, text)


def test_stage_persistent_connections(challenge):
    port, _ = challenge
    responses = exchange(port, get("/echo/banana"),
                         get("/user-agent", b"User-Agent: blueberry/apple-blueberry\r\n"),
                         get("/"))
    assert [response.body for response in responses] == [
        b"banana", b"blueberry/apple-blueberry", b""]


def test_stage_connection_closure(challenge):
    port, _ = challenge
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(get("/echo/orange", b"Connection: close\r\n"))
        response = read_response(sock)
        assert response.header("connection") == "close"
        assert response.body == b"orange"
        sock.settimeout(5)
        assert sock.recv(1) == b""  # the server closed it


def test_concurrent_stage_clients_on_threads(challenge):
    """As the tester does it: each client its own thread, all at once."""
    port, _ = challenge
    results: list[int] = []

    def client() -> None:
        results.append(exchange(port, get("/"))[0].status)

    threads = [threading.Thread(target=client) for _ in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(15)
    assert results == [200] * 5


def test_files_refuse_a_rebound_host_over_the_wire(challenge):
    # DNS rebinding: the browser sends the attacker's name with a matching Origin.
    port, directory = challenge
    (directory / "victim.txt").write_bytes(b"secret")
    rebound = (b"Host: attacker.example:4221\r\n", b"Origin: http://attacker.example:4221\r\n")
    listing, read = exchange(port, b"GET /files/ HTTP/1.1\r\n" + b"".join(rebound) + b"\r\n",
                             b"GET /files/victim.txt HTTP/1.1\r\n" + b"".join(rebound) + b"\r\n")
    assert (listing.status, read.status) == (421, 421)
    [removal] = exchange(port, b"DELETE /files/victim.txt HTTP/1.1\r\n" + b"".join(rebound)
                         + b"\r\n")
    assert removal.status == 421
    assert (directory / "victim.txt").read_bytes() == b"secret"
