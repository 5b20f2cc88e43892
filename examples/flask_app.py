"""A Flask application served by wsgiserver: ``wsgiserver examples.flask_app:app``.

Shows JSON, streaming, send_file and error handling going through the server.
"""

from __future__ import annotations

import os
import tempfile

from flask import Flask, Response, abort, jsonify, request, send_file, stream_with_context

app = Flask(__name__)


@app.get("/")
def index():
    """A plain greeting."""
    return "Hello from Flask on wsgiserver\n"


@app.post("/json")
def echo_json():
    """Echo a JSON body back, with its size."""
    payload = request.get_json(force=True)
    return jsonify(received=payload, bytes=request.content_length)


@app.get("/stream/<int:count>")
def stream(count: int):
    """Stream ``count`` lines, one chunk each."""

    def lines():
        for number in range(count):
            yield f"line {number}\n"

    return Response(stream_with_context(lines()), mimetype="text/plain")


@app.get("/file")
def file():
    """Send a generated file (through wsgi.file_wrapper)."""
    path = os.path.join(tempfile.gettempdir(), "wsgiserver-flask-example.txt")
    if not os.path.exists(path):
        with open(path, "w") as handle:
            handle.write("a file sent with send_file\n" * 100)
    return send_file(path, mimetype="text/plain")


@app.get("/missing")
def missing():
    """Always 404."""
    abort(404)


@app.get("/crash")
def crash():
    """An unhandled exception: Flask answers 500."""
    raise RuntimeError("example failure")
