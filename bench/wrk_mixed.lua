-- wrk script of scripts/bench: a mixed read/write load on one space, as users of the UI and
-- integrations would produce it. Per request, by weight:
--   30 list pipelines (pages, filters, windows)   15 get pipeline     15 list runs
--   15 get run (with its task runs)               10 create comment    5 edit a comment (If-Match)
--    5 set criticality                             5 watch / unwatch
-- Expected statuses are 200, 201 and 204; anything else (or a socket error) is an error.
-- Prints one JSON line prefixed "BENCH" like wrk_endpoint.lua, plus counts per operation.
--
-- Environment: BENCH_KEY, BENCH_PREFIX (/api/v1.0/spaces/<slug>/orchestration),
-- BENCH_PIPELINES and BENCH_RUNS (comma-separated ids).

local key = os.getenv("BENCH_KEY")
local prefix = os.getenv("BENCH_PREFIX")

local function split(text)
  local out = {}
  for id in string.gmatch(text or "", "[^,]+") do
    table.insert(out, id)
  end
  return out
end

local pipelines = split(os.getenv("BENCH_PIPELINES"))
local runs = split(os.getenv("BENCH_RUNS"))
local filters = {
  "", "&status=failed", "&q=orders", "&criticality=high", "&days=30", "&days=90",
  "&status=success&days=1", "&owner=analytics",
}
local criticalities = { "low", "medium", "high", "critical" }

local threads = {}

function setup(thread)
  thread:set("id", #threads + 1)
  table.insert(threads, thread)
end

function init(args)
  statuses = {}
  ops = {}
  comments = {}     -- created comments waiting for an edit: { id, etag }
  watching = {}
  counter = 0
  math.randomseed(id * 7919)
  auth = "Bearer " .. key
end

local function pick(list)
  return list[math.random(#list)]
end

local function op(name, method, path, body, extra)
  ops[name] = (ops[name] or 0) + 1
  local headers = { ["Authorization"] = auth }
  if body then
    headers["Content-Type"] = "application/json"
  end
  if extra then
    for k, v in pairs(extra) do
      headers[k] = v
    end
  end
  return wrk.format(method, prefix .. path, headers, body)
end

function request()
  counter = counter + 1
  local roll = math.random(100)
  if roll <= 30 then
    return op("list_pipelines", "GET", "/pipelines?size=50&page=" .. math.random(20) .. pick(filters))
  elseif roll <= 45 then
    return op("get_pipeline", "GET", "/pipelines/" .. pick(pipelines) .. "?days=" .. pick({ 7, 30, 90 }))
  elseif roll <= 60 then
    return op("list_runs", "GET", "/pipelines/" .. pick(pipelines) .. "/runs?size=50")
  elseif roll <= 75 then
    return op("get_run", "GET", "/runs/" .. pick(runs))
  elseif roll <= 85 or (roll <= 90 and #comments == 0) then
    local body = string.format('{"content": "Load test note %d-%d: source was **late**."}', id, counter)
    return op("create_comment", "POST", "/runs/" .. pick(runs) .. "/comments", body)
  elseif roll <= 90 then
    local comment = table.remove(comments, 1)
    local body = string.format('{"content": "Edited note %d-%d."}', id, counter)
    return op("edit_comment", "PATCH", "/comments/" .. comment.id, body, { ["If-Match"] = comment.etag })
  elseif roll <= 95 then
    local body = string.format('{"criticality": "%s"}', pick(criticalities))
    return op("set_criticality", "PATCH", "/pipelines/" .. pick(pipelines) .. "/criticality", body)
  else
    local pipeline = pick(pipelines)
    local method = watching[pipeline] and "DELETE" or "PUT"
    watching[pipeline] = not watching[pipeline]
    return op("watch", method, "/pipelines/" .. pipeline .. "/watch")
  end
end

function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
  if status == 201 then
    local comment = string.match(body, '[{,]%s*"id"%s*:%s*"([%x%-]+)"')
    local etag = headers["etag"] or headers["ETag"]
    if comment and etag and #comments < 100 then
      table.insert(comments, { id = comment, etag = etag })
    end
  end
end

local function ms(us)
  return string.format("%.3f", us / 1000)
end

local function merge(name)
  local total = {}
  for _, thread in ipairs(threads) do
    for k, n in pairs(thread:get(name)) do
      total[k] = (total[k] or 0) + n
    end
  end
  local parts = {}
  for k, n in pairs(total) do
    table.insert(parts, string.format('"%s": %d', tostring(k), n))
  end
  return table.concat(parts, ", ")
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH {"requests": %d, "seconds": %.3f, "rps": %.1f, ' ..
    '"latency_ms": {"p50": %s, "p90": %s, "p95": %s, "p99": %s, "max": %s, "mean": %s}, ' ..
    '"socket_errors": {"connect": %d, "read": %d, "write": %d, "timeout": %d}, ' ..
    '"non_2xx": %d, "statuses": {%s}, "operations": {%s}}\n',
    summary.requests, summary.duration / 1e6, summary.requests / (summary.duration / 1e6),
    ms(latency:percentile(50)), ms(latency:percentile(90)), ms(latency:percentile(95)),
    ms(latency:percentile(99)), ms(latency.max), ms(latency.mean),
    e.connect, e.read, e.write, e.timeout, e.status, merge("statuses"), merge("ops")))
end
