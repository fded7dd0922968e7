# Shared by bench/load.sh and bench/callgrind.sh (sourced, not run): keygate's benchmark
# configuration, and a user with keys made over HTTP. Uses the caller's KG (keygate's base
# URL) and, once registered, TOKEN and ACCOUNT.

# write_keygate_config FILE KG_PORT UPSTREAM_PORT DB_FILE [TOP_LEVEL] [TABLES]
# A plan with API access and no rate limit (the load must never be refused) and one gateway
# route `/v1/bench` → the upstream. TOP_LEVEL: extra top-level settings (they must come before
# any table); TABLES: extra tables.
write_keygate_config() {
  local file=$1 kg_port=$2 up_port=$3 db=$4 top=${5:-} tables=${6:-}
  cat >"$file" <<CONF
listen = "127.0.0.1:$kg_port"
database_url = "sqlite://$db"
$top

[signup]
default_plan = "bench"
block_free_email = false

# API access with no plan-wide rate limit: the load must not be refused. The keys under test
# have no limit of their own either, except the one the rate-limit check mints.
[plans.bench]
api_access = true

[dashboard]
secure_cookies = false

[[gateway.routes]]
prefix = "/v1/bench"
upstream = "http://127.0.0.1:$up_port"
resource = "bench"
$tables
CONF
}

# wait_for_keygate SECONDS: true once /healthz answers.
wait_for_keygate() {
  local i
  for i in $(seq 1 $(($1 * 10))); do
    curl -fsS "$KG/healthz" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  return 1
}

# json EXPR: the Python subscript EXPR (e.g. "['key']") of the JSON on stdin.
json() { python3 -c "import json,sys; d=json.load(sys.stdin); print(d$1)"; }

# post PATH BODY: a JSON POST to keygate, with TOKEN's session when set.
post() { curl -fsS -X POST "$KG$1" -H 'content-type: application/json' ${TOKEN:+-H "authorization: Bearer $TOKEN"} -d "$2"; }

# register_bench_user EMAIL: signs up; sets TOKEN and ACCOUNT.
register_bench_user() {
  local reg
  reg=$(post /v1/register "{\"email\":\"$1\",\"password\":\"correct horse battery staple\",\"name\":\"Bench Co\"}")
  TOKEN=$(json "['token']" <<<"$reg")
  ACCOUNT=$(json "['default_account_id']" <<<"$reg")
}

# mint NAME [EXTRA_JSON_FIELDS]: an org key of ACCOUNT; prints the answer (with the secret).
mint() { post /v1/keys "{\"account_id\":\"$ACCOUNT\",\"class\":\"org\",\"name\":\"$1\"${2:+,$2}}"; }
