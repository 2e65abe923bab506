-- wrk script of scripts/bench: one endpoint, with the bearer key, optional method and JSON
-- body; paths rotate through BENCH_PATHS (one per line) so that each request may address
-- another object. Prints one JSON line (prefixed "BENCH ") with latency percentiles (ms),
-- throughput, socket errors and the count of each HTTP status.
--
-- Environment: BENCH_KEY (bearer token), BENCH_PATHS, BENCH_METHOD (default GET),
-- BENCH_BODY (JSON body, optional).

local key = os.getenv("BENCH_KEY")
local method = os.getenv("BENCH_METHOD") or "GET"
local body = os.getenv("BENCH_BODY")
if body == "" then
  body = nil
end
local paths = {}
for line in string.gmatch(os.getenv("BENCH_PATHS") or "/", "[^\n]+") do
  table.insert(paths, line)
end

local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  statuses = {}
  next_path = math.random(#paths)
  headers = { ["Authorization"] = "Bearer " .. key }
  if body then
    headers["Content-Type"] = "application/json"
  end
end

function request()
  next_path = next_path % #paths + 1
  return wrk.format(method, paths[next_path], headers, body)
end

function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
end

local function ms(us)
  return string.format("%.3f", us / 1000)
end

function done(summary, latency, requests)
  local counts = {}
  for _, thread in ipairs(threads) do
    for status, n in pairs(thread:get("statuses")) do
      counts[status] = (counts[status] or 0) + n
    end
  end
  local parts = {}
  for status, n in pairs(counts) do
    table.insert(parts, string.format('"%d": %d', status, n))
  end
  local e = summary.errors
  io.write(string.format(
    'BENCH {"requests": %d, "seconds": %.3f, "rps": %.1f, ' ..
    '"latency_ms": {"p50": %s, "p90": %s, "p95": %s, "p99": %s, "max": %s, "mean": %s}, ' ..
    '"socket_errors": {"connect": %d, "read": %d, "write": %d, "timeout": %d}, ' ..
    '"non_2xx": %d, "statuses": {%s}}\n',
    summary.requests, summary.duration / 1e6, summary.requests / (summary.duration / 1e6),
    ms(latency:percentile(50)), ms(latency:percentile(90)), ms(latency:percentile(95)),
    ms(latency:percentile(99)), ms(latency.max), ms(latency.mean),
    e.connect, e.read, e.write, e.timeout, e.status, table.concat(parts, ", ")))
end
