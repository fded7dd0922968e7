-- GET through the gateway with the key in X-API-Key; a static request.
wrk.headers["X-API-Key"] = os.getenv("KEY")
dofile(os.getenv("BENCH_WRK") .. "/report.lua")
