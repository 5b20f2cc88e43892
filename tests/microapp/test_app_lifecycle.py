"""App: handler results, HTTPError, error handlers, hooks, middleware, 500 path."""

from __future__ import annotations

import io

import pytest
import webtest
from wsgi_calls import call_wsgi

from microapp import App, HTTPError, Response


@pytest.fixture
def app() -> App:
    app = App(max_body_bytes=16)

    @app.get("/text")
    def text(request):
        return "plain"

    @app.get("/bytes")
    def raw(request):
        return b"\x00"

    @app.get("/dict")
    def mapping(request):
        return {"ok": True}

    @app.get("/teapot")
    def teapot(request):
        raise HTTPError(418, "short and stout", headers=[("X-Kind", "teapot")])

    @app.get("/boom")
    def boom(request):
        raise RuntimeError("handler bug")

    @app.post("/echo")
    def echo(request):
        return request.body

    @app.post("/json")
    def parse(request):
        return {"got": request.json()}

    return app


def test_handlers_may_return_str_bytes_or_dict(app):
    client = webtest.TestApp(app)
    assert client.get("/text").content_type == "text/plain"
    assert client.get("/bytes").body == b"\x00"
    assert client.get("/dict").json == {"ok": True}


def test_http_error_becomes_its_response_with_its_headers(app):
    response = webtest.TestApp(app).get("/teapot", status=418)
    assert response.status == "418 I'm a Teapot"
    assert response.text == "short and stout"
    assert response.headers["X-Kind"] == "teapot"


def test_unknown_path_is_404_not_found_text(app):
    response = webtest.TestApp(app).get("/missing", status=404)
    assert response.body == b"Not Found"


def test_other_exceptions_propagate_to_the_server(app):
    with pytest.raises(RuntimeError, match="handler bug"):
        webtest.TestApp(app).get("/boom")


def test_ordinary_4xx_write_nothing_to_wsgi_errors(app):
    errors = io.StringIO()
    for path in ("/missing", "/teapot"):
        call_wsgi(app, "GET", path, **{"wsgi.errors": errors})
    call_wsgi(app, "POST", "/echo", body=b"x" * 100, **{"wsgi.errors": errors})
    assert errors.getvalue() == ""


def test_body_over_the_app_limit_is_413(app):
    webtest.TestApp(app).post("/echo", b"x" * 17, status=413)


def test_request_json_errors_reach_the_client(app):
    client = webtest.TestApp(app)
    client.post("/json", b"{}", content_type="text/plain", status=415)
    client.post("/json", b"{", content_type="application/json", status=400)
    assert client.post("/json", b"[1]", content_type="application/json").json == {"got": [1]}


def test_error_handler_answers_for_its_status(app):
    @app.error_handler(404)
    def not_found(request, error):
        return {"missing": request.path}

    response = webtest.TestApp(app).get("/nope", status=404)
    assert response.json == {"missing": "/nope"}


def test_error_handler_may_return_a_full_response(app):
    @app.error_handler(418)
    def teapot(request, error):
        return Response("brewed", status=200)

    assert webtest.TestApp(app).get("/teapot").text == "brewed"


def test_error_raised_by_an_error_handler_gets_the_default_answer(app):
    @app.error_handler(404)
    def broken(request, error):
        raise HTTPError(410)

    webtest.TestApp(app).get("/nope", status=410)


def test_before_request_hook_can_answer_early(app):
    @app.before_request
    def gate(request):
        if request.headers.get("X-Token") != "yes":
            raise HTTPError(401)
        return None

    client = webtest.TestApp(app)
    client.get("/text", status=401)
    assert client.get("/text", headers={"X-Token": "yes"}).text == "plain"


def test_before_request_hook_returning_a_value_skips_the_handler(app):
    app.before_request(lambda request: "from hook")
    assert webtest.TestApp(app).get("/boom").text == "from hook"


def test_after_request_hooks_see_every_response_including_errors(app):
    seen = []

    @app.after_request
    def stamp(request, response):
        seen.append(response.status)
        response.set_header("X-Seen", "1")
        return response

    client = webtest.TestApp(app)
    assert client.get("/text").headers["X-Seen"] == "1"
    assert client.get("/missing", status=404).headers["X-Seen"] == "1"
    assert seen == [200, 404]


def test_middleware_wraps_the_app_outermost_last(app):
    order = []

    def tagging(inner, tag):
        def middleware(environ, start_response):
            order.append(tag)
            return inner(environ, start_response)
        return middleware

    app.add_middleware(tagging, "inner")
    app.add_middleware(tagging, tag="outer")
    webtest.TestApp(app).get("/text")
    assert order == ["outer", "inner"]


def test_head_request_drops_the_body_but_keeps_the_length(app):
    answer = call_wsgi(app, "HEAD", "/text")
    assert answer.body == b""
    assert answer.header("Content-Length") == "5"


def test_route_params_are_on_the_request():
    app = App()

    @app.get("/u/<name>")
    def user(request, name):
        return f"{request.params['name']}={name}"

    assert webtest.TestApp(app).get("/u/ann").text == "ann=ann"


def test_http_error_refuses_non_error_statuses():
    with pytest.raises(ValueError):
        HTTPError(200)
