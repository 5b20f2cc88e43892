"""The examples behave as their docstrings say, in-process."""

from __future__ import annotations

import gzip
import importlib.util
from pathlib import Path

import pytest
import webtest
from wsgi_calls import call_wsgi

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def load(name: str):
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def demo() -> webtest.TestApp:
    return webtest.TestApp(load("microapp_demo").create_demo_app(), lint=True)


def test_demo_index_counts_visits_in_a_cookie(demo):
    assert demo.get("/").json["visits"] == 1
    assert demo.get("/").json["visits"] == 2  # WebTest sends the cookie back


def test_demo_notes_round_trip(demo):
    created = demo.post_json("/notes", {"text": "buy milk"}, status=201)
    assert created.headers["Location"] == "/notes/1"
    assert demo.get("/notes/1").json == {"id": 1, "text": "buy milk"}
    assert demo.get("/notes").json == {"notes": [{"id": 1, "text": "buy milk"}]}
    demo.delete("/notes/1", status=204)
    assert demo.get("/notes/1", status=404).json == {"error": "no note 1", "path": "/notes/1"}


def test_demo_rejects_bad_notes(demo):
    demo.post_json("/notes", {"text": ""}, status=422)
    demo.post("/notes", "text", content_type="text/plain", status=415)


def test_demo_middleware_and_hooks_add_their_headers(demo):
    response = demo.get("/notes", headers={"X-Request-Id": "abc"})
    assert response.headers["X-Request-Id"] == "abc"
    assert response.headers["Server-Timing"].startswith("app;dur=")


def test_flask_example_is_gzipped_with_vary_and_a_weak_etag():
    app = load("flask_gzip").app
    answer = call_wsgi(app, path="/", headers={"Accept-Encoding": "gzip"})
    assert answer.header("Content-Encoding") == "gzip"
    assert answer.header("Vary") == "Accept-Encoding"
    assert answer.header("ETag") == 'W/"index-v1"'
    assert gzip.decompress(answer.body) == b"Flask, gzipped by microapp.\n" * 40


def test_flask_example_streams_compressed_and_leaves_images_alone():
    app = load("flask_gzip").app
    streamed = call_wsgi(app, path="/stream", headers={"Accept-Encoding": "gzip"})
    assert streamed.header("Content-Length") is None
    expected = "".join(f"line {n:2d} " + "." * 60 + "\n" for n in range(20)).encode()
    assert streamed.header("Content-Encoding") == "gzip"
    assert gzip.decompress(streamed.body) == expected
    image = call_wsgi(app, path="/pixel.png", headers={"Accept-Encoding": "gzip"})
    assert image.header("Content-Encoding") is None
    assert image.body.startswith(b"\x89PNG")
