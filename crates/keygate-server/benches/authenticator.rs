//! In-process benchmarks of the hot path (issue 6, BENCHMARKS.md): `cargo bench -p
//! keygate-server --bench authenticator`.
//!
//! - the authenticator on a cache hit, a revoked key, a malformed credential, a bad checksum,
//!   an unknown (negatively cached) key and a key with its own rate limit;
//! - a cache miss against SQLite holding 1,000,000 keys, as criterion's mean and as printed
//!   percentiles of single misses (each sample a digest this authenticator has never seen);
//! - key generation and the digest alone.
//!
//! The store is wrapped in a counting decorator, and the run asserts that malformed and
//! bad-checksum credentials made no store call at all.
//!
//! The 1 M-key SQLite file is built once (≈ 30–60 s) under `<target>/bench-data/` and reused;
//! delete that folder to rebuild it. `KEYGATE_BENCH_KEYS=N` seeds N keys instead (a quick run).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod counting_store;
#[path = "../../../bench/tools/src/seed.rs"]
mod seed;

use std::collections::BTreeMap;
use std::hint::black_box;
use std::io::{BufRead, Write};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use counting_store::CountingStore;

/// The `keygate` binary's allocator, so the bench measures what the server runs.
#[global_allocator]
static ALLOCATOR: keygate_alloc::MiMalloc = keygate_alloc::MiMalloc;
use criterion::{Criterion, criterion_group, criterion_main};
use keygate_core::{CredentialKind, Digest, KeyFormat};
use keygate_server::auth::authenticator::AuthenticatorParts;
use keygate_server::auth::invalidation::Epochs;
use keygate_server::auth::{AuthContext, Authenticator, NO_REQUIREMENTS};
use keygate_server::config::{FailurePolicy, PlanSettings};
use keygate_server::limits::RateLimiter;
use keygate_server::metrics::Metrics;
use keygate_server::plans::Plans;
use keygate_server::usage::UsageRecorder;
use keygate_store::Store;
use tokio::runtime::Runtime;

const ACCOUNT: &str = "acc_bench0000000000000000";
const PLAN: &str = "bench";

/// The seeded database and the secrets to present.
struct Fixture {
    store: Arc<dyn Store>,
    /// Secrets of the bulk keys (all of them), for cache misses.
    bulk: Vec<String>,
    hit: String,
    revoked: String,
    limited: String,
}

fn format() -> KeyFormat {
    KeyFormat::new("kg_", "kg_org_", "kgs_").expect("default prefixes")
}

/// `<target>/bench-data`, found from the bench binary's own path (`<target>/release/deps/…`).
fn data_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("bench binary path");
    let target = exe.ancestors().nth(3).map(Path::to_path_buf).unwrap_or_else(std::env::temp_dir);
    target.join("bench-data")
}

fn read_lines(path: &Path) -> Vec<String> {
    let f = std::fs::File::open(path).expect("open secrets");
    std::io::BufReader::new(f).lines().map(|l| l.expect("line")).filter(|l| !l.is_empty()).collect()
}

/// Builds (once) or reopens the SQLite file with `n` bulk keys plus three special keys.
fn fixture(rt: &Runtime, n: u64) -> Fixture {
    let dir = data_dir().join(format!("keys-{n}"));
    let db = dir.join("keygate.db");
    let done = dir.join("complete");
    let url = format!("sqlite://{}", db.display());
    if !done.exists() {
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("bench-data dir");
        eprintln!("seeding {n} keys into {} (once; reused by later runs)…", db.display());
        let started = Instant::now();
        rt.block_on(async {
            // Creates the file with keygate's schema (migrations), exactly as the server would.
            let store = keygate_store::open(&url).await.expect("open store");
            drop(store);
            let mut conn = seed::connect(&db.display().to_string()).await.expect("connect");
            seed::ensure_account(&mut conn, ACCOUNT, PLAN).await.expect("account");
            let f = format();
            let spec = seed::KeySpec { account_id: ACCOUNT.into(), revoked: false, rate_limit: None };
            let mut out = std::io::BufWriter::new(std::fs::File::create(dir.join("bulk.txt")).expect("bulk.txt"));
            seed::insert_keys(&mut conn, &f, &spec, n, |s| Ok(writeln!(out, "{s}")?)).await.expect("bulk keys");
            out.flush().expect("flush");
            let mut special = String::new();
            for (name, revoked, rate_limit) in [
                ("hit", false, None),
                ("revoked", true, None),
                // A huge limit: the benchmark measures the limiter's cost, never a refusal.
                ("limited", false, Some(r#"{"limit":1000000000,"window_seconds":1}"#.to_owned())),
            ] {
                let spec = seed::KeySpec { account_id: ACCOUNT.into(), revoked, rate_limit };
                seed::insert_keys(&mut conn, &f, &spec, 1, |s| {
                    special.push_str(&format!("{name} {s}\n"));
                    Ok(())
                })
                .await
                .expect("special key");
            }
            std::fs::write(dir.join("special.txt"), special).expect("special.txt");
        });
        std::fs::write(&done, "").expect("marker");
        eprintln!("seeded in {:.1} s", started.elapsed().as_secs_f64());
    }
    let store = rt.block_on(keygate_store::open(&url)).expect("open store");
    let special: BTreeMap<String, String> = read_lines(&dir.join("special.txt"))
        .into_iter()
        .filter_map(|l| l.split_once(' ').map(|(a, b)| (a.to_owned(), b.to_owned())))
        .collect();
    Fixture {
        store,
        bulk: read_lines(&dir.join("bulk.txt")),
        hit: special["hit"].clone(),
        revoked: special["revoked"].clone(),
        limited: special["limited"].clone(),
    }
}

/// An authenticator as `keygate_server::build` wires it (in-memory limits, usage recorder,
/// metrics), over `store`, with a fresh cache.
fn authenticator(store: Arc<dyn Store>) -> Authenticator {
    let metrics = Arc::new(Metrics::new());
    let mut plans = BTreeMap::new();
    plans.insert(PLAN.to_owned(), PlanSettings { api_access: true, trial_days: 0, ..PlanSettings::default() });
    Authenticator::new(AuthenticatorParts {
        format: format(),
        store: Arc::clone(&store),
        epochs: Arc::new(Epochs::default()),
        plans: Arc::new(Plans::new(plans)),
        limiter: Arc::new(RateLimiter::new(None, FailurePolicy::FailClosed, Arc::clone(&metrics))),
        usage: Arc::new(UsageRecorder::new(store, Arc::clone(&metrics))),
        metrics,
        cache_max_entries: 1_000_000,
        cache_ttl: Duration::from_secs(3600),
        session_idle: chrono::Duration::minutes(60),
        unknown_per_address_per_minute: 100,
    })
}

fn ctx() -> AuthContext<'static> {
    AuthContext { ip: IpAddr::from([127, 0, 0, 1]), requirements: &NO_REQUIREMENTS, cost: 1, extra_limit: None }
}

/// A credential of the right shape whose last checksum character is wrong.
fn bad_checksum(valid: &str) -> String {
    let mut s = valid.to_owned();
    let last = s.pop().expect("non-empty");
    s.push(if last == 'A' { 'B' } else { 'A' });
    s
}

/// Percentiles of single misses, printed: criterion reports means, the target is a p99.
fn miss_percentiles(rt: &Runtime, counting: &Arc<CountingStore>, bulk: &[String], samples: usize) {
    let store: Arc<dyn Store> = Arc::clone(counting) as Arc<dyn Store>;
    let auth = authenticator(store);
    let c = ctx();
    // Spread over the whole key space (every k-th key), each presented once: all misses.
    let step = (bulk.len() / samples).max(1);
    let lookups_before = counting.key_lookups();
    let mut ns: Vec<u64> = rt.block_on(async {
        let mut out = Vec::with_capacity(samples);
        for secret in bulk.iter().step_by(step).take(samples) {
            let t = Instant::now();
            let r = auth.authenticate_key(black_box(secret), &c).await;
            out.push(t.elapsed().as_nanos() as u64);
            assert!(r.is_ok_and(|v| v.is_granted()), "a seeded key must be valid");
        }
        out
    });
    assert_eq!(counting.key_lookups() - lookups_before, ns.len() as u64, "every sample must be a store lookup");
    ns.sort_unstable();
    let pct = |p: f64| ns[((ns.len() as f64 * p).ceil() as usize).clamp(1, ns.len()) - 1] as f64 / 1000.0;
    println!(
        "authenticator/cache_miss_sqlite_{}_keys: {} single misses: p50 {:.1} µs, p90 {:.1} µs, p99 {:.1} µs, max {:.1} µs",
        bulk.len(),
        ns.len(),
        pct(0.50),
        pct(0.90),
        pct(0.99),
        pct(1.0)
    );
}

fn benches(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let n: u64 = std::env::var("KEYGATE_BENCH_KEYS").ok().and_then(|v| v.parse().ok()).unwrap_or(1_000_000);
    let fx = fixture(&rt, n);
    let counting = Arc::new(CountingStore::new(Arc::clone(&fx.store), Default::default()));
    let auth = authenticator(Arc::clone(&counting) as Arc<dyn Store>);
    let f = format();
    let context = ctx();

    // Offline refusals first, on a fresh counter: they must make no store call at all.
    let malformed = "kg_org_this-is-not-a-key";
    let bad = bad_checksum(&fx.hit);
    assert!(f.parse(&bad).is_err(), "the altered key must fail its checksum");
    let mut g = c.benchmark_group("authenticator");
    g.bench_function("malformed", |b| b.to_async(&rt).iter(|| auth.authenticate_key(black_box(malformed), &context)));
    g.bench_function("bad_checksum", |b| b.to_async(&rt).iter(|| auth.authenticate_key(black_box(&bad), &context)));
    let offline_calls = counting.calls();
    println!("store calls made by malformed and bad-checksum credentials: {offline_calls}");
    assert_eq!(offline_calls, 0, "offline refusals must not touch storage");

    // Warm the cache for the found keys, then measure hits (no store call expected either).
    rt.block_on(async {
        assert!(auth.authenticate_key(&fx.hit, &context).await.is_ok_and(|v| v.is_granted()));
        assert!(auth.authenticate_key(&fx.limited, &context).await.is_ok_and(|v| v.is_granted()));
        // A refusal is a verdict; `Err` would mean no decision could be made.
        assert!(auth.authenticate_key(&fx.revoked, &context).await.is_ok_and(|v| !v.is_granted()));
    });
    let unknown = f.generate(CredentialKind::OrgKey);
    let unknown = unknown.secret.expose().to_owned();
    rt.block_on(async { assert!(auth.authenticate_key(&unknown, &context).await.is_ok_and(|v| !v.is_granted())) });
    let warm_calls = counting.calls();
    g.bench_function("cache_hit", |b| b.to_async(&rt).iter(|| auth.authenticate_key(black_box(&fx.hit), &context)));
    g.bench_function("cache_hit_rate_limited_key", |b| {
        b.to_async(&rt).iter(|| auth.authenticate_key(black_box(&fx.limited), &context))
    });
    g.bench_function("revoked", |b| b.to_async(&rt).iter(|| auth.authenticate_key(black_box(&fx.revoked), &context)));
    g.bench_function("unknown_negative_cache", |b| {
        b.to_async(&rt).iter(|| auth.authenticate_key(black_box(&unknown), &context))
    });
    println!("store calls made by cached hits, revoked and unknown keys: {}", counting.calls() - warm_calls);
    assert_eq!(counting.calls(), warm_calls, "cached decisions must not touch storage");

    // Misses: every iteration presents a key this authenticator has not cached yet.
    let miss_auth = authenticator(Arc::clone(&counting) as Arc<dyn Store>);
    let mut next = 0usize;
    g.bench_function(format!("cache_miss_sqlite_{n}_keys"), |b| {
        b.to_async(&rt).iter_custom(|iters| {
            let start_at = next;
            next += iters as usize;
            let (auth, bulk, context) = (&miss_auth, &fx.bulk, &context);
            async move {
                let t = Instant::now();
                for i in 0..iters as usize {
                    // Wrapping round would turn misses into hits: stride through a large space.
                    let secret = &bulk[(start_at + i).wrapping_mul(7919) % bulk.len()];
                    let _ = black_box(auth.authenticate_key(secret, context).await);
                }
                t.elapsed()
            }
        })
    });
    g.finish();
    println!("key lookups made by the miss benchmark: {} (iterations: {next})", counting.key_lookups());
    miss_percentiles(&rt, &counting, &fx.bulk, 5_000.min(fx.bulk.len()));

    let mut g = c.benchmark_group("credential");
    g.bench_function("generate_org_key", |b| b.iter(|| f.generate(black_box(CredentialKind::OrgKey))));
    g.bench_function("digest_sha256", |b| b.iter(|| Digest::of(black_box(&fx.hit))));
    g.bench_function("parse_valid", |b| b.iter(|| f.parse(black_box(&fx.hit))));
    g.bench_function("parse_bad_checksum", |b| b.iter(|| f.parse(black_box(&bad))));
    g.finish();
}

fn config() -> Criterion {
    // Short runs: the whole `cargo bench` stays within a few minutes on 2 shared cores.
    Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(30)
        .configure_from_args()
}

criterion_group! { name = authenticator_benches; config = config(); targets = benches }
criterion_main!(authenticator_benches);
