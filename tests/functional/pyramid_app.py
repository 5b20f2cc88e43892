"""A small Pyramid application, built by PasteDeploy from an ini file."""

from pyramid.config import Configurator
from pyramid.response import Response


def hello(request):
    return Response(f"Hello from Pyramid, {request.registry.settings['greeting']}")


def main(global_config, **settings):
    """The PasteDeploy app factory: ``use = call:tests.functional.pyramid_app:main``."""
    with Configurator(settings=settings) as config:
        config.add_route("hello", "/")
        config.add_view(hello, route_name="hello")
        return config.make_wsgi_app()
