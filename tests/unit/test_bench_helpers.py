"""The benchmark harness's pure helpers (bench/): parsing, aggregation, tables, chart data.

No server, no network, no peers and no matplotlib needed: what bench/run.py
computes from results, and what bench/slow.py makes of bytes.
"""

from __future__ import annotations

import io
import json

import pytest

from bench import apps, slow
from bench import h2 as bench_h2
from bench import run as bench_run
from bench.run import Result

# ---------------------------------------------------------------- bench/slow.py


def test_parse_head_waits_for_the_whole_head():
    assert slow.parse_head(b"HTTP/1.1 200 OK\r\nContent-Length: 13\r\n") is None
    head = b"HTTP/1.1 200 OK\r\nContent-Length: 13\r\n\r\nHello"
    assert slow.parse_head(head) == (200, 13, len(head) - 5)


def test_parse_head_without_length_and_with_another_status():
    assert slow.parse_head(b"HTTP/1.0 408 Request Timeout\r\n\r\n") == (408, None, 32)


def test_parse_head_refuses_what_is_not_http():
    with pytest.raises(ValueError):
        slow.parse_head(b"SSH-2.0-OpenSSH\r\n\r\n")


def test_each_kind_frames_its_request():
    up = slow.request_head("up", "127.0.0.1", 80)
    assert up.startswith(b"POST /upload ") and b"Content-Length: 1048576\r\n" in up
    assert b"Transfer-Encoding: chunked\r\n" in slow.request_head("chunk", "127.0.0.1", 80)
    assert slow.request_head("read", "127.0.0.1", 80).startswith(b"GET /16mib ")


def test_upload_pieces_are_1_kib_and_stop_at_the_length():
    assert slow.next_piece("up", 0) == b"a" * 1024
    assert slow.next_piece("up", slow.UPLOAD_BYTES - 100) == b"a" * 100
    assert slow.next_piece("up", slow.UPLOAD_BYTES) == b""


def test_chunk_pieces_are_100_byte_chunks_never_the_last():
    assert slow.next_piece("chunk", 10**9) == b"64\r\n" + b"a" * 100 + b"\r\n"


def test_summarize_counts_answered_and_takes_median_and_max():
    out = slow.summarize([0.003, 0.001, 0.002, 0.010], {"timeout": 16}, 20)
    assert out["answered"] == 4 and out["count"] == 20
    assert out["p50_ms"] == pytest.approx(2.5)
    assert out["max_ms"] == pytest.approx(10.0)
    assert out["errors"] == {"timeout": 16}


def test_summarize_with_nothing_answered():
    out = slow.summarize([], {"timeout": 20}, 20)
    assert (out["answered"], out["p50_ms"], out["max_ms"]) == (0, None, None)


# ---------------------------------------------------------------- bench/apps.py


def call(app, environ: dict) -> tuple[str, bytes]:
    got = {}

    def start_response(status, headers):
        got["status"] = status

    body = b"".join(app(environ, start_response))
    return got["status"], body


def test_sixteen_mib_holds_one_mib_only():
    parts = apps.sixteen_mib({}, lambda status, headers: None)
    assert len(parts) == 16 and all(p is apps.ONE_MIB for p in parts)


def test_upload_reads_a_chunked_body_to_its_end():
    environ = {"PATH_INFO": "/upload", "HTTP_TRANSFER_ENCODING": "chunked",
               "wsgi.input": io.BytesIO(b"a" * 150_000)}
    assert call(apps.app, environ) == ("200 OK", b"150000")


def test_upload_with_content_length_reads_that_much():
    environ = {"PATH_INFO": "/upload", "CONTENT_LENGTH": "1000",
               "wsgi.input": io.BytesIO(b"a" * 1000)}
    assert call(apps.app, environ) == ("200 OK", b"1000")


# ---------------------------------------------------------------- bench/run.py


def slow_row(server: str, answered: int, max_ms: float | None, **kw) -> Result:
    return Result(server, "slowup", probes=20, answered=answered, max_ms=max_ms,
                  p50_ms=max_ms, **kw)


def test_scenario_groups_expand_in_order_without_repeats():
    args = bench_run.parse_args(["--scenarios", "hello,slow,slowup"])
    assert args.scenarios == ["hello", "slowup", "slowchunk", "slowread"]


def test_slow_scenarios_run_the_three_servers_unless_named():
    args = bench_run.parse_args(["--scenarios", "slowread,flask"])
    steps = {sc.name: [s.name for s in chosen] for sc, chosen in bench_run.plan(args)}
    assert steps["slowread"] == ["wsgiserver", "waitress", "gthread"]
    assert "granian" in steps["flask"]
    named = bench_run.parse_args(["--scenarios", "slowread", "--servers", "granian"])
    assert [s.name for s in bench_run.plan(named)[0][1]] == ["granian"]


def test_combine_takes_medians_and_sums_the_reasons():
    runs = [slow_row("waitress", 20, 5.0, unanswered={}),
            slow_row("waitress", 18, 7.0, unanswered={"timeout": 2}, slow_errors=1,
                     slow_detail={"closed": 1}),
            slow_row("waitress", 19, 6.0, unanswered={"timeout": 1})]
    out = bench_run.combine(runs)
    assert (out.answered, out.max_ms, out.probes) == (19, 6.0, 20)
    assert out.unanswered == {"timeout": 3}
    assert (out.slow_errors, out.slow_detail) == (1, {"closed": 1})


def test_slow_rows_get_their_own_table():
    rows = [Result("wsgiserver", "hello", rps=10_000.0),
            slow_row("wsgiserver", 0, None, unanswered={"timeout": 20}),
            slow_row("waitress", 20, 6.5, slow_errors=2, slow_detail={"reset": 2})]
    main = bench_run.table(rows, markdown=False)
    assert "hello" in main and "slowup" not in main
    text = bench_run.slow_table(rows, markdown=True)
    assert "| slowup | wsgiserver | 0/20 | - | - | 20 timeout |" in text
    assert "| slowup | waitress | 20/20 | 6.5 | 6.5 | - | 2 (2 reset) |" in text


def test_ratio_is_wsgiserver_over_the_peer():
    rows = [Result("wsgiserver", "hello", rps=9000.0), Result("waitress", "hello", rps=6000.0),
            Result("gthread", "hello", failed=True)]
    assert [bench_run.ratio(rows, r) for r in rows] == ["-", "1.50x", "n/a"]


def test_chart_panels_label_peers_with_the_ratio_and_slow_rows_with_answered():
    rows = [Result("wsgiserver", "hello", rps=12_345.0), Result("waitress", "hello", rps=6000.0),
            Result("gthread", "hello", rps=3000.0),
            slow_row("wsgiserver", 0, None), slow_row("waitress", 20, 6.4),
            Result("gthread", "slowup", failed=True)]
    hello, slowup = bench_run.chart_panels(rows)
    assert not hello["slow"] and hello["ylabel"] == "req/s"
    assert [b["label"] for b in hello["bars"]] == ["12.3k", "6.0k\n2.06x", "3.0k\n4.12x"]
    assert slowup["slow"] and slowup["ymax"] == 20
    assert [(b["value"], b["label"]) for b in slowup["bars"]] == [
        (0, "0/20"), (20, "20/20\nmax 6 ms"), (0, "FAILED")]


def test_a_result_survives_its_json_form_and_unknown_fields_are_dropped():
    row = slow_row("waitress", 20, 6.4, unanswered={"timeout": 0}, notes=["x"])
    data = json.loads(json.dumps({**vars(row), "from_a_later_version": 1}))
    assert bench_run.result_from(data) == row


# ---------------------------------------------------------------- bench/h2.py

H2LOAD_SUMMARY = """
finished in 3.00s, 5382.33 req/s, 187.71KB/s
requests: 16147 total, 16247 started, 16147 done, 16140 succeeded, 5 failed, 2 errored, 0 timeout
status codes: 16140 2xx, 0 3xx, 0 4xx, 0 5xx
"""


def test_h2load_summary_gives_rate_bytes_and_failures():
    parsed = bench_h2.parse_h2load(H2LOAD_SUMMARY)
    assert parsed["seconds"] == 3.0
    assert parsed["rps"] == 5382.33
    assert parsed["mibps"] == pytest.approx(187.71 / 1024)
    assert parsed["succeeded"] == 16140
    assert parsed["failed"] == 7  # failed and errored alike


def test_h2load_time_in_milliseconds_and_megabytes():
    parsed = bench_h2.parse_h2load(H2LOAD_SUMMARY.replace("3.00s", "612.5ms")
                                   .replace("187.71KB/s", "26.10MB/s"))
    assert parsed["seconds"] == pytest.approx(0.6125)
    assert parsed["mibps"] == 26.10


def test_h2load_without_a_summary_is_an_error_quoting_it():
    with pytest.raises(RuntimeError, match="connect failed"):
        bench_h2.parse_h2load("", "connect failed")


@pytest.mark.parametrize("name", sorted(bench_h2.SERVERS))
def test_h2_servers_speak_h2c_in_clear_and_tls_with_the_run_s_files(name):
    clear = bench_h2.SERVERS[name](8000, None)
    tls = bench_h2.SERVERS[name](8000, ("c.pem", "k.pem"))
    assert "c.pem" not in clear and "k.pem" not in clear
    assert "c.pem" in tls and "k.pem" in tls
    assert "8000" in " ".join(clear) and "8000" in " ".join(tls)
    assert bench_h2.url(8000, None, "/x") == "http://127.0.0.1:8000/x"
    assert bench_h2.url(8000, ("c", "k"), "/x") == "https://127.0.0.1:8000/x"


def test_the_chart_leaves_out_a_server_that_failed_everywhere():
    rows = [Result("wsgiserver", "hello", rps=9000.0), Result("cheroot", "hello", failed=True),
            Result("waitress", "hello", failed=True), Result("wsgiserver", "close", rps=5000.0),
            Result("cheroot", "close", failed=True), Result("waitress", "close", rps=3000.0)]
    panels = bench_run.chart_panels(rows)
    assert [[b["server"] for b in p["bars"]] for p in panels] == \
        [["wsgiserver", "waitress"], ["wsgiserver", "waitress"]]
    assert panels[0]["bars"][1]["label"] == "FAILED"  # failed here, not everywhere
