"""ServerConfig: the settings for the core (max_requests, worker_timeout,
metrics_bind), and errors that carry the field names."""

from __future__ import annotations

import pytest

from wsgiserver.config import ServerConfig, SettingError


def test_worker_settings_are_off_by_default():
    config = ServerConfig()
    assert (config.max_requests, config.max_requests_jitter, config.worker_timeout,
            config.metrics_bind) == (0, 0, 0.0, None)


def test_worker_settings_are_kept():
    config = ServerConfig(workers=2, max_requests=1000, max_requests_jitter=50,
                          worker_timeout=30.0, metrics_bind="127.0.0.1:9100")
    assert (config.max_requests, config.max_requests_jitter, config.worker_timeout,
            config.metrics_bind) == (1000, 50, 30.0, "127.0.0.1:9100")


@pytest.mark.parametrize(
    ("settings", "name", "needs"),
    [
        ({"max_requests": -1}, "max_requests", None),
        ({"max_requests": 10, "max_requests_jitter": -1}, "max_requests_jitter", None),
        ({"worker_timeout": -1.0}, "worker_timeout", None),
        ({"worker_timeout": float("nan")}, "worker_timeout", None),
        ({"worker_timeout": float("inf")}, "worker_timeout", None),
        ({"threads": 0}, "threads", None),
        ({"max_requests_jitter": 5}, "max_requests_jitter", "max_requests"),
        ({"keyfile": "/k.pem"}, "keyfile", "certfile"),
        ({"ca_certs": "/ca.pem"}, "ca_certs", "certfile"),
        ({"client_certs": "required"}, "client_certs", "ca_certs"),
    ],
)
def test_bad_settings_name_their_field_and_what_they_need(settings, name, needs):
    with pytest.raises(SettingError) as caught:
        ServerConfig(**settings)
    assert (caught.value.name, caught.value.needs) == (name, needs)
    assert isinstance(caught.value, ValueError)  # what library callers caught before


def test_the_body_limit_is_100_mib_unless_the_app_or_the_settings_say_otherwise():
    from wsgiserver.config import DEFAULT_MAX_BODY_BYTES, ServerConfig

    class Declares:
        max_request_body_bytes = 1 << 30

    assert DEFAULT_MAX_BODY_BYTES == 100 * 1024 * 1024
    assert ServerConfig().body_limit_for(object()) == DEFAULT_MAX_BODY_BYTES
    assert ServerConfig().body_limit_for(Declares()) == 1 << 30
    assert ServerConfig(max_body_bytes=10).body_limit_for(Declares()) == 10  # settings win


def test_the_bundled_app_asks_for_its_upload_limit():
    from microapp import create_app
    from wsgiserver.config import ServerConfig

    assert ServerConfig().body_limit_for(create_app(max_upload_bytes=5 << 30)) == 5 << 30
