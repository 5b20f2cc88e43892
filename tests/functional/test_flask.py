"""A real Flask application served by wsgiserver over real sockets."""

from __future__ import annotations

import http.client
import json

import pytest

flask = pytest.importorskip("flask")


@pytest.fixture
def flask_server(live_server, tmp_path):
    app = flask.Flask("wsgiserver-test")
    big = tmp_path / "big.bin"
    big.write_bytes(bytes(range(256)) * 4096)  # 1 MiB

    @app.get("/stream")
    def stream():
        return flask.Response((f"part {n}\n" for n in range(50)), mimetype="text/plain")

    @app.get("/file")
    def file():
        return flask.send_file(big, mimetype="application/octet-stream")

    @app.post("/json")
    def echo():
        return flask.jsonify(flask.request.get_json())

    @app.get("/missing")
    def missing():
        flask.abort(404)

    @app.get("/crash")
    def crash():
        raise RuntimeError("flask view failed")

    return live_server(app), big


def _request(server, method, path, body=None, headers=None):
    conn = http.client.HTTPConnection(*server.address, timeout=5)
    conn.request(method, path, body=body, headers=headers or {})
    response = conn.getresponse()
    return response, response.read()


def test_flask_streaming_response_arrives_chunked_and_whole(flask_server):
    server, _ = flask_server
    response, body = _request(server, "GET", "/stream")
    assert response.status == 200
    assert response.getheader("Transfer-Encoding") == "chunked"
    assert body == "".join(f"part {n}\n" for n in range(50)).encode()


def test_flask_send_file_sends_the_whole_file(flask_server):
    server, big = flask_server
    response, body = _request(server, "GET", "/file")
    assert response.status == 200
    assert response.getheader("Content-Length") == str(big.stat().st_size)
    assert body == big.read_bytes()


def test_flask_send_file_range_request(flask_server):
    server, big = flask_server
    response, body = _request(server, "GET", "/file", headers={"Range": "bytes=1000-1999"})
    assert response.status == 206
    assert body == big.read_bytes()[1000:2000]


def test_flask_json_round_trip(flask_server):
    server, _ = flask_server
    payload = {"name": "wsgiserver", "numbers": list(range(100))}
    response, body = _request(
        server, "POST", "/json", json.dumps(payload), {"Content-Type": "application/json"}
    )
    assert response.status == 200 and json.loads(body) == payload


def test_flask_errors_keep_their_status(flask_server):
    server, _ = flask_server
    assert _request(server, "GET", "/missing")[0].status == 404
    assert _request(server, "GET", "/crash")[0].status == 500
