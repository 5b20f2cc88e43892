"""Settings from the environment, TOML files and PasteDeploy: converted like
the command line's, each mistake one line naming its source, precedence
command line > environment > file > default."""

from __future__ import annotations

import pytest

from wsgiserver.settings import (
    COMMAND_LINE,
    DEFAULT,
    Setting,
    SettingsError,
    from_environment,
    from_file,
    from_paste,
    from_pyproject,
    render,
    resolve,
    server_config,
    without_effect,
)


def error_of(call, *args) -> str:
    with pytest.raises(SettingsError) as caught:
        call(*args)
    message = str(caught.value)
    assert "\n" not in message
    return message


def write(path, text: str) -> str:
    path.write_text(text)
    return str(path)


# -- the environment ---------------------------------------------------------


def test_variables_are_converted_and_named_as_their_source():
    layer = from_environment({"WSGISERVER_THREADS": "16", "WSGISERVER_ACCESS_LOG_JSON": "yes",
                              "WSGISERVER_BIND": "127.0.0.1:8000,unix:/run/a.sock",
                              "WSGISERVER_APP": "mod:app", "HOME": "/root"})
    assert layer == {
        "threads": Setting(16, "WSGISERVER_THREADS"),
        "access-log-json": Setting(True, "WSGISERVER_ACCESS_LOG_JSON"),
        "bind": Setting(("127.0.0.1:8000", "unix:/run/a.sock"), "WSGISERVER_BIND"),
        "app": Setting("mod:app", "WSGISERVER_APP"),
    }


def test_empty_variables_and_the_reloaders_mark_are_not_settings():
    assert from_environment({"WSGISERVER_THREADS": "", "WSGISERVER_RELOADER_CHILD": "1"}) == {}


def test_bad_variable_value_is_one_line_naming_the_variable():
    assert error_of(from_environment, {"WSGISERVER_THREADS": "0"}) == \
        "WSGISERVER_THREADS: must be at least 1, not '0'"


def test_the_builds_switch_left_exported_is_not_a_setting():
    # WSGISERVER_COMPILE=1 pip install . : the shell may still have it.
    assert from_environment({"WSGISERVER_COMPILE": "1", "WSGISERVER_THREADS": "3"}) == \
        from_environment({"WSGISERVER_THREADS": "3"})


def test_unknown_variable_suggests_the_right_one():
    assert error_of(from_environment, {"WSGISERVER_THREAD": "4"}) == \
        "WSGISERVER_THREAD: unknown variable (did you mean 'WSGISERVER_THREADS'?)"


# -- files -------------------------------------------------------------------


def test_toml_file_values_go_through_the_same_converters(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = write(tmp_path / "wsgiserver.toml", """
app = 'mod:create_app("prod")'
threads = 16
keepalive-timeout = 5
access-log-json = true
bind = ["127.0.0.1:8000", "unix:/run/app.sock"]
forwarded-allow-ips = "127.0.0.1,unix"
unix-socket-mode = 660
""")
    layer = from_file(path)
    assert {name: setting.value for name, setting in layer.items()} == {
        "app": 'mod:create_app("prod")', "threads": 16, "keepalive-timeout": 5.0,
        "access-log-json": True, "bind": ("127.0.0.1:8000", "unix:/run/app.sock"),
        "forwarded-allow-ips": ("127.0.0.1", "unix"), "unix-socket-mode": 0o660}
    assert {setting.source for setting in layer.values()} == {"wsgiserver.toml"}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("thread = 4", "wsgiserver.toml: unknown key 'thread' (did you mean 'threads'?)"),
        ("max_body_bytes = 10", "wsgiserver.toml: unknown key 'max_body_bytes': keys are the "
                                "option names, with dashes: 'max-body-bytes'"),
        ("threads = 0", "wsgiserver.toml: threads: must be at least 1, not '0'"),
        ("threads = 2.5", "wsgiserver.toml: threads: not a whole number: '2.5'"),
        ("threads = true", "wsgiserver.toml: threads: expected a string or a number, not true"),
        ("reload = 'perhaps'", "wsgiserver.toml: reload: expected true or false, not 'perhaps'"),
        ("bind = [8000]", "wsgiserver.toml: bind: bind '8000': expected HOST:PORT, [IPv6]:PORT, "
                          "unix:PATH or fd://N; did you mean 127.0.0.1:8000? (0.0.0.0:8000 "
                          "listens on every interface)"),
        ("threads = [1]", "wsgiserver.toml: threads: expected a string, a number or "
                          "true/false, not a list"),
        ("config = 'other.toml'", "wsgiserver.toml: config cannot be set here (only command "
                                  "line, environment)"),
        ("threads = ", "wsgiserver.toml: not valid TOML: "),
    ],
)
def test_file_mistakes_are_one_line_naming_the_file(tmp_path, monkeypatch, text, message):
    monkeypatch.chdir(tmp_path)
    path = write(tmp_path / "wsgiserver.toml", text + "\n")
    assert error_of(from_file, path).startswith(message)


def test_pyproject_table_is_read_and_named(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write(tmp_path / "pyproject.toml", "[project]\nname = 'x'\n\n[tool.wsgiserver]\nthreads = 3\n")
    assert from_pyproject(str(tmp_path)) == {
        "threads": Setting(3, "pyproject.toml [tool.wsgiserver]")}
    write(tmp_path / "pyproject.toml", "[tool.wsgiserver]\nthread = 3\n")
    assert error_of(from_pyproject, str(tmp_path)) == \
        "pyproject.toml [tool.wsgiserver]: unknown key 'thread' (did you mean 'threads'?)"


def test_pyproject_without_the_table_or_at_all_gives_nothing(tmp_path):
    assert from_pyproject(str(tmp_path)) == {}
    write(tmp_path / "pyproject.toml", "[tool.other]\nthreads = 3\n")
    assert from_pyproject(str(tmp_path)) == {}


# -- PasteDeploy -------------------------------------------------------------


def test_paste_values_are_text_through_the_same_converters():
    layer = from_paste({"host": "127.0.0.1", "port": "6543", "threads": "8",
                        "no-server-header": "true"}, "development.ini")
    assert {name: setting.value for name, setting in layer.items()} == {
        "host": "127.0.0.1", "port": 6543, "threads": 8, "no-server-header": True}


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"threds": "8"}, "development.ini: unknown key 'threds' (did you mean 'threads'?)"),
        ({"port": "-1"}, "development.ini: port: must be a port number from 0 to 65535, "
                         "not '-1'"),
        ({"app": "mod:app"}, "development.ini: app cannot be set here"),
    ],
)
def test_paste_mistakes_name_the_ini_file(values, message):
    assert error_of(from_paste, values, "development.ini").startswith(message)


# -- precedence, the config, print-config ---------------------------------------


def test_command_line_beats_environment_beats_file_beats_default():
    command_line = {"threads": Setting(2, COMMAND_LINE)}
    environment = {"threads": Setting(3, "WSGISERVER_THREADS"),
                   "workers": Setting(4, "WSGISERVER_WORKERS")}
    file = {"threads": Setting(5, "f.toml"), "workers": Setting(6, "f.toml"),
            "backlog": Setting(7, "f.toml")}
    settings = resolve(command_line, environment, file)
    assert settings["threads"] == Setting(2, COMMAND_LINE)
    assert settings["workers"] == Setting(4, "WSGISERVER_WORKERS")
    assert settings["backlog"] == Setting(7, "f.toml")
    assert settings["port"] == Setting(4221, DEFAULT)


def test_a_list_from_a_stronger_source_replaces_the_weaker_one():
    settings = resolve({"bind": Setting(("unix:/a",), COMMAND_LINE)},
                       {"bind": Setting(("127.0.0.1:1", "127.0.0.1:2"), "WSGISERVER_BIND")})
    assert server_config(settings).binds == ("unix:/a",)


def test_server_config_takes_every_setting():
    settings = resolve(from_paste({"threads": "3", "no-date-header": "yes",
                                   "max-requests": "100", "max-requests-jitter": "10",
                                   "worker-timeout": "30", "metrics-bind": "127.0.0.1:9100"},
                                  "x.ini"))
    config = server_config(settings)
    assert (config.threads, config.send_date_header, config.send_server_header) == (3, False, True)
    assert (config.max_requests, config.max_requests_jitter, config.worker_timeout,
            config.metrics_bind) == (100, 10, 30.0, "127.0.0.1:9100")


@pytest.mark.parametrize(
    ("layer", "message"),
    [
        ({"client-certs": Setting("required", COMMAND_LINE)}, "--client-certs needs --ca-certs"),
        ({"client-certs": Setting("required", "w.toml")},
         "w.toml: --client-certs needs --ca-certs"),
    ],
)
def test_a_setting_that_needs_another_names_the_options(layer, message):
    assert error_of(server_config, resolve(layer)) == message


@pytest.mark.parametrize(
    ("layer", "lines"),
    [
        ({"keyfile": Setting("/k.pem", COMMAND_LINE)}, ["--keyfile has no effect without --certfile"]),
        ({"keyfile": Setting("/k.pem", "WSGISERVER_KEYFILE")},
         ["WSGISERVER_KEYFILE: --keyfile has no effect without --certfile"]),
        ({"max-requests-jitter": Setting(5, "w.toml")},
         ["w.toml: --max-requests-jitter has no effect without --max-requests"]),
        ({"unix-socket-mode": Setting(0o600, COMMAND_LINE)},
         ["--unix-socket-mode has no effect without a unix: --bind"]),
        ({"worker-import": Setting(True, "w.toml")},
         ["w.toml: --worker-import has no effect without worker processes (--workers 2 or "
          "more, --max-requests, --worker-timeout)"]),
        ({"worker-import": Setting(True, COMMAND_LINE), "workers": Setting(2, COMMAND_LINE)}, []),
        ({"threads": Setting(3, COMMAND_LINE)}, []),
    ],
)
def test_a_setting_without_effect_is_a_line_naming_what_it_needs(layer, lines):
    settings = resolve(layer)
    assert without_effect(server_config(settings), settings) == lines


def test_render_says_where_each_value_came_from_and_reads_back(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    settings = resolve(
        {"threads": Setting(2, COMMAND_LINE), "unix-socket-mode": Setting(0o640, COMMAND_LINE)},
        {"bind": Setting(("127.0.0.1:8000", "unix:/run/a b.sock"), "WSGISERVER_BIND")},
        {"access-log-format": Setting('{status} "{header:User-Agent}"', "w.toml")})
    text = render(settings)
    lines = {line.split(" ")[0]: line for line in text.splitlines()}
    assert lines["threads"].endswith("# command line")
    assert lines["bind"].endswith("# WSGISERVER_BIND")
    assert lines["access-log-format"].endswith("# w.toml")
    assert lines["port"].endswith("# default")
    assert "# spool-dir is not set" in text
    again = resolve(from_file(write(tmp_path / "printed.toml", text)))
    assert server_config(again) == server_config(settings)


def test_max_requests_or_worker_timeout_run_even_one_worker_supervised():
    from wsgiserver.runner import supervised

    one = server_config(resolve({}))
    assert not supervised(one)
    assert supervised(one.replace(max_requests=10))
    assert supervised(one.replace(worker_timeout=5.0))
    assert supervised(one.replace(workers=2))
