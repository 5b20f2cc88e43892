"""A minimal Django project for tests/functional/test_static.py: the admin,
with DEBUG off (Django then serves no static files itself), its static
files collected into $STATIC_ROOT."""

from __future__ import annotations

import os

SECRET_KEY = "test-only-not-secret"
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
]
MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]
ROOT_URLCONF = "tests.functional.django_site"
TEMPLATES = [{
    "BACKEND": "django.template.backends.django.DjangoTemplates",
    "APP_DIRS": True,
    "OPTIONS": {"context_processors": [
        "django.template.context_processors.request",
        "django.contrib.auth.context_processors.auth",
        "django.contrib.messages.context_processors.messages",
    ]},
}]
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}}
STATIC_URL = "/static/"
STATIC_ROOT = os.environ.get("STATIC_ROOT", "/nonexistent")
USE_TZ = True


def _urls() -> list:
    from django.contrib import admin
    from django.urls import path

    return [path("admin/", admin.site.urls)]


def __getattr__(name: str):  # urlpatterns once Django is set up, not at settings import
    if name == "urlpatterns":
        return _urls()
    raise AttributeError(name)


_application = None


def application(environ, start_response):
    """The project's WSGI application, made on first use."""
    global _application
    if _application is None:
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.functional.django_site")
        from django.core.wsgi import get_wsgi_application

        _application = get_wsgi_application()
    return _application(environ, start_response)
