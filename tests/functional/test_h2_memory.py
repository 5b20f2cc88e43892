"""What one HTTP/2 client can make the server hold in memory: no more than a
few HTTP/1.1 connections' worth, however many streams it opens (bodies
that never end, responses its windows never take). Measured as the server
process's resident memory, against the real command."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("h2", reason="HTTP/2 needs h2: pip install '.[http2]'")

import h2.events  # noqa: E402
import h2.settings  # noqa: E402

from .h2client import H2Socket  # noqa: E402

pytestmark = pytest.mark.skipif(not Path("/proc/self/status").exists(),
                                reason="reads resident memory from /proc (Linux)")

MiB = 1 << 20
# Growth allowed over the idle process: tens of MiB, where holding what the
# client sent or asked for would take 100 MiB and more.
ALLOWED_GROWTH = 40 * MiB


def resident(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


@pytest.fixture
def server(start_cli):
    process, port = start_cli("tests.functional.apps:h2_memory_app", "--host", "127.0.0.1",
                              "--h2c-prior-knowledge", "--forwarded-allow-ips", "127.0.0.1",
                              "--threads", "4")
    with H2Socket(("127.0.0.1", port), timeout=10.0) as warm:  # imports done, threads up
        assert warm.response(warm.request("/"))[0] == 200
    return process, port


def test_bodies_that_never_end_on_many_streams_stay_out_of_memory(server):
    process, port = server
    idle = resident(process.pid)
    body = b"b" * (256 * 1024)
    clients = [H2Socket(("127.0.0.1", port), timeout=20.0) for _ in range(4)]
    try:
        streams = []
        for client in clients:
            # 100 streams x 256 KiB each, none ended: 100 MiB across the clients.
            streams.append([client.request(f"/{n}", method="POST", body=body, end=False)
                            for n in range(100)])
        for client in clients:
            client.read_some(0.2)  # the server has taken it all (windows reopened)
        grown = resident(process.pid) - idle
        assert grown < ALLOWED_GROWTH, f"{grown / MiB:.0f} MiB held for bodies not ended"
        client, ids = clients[0], streams[0]
        for stream in ids[:3]:
            client.h2.end_stream(stream)
        client.flush()
        for stream in ids[:3]:
            assert client.response(stream)[::2] == (200, b"262144")
    finally:
        for client in clients:
            client.close()


def test_responses_a_client_never_reads_stay_out_of_memory(server):
    process, port = server
    idle = resident(process.pid)
    shut = {h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 0}
    with H2Socket(("127.0.0.1", port), settings=shut, timeout=20.0) as client:
        streams = [client.request("/big") for _ in range(100)]  # 200 MiB of responses
        client.wait_for(lambda: len(client.of_type(h2.events.ResponseReceived)) == 100,
                        "100 response heads")
        grown = resident(process.pid) - idle
        assert grown < ALLOWED_GROWTH, f"{grown / MiB:.0f} MiB held for responses not read"
        client.h2.update_settings({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 1 << 24})
        client.h2.increment_flow_control_window(1 << 30)
        client.flush()
        for stream in streams[:3]:
            assert client.response(stream)[::2] == (200, b"x" * (2 << 20))

