//! What Redis does for limits besides the GCRA step (`redis`): the account quota's
//! check-and-INCRBY, and giving back what a request spent when a later limit refused it.
//! Each is one script, one atomic round trip, bounded like a rate decision.

use keygate_core::RateLimit;
use redis::Script;
use redis::aio::ConnectionManager;

use super::quota::SharedQuota;
use super::redis::{CALL_TIMEOUT, redis_key};

/// KEYS[1]: the counter. ARGV: limit, cost, ttl (s). Refuses without incrementing when the
/// cost would pass the limit. Answers {allowed (1/0), count after (or as it stands)}.
const QUOTA_LUA: &str = r#"
local limit = tonumber(ARGV[1])
local cost = tonumber(ARGV[2])
local used = tonumber(redis.call('GET', KEYS[1]) or '0')
if used + cost > limit then return {0, used} end
if cost == 0 then return {1, used} end
local after = redis.call('INCRBY', KEYS[1], cost)
if after == cost then redis.call('EXPIRE', KEYS[1], ARGV[3]) end
return {1, after}
"#;

/// KEYS[1]: the counter. ARGV: cost. Never below zero; a counter gone (expired) stays gone.
const QUOTA_REFUND_LUA: &str = r#"
local used = tonumber(redis.call('GET', KEYS[1]) or '0')
if used <= 0 then return 0 end
local back = math.min(used, tonumber(ARGV[1]))
return redis.call('DECRBY', KEYS[1], back)
"#;

/// KEYS[1]: a GCRA bucket (`redis`'s `tat:interval` value). ARGV: ns to give back. Moves the
/// TAT back by that much and shortens the expiry alike; a bucket left with no debt is removed.
const RATE_REFUND_LUA: &str = r#"
local stored = redis.call('GET', KEYS[1])
if not stored then return 0 end
local tat, written = string.match(stored, '^(%d+):?(%d*)$')
if not tat or string.len(tat) <= 9 then return 0 end
local back = tonumber(ARGV[1])
local pttl = redis.call('PTTL', KEYS[1])
local ttl = pttl - math.floor(back / 1000000)
if pttl < 0 or ttl <= 0 then redis.call('DEL', KEYS[1]) return 1 end
local tat_s = tonumber(string.sub(tat, 1, -10))
local total = tonumber(string.sub(tat, -9)) - back
local new_s = tat_s + math.floor(total / 1000000000)
local new_ns = total - math.floor(total / 1000000000) * 1000000000
redis.call('SET', KEYS[1], string.format('%d%09d:', new_s, new_ns) .. written, 'PX', string.format('%.0f', ttl))
return 1
"#;

pub struct RedisQuota {
    conn: ConnectionManager,
    spend: Script,
    refund: Script,
}

impl RedisQuota {
    pub fn new(conn: ConnectionManager) -> Self {
        RedisQuota { conn, spend: Script::new(QUOTA_LUA), refund: Script::new(QUOTA_REFUND_LUA) }
    }
}

async fn bounded<T>(f: impl std::future::Future<Output = redis::RedisResult<T>>) -> Result<T, String> {
    match tokio::time::timeout(CALL_TIMEOUT, f).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("no answer within {} ms", CALL_TIMEOUT.as_millis())),
    }
}

#[async_trait::async_trait]
impl SharedQuota for RedisQuota {
    async fn spend(&self, counter: &str, limit: u64, cost: u64, ttl_seconds: u64) -> Result<(bool, u64), String> {
        let mut invocation = self.spend.key(counter);
        invocation.arg(limit).arg(cost).arg(ttl_seconds.max(1));
        let mut conn = self.conn.clone();
        let (allowed, used): (i64, i64) = bounded(invocation.invoke_async(&mut conn)).await?;
        Ok((allowed == 1, used.max(0) as u64))
    }

    async fn refund(&self, counter: &str, cost: u64) -> Result<(), String> {
        let mut invocation = self.refund.key(counter);
        invocation.arg(cost);
        let mut conn = self.conn.clone();
        let _: i64 = bounded(invocation.invoke_async(&mut conn)).await?;
        Ok(())
    }
}

/// Gives a GCRA bucket back `cost` units of `limit` (`SharedLimiter::refund`).
pub async fn refund_rate(conn: &ConnectionManager, bucket: &str, limit: &RateLimit, cost: u32) -> Result<(), String> {
    static SCRIPT: std::sync::LazyLock<Script> = std::sync::LazyLock::new(|| Script::new(RATE_REFUND_LUA));
    let back = limit.emission_interval_ns().saturating_mul(u64::from(cost));
    let mut invocation = SCRIPT.key(redis_key(bucket));
    invocation.arg(back);
    let mut conn = conn.clone();
    let _: i64 = bounded(invocation.invoke_async(&mut conn)).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limits::SharedLimiter;
    use crate::limits::redis::RedisLimiter;

    fn redis_url() -> Option<String> {
        let url = std::env::var("KEYGATE_TEST_REDIS_URL").ok().filter(|u| !u.is_empty());
        if url.is_none() {
            use std::io::Write as _;
            let _ = writeln!(std::io::stderr(), "SKIPPED: KEYGATE_TEST_REDIS_URL is not set; quota scripts not tested");
        }
        url
    }

    #[tokio::test]
    async fn the_quota_script_counts_exactly_and_refuses_without_spending() {
        let Some(url) = redis_url() else { return };
        let limiter = RedisLimiter::new(&url).expect("limiter");
        let q = RedisQuota::new(limiter.connection());
        let counter = format!("kg:q:{{a:test_{}}}:0", keygate_core::base62::random(10));
        assert_eq!(q.spend(&counter, 5, 3, 60).await.expect("redis"), (true, 3));
        assert_eq!(q.spend(&counter, 5, 3, 60).await.expect("redis"), (false, 3), "3 + 3 > 5: nothing spent");
        assert_eq!(q.spend(&counter, 5, 2, 60).await.expect("redis"), (true, 5));
        q.refund(&counter, 4).await.expect("redis");
        assert_eq!(q.spend(&counter, 5, 0, 60).await.expect("redis"), (true, 1));
        let mut conn =
            redis::Client::open(url.as_str()).expect("client").get_multiplexed_async_connection().await.expect("c");
        let ttl: i64 = redis::cmd("TTL").arg(&counter).query_async(&mut conn).await.expect("ttl");
        assert!(ttl > 0 && ttl <= 60, "the counter expires: {ttl}");
    }

    #[tokio::test]
    async fn a_refunded_rate_bucket_has_its_units_back() {
        let Some(url) = redis_url() else { return };
        let limiter = RedisLimiter::new(&url).expect("limiter");
        let limit = RateLimit { limit: 3, window_seconds: 60, burst: None };
        let bucket = format!("test:{}", keygate_core::base62::random(12));
        for _ in 0..3 {
            assert!(limiter.check(&bucket, &limit, 1).await.expect("redis").allowed);
        }
        assert!(!limiter.check(&bucket, &limit, 1).await.expect("redis").allowed);
        refund_rate(&limiter.connection(), &bucket, &limit, 2).await.expect("redis");
        let d = limiter.check(&bucket, &limit, 1).await.expect("redis");
        assert!(d.allowed && d.remaining == 1, "{d:?}");
    }
}
