-- POST /v1/keys/verify with a key drawn at random from KEYS_FILE per request (every key of
-- the file is stored and, after the warm-up, cached). Requests are formatted once in init()
-- so each request costs wrk one table lookup and one random number.
local reqs = {}
local n = 0

function init(args)
  for line in io.lines(os.getenv("KEYS_FILE")) do
    if #line > 0 then
      n = n + 1
      reqs[n] = wrk.format("POST", "/v1/keys/verify", { ["Content-Type"] = "application/json" },
        '{"key":"' .. line .. '"}')
    end
  end
  -- Different sequences per thread.
  math.randomseed(os.time() + n + tonumber(tostring(reqs):match("0x(%x+)") or "0", 16) % 100000)
end

function request()
  return reqs[math.random(n)]
end

dofile(os.getenv("BENCH_WRK") .. "/report.lua")
