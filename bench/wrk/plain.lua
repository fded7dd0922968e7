-- GET as given on the command line (healthz, nginx): no per-request Lua.
dofile(os.getenv("BENCH_WRK") .. "/report.lua")
