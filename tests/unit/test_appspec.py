"""MODULE:APP specs: attributes, factory calls with literal arguments, and
the mistakes refused in one line (a factory without its call above all)."""

from __future__ import annotations

import pytest

from wsgiserver.appspec import AppSpec, AppSpecError, load_app, parse_spec

APPS = "tests.functional.cli_apps"


@pytest.mark.parametrize(
    ("text", "spec"),
    [
        ("mod:app", AppSpec("mod:app", "mod", "app")),
        ("pkg.mod:obj.wsgi", AppSpec("pkg.mod:obj.wsgi", "pkg.mod", "obj.wsgi")),
        ("mod:create_app()", AppSpec("mod:create_app()", "mod", "create_app", called=True)),
        ('mod:create_app("prod")',
         AppSpec('mod:create_app("prod")', "mod", "create_app", True, ("prod",))),
        ("mod:create_app(debug=True, n=3)",
         AppSpec("mod:create_app(debug=True, n=3)", "mod", "create_app", True, (),
                 (("debug", True), ("n", 3)))),
        ("mod:f(1, [2, None], {'a': -1.5})",
         AppSpec("mod:f(1, [2, None], {'a': -1.5})", "mod", "f", True,
                 (1, [2, None], {"a": -1.5}))),
        ("mod:factories.make('a:b')",
         AppSpec("mod:factories.make('a:b')", "mod", "factories.make", True, ("a:b",))),
    ],
)
def test_parse_spec_accepts_attributes_and_literal_factory_calls(text, spec):
    assert parse_spec(text) == spec


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("mod", "expected MODULE:APP"),
        (":app", "expected MODULE:APP"),
        ("mod:", "expected MODULE:APP"),
        ("my-mod:app", "not a module name: 'my-mod'"),
        ("mod:app.", "not an attribute name or factory call"),
        ("mod:1 + 2", "not an attribute name or factory call"),
        ("mod:lambda: 0", "not an attribute name or factory call"),
        ("mod:app[0]", "not an attribute name or factory call"),
        ("mod:make()()", "not a factory call"),
        ("mod:make(name)", "factory arguments must be literals"),
        ("mod:make(__import__('os').getcwd())", "factory arguments must be literals"),
        ("mod:make(*args)", "factory arguments must be literals"),
        ("mod:make(**options)", "** is not allowed"),
        ("mod:make(x=open('f'))", "factory arguments must be literals"),
    ],
)
def test_parse_spec_refuses_in_one_line(text, says):
    with pytest.raises(AppSpecError) as caught:
        parse_spec(text)
    assert says in str(caught.value)
    assert "\n" not in str(caught.value)


def test_factory_gets_its_literal_arguments():
    app = load_app(f'{APPS}:create_named("prod", suffix="!")')
    assert app({}, lambda status, headers: None) == [b"prod!"]


def test_factory_given_without_its_call_is_refused_with_the_call_to_write():
    with pytest.raises(AppSpecError) as caught:
        load_app(f"{APPS}:create_app")
    assert str(caught.value) == (
        f"{APPS}:create_app cannot take (environ, start_response); if it makes the "
        f"application, call it: '{APPS}:create_app()'")


def test_factory_that_returns_a_factory_is_refused():
    with pytest.raises(AppSpecError, match="returned a function that cannot take"):
        load_app(f"{APPS}:make_factory()")


@pytest.mark.parametrize("text", [f"{APPS}:pid_app", f"{APPS}:ClassApp", "examples.hello:app"])
def test_wsgi_callables_are_accepted(text):
    assert callable(load_app(text))


def test_failing_factory_is_one_line():
    with pytest.raises(AppSpecError, match=r"broken_factory\(\) failed: RuntimeError"):
        load_app(f"{APPS}:broken_factory()")
