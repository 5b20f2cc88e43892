"""request.form, request.files and request.stream_parts(): urlencoded and
multipart bodies from WebTest, requests' encoder and hand-made bytes; limits,
spooling, and uploads closed when the request ends."""

from __future__ import annotations

import io
import os
import tempfile

import pytest
import requests
import webtest
from wsgi_calls import call_wsgi

from microapp import App, FormLimits, HTTPError, Request, Response
from microapp.forms import Fields


def echo_app(limits: FormLimits | None = None, seen: list | None = None) -> App:
    """POST /form answers what request.form and request.files hold, as JSON;
    every UploadedFile is appended to ``seen``."""
    app = App(form_limits=limits or FormLimits())

    @app.post("/form")
    def form(request: Request) -> dict:
        files = {}
        for name in request.files:
            for upload in request.files.get_all(name):
                if seen is not None:
                    seen.append(upload)
                files.setdefault(name, []).append({
                    "filename": upload.filename, "content_type": upload.content_type,
                    "size": upload.size, "content": upload.read().decode("latin-1"),
                    "in_memory": isinstance(upload.file, io.BytesIO)})
        return {"form": {name: request.form.get_all(name) for name in request.form},
                "files": files}

    return app


@pytest.fixture
def client() -> webtest.TestApp:
    return webtest.TestApp(echo_app(), lint=True)


def post_raw(client: webtest.TestApp, body: bytes, content_type: str, **kwargs):
    """POST bytes as they are (WebTest would re-encode a multipart body itself)."""
    return client.request("/form", method="POST", body=body, content_type=content_type,
                          **kwargs)


def test_webtest_upload_files_gives_fields_and_files(client):
    answer = client.post("/form", {"title": "notes", "tag": "a"},
                         upload_files=[("doc", "../../secret/a.txt", b"line 1\r\nline 2\r\n"),
                                       ("doc", "b.bin", b"\x00\xff", "application/x-thing")])
    assert answer.json["form"] == {"title": ["notes"], "tag": ["a"]}
    assert answer.json["files"]["doc"] == [
        {"filename": "a.txt", "content_type": "text/plain", "size": 16,
         "content": "line 1\r\nline 2\r\n", "in_memory": True},
        {"filename": "b.bin", "content_type": "application/x-thing", "size": 2,
         "content": "\x00\xff", "in_memory": True}]


def test_requests_multipart_encoder_round_trips():
    prepared = requests.Request(
        "POST", "http://localhost/form", data={"k": ["v1", "v2"], "\u00e9": "\u00fc"},
        files={"up": ("r\u00e9sum\u00e9.pdf", b"%PDF\r\n--\r\n", "application/pdf")}).prepare()
    answer = post_raw(webtest.TestApp(echo_app(), lint=True), prepared.body,
                      prepared.headers["Content-Type"])
    assert answer.json["form"] == {"k": ["v1", "v2"], "\u00e9": ["\u00fc"]}
    assert answer.json["files"]["up"][0]["filename"] == "r\u00e9sum\u00e9.pdf"
    assert answer.json["files"]["up"][0]["content"] == "%PDF\r\n--\r\n"


def test_urlencoded_form_keeps_every_value_and_blank_ones(client):
    body = b"a=1&a=2&name=%C3%A9t%C3%A9&plus=x+y&empty=&bad=%FF"
    answer = post_raw(client, body, "application/x-www-form-urlencoded")
    assert answer.json["form"] == {"a": ["1", "2"], "name": ["\u00e9t\u00e9"],
                                   "plus": ["x y"], "empty": [""], "bad": ["\ufffd"]}
    assert answer.json["files"] == {}


def test_other_bodies_have_no_form_and_stay_readable():
    app = App()

    @app.post("/")
    def both(request: Request) -> bytes:
        assert len(request.form) == 0 and len(request.files) == 0
        return request.body

    client = webtest.TestApp(app, lint=True)
    assert client.post("/", b'{"a": 1}', content_type="application/json").body == b'{"a": 1}'
    assert client.get("/", status=405)


def test_a_body_read_whole_first_is_parsed_from_memory():
    app = App()

    @app.post("/")
    def body_then_form(request: Request) -> dict:
        return {"length": len(request.body), "a": request.form["a"]}

    client = webtest.TestApp(app, lint=True)
    assert client.post("/", {"a": "x"}).json == {"length": 3, "a": "x"}


def test_reading_the_body_after_the_form_is_a_programming_error():
    app = App()

    @app.post("/")
    def form_then_body(request: Request) -> bytes:
        _ = request.form
        return request.body

    with pytest.raises(RuntimeError, match="already read by form"):
        call_wsgi(app, "POST", "/", body=b"a=1",
                  headers={"Content-Type": "application/x-www-form-urlencoded"})


def test_the_form_is_parsed_once():
    reads = []
    app = App()

    @app.post("/")
    def twice(request: Request) -> str:
        assert request.form is request.form and request.files is request.files
        return request.form["a"]

    class CountingInput(io.BytesIO):
        def read(self, size: int = -1) -> bytes:
            reads.append(size)
            return super().read(size)

    answer = call_wsgi(app, "POST", "/", validate=False, body=b"a=1",
                       headers={"Content-Type": "application/x-www-form-urlencoded"},
                       **{"wsgi.input": CountingInput(b"a=1")})
    assert answer.body == b"1"
    assert len(reads) == 1


def test_charset_comes_from_the_part_then_from_charset_field():
    body = (b'--B\r\nContent-Disposition: form-data; name="_charset_"\r\n\r\niso-8859-1\r\n'
            b'--B\r\nContent-Disposition: form-data; name="latin"\r\n\r\n\xe9\r\n'
            b'--B\r\nContent-Disposition: form-data; name="own"\r\n'
            b'Content-Type: text/plain; charset=utf-8\r\n\r\n\xc3\xa9\r\n'
            b'--B\r\nContent-Disposition: form-data; name="odd"\r\n'
            b'Content-Type: text/plain; charset=no-such-charset\r\n\r\n\xff\r\n--B--\r\n')
    answer = post_raw(webtest.TestApp(echo_app()), body, "multipart/form-data; boundary=B")
    assert answer.json["form"] == {"_charset_": ["iso-8859-1"], "latin": ["\u00e9"],
                                   "own": ["\u00e9"], "odd": ["\ufffd"]}


# Malformed bodies and limits through the App.

@pytest.mark.parametrize(("content_type", "body", "detail"), [
    ("multipart/form-data", b"--B--", "without a boundary parameter"),
    ("multipart/form-data; boundary=", b"----", "boundary is not valid"),
    ("multipart/form-data; boundary=B", b"", "has no boundary line"),
    ("multipart/form-data; boundary=B",
     b"--B\r\nContent-Disposition: form-data; name=a\r\n\r\nno end", "closing boundary"),
    ("multipart/form-data; boundary=B",
     b"--B\r\nContent-Disposition: form-data; name=a\r\nX\r\n\r\n\r\n--B--", "malformed part"),
])
def test_malformed_forms_are_400_with_the_reason(client, content_type, body, detail):
    answer = post_raw(client, body, content_type, status=400)
    assert detail in answer.text


def limited(**limits: int) -> webtest.TestApp:
    return webtest.TestApp(echo_app(FormLimits(**limits)), lint=True)


def test_per_part_limits_are_400_and_the_total_413_with_the_limit_named():
    files = [("f", "a", b"")] * 3
    assert "more than 2 parts" in limited(max_parts=2).post(
        "/form", upload_files=files, status=400).text
    assert "larger than 4 bytes" in limited(max_field_bytes=4).post(
        "/form", {"a": "12345"}, upload_files=files, status=400).text
    assert "larger than 100 bytes" in limited(max_total_bytes=100).post(
        "/form", upload_files=[("f", "a", b"x" * 101)], status=413).text
    assert "larger than 10 bytes" in limited(max_part_header_bytes=10).post(
        "/form", upload_files=files, status=400).text


def test_urlencoded_limits_are_400_per_field_and_413_in_total():
    assert "more than 2 fields" in post_raw(limited(max_parts=2), b"a=1&b=2&c=3",
                                            "application/x-www-form-urlencoded", status=400).text
    post_raw(limited(max_field_bytes=5), b"a=123", "application/x-www-form-urlencoded")
    # A urlencoded body is read whole, so its size is the form's: 413.
    post_raw(limited(max_field_bytes=5), b"a=1234", "application/x-www-form-urlencoded",
             status=413)


def test_an_announced_body_over_the_total_is_refused_before_reading():
    environ_input = None  # reading anything would fail
    answer = call_wsgi(echo_app(FormLimits(max_total_bytes=10)), "POST", "/form",
                       validate=False, body=b"x" * 11,
                       headers={"Content-Type": "multipart/form-data; boundary=B"},
                       **{"wsgi.input": environ_input})
    assert answer.code == 413


def test_a_chunked_multipart_body_is_read_to_its_end():
    body = b"--B\r\nContent-Disposition: form-data; name=a\r\n\r\nchunked\r\n--B--\r\n"
    answer = call_wsgi(echo_app(), "POST", "/form",
                       headers={"Content-Type": "multipart/form-data; boundary=B"},
                       **{"wsgi.input": io.BytesIO(body), "wsgi.input_terminated": True})
    assert answer.code == 200
    assert b'"chunked"' in answer.body


@pytest.mark.parametrize("name", ["max_parts", "memory_threshold"])
def test_form_limits_refuse_negative_values(name):
    with pytest.raises(ValueError, match=name):
        FormLimits(**{name: -1})


# Spooling and cleaning up.

def test_file_bytes_spill_to_disk_beyond_the_requests_memory_budget():
    client = limited(memory_threshold=10)
    files = client.post("/form", upload_files=[("f", "a", b"123456"), ("f", "b", b"123456"),
                                               ("f", "c", b"1234")]).json["files"]["f"]
    assert [upload["in_memory"] for upload in files] == [True, False, True]
    assert [upload["content"] for upload in files] == ["123456", "123456", "1234"]


def test_spooled_files_have_no_name_on_disk(monkeypatch, tmp_path):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    app = App(form_limits=FormLimits(memory_threshold=0))
    seen_on_disk = []

    @app.post("/")
    def look(request: Request) -> str:
        upload = request.files["f"]
        seen_on_disk.append(os.listdir(tmp_path))
        return upload.read().decode()

    client = webtest.TestApp(app, lint=True)
    assert client.post("/", upload_files=[("f", "a", b"on disk")]).text == "on disk"
    assert seen_on_disk == [[]]


def test_uploads_are_closed_when_the_request_ends():
    seen: list = []
    client = webtest.TestApp(echo_app(FormLimits(memory_threshold=3), seen), lint=True)
    client.post("/form", upload_files=[("f", "a", b"small"), ("f", "b", b"x")])
    assert len(seen) == 2 and all(upload.file.closed for upload in seen)


@pytest.mark.parametrize("raised", [HTTPError(422, "no"), RuntimeError("bug")])
def test_uploads_are_closed_when_the_handler_raises(raised):
    seen = []
    app = App(form_limits=FormLimits(memory_threshold=0))

    @app.post("/")
    def fail(request: Request) -> str:
        seen.append(request.files["f"])
        raise raised

    client = webtest.TestApp(app)
    if isinstance(raised, HTTPError):
        client.post("/", upload_files=[("f", "a", b"data")], status=422)
    else:
        with pytest.raises(RuntimeError):
            client.post("/", upload_files=[("f", "a", b"data")])
    assert seen[0].file.closed


def test_an_upload_sent_back_stays_open_until_the_response_is_closed():
    app = App(form_limits=FormLimits(memory_threshold=0))

    @app.post("/")
    def send_back(request: Request) -> Response:
        return Response(request.files["f"].file)

    body = b"--B\r\nContent-Disposition: form-data; name=f; filename=a\r\n\r\nback\r\n--B--"
    answer = call_wsgi(app, "POST", "/", body=body,
                       headers={"Content-Type": "multipart/form-data; boundary=B"})
    assert answer.body == b"back"  # read after the handler returned, before close()


def test_a_failed_parse_closes_the_files_already_spooled(monkeypatch):
    opened = []
    real = tempfile.TemporaryFile

    def recording(*args, **kwargs):
        opened.append(real(*args, **kwargs))
        return opened[-1]

    monkeypatch.setattr(tempfile, "TemporaryFile", recording)
    body = (b"--B\r\nContent-Disposition: form-data; name=f; filename=a\r\n\r\nfirst\r\n"
            b"--B\r\nContent-Disposition: form-data; name=g; filename=b\r\n\r\ncut off")
    answer = call_wsgi(echo_app(FormLimits(memory_threshold=0)), "POST", "/form", body=body,
                       headers={"Content-Type": "multipart/form-data; boundary=B"})
    assert answer.code == 400
    assert len(opened) == 2 and all(file.closed for file in opened)


# Streaming.

def streaming_app(record: list) -> App:
    app = App()

    @app.post("/")
    def stream(request: Request) -> str:
        for part in request.stream_parts():
            if part.name == "skip":
                continue  # never read: skipped for us
            chunks = list(part.chunks())
            record.append((part.name, part.filename, len(chunks), b"".join(chunks)))
        return "ok"

    return app


def test_stream_parts_delivers_content_as_it_arrives_and_skips_unread_parts():
    record: list = []
    big = os.urandom(300_000)
    prepared = requests.Request("POST", "http://localhost/", files=[
        ("skip", ("s", b"unread " * 1000)), ("big", ("big.bin", big)),
        ("note", (None, b"text"))]).prepare()
    answer = call_wsgi(streaming_app(record), "POST", "/", body=prepared.body,
                       headers={"Content-Type": prepared.headers["Content-Type"]})
    assert answer.body == b"ok"
    assert [(name, filename) for name, filename, _, _ in record] == [("big", "big.bin"),
                                                                      ("note", None)]
    assert record[0][2] > 1 and record[0][3] == big  # several chunks, all the bytes
    assert record[1][3] == b"text"


def test_stream_parts_of_another_media_type_is_415():
    answer = call_wsgi(streaming_app([]), "POST", "/", body=b"a=1",
                       headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert answer.code == 415


def test_a_parts_chunks_can_be_taken_once():
    app = App()

    @app.post("/")
    def twice(request: Request) -> str:
        part = next(request.stream_parts())
        part.read()
        part.read()
        return "unreachable"

    body = b"--B\r\nContent-Disposition: form-data; name=a\r\n\r\nx\r\n--B--"
    with pytest.raises(RuntimeError, match="already read"):
        call_wsgi(app, "POST", "/", body=body,
                  headers={"Content-Type": "multipart/form-data; boundary=B"})


def test_fields_give_the_first_value_and_every_value():
    fields = Fields([("a", "1"), ("b", "2"), ("a", "3")])
    assert fields["a"] == "1" and fields.get_all("a") == ["1", "3"]
    assert list(fields) == ["a", "b"] and len(fields) == 2
    assert fields.get_all("missing") == [] and fields.get("missing") is None
    assert "b" in fields and "c" not in fields
