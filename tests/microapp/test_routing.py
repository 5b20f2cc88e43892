"""Routing: patterns, converters, 404/405/HEAD/OPTIONS, registration errors."""

from __future__ import annotations

import pytest
import webtest
from wsgi_calls import call_wsgi

from microapp import App, HTTPError
from microapp.routing import Router, allow_header, compile_route


def handler(request, **params):
    return params


@pytest.mark.parametrize(("pattern", "path", "expected"), [
    ("/echo/<text>", "/echo/abc", {"text": "abc"}),
    ("/echo/<text>", "/echo/a/b", None),
    ("/items/<int:n>", "/items/42", {"n": 42}),
    ("/items/<int:n>", "/items/4x", None),
    ("/items/<int:n>", "/items/-1", None),
    ("/static/<path:p>", "/static/css/site.css", {"p": "css/site.css"}),
    ("/static/<path:p>", "/static/", None),
    ("/a.b/<x>", "/aXb/1", None),  # literal parts are literal, '.' included
    ("/<a>-<b>", "/left-right", {"a": "left", "b": "right"}),
])
def test_pattern_matches_paths_and_converts_values(pattern, path, expected):
    route = compile_route(pattern, ["GET"], handler)
    assert route.match_path(path) == expected


@pytest.mark.parametrize("pattern", [
    "no-slash", "/x/<float:f>", "/x/<a>/<a>", "/x/<a", "/x/<1a>",
])
def test_malformed_patterns_are_refused_at_registration(pattern):
    with pytest.raises(ValueError):
        compile_route(pattern, ["GET"], handler)


def test_static_routes_live_in_a_dict_and_dynamic_ones_are_compiled_when_added():
    router = Router()
    static = router.add("/plain", ["GET"], handler)
    dynamic = router.add("/echo/<text>", ["GET"], handler)
    assert static.regex is None
    assert dynamic.regex is not None
    assert router._static["/plain"] == [static]


def test_routing_the_same_method_twice_is_refused():
    router = Router()
    router.add("/x/<a>", ["GET"], handler)
    router.add("/x/<a>", ["POST"], handler)
    with pytest.raises(ValueError, match="already routed"):
        router.add("/x/<a>", ["get"], handler)


def test_unknown_path_is_404():
    with pytest.raises(HTTPError) as raised:
        Router().match("GET", "/nowhere")
    assert raised.value.status == 404


def test_wrong_method_is_405_with_allow_from_every_matching_route():
    router = Router()
    router.add("/files/<name>", ["GET"], handler)
    router.add("/files/<name>", ["POST", "PUT"], handler)
    with pytest.raises(HTTPError) as raised:
        router.match("DELETE", "/files/a")
    assert raised.value.status == 405
    assert raised.value.headers == [("Allow", "GET, HEAD, OPTIONS, POST, PUT")]


def test_head_falls_back_to_the_get_handler_unless_head_is_routed():
    router = Router()
    router.add("/a", ["GET"], handler)
    own_head = router.add("/b", ["GET", "HEAD"], lambda request: "head")
    assert router.match("HEAD", "/a").handler is handler
    assert router.match("HEAD", "/b").handler is own_head.handler


def test_static_route_wins_over_a_dynamic_one_registered_first():
    router = Router()
    router.add("/user/<name>", ["GET"], handler)
    special = lambda request: "me"  # noqa: E731
    router.add("/user/me", ["GET"], special)
    assert router.match("GET", "/user/me").handler is special


def test_options_without_handler_returns_allow():
    router = Router()
    router.add("/a", ["POST"], handler)
    found = router.match("OPTIONS", "/a")
    assert found.handler is None and found.allow == "OPTIONS, POST"


def test_allow_lists_head_with_get_and_always_options():
    assert allow_header(["GET"]) == "GET, HEAD, OPTIONS"
    assert allow_header(["PUT"]) == "OPTIONS, PUT"


# Through the App and WebTest.

@pytest.fixture
def routed():
    app = App()

    @app.get("/echo/<text>")
    def echo(request, text):
        return text

    @app.route("/items/<int:n>", methods=["GET", "DELETE"])
    def item(request, n):
        return {"n": n, "type": type(n).__name__}

    @app.post("/items")
    def create(request):
        return "made"

    return webtest.TestApp(app, lint=True)


def test_percent_encoded_utf8_path_reaches_the_handler_as_text(routed):
    response = routed.get("/echo/%E2%9C%93%20ok")
    assert response.text == "\u2713 ok"


def test_path_that_is_not_utf8_is_400(routed):
    assert routed.get("/echo/%FF", status=400).status_int == 400


def test_int_converter_hands_the_handler_an_int(routed):
    assert routed.get("/items/7").json == {"n": 7, "type": "int"}


def test_app_answers_405_with_allow_header(routed):
    response = routed.put("/items/7", status=405)
    assert response.headers["Allow"] == "DELETE, GET, HEAD, OPTIONS"


def test_app_answers_options_with_allow_and_no_body(routed):
    response = routed.options("/items", status=204)
    assert response.headers["Allow"] == "OPTIONS, POST"
    assert response.body == b""


def test_options_asterisk_lists_every_method_of_the_app(routed):
    # Validators insist PATH_INFO starts with "/", so this one goes in raw.
    answer = call_wsgi(routed.app, "OPTIONS", "*", validate=False)
    assert answer.code == 204
    assert answer.header("Allow") == "DELETE, GET, HEAD, OPTIONS, POST"


def test_head_gets_the_get_head_without_the_body(routed):
    head = routed.head("/echo/hello")
    get = routed.get("/echo/hello")
    assert head.body == b""
    assert head.headers["Content-Length"] == get.headers["Content-Length"] == "5"
