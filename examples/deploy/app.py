"""The application the deployment examples serve (``wsgiserver app:app`` in
the image): a greeting, and ``/healthz`` for Docker's HEALTHCHECK and the
Kubernetes probes. Replace it with yours and keep a health route as cheap."""

from __future__ import annotations

from microapp import App, GzipMiddleware, Request, Response

app = App()
app.add_middleware(GzipMiddleware)


@app.get("/")
def index(request: Request) -> Response:
    """GET /: a greeting."""
    return Response(b"Hello from wsgiserver.\n", content_type="text/plain")


@app.get("/healthz")
def health(request: Request) -> Response:
    """GET /healthz: 200 while this process answers HTTP. It checks nothing
    downstream on purpose: a liveness probe that fails when the database is
    slow would restart every pod at once and fix nothing."""
    return Response(b"ok\n", content_type="text/plain")
