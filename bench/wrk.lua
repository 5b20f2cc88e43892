-- wrk script for every scenario of bench/run.py.
--
-- BENCH_BODY_BYTES=N (environment): send POST requests with an N-byte body
-- (wrk adds the Content-Length). Unset or 0: plain GET.
--
-- done() prints one line, "BENCH_JSON {...}", that run.py parses: exact
-- percentiles in microseconds and every error counter wrk keeps (status =
-- "Non-2xx or 3xx responses"; connect/read/write/timeout = "Socket errors").

local body_bytes = tonumber(os.getenv("BENCH_BODY_BYTES") or "0") or 0
if body_bytes > 0 then
  wrk.method = "POST"
  wrk.body = string.rep("a", body_bytes)
  wrk.headers["Content-Type"] = "application/octet-stream"
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests": %d, "duration_us": %d, "bytes": %d, ' ..
    '"connect": %d, "read": %d, "write": %d, "timeout": %d, "status": %d, ' ..
    '"p50_us": %d, "p99_us": %d, "mean_us": %.1f, "max_us": %d}\n',
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.timeout, e.status,
    latency:percentile(50), latency:percentile(99), latency.mean, latency.max))
end
