-- wrk script for bench/gateway.py: POST /api/v1/orders/ with a fresh order each time.
--
--   wrk -t2 -c64 -d10s -s bench/orders.lua http://127.0.0.1:PORT -- CONFIG_FILE
--
-- CONFIG_FILE (written by bench/gateway.py) has one item per line:
--   instrument CODE
--   tag TAG                  (prefix of client_order_id; unique per run)
--   buy|sell TOKEN           (one line per bench organisation's API token)
-- Every request: the next account in turn (offset by thread, so the threads interleave the
-- organisations), a client_order_id TAG-THREAD-COUNTER of its own, qty 1-5, and a price that
-- never crosses: bids 18.00-19.50 CNY, asks 20.50-22.00 CNY (reference 20.00, band +/-10 %).
-- done() prints one line "BENCHJSON {...}" with wrk's totals and latency percentiles.

local threads = {}
local next_id = 1

function setup(thread)
   thread:set("id", next_id)
   next_id = next_id + 1
   table.insert(threads, thread)
end

local accounts = {}
local instrument, tag
local counter = 0

function init(args)
   local f = assert(io.open(args[1], "r"))
   for line in f:lines() do
      local key, value = line:match("^(%S+)%s+(%S+)$")
      if key == "instrument" then
         instrument = value
      elseif key == "tag" then
         tag = value
      elseif key == "buy" or key == "sell" then
         table.insert(accounts, { side = key,
            headers = { ["Authorization"] = "Token " .. value, ["Content-Type"] = "application/json" } })
      end
   end
   f:close()
   math.randomseed(id * 7919)
end

function request()
   counter = counter + 1
   local account = accounts[((counter + id * 5) % #accounts) + 1]
   local price
   if account.side == "buy" then
      price = 1800 + math.random(0, 150)
   else
      price = 2050 + math.random(0, 150)
   end
   local body = string.format(
      '{"instrument":"%s","side":"%s","price":"%d.%02d","qty":%d,"client_order_id":"%s-%d-%d"}',
      instrument, account.side, math.floor(price / 100), price % 100, math.random(1, 5), tag, id, counter)
   return wrk.format("POST", "/api/v1/orders/", account.headers, body)
end

function done(summary, latency, requests)
   local e = summary.errors
   io.write(string.format(
      'BENCHJSON {"requests":%d,"duration_us":%d,"bytes":%d,"non2xx":%d,"connect":%d,"read":%d,"write":%d,' ..
      '"timeout":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,"max_us":%d}\n',
      summary.requests, summary.duration, summary.bytes, e.status, e.connect, e.read, e.write, e.timeout,
      latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max))
end
