"""Prometheus metrics (``--metrics-bind``), read with prometheus_client's own
parser: requests by status class, durations, refusals, bytes, gauges; with
``--workers``, the sum over the workers, ended ones included."""

from __future__ import annotations

import http.client
import os
import signal
import socket
import time
import urllib.request

import pytest

from tests.conftest import recv_until_closed
from tests.functional.apps import hello_app
from tests.functional.conftest import free_port

parser = pytest.importorskip("prometheus_client.parser",
                             reason="pip install prometheus_client (in the test extra)")


def scrape(port: int) -> dict[str, float]:
    """Every sample of the endpoint as {name{labels}: value}."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        text = response.read().decode()
    samples = {}
    for family in parser.text_string_to_metric_families(text):
        for sample in family.samples:
            labels = ",".join(f'{k}="{v}"' for k, v in sorted(sample.labels.items()))
            samples[f"{sample.name}{{{labels}}}" if labels else sample.name] = sample.value
    return samples


def get(port: int, path: str = "/") -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        response.read()
        return response.status
    finally:
        conn.close()


def hello_or_404(environ, start_response):
    if environ["PATH_INFO"] == "/missing":
        start_response("404 Not Found", [("Content-Length", "0")])
        return [b""]
    return hello_app(environ, start_response)


def test_one_process_counts_what_it_did(live_server):
    server = live_server(hello_or_404, metrics_bind="127.0.0.1:0")
    assert server.metrics_listener is not None
    metrics_port = server.metrics_listener.sock.getsockname()[1]
    port = server.address[1]
    assert [get(port) for _ in range(3)] + [get(port, "/missing")] == [200, 200, 200, 404]
    with socket.create_connection(server.address, timeout=5) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n" + b"X-Big: " + b"a" * 70000 + b"\r\n\r\n")
        assert recv_until_closed(sock).startswith(b"HTTP/1.1 431 ")
    # Bytes are counted as a connection's exchange ends, or as it closes.
    deadline = time.monotonic() + 5
    while (samples := scrape(metrics_port))["wsgiserver_received_bytes_total"] < 60000:
        assert time.monotonic() < deadline, samples["wsgiserver_received_bytes_total"]
        time.sleep(0.05)
    assert samples['wsgiserver_requests_total{code="2xx"}'] == 3
    assert samples['wsgiserver_requests_total{code="4xx"}'] == 1
    assert samples["wsgiserver_request_duration_seconds_count"] == 4
    assert samples['wsgiserver_request_duration_seconds_bucket{le="+Inf"}'] == 4
    assert 0 < samples["wsgiserver_request_duration_seconds_sum"] < 4
    assert samples['wsgiserver_refused_requests_total{reason="431"}'] == 1
    assert samples["wsgiserver_sent_bytes_total"] > 4 * len(b"HTTP/1.1 200 OK\r\n")
    assert samples["wsgiserver_worker_restarts_total"] == 0
    # The scrapes themselves are not counted as requests.
    assert scrape(metrics_port)['wsgiserver_requests_total{code="2xx"}'] == 3


def test_gauges_show_connections_and_threads(live_server):
    server = live_server(hello_app, metrics_bind="127.0.0.1:0", threads=3)
    metrics_port = server.metrics_listener.sock.getsockname()[1]
    held = [socket.create_connection(server.address, timeout=5) for _ in range(4)]
    try:
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            samples = scrape(metrics_port)
            if samples["wsgiserver_connections_open"] >= 4:
                break
            time.sleep(0.1)
        assert samples["wsgiserver_connections_open"] >= 4
        assert samples['wsgiserver_worker_threads{state="idle"}'] + \
            samples['wsgiserver_worker_threads{state="busy"}'] == 3
    finally:
        for sock in held:
            sock.close()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_workers_are_summed_ended_ones_included(start_cli):
    metrics_port = free_port()
    process, port = start_cli("tests.functional.cli_apps:pid_app", "--workers", "2",
                              "--metrics-bind", f"127.0.0.1:{metrics_port}",
                              "--max-requests", "5")
    pids = set()
    sent = 0
    while len(pids) < 4 and sent < 200:  # bounded: 200 requests at most
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        conn.request("GET", "/", headers={"Connection": "close"})
        pids.add(int(conn.getresponse().read().split()[0]))
        conn.close()
        sent += 1
        time.sleep(0.01)
    samples = scrape(metrics_port)
    # Every request counted, by whichever worker served it, retired or not.
    assert samples['wsgiserver_requests_total{code="2xx"}'] == sent
    assert len(pids) > 2, "--max-requests replaced no worker"
    assert samples["wsgiserver_worker_restarts_total"] >= 1
    process.send_signal(signal.SIGTERM)
    assert process.wait(20) == 0


def test_each_worker_has_the_standard_process_families(start_cli):
    metrics_port = free_port()
    process, port = start_cli("tests.functional.cli_apps:pid_app", "--workers", "2",
                              "--metrics-bind", f"127.0.0.1:{metrics_port}")
    before = time.time()
    samples: dict[str, float] = {}
    for _ in range(100):  # bounded: the workers report within a few seconds
        samples = scrape(metrics_port)
        if all(f'process_resident_memory_bytes{{worker="{n}"}}' in samples for n in (1, 2)):
            break
        time.sleep(0.1)
    for worker in ("1", "2"):
        label = f'{{worker="{worker}"}}'
        # A Python process serving: several MiB resident, a few descriptors
        # (listener, poller, pipes), some CPU spent, started within the test.
        assert 4 << 20 < samples[f"process_resident_memory_bytes{label}"] < 2 << 30
        assert 3 <= samples[f"process_open_fds{label}"] < 1000
        assert 0 <= samples[f"process_cpu_seconds_total{label}"] < 60  # a fork starts at 0
        assert before - 30 < samples[f"process_start_time_seconds{label}"] <= time.time()
    process.send_signal(signal.SIGTERM)
    assert process.wait(20) == 0


def test_metrics_on_the_applications_own_address_is_one_clear_error(start_cli):
    import subprocess
    import sys

    from tests.functional.conftest import ROOT

    result = subprocess.run([sys.executable, "-m", "wsgiserver", "examples.hello:app",
                             "--port", "8123", "--metrics-bind", "0.0.0.0:8123"],
                            cwd=ROOT, capture_output=True, text=True, timeout=30)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "wsgiserver: error: --metrics-bind: 0.0.0.0:8123 is the application's own address: "
        "give the metrics a port of their own"]
