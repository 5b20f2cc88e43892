"""The option table: every setting has one option, each converter takes what
it should and says what it wanted otherwise, and every value prints back as
text its converter takes."""

from __future__ import annotations

import dataclasses

import pytest

from wsgiserver.config import ServerConfig
from wsgiserver.options import (
    BY_FIELD,
    BY_NAME,
    LIBRARY_ONLY,
    OPTIONS,
    Kind,
    convert_text,
    show_default,
    to_text,
)


def test_every_config_field_has_exactly_one_option():
    fields = {field.name for field in dataclasses.fields(ServerConfig)}
    assert set(BY_FIELD) == fields - LIBRARY_ONLY
    assert len(BY_FIELD) == len([option for option in OPTIONS if option.field])


def test_option_names_give_flags_and_variables():
    option = BY_NAME["max-body-bytes"]
    assert (option.flag, option.variable, option.dest) == (
        "--max-body-bytes", "WSGISERVER_MAX_BODY_BYTES", "max_body_bytes")


@pytest.mark.parametrize(
    ("name", "text", "value"),
    [
        ("threads", "16", 16),
        ("port", "0", 0),
        ("port", "65535", 65535),
        ("max-body-bytes", "0", 0),
        ("max-body-bytes", "10M", 10 * 1024 * 1024),  # sizes take K, M, G, T (binary)
        ("max-body-bytes", "64K", 64 * 1024),
        ("max-spool-bytes", "1G", 1 << 30),
        ("body-memory-bytes", "512KiB", 512 * 1024),
        ("response-buffer-bytes", "2mb", 2 << 20),
        ("keepalive-timeout", "2.5", 2.5),
        ("worker-timeout", "0", 0.0),
        ("worker-timeout", "30", 30.0),
        ("max-requests", "1000", 1000),
        ("unix-socket-mode", "660", 0o660),
        ("bind", "127.0.0.1:8000,unix:/run/app.sock", ("127.0.0.1:8000", "unix:/run/app.sock")),
        ("forwarded-allow-ips", "10.0.0.0/8, unix", ("10.0.0.0/8", "unix")),
        ("access-log-json", "TRUE", True),
        ("no-date-header", "off", False),
        ("client-certs", "optional", "optional"),
        ("log-level", "debug", "debug"),
        ("metrics-bind", "127.0.0.1:9100", "127.0.0.1:9100"),
        ("app", 'mod:create_app("prod")', 'mod:create_app("prod")'),
    ],
)
def test_text_converts(name, text, value):
    assert convert_text(BY_NAME[name], text) == value


@pytest.mark.parametrize(
    ("name", "text", "says"),
    [
        ("threads", "0", "must be at least 1, not '0'"),
        ("threads", "many", "not a whole number: 'many'"),
        ("max-requests", "-1", "must not be negative, not '-1'"),
        ("port", "-1", "must be a port number from 0 to 65535, not '-1'"),
        ("port", "65536", "must be a port number from 0 to 65535, not '65536'"),
        ("keepalive-timeout", "0", "must be a positive number of seconds"),
        ("keepalive-timeout", "inf", "not a number of seconds"),
        ("worker-timeout", "-5", "must be 0 (off) or a positive number of seconds"),
        ("worker-timeout", "nan", "not a number of seconds"),
        ("bind", "8000", "did you mean 127.0.0.1:8000?"),
        ("metrics-bind", "9100", "did you mean 127.0.0.1:9100?"),
        ("forwarded-allow-ips", "10.0.0.1/8", "is not an address"),
        ("access-log-json", "maybe", "expected true or false, not 'maybe'"),
        ("client-certs", "always", "expected none or optional or required, not 'always'"),
        ("unix-socket-mode", "rw", "not an octal mode"),
        ("access-log-format", "{nonsense}", "unknown field {nonsense}"),
        ("directory", "/no/such/dir", "not a directory"),
        ("certfile", "/no/such/file.pem", "no such file"),
        ("app", "myapp", "expected MODULE:APP"),
        ("host", "", "must not be empty"),
        ("max-body-bytes", "10X", "not a size such as 1048576, 64K, 10M or 1G"),
        ("max-body-bytes", "-1M", "must not be negative"),
        ("response-buffer-bytes", "0K", "must be at least 1"),
    ],
)
def test_bad_text_says_what_was_wanted(name, text, says):
    with pytest.raises(ValueError) as caught:
        convert_text(BY_NAME[name], text)
    assert says in str(caught.value)


@pytest.mark.parametrize("option", [option for option in OPTIONS if option.default is not None],
                         ids=lambda option: option.name)
def test_every_default_prints_as_text_its_converter_takes_back(option):
    if option.kind is Kind.LIST:
        assert option.default == ()
        return
    assert convert_text(option, to_text(option, option.default)) == option.default


@pytest.mark.parametrize("option", OPTIONS, ids=lambda option: option.name)
def test_every_option_shows_a_default(option):
    assert show_default(option)
