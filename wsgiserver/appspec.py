"""``MODULE:APP``: naming the application, and loading it.

Owns the spec's syntax (a dotted attribute, or a factory called with
literal arguments, read with ``ast`` and never evaluated), importing the
module, calling the factory and refusing what cannot be a WSGI application,
such as a factory named without its call. Knows nothing of options, where
the spec came from, or the server.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import os
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

__all__ = ["AppSpec", "AppSpecError", "parse_spec", "load_app", "load_hook"]

_MODULE = re.compile(r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*")
# What literal arguments may be: ast.literal_eval's own list, no names, no calls.
_ARGUMENTS_HINT = "strings, numbers, True, False, None, or lists, tuples and dicts of them"


class AppSpecError(ValueError):
    """A spec that names no usable application; the message is one line.
    ``details``: where the application's own code failed (a traceback of its
    frames only), when it raised while being imported or built."""

    def __init__(self, message: str, details: str = "") -> None:
        super().__init__(message)
        self.details = details


def _users_traceback(error: BaseException) -> str:
    """The traceback of ``error`` without the frames of importlib and of this
    package: the failing line may be three imports deep in the user's code."""
    import traceback

    skipped = (os.path.dirname(os.path.abspath(__file__)), os.path.dirname(importlib.__file__),
               "<frozen importlib")
    frames = [frame for frame in traceback.extract_tb(error.__traceback__)
              if not frame.filename.startswith(skipped)]
    if not frames:
        return ""
    return ("Traceback (most recent call last):\n" + "".join(traceback.format_list(frames))
            + "".join(traceback.format_exception_only(type(error), error))).rstrip("\n")


@dataclass(frozen=True)
class AppSpec:
    """``module:attribute``, or ``module:factory(*args, **kwargs)`` when ``called``."""

    text: str
    module: str
    attribute: str  # dotted
    called: bool = False
    args: tuple[Any, ...] = ()
    kwargs: tuple[tuple[str, Any], ...] = ()


def parse_spec(text: str) -> AppSpec:
    """The parts of ``text``; AppSpecError if it is not a spec."""
    module, colon, target = text.partition(":")
    if not colon or not module or not target:
        raise AppSpecError(f"expected MODULE:APP, got {text!r}")
    if not _MODULE.fullmatch(module):
        raise AppSpecError(f"not a module name: {module!r} (in {text!r})")
    try:
        node = ast.parse(target.strip(), mode="eval").body
    except SyntaxError:
        raise AppSpecError(f"not an attribute name or factory call: {target!r}") from None
    if isinstance(node, ast.Call):
        return _factory_call(text, module, node)
    attribute = _dotted(node)
    if attribute is None:
        raise AppSpecError(f"not an attribute name or factory call: {target!r}")
    return AppSpec(text, module, attribute)


def _factory_call(text: str, module: str, call: ast.Call) -> AppSpec:
    """``factory(literal, key=literal)``: anything but literals is refused."""
    factory = _dotted(call.func)
    if factory is None:
        raise AppSpecError(f"not a factory call: {ast.unparse(call)!r}: call a dotted name, "
                           f"as module:create_app()")
    if any(keyword.arg is None for keyword in call.keywords):
        raise AppSpecError(f"{ast.unparse(call)}: ** is not allowed; name each argument")
    args = tuple(_literal(argument) for argument in call.args)
    kwargs = tuple((str(keyword.arg), _literal(keyword.value)) for keyword in call.keywords)
    return AppSpec(text, module, factory, called=True, args=args, kwargs=kwargs)


def _literal(node: ast.expr) -> Any:
    try:
        return ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        raise AppSpecError(f"factory arguments must be literals ({_ARGUMENTS_HINT}), "
                           f"not {ast.unparse(node)!r}") from None


def _dotted(node: ast.expr) -> str | None:
    """``a.b.c`` for a chain of names, None for anything else."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        owner = _dotted(node.value)
        return None if owner is None else f"{owner}.{node.attr}"
    return None


def load_app(text: str) -> Callable[..., Any]:
    """The application ``text`` names, imported (and built, for a factory call)."""
    spec = parse_spec(text)
    if "" not in sys.path and os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    obj = _attribute(_import(spec.module), spec)
    if spec.called:
        try:
            obj = obj(*spec.args, **dict(spec.kwargs))
        except Exception as error:
            target = text.partition(":")[2]
            raise AppSpecError(f"{target} failed: {type(error).__name__}: {error}",
                               _users_traceback(error)) from None
    if not callable(obj):
        raise AppSpecError(f"{text} is not callable (it is a {type(obj).__name__})")
    _refuse_uncalled_factory(obj, spec)
    return cast(Callable[..., Any], obj)


def load_hook(text: str) -> Callable[[], Any]:
    """A function ``module:name`` that takes no arguments (a worker hook),
    imported; AppSpecError with the user's traceback when it fails."""
    spec = parse_spec(text)
    if spec.called:
        raise AppSpecError(f"{text}: name the function, without a call")
    if "" not in sys.path and os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    obj = _attribute(_import(spec.module), spec)
    if not callable(obj):
        raise AppSpecError(f"{text} is not callable (it is a {type(obj).__name__})")
    return cast(Callable[[], Any], obj)


def _import(module: str) -> Any:
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as error:
        if error.name and module.startswith(error.name):
            raise AppSpecError(f"no module named {module!r}") from None
        raise AppSpecError(f"importing {module!r} failed: {error}",
                           _users_traceback(error)) from None
    except Exception as error:
        raise AppSpecError(f"importing {module!r} failed: "
                           f"{type(error).__name__}: {error}", _users_traceback(error)) from None


def _attribute(obj: Any, spec: AppSpec) -> Any:
    for part in spec.attribute.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise AppSpecError(f"module {spec.module!r} has no attribute "
                               f"{spec.attribute!r}") from None
    return obj


def _refuse_uncalled_factory(obj: Any, spec: AppSpec) -> None:
    """A function that cannot take (environ, start_response) is no WSGI app.

    Without this, ``module:create_app`` (the factory, not its result)
    starts, and every request is a 500. Only functions and methods are
    judged: a class or an object with ``__call__`` may take anything.
    """
    if not (inspect.isfunction(obj) or inspect.ismethod(obj)):
        return
    try:
        inspect.signature(obj).bind(None, None)
    except TypeError:
        pass
    else:
        return
    if spec.called:
        raise AppSpecError(f"{spec.text} returned a function that cannot take "
                           f"(environ, start_response): not a WSGI application")
    raise AppSpecError(f"{spec.text} cannot take (environ, start_response); if it makes the "
                       f"application, call it: '{spec.text}()'")
