-- wrk script for the gateway's load run (samples/gateway/loadrun.sh).
--   wrk -t2 -c50 -d30s --timeout 60s -s load.lua http://127.0.0.1:18090/api/fast/item -- KEYS QUOTA
-- Each request carries X-API-Key key-<i>, rotating over KEYS keys (every key is busy for the
-- whole run, so each bucket is drained continuously). Each wrk thread sends exactly QUOTA
-- requests: delay() (called by wrk before every request) parks a connection for an hour once
-- its thread has scheduled QUOTA, so no request is in flight when the run ends, and wrk's total
-- can be compared with the gateway's counter exactly. response() tallies the statuses.
-- "sent" counts delay() calls that let a request go (one request each); request() itself is
-- also called once by wrk at start-up to check the script (script_verify_request), so it is
-- not a count of requests sent.
local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  keys = tonumber(args[1]) or 8
  quota = tonumber(args[2]) or 50000
  scheduled, sent, n200, n429, nother = 0, 0, 0, 0, 0
end

function delay()
  if scheduled >= quota then return 3600000 end
  scheduled = scheduled + 1
  return 0
end

function request()
  sent = sent + 1
  return wrk.format("GET", nil, { ["X-API-Key"] = "key-" .. (sent % keys) })
end

function response(status, headers, body)
  if status == 200 then n200 = n200 + 1
  elseif status == 429 then n429 = n429 + 1
  else nother = nother + 1 end
end

function done(summary, latency, requests)
  local s, a, b, o = 0, 0, 0, 0
  for _, t in ipairs(threads) do
    s = s + t:get("scheduled"); a = a + t:get("n200"); b = b + t:get("n429"); o = o + t:get("nother")
  end
  local e = summary.errors
  io.write(string.format("LUA sent=%d completed=%d ok200=%d limited429=%d other=%d " ..
                         "err_connect=%d err_read=%d err_write=%d err_status=%d err_timeout=%d\n",
                         s, summary.requests, a, b, o, e.connect, e.read, e.write, e.status, e.timeout))
end
