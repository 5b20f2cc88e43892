"""The bundled app's small routes, through WebTest with lint on."""

from __future__ import annotations

import gzip

import webtest
from wsgi_calls import call_wsgi

import microapp
from microapp import create_app


def test_root_is_200_with_an_empty_body(client):
    response = client.get("/")
    assert response.status == "200 OK"
    assert response.body == b""


def test_echo_returns_the_text_as_plain_text_without_charset(client):
    response = client.get("/echo/abc")
    assert response.headers["Content-Type"] == "text/plain"
    assert response.headers["Content-Length"] == "3"
    assert response.body == b"abc"


def test_echo_returns_utf8_text_with_its_byte_length(client):
    response = client.get("/echo/%C3%A9t%C3%A9")
    assert response.body == "\u00e9t\u00e9".encode()
    assert response.headers["Content-Length"] == "5"


def test_echo_of_two_segments_is_404(client):
    client.get("/echo/a/b", status=404)


def test_user_agent_is_echoed(client):
    response = client.get("/user-agent", headers={"User-Agent": "foobar/1.2.3"})
    assert response.headers["Content-Type"] == "text/plain"
    assert response.body == b"foobar/1.2.3"


def test_anything_else_is_404_not_found(client):
    response = client.get("/banana", status=404)
    assert response.body == b"Not Found"


def test_wrong_method_on_a_route_is_405_with_allow(client):
    response = client.post("/echo/x", b"", status=405)
    assert response.headers["Allow"] == "GET, HEAD, OPTIONS"


def test_files_without_a_configured_directory_are_404():
    client = webtest.TestApp(create_app())
    client.get("/files/anything", status=404)
    client.post("/files/anything", b"data", status=404)


def test_files_under_a_directory_that_does_not_exist_are_404(tmp_path):
    client = webtest.TestApp(create_app(str(tmp_path / "gone")))
    client.get("/files/a", status=404)
    client.post("/files/a", b"data", status=404)


def test_files_directory_comes_from_the_server_environ(tmp_path):
    (tmp_path / "hello.txt").write_bytes(b"from the server's --directory")
    client = webtest.TestApp(create_app(),
                             extra_environ={"wsgiserver.directory": str(tmp_path)})
    assert client.get("/files/hello.txt").body == b"from the server's --directory"


def test_create_app_directory_wins_over_the_environ(tmp_path, files_dir):
    (files_dir / "a").write_bytes(b"mine")
    (tmp_path / "a").write_bytes(b"server's")
    client = webtest.TestApp(create_app(str(files_dir)),
                             extra_environ={"wsgiserver.directory": str(tmp_path)})
    assert client.get("/files/a").body == b"mine"


def test_module_level_app_compresses_long_bodies():
    # Raw WSGI: WebTest would decode the body and drop Content-Encoding.
    text = "squeeze" * 100
    answer = call_wsgi(microapp.app, path=f"/echo/{text}", headers={"Accept-Encoding": "gzip"})
    assert answer.header("Content-Encoding") == "gzip"
    assert answer.header("Vary") == "Accept-Encoding"
    assert answer.header("Content-Type") == "text/plain"
    assert answer.header("Content-Length") == str(len(answer.body))
    assert gzip.decompress(answer.body) == text.encode()


def test_module_level_app_gzips_echo_of_three_bytes_as_the_challenge_expects():
    # Three bytes gzip-coded are 23: larger, but the challenge's stage asks for gzip.
    answer = call_wsgi(microapp.app, path="/echo/abc", headers={"Accept-Encoding": "gzip"})
    assert answer.header("Content-Encoding") == "gzip"
    assert answer.header("Vary") == "Accept-Encoding"
    assert answer.header("Content-Length") == str(len(answer.body))
    assert gzip.decompress(answer.body) == b"abc"


def test_module_level_app_sends_tiny_bodies_elsewhere_as_they_are_with_vary():
    answer = call_wsgi(microapp.app, path="/user-agent",
                       headers={"Accept-Encoding": "gzip", "User-Agent": "ua/1"})
    assert answer.header("Content-Encoding") is None
    assert answer.header("Vary") == "Accept-Encoding"
    assert (answer.header("Content-Length"), answer.body) == ("4", b"ua/1")


def test_module_level_app_echo_without_gzip_accepted_is_identity():
    answer = call_wsgi(microapp.app, path="/echo/abc",
                       headers={"Accept-Encoding": "invalid-encoding"})
    assert answer.header("Content-Encoding") is None
    assert (answer.header("Content-Length"), answer.body) == ("3", b"abc")


def test_app_without_compression_never_sets_content_encoding(files_dir):
    client = webtest.TestApp(create_app(str(files_dir), compress=False))
    response = client.get("/echo/hi", headers={"Accept-Encoding": "gzip"})
    assert "Content-Encoding" not in response.headers


def test_without_a_directory_files_routes_say_why_they_are_404():
    client = webtest.TestApp(create_app())
    for path in ("/files/", "/files/notes.txt"):
        response = client.get(path, status=404)
        assert "no directory is configured: start the server with --directory DIR" in response.text
