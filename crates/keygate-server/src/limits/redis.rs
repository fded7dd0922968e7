//! Rate limits shared by every node: the GCRA step of `keygate_core::ratelimit::check` as one
//! Lua script, so each decision is a single atomic round trip to Redis whatever the number of
//! nodes.
//!
//! # Time and precision
//!
//! The script reads the clock with Redis `TIME`, so the nodes' own clocks never matter. The
//! stored theoretical arrival time (TAT) is the decimal string of nanoseconds since the Unix
//! epoch, the same number the in-memory limiter keeps; Lua numbers are doubles, exact only up
//! to 2^53, so the script splits it into seconds and nanoseconds and does all arithmetic on
//! the distance from now, which stays exact up to 2^53 ns (104 days of allowance).
//!
//! # A changed limit
//!
//! Beside the TAT the value keeps the emission interval it was written under
//! (`<tat ns>:<interval ns>`), so when a bucket's limit changes the script carries the units
//! spent over to the new limit, as `ratelimit::carry_over` does in memory (docs/api.md, "Rate
//! limits"). The one value costs no extra round trip or key. Its keys are `kg:rl:v2:{bucket}`,
//! not the `kg:rl:{bucket}` of bare TATs: a node of the previous release would fail its script
//! on the new value (and apply `redis_failure_policy`), so during a rolling upgrade the two
//! releases keep separate buckets instead (each still one full limit). A bare TAT is still read,
//! as written under the current limit.
//!
//! # Failure
//!
//! A `ConnectionManager` reconnects by itself; every call is bounded by `CALL_TIMEOUT`, so a
//! dead or blackholed Redis costs a request at most that long, and the error goes back to
//! `RateLimiter`, where the operator's `redis_failure_policy` decides.

use std::time::Duration;

use keygate_core::RateLimit;
use keygate_core::ratelimit::{Decision, check};
use redis::Script;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use super::rate::SharedLimiter;
use crate::config::redact_url;

/// Longest a request waits for a shared decision before the failure policy applies.
const CALL_TIMEOUT: Duration = Duration::from_millis(250);
/// Every key keygate writes in Redis starts with this (`v2`: the value carries its interval).
pub const KEY_PREFIX: &str = "kg:rl:v2:";

/// KEYS[1]: the bucket. ARGV: emission interval T (ns), capacity = T·burst (ns), cost, and,
/// for tests only, a fixed now as seconds and microseconds (production uses `TIME`).
/// Answers {allowed (1/0), ns the stored TAT was ahead of now before this request (≥ 0, carried
/// over to this limit and at most its capacity)};
/// the caller derives remaining/reset/retry-after from that with the same Rust code as the
/// in-memory limiter, so both report alike.
const GCRA_LUA: &str = r#"
local t = tonumber(ARGV[1])
local capacity = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local now_s, now_us
if ARGV[4] then
  now_s, now_us = tonumber(ARGV[4]), tonumber(ARGV[5])
else
  local clock = redis.call('TIME')
  now_s, now_us = tonumber(clock[1]), tonumber(clock[2])
end
local now_ns = now_us * 1000
local current = 0
local stored = redis.call('GET', KEYS[1])
local tat, written
if stored then tat, written = string.match(stored, '^(%d+):?(%d*)$') end
if tat and string.len(tat) > 9 then
  local tat_s = tonumber(string.sub(tat, 1, -10))
  local tat_ns = tonumber(string.sub(tat, -9))
  local d = (tat_s - now_s) * 1000000000 + (tat_ns - now_ns)
  if d > 0 then current = d end
  -- Written under another limit: the units spent carry over, not the time (carry_over).
  written = tonumber(written)
  if written and written > 0 and written ~= t then current = math.floor(current * t / written) end
end
if current > capacity then current = capacity end
local ahead = current + cost * t
if ahead > capacity then
  return {0, string.format('%.0f', current)}
end
if ahead > 0 then
  local total = now_ns + ahead
  local new_s = now_s + math.floor(total / 1000000000)
  local new_ns = total - math.floor(total / 1000000000) * 1000000000
  -- Expires when the allowance is whole again: from then on, no key means the same.
  local ttl_ms = math.max(1, math.ceil(ahead / 1000000))
  redis.call('SET', KEYS[1], string.format('%d%09d:', new_s, new_ns) .. ARGV[1], 'PX', string.format('%.0f', ttl_ms))
end
return {1, string.format('%.0f', current)}
"#;

pub struct RedisLimiter {
    conn: ConnectionManager,
    script: Script,
}

impl RedisLimiter {
    /// Validates the URL but does not wait for Redis: the connection is made on first use, so
    /// a node starts (and applies its failure policy) while Redis is down.
    pub fn new(url: &str) -> anyhow::Result<Self> {
        let client =
            redis::Client::open(url).map_err(|e| anyhow::anyhow!("invalid redis_url {}: {e}", redact_url(url)))?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(CALL_TIMEOUT))
            .set_response_timeout(Some(CALL_TIMEOUT))
            // Few, quick retries per reconnect: callers give up after CALL_TIMEOUT anyway, and
            // the next call starts a fresh attempt, so recovery follows Redis within a request.
            .set_number_of_retries(1)
            .set_min_delay(Duration::from_millis(50))
            .set_max_delay(Duration::from_secs(1));
        let conn = ConnectionManager::new_lazy_with_config(client, config)
            .map_err(|e| anyhow::anyhow!("redis connection manager: {e}"))?;
        Ok(RedisLimiter { conn, script: Script::new(GCRA_LUA) })
    }

    /// One round trip, for a startup log line; never fails the caller.
    pub async fn ping(&self) -> Result<(), String> {
        let mut conn = self.conn.clone();
        let cmd = redis::cmd("PING");
        match tokio::time::timeout(CALL_TIMEOUT, cmd.query_async::<String>(&mut conn)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err(format!("no answer within {} ms", CALL_TIMEOUT.as_millis())),
        }
    }

    async fn decide(
        &self,
        bucket: &str,
        limit: &RateLimit,
        cost: u32,
        now: Option<(u64, u64)>,
    ) -> Result<Decision, String> {
        let t = limit.emission_interval_ns();
        let capacity = t.saturating_mul(u64::from(limit.burst()));
        let mut invocation = self.script.key(redis_key(bucket));
        invocation.arg(t).arg(capacity).arg(cost);
        if let Some((secs, micros)) = now {
            invocation.arg(secs).arg(micros);
        }
        let mut conn = self.conn.clone();
        let (allowed, current): (i64, String) =
            match tokio::time::timeout(CALL_TIMEOUT, invocation.invoke_async(&mut conn)).await {
                Ok(Ok(answer)) => answer,
                Ok(Err(e)) => return Err(e.to_string()),
                Err(_) => return Err(format!("no answer within {} ms", CALL_TIMEOUT.as_millis())),
            };
        let current = parse_ns(&current)?;
        Ok(decision(current, limit, cost, allowed == 1))
    }
}

#[async_trait::async_trait]
impl SharedLimiter for RedisLimiter {
    async fn check(&self, bucket: &str, limit: &RateLimit, cost: u32) -> Result<Decision, String> {
        self.decide(bucket, limit, cost, None).await
    }

    async fn ping(&self) -> Result<(), String> {
        RedisLimiter::ping(self).await
    }
}

/// `kg:rl:v2:{bucket}`: the braces make the whole bucket the Redis Cluster hash tag, so any
/// further key a bucket ever needs lands in the same slot as its TAT.
fn redis_key(bucket: &str) -> String {
    format!("{KEY_PREFIX}{{{bucket}}}")
}

fn parse_ns(s: &str) -> Result<u64, String> {
    // Beyond u64 only with absurd limits; the float form saturates like the Rust arithmetic.
    s.parse::<u64>()
        .or_else(|_| s.parse::<f64>().map(|f| f as u64))
        .map_err(|_| format!("unexpected script answer {s:?}"))
}

/// The in-memory arithmetic on a clock where now = 0 and the TAT sits `current` ns ahead, so
/// remaining, reset and retry-after are computed by the very same code as without Redis.
fn decision(current: u64, limit: &RateLimit, cost: u32, allowed: bool) -> Decision {
    let (mut d, _) = check(Some(current), 0, limit, cost);
    if d.allowed != allowed {
        // Only past 2^53 ns of allowance, where Lua's doubles round; Redis's verdict stands
        // because it is what was (or was not) stored.
        d.allowed = allowed;
        if !allowed {
            d.remaining = 0;
            d.retry_after_seconds = d.retry_after_seconds.max(1);
        }
    }
    d
}

#[cfg(test)]
mod tests {
    use keygate_core::ratelimit::carry_over;

    use super::*;

    const SEC: u64 = 1_000_000_000;

    fn redis_url() -> Option<String> {
        let url = std::env::var("KEYGATE_TEST_REDIS_URL").ok().filter(|u| !u.is_empty());
        if url.is_none() {
            // Past the harness's capture of `eprintln!`, so a plain `cargo test` shows it.
            use std::io::Write as _;
            let _ = writeln!(
                std::io::stderr(),
                "SKIPPED: KEYGATE_TEST_REDIS_URL is not set; the Redis GCRA script was not tested"
            );
        }
        url
    }

    fn bucket() -> String {
        format!("test:{}", keygate_core::base62::random(12))
    }

    /// Runs `steps` (ns since an arbitrary second, cost) through Redis with a fixed clock and
    /// through the in-memory arithmetic, and insists they agree on every field.
    async fn compare(limiter: &RedisLimiter, limit: RateLimit, steps: &[(u64, u32)]) {
        let b = bucket();
        let origin_s = 1_800_000_000u64;
        let mut tat = None;
        for (i, &(at, cost)) in steps.iter().enumerate() {
            // Redis TIME has microsecond resolution; keep the fixed clock on whole microseconds.
            let at = at / 1_000 * 1_000;
            let now = origin_s * SEC + at;
            let got = limiter.decide(&b, &limit, cost, Some((now / SEC, (now % SEC) / 1_000))).await.expect("redis");
            let (want, new_tat) = check(tat, now, &limit, cost);
            if let Some(n) = new_tat {
                tat = Some(n);
            }
            assert_eq!(got, want, "step {i} at {at} ns, cost {cost}, limit {limit:?}");
        }
    }

    #[tokio::test]
    async fn the_script_reproduces_the_in_memory_arithmetic() {
        let Some(url) = redis_url() else { return };
        let limiter = RedisLimiter::new(&url).expect("limiter");
        let ten_a_minute = RateLimit { limit: 10, window_seconds: 60, burst: None };
        compare(&limiter, ten_a_minute, &[(0, 1); 12]).await;
        let steps: Vec<(u64, u32)> =
            (0..40).map(|i| (i * 2_500_000_000 + (i % 3) * 777_777, 1 + (i % 4) as u32)).collect();
        compare(&limiter, ten_a_minute, &steps).await;
        let two_per_two = RateLimit { limit: 2, window_seconds: 2, burst: None };
        compare(&limiter, two_per_two, &[(0, 1), (0, 1), (0, 1), (SEC, 1), (SEC, 1), (5 * SEC, 3), (5 * SEC, 2)]).await;
        let burst = RateLimit { limit: 100, window_seconds: 100, burst: Some(3) };
        compare(&limiter, burst, &[(0, 1), (0, 1), (0, 1), (0, 1), (999_999_000, 1), (SEC, 1)]).await;
        // An emission interval that is not a whole number of microseconds.
        let odd = RateLimit { limit: 7, window_seconds: 3, burst: Some(5) };
        let steps: Vec<(u64, u32)> = (0..30).map(|i| (i * 123_456_789, 1)).collect();
        compare(&limiter, odd, &steps).await;
    }

    #[tokio::test]
    async fn server_time_limits_and_keys_clean_themselves_up() {
        let Some(url) = redis_url() else { return };
        let limiter = RedisLimiter::new(&url).expect("limiter");
        let limit = RateLimit { limit: 10, window_seconds: 60, burst: None };
        let b = bucket();
        let mut allowed = 0;
        for _ in 0..12 {
            let d = limiter.check(&b, &limit, 1).await.expect("redis");
            if d.allowed {
                allowed += 1;
                assert_eq!(d.remaining, 10 - allowed);
            } else {
                assert!(d.retry_after_seconds >= 1 && d.retry_after_seconds <= 6, "{d:?}");
            }
        }
        assert_eq!(allowed, 10);
        let mut conn =
            redis::Client::open(url.as_str()).expect("client").get_multiplexed_async_connection().await.expect("conn");
        let ttl: i64 = redis::cmd("PTTL").arg(redis_key(&b)).query_async(&mut conn).await.expect("pttl");
        assert!(ttl > 59_000 && ttl <= 60_000, "PTTL {ttl}");
        let stored: String = redis::cmd("GET").arg(redis_key(&b)).query_async(&mut conn).await.expect("get");
        let (tat, interval) = stored.split_once(':').expect("tat:interval");
        assert!(tat.len() >= 19 && tat.bytes().all(|c| c.is_ascii_digit()), "{stored}");
        assert_eq!(interval, "6000000000", "{stored}");
    }

    /// The in-memory limiter's `carry_over`, through Redis: a bucket spent under 10 a minute
    /// is not held for 59 s once its limit is 1000 a second, and a value written before the
    /// interval was kept still reads.
    #[tokio::test]
    async fn a_changed_limit_carries_the_units_spent_over() {
        let Some(url) = redis_url() else { return };
        let limiter = RedisLimiter::new(&url).expect("limiter");
        let slow = RateLimit { limit: 10, window_seconds: 60, burst: None };
        let fast = RateLimit { limit: 1000, window_seconds: 1, burst: None };
        let b = bucket();
        let at = |micros: u64| Some((1_800_000_000u64, micros));
        for _ in 0..10 {
            assert!(limiter.decide(&b, &slow, 1, at(0)).await.expect("redis").allowed);
        }
        assert!(!limiter.decide(&b, &slow, 1, at(0)).await.expect("redis").allowed);
        let raised = limiter.decide(&b, &fast, 1, at(0)).await.expect("redis");
        let (want, _) = check(Some(carry_over(60 * SEC, 0, slow.emission_interval_ns(), &fast)), 0, &fast, 1);
        assert_eq!(raised, want);
        assert!(raised.allowed && raised.remaining == 989, "{raised:?}");
        let lowered = limiter.decide(&b, &slow, 1, at(0)).await.expect("redis");
        assert!(!lowered.allowed, "11 units spent do not fit in 10: {lowered:?}");
        let mut conn =
            redis::Client::open(url.as_str()).expect("client").get_multiplexed_async_connection().await.expect("conn");
        let old = bucket();
        let tat = format!("{}000000000", 1_800_000_000u64 + 30);
        let _: () = redis::cmd("SET").arg(redis_key(&old)).arg(&tat).query_async(&mut conn).await.expect("set");
        let d = limiter.decide(&old, &slow, 1, at(0)).await.expect("redis");
        assert_eq!(d, check(Some(30 * SEC), 0, &slow, 1).0, "a bare TAT is read as written under this limit");
    }

    #[tokio::test]
    async fn an_unreachable_redis_is_an_error_quickly() {
        // Port 1 refuses connections: nothing to skip, no Redis needed.
        let limiter = RedisLimiter::new("redis://127.0.0.1:1").expect("limiter");
        let limit = RateLimit { limit: 10, window_seconds: 60, burst: None };
        for _ in 0..3 {
            let started = std::time::Instant::now();
            assert!(limiter.check("k:x", &limit, 1).await.is_err());
            assert!(started.elapsed() < Duration::from_millis(600), "{:?}", started.elapsed());
        }
    }

    /// A throwaway `redis-server` of this test's own on `port`, killed when dropped.
    struct OwnRedis(std::process::Child);

    impl OwnRedis {
        fn start(port: u16) -> Option<OwnRedis> {
            std::process::Command::new("redis-server")
                .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
                .stdout(std::process::Stdio::null())
                .spawn()
                .ok()
                .map(OwnRedis)
        }
    }

    impl Drop for OwnRedis {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }

    async fn recovers_within(limiter: &RedisLimiter, limit: &RateLimit, seconds: u64) -> bool {
        let end = std::time::Instant::now() + Duration::from_secs(seconds);
        while std::time::Instant::now() < end {
            if limiter.check("k:recovery", limit, 1).await.is_ok() {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        false
    }

    #[tokio::test]
    async fn decisions_come_back_by_themselves_when_redis_does() {
        if redis_url().is_none() {
            return;
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("free port").port();
        let limiter = RedisLimiter::new(&format!("redis://127.0.0.1:{port}")).expect("limiter");
        let limit = RateLimit { limit: 1000, window_seconds: 1, burst: None };
        assert!(limiter.check("k:recovery", &limit, 1).await.is_err(), "nothing listens yet");
        let Some(server) = OwnRedis::start(port) else {
            use std::io::Write as _;
            let _ = writeln!(std::io::stderr(), "SKIPPED: no redis-server binary; Redis recovery was not tested");
            return;
        };
        assert!(recovers_within(&limiter, &limit, 5).await, "no recovery after Redis started");
        drop(server);
        let mut failed = false;
        for _ in 0..20 {
            if limiter.check("k:recovery", &limit, 1).await.is_err() {
                failed = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(failed, "Redis is gone but decisions still succeed");
        let _server = OwnRedis::start(port).expect("restart redis-server");
        assert!(recovers_within(&limiter, &limit, 5).await, "no recovery after Redis came back");
    }

    #[test]
    fn keys_are_prefixed_and_hash_tagged() {
        assert_eq!(redis_key("k:key_1"), "kg:rl:v2:{k:key_1}");
    }
}
