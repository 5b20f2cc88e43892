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


@pytest.mark.parametrize(
    ("settings", "idle"),
    [
        ({"keyfile": "/k.pem"}, [("keyfile", "certfile")]),
        ({"ca_certs": "/ca.pem", "client_certs": "optional"}, [("ca_certs", "certfile")]),
        ({"http2": True}, [("http2", "certfile")]),
        ({"h2c_upgrade": True}, [("h2c_upgrade", "forwarded_allow_ips")]),
        ({"http2_max_concurrent_streams": 10}, [("http2_max_concurrent_streams", "http2")]),
        ({"max_requests_jitter": 5}, [("max_requests_jitter", "max_requests")]),
        ({"unix_socket_mode": 0o660, "binds": ("127.0.0.1:8000",)},
         [("unix_socket_mode", "binds")]),
        ({"access_log_json": True}, [("access_log_json", "access_log")]),
        ({"access_log_format": "{status}"}, [("access_log_format", "access_log")]),
        # In effect: nothing to say.
        ({"unix_socket_mode": 0o660, "binds": ("unix:/run/a.sock",)}, []),
        ({"h2c_upgrade": True, "http2_max_concurrent_streams": 10,
          "forwarded_allow_ips": ("127.0.0.1",)}, []),
        ({"max_requests": 100, "max_requests_jitter": 5}, []),
        ({"access_log": "-", "access_log_json": True}, []),
    ],
)
def test_settings_without_effect_are_named_with_what_they_need(settings, idle):
    assert ServerConfig(**settings).without_effect() == idle
