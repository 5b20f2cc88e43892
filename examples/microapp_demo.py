"""A small notes service built on microapp: its own routes, hooks, cookies,
JSON, error handlers, and two middlewares (a plain WSGI one and gzip).

Run it with:  wsgiserver examples.microapp_demo:app --port 8000

    curl -i http://127.0.0.1:8000/
    curl -i -X POST -H 'Content-Type: application/json' -d '{"text": "buy milk"}' \
         http://127.0.0.1:8000/notes
    curl -i http://127.0.0.1:8000/notes/1
    curl -i --compressed http://127.0.0.1:8000/notes
"""

from __future__ import annotations

import itertools
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from typing import Any

from microapp import App, GzipMiddleware, HTTPError, Request, Response


def request_id_middleware(app: Callable[..., Iterable[bytes]]) -> Callable[..., Iterable[bytes]]:
    """Plain WSGI middleware: give every response an X-Request-Id."""
    def with_request_id(environ: dict[str, Any],
                        start_response: Callable[..., Any]) -> Iterable[bytes]:
        request_id = environ.get("HTTP_X_REQUEST_ID") or uuid.uuid4().hex

        def start(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            return start_response(status, headers + [("X-Request-Id", request_id)], exc_info)

        return app(environ, start)
    return with_request_id


def create_demo_app() -> App:
    """A fresh notes app: hooks, routes, error handler, then middleware."""
    app = App(max_body_bytes=64 * 1024)
    add_timing(app)
    add_notes(app)
    app.add_middleware(request_id_middleware)
    app.add_middleware(GzipMiddleware, minimum_size=200)
    return app


def add_timing(app: App) -> None:
    """Before/after hooks that report the handler's time in Server-Timing."""
    @app.before_request
    def start_clock(request: Request) -> None:
        request.environ["demo.started"] = time.perf_counter()

    @app.after_request
    def stamp(request: Request, response: Response) -> Response:
        elapsed = time.perf_counter() - request.environ.get("demo.started", time.perf_counter())
        response.set_header("Server-Timing", f"app;dur={elapsed * 1000:.2f}")
        return response


def add_notes(app: App) -> None:
    """The notes routes; notes live in memory, guarded by a lock."""
    notes: dict[int, str] = {}
    notes_lock = threading.Lock()
    next_id = itertools.count(1)

    @app.get("/")
    def index(request: Request) -> Response:
        previous = request.cookies.get("visits", "0")
        visits = int(previous) + 1 if previous.isdigit() else 1
        response = Response.json({"service": "notes", "visits": visits,
                                  "routes": ["/notes", "/notes/<int:note_id>"]})
        response.set_cookie("visits", str(visits), max_age=3600)
        return response

    @app.get("/notes")
    def list_notes(request: Request) -> dict:
        with notes_lock:
            return {"notes": [{"id": key, "text": text} for key, text in sorted(notes.items())]}

    @app.post("/notes")
    def add_note(request: Request) -> Response:
        payload = request.json()
        text = payload.get("text") if isinstance(payload, dict) else None
        if not isinstance(text, str) or not text:
            raise HTTPError(422, "expected {\"text\": \"...\"}")
        with notes_lock:
            note_id = next(next_id)
            notes[note_id] = text
        return Response.json({"id": note_id, "text": text}, status=201,
                             headers=[("Location", f"{request.script_name}/notes/{note_id}")])

    @app.route("/notes/<int:note_id>", methods=["GET", "DELETE"])
    def one_note(request: Request, note_id: int) -> Any:
        with notes_lock:
            if note_id not in notes:
                raise HTTPError(404, f"no note {note_id}")
            if request.method == "DELETE":
                del notes[note_id]
                return Response(status=204)
            return {"id": note_id, "text": notes[note_id]}

    @app.error_handler(404)
    def not_found(request: Request, error: HTTPError) -> dict:
        return {"error": error.detail, "path": request.path}


app = create_demo_app()
