-- report.lua prints, after wrk's own summary, the latency percentiles wrk's
-- --latency table leaves out (p99.9 and p99.99) in microseconds, one
-- "portico-bench" line each, for bench/wrk.go to parse.
done = function(summary, latency, requests)
  for _, p in ipairs({50, 90, 99, 99.9, 99.99}) do
    io.write(string.format("portico-bench latency p%g %d\n", p, latency:percentile(p)))
  end
  io.write(string.format("portico-bench requests %d duration_us %d bytes %d\n",
    summary.requests, summary.duration, summary.bytes))
  local e = summary.errors
  io.write(string.format("portico-bench errors connect %d read %d write %d status %d timeout %d\n",
    e.connect, e.read, e.write, e.status, e.timeout))
end
