-- wrk script for bench/arena.py: POST a list of distinct jobs, one request each, and account for
-- every one of them.
--
--   WRK_JOBS=jobs.tsv WRK_THREADS=T WRK_SECONDS=30 WRK_OUT=out.json \
--     wrk -t T -c C -d 120s -s bench/wrk_jobs.lua URL
--
-- WRK_JOBS has one job per line: "path<TAB>session key<TAB>form body". Thread k (1-based) takes
-- lines k, k+T, k+2T, ... in order, so job i is never sent twice. Every request carries the
-- session cookie, the CSRF cookie and the matching X-CSRFToken header.
-- After WRK_SECONDS (or when its jobs run out) a thread sends nothing more, waits for the answers
-- to what it has sent and writes WRK_OUT.<thread id>; the caller then stops wrk with SIGINT: no
-- request is left in flight, so what was accepted can be compared with what was stored exactly. done() writes WRK_OUT as JSON: per thread the
-- jobs sent and a count per status, wrk's latency percentiles (microseconds), its duration.

local CSRF = "benchcsrftoken0123456789abcdefgh"
local threads = {}

function setup(thread)
  table.insert(threads, thread)
  thread:set("id", #threads)
end

function init(args)
  local nthreads = tonumber(os.getenv("WRK_THREADS"))
  seconds = tonumber(os.getenv("WRK_SECONDS"))
  jobs, statuses = {}, {}
  sent, answered, fillers = 0, 0, 0
  local n = 0
  for line in io.lines(os.getenv("WRK_JOBS")) do
    n = n + 1
    if (n - 1) % nthreads == id - 1 then
      local path, key, body = line:match("^([^\t]*)\t([^\t]*)\t(.*)$")
      table.insert(jobs, wrk.format("POST", path, {
        ["Cookie"] = "sessionid=" .. key .. "; csrftoken=" .. CSRF,
        ["X-CSRFToken"] = CSRF,
        ["Content-Type"] = "application/x-www-form-urlencoded",
      }, body))
    end
  end
  started = os.time()
  -- wrk calls request() once on the first thread before the run, to check the script, and
  -- throws that request away: it must not use up a job.
  probe = id == 1
end

local function finished()
  return sent >= #jobs or os.time() - started > seconds -- whole seconds: runs seconds..seconds+1
end

function delay()
  if finished() then
    return 3600000 -- send nothing more; the thread stops once its answers are in
  end
  return 0
end

function request()
  if probe then
    probe = false
    return wrk.format("GET", "/healthz")
  end
  if sent >= #jobs then
    fillers = fillers + 1 -- another connection of this thread took the last job meanwhile
    return wrk.format("GET", "/healthz")
  end
  sent = sent + 1
  return jobs[sent]
end

function response(status, headers, body)
  answered = answered + 1
  statuses[tostring(status)] = (statuses[tostring(status)] or 0) + 1
  if finished() and answered == sent + fillers and not drained then
    drained = true -- tell bench/arena.py, which stops wrk with SIGINT once every thread is
    local f = io.open(os.getenv("WRK_OUT") .. "." .. id, "w") -- (wrk 4.1's thread:stop()
    f:close() -- cannot be called from a running thread)
  end
end

local function encode(v)
  if type(v) == "table" then
    local parts = {}
    if #v > 0 then
      for _, x in ipairs(v) do parts[#parts + 1] = encode(x) end
      return "[" .. table.concat(parts, ",") .. "]"
    end
    for k, x in pairs(v) do parts[#parts + 1] = '"' .. tostring(k) .. '":' .. encode(x) end
    return "{" .. table.concat(parts, ",") .. "}"
  end
  return tostring(v)
end

function done(summary, latency, requests)
  local out = {
    duration_us = summary.duration,
    requests = summary.requests,
    errors = summary.errors,
    p50_us = latency:percentile(50.0),
    p90_us = latency:percentile(90.0),
    p99_us = latency:percentile(99.0),
    max_us = latency.max,
    threads = {},
  }
  for _, t in ipairs(threads) do
    table.insert(out.threads, {
      sent = t:get("sent"), fillers = t:get("fillers"), answered = t:get("answered"),
      statuses = t:get("statuses"),
    })
  end
  local f = io.open(os.getenv("WRK_OUT"), "w")
  f:write(encode(out))
  f:close()
end
