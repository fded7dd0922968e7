-- POST /v1/keys/verify with one valid key; a static request, so wrk spends no Lua per request.
wrk.method = "POST"
wrk.body = '{"key":"' .. os.getenv("KEY") .. '"}'
wrk.headers["Content-Type"] = "application/json"
dofile(os.getenv("BENCH_WRK") .. "/report.lua")
