"""microapp's GzipMiddleware around a Flask application: the middleware is
plain WSGI, so it needs nothing from microapp's App.

Run it with:  wsgiserver examples.flask_gzip:app --port 8000

    curl -i --compressed http://127.0.0.1:8000/        # gzip, Vary, weak ETag
    curl -i http://127.0.0.1:8000/                     # identity, still Vary
    curl -i --compressed http://127.0.0.1:8000/stream  # streamed, flushed per line
    curl -i --compressed http://127.0.0.1:8000/pixel.png -o /dev/null  # never gzip
"""

from __future__ import annotations

import base64
from collections.abc import Iterator

from flask import Flask, Response, jsonify

from microapp import GzipMiddleware

# A 1x1 transparent PNG: images are already compressed and pass untouched.
PIXEL = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAQAAAC1HAwCAAAAC0lEQVR42mNkYAAAAAYAAjCB0C8AAAAASUVORK5CYII="
)

flask_app = Flask(__name__)


@flask_app.get("/")
def index() -> Response:
    response = Response("Flask, gzipped by microapp.\n" * 40, mimetype="text/plain")
    response.set_etag("index-v1")
    return response


@flask_app.get("/data")
def data() -> Response:
    return jsonify(items=[{"n": number, "square": number * number} for number in range(100)])


@flask_app.get("/stream")
def stream() -> Response:
    def lines() -> Iterator[str]:
        for number in range(20):
            yield f"line {number:2d} " + "." * 60 + "\n"
    return Response(lines(), mimetype="text/plain")


@flask_app.get("/pixel.png")
def pixel() -> Response:
    return Response(PIXEL, mimetype="image/png")


app = GzipMiddleware(flask_app, minimum_size=500)
