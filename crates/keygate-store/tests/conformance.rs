//! One behaviour, two backends: every test of the suite runs against SQLite (a fresh file) and
//! PostgreSQL (a fresh database, when `KEYGATE_TEST_POSTGRES_URL` is set, e.g.
//! `postgres://postgres@127.0.0.1:5432/test`). The suite only sees `Arc<dyn Store>`.
//!
//! `cargo test -p keygate-store` runs `sqlite::*` and `postgres::*`; without the variable the
//! PostgreSQL half prints a loud SKIPPED line and passes.
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

#[path = "conformance/audit.rs"]
mod audit;
#[path = "conformance/harness.rs"]
mod harness;
#[path = "conformance/identity.rs"]
mod identity;
#[path = "conformance/invalidations.rs"]
mod invalidations;
#[path = "conformance/keys.rs"]
mod keys;
#[path = "conformance/limits.rs"]
mod limits;
#[path = "conformance/sign_in.rs"]
mod sign_in;
#[path = "conformance/usage.rs"]
mod usage;
#[path = "conformance/usage_outcomes.rs"]
mod usage_outcomes;

/// Generates `sqlite::<name>` and `postgres::<name>` for each suite function `module::name`.
macro_rules! conformance {
    ($($module:ident :: $name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    crate::harness::run_sqlite(crate::$module::$name).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    crate::harness::run_postgres(crate::$module::$name).await;
                }
            )*
        }
    };
}

conformance! {
    identity::register_and_look_up,
    identity::email_and_domain_conflicts,
    identity::soft_delete_hides_everything,
    identity::account_update_plan_and_listing,
    identity::membership_rules,
    identity::last_owner_rule_holds_under_concurrency,
    identity::members_page_without_gaps,
    identity::roles,
    sign_in::sessions_and_password_change,
    sign_in::login_throttle_counters,
    audit::audit_chain_hashes_and_pages,
    audit::concurrent_appends_keep_the_chain,
    keys::keys_create_look_up_and_page,
    keys::key_status_filters_follow_api_key_status,
    keys::key_update_revoke_roll,
    keys::a_key_is_rolled_once_even_under_concurrency,
    keys::a_roll_hands_over_credits_and_never_refills_them,
    keys::key_limit,
    keys::key_limit_holds_under_concurrency,
    usage::consume_usage_is_exact_under_concurrency,
    usage::record_usage_from_two_nodes_adds_up,
    usage::key_auth_joins,
    usage_outcomes::usage_is_counted_by_outcome_per_key_and_account,
    usage_outcomes::old_usage_hours_are_pruned_in_bounded_batches,
    invalidations::invalidation_outbox,
    limits::credits_refill_at_each_period_boundary_exactly_once,
    limits::named_limits_and_refill_are_kept_patched_and_rolled,
    limits::account_limit_overrides_are_set_and_cleared,
}

// ---- connecting (backend-specific, outside the suite) ----

#[tokio::test]
async fn sqlite_in_memory_works_on_one_connection() {
    let s = keygate_store::open("sqlite::memory:").await.unwrap();
    let o = harness::register(&s, "mem@example.com", None).await;
    assert_eq!(s.user_by_id(&o.user.id).await.unwrap(), Some(o.user));
    assert_eq!(harness::verify_chain(&s, &o.account.id).await, 1);
}

#[tokio::test]
async fn sqlite_file_is_created_and_reopened_with_its_data() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite:{}", dir.path().join("sub.db").display());
    let o = {
        let s = keygate_store::open(&url).await.unwrap();
        harness::register(&s, "file@example.com", None).await
    };
    let again = keygate_store::open(&url).await.unwrap();
    assert_eq!(again.user_by_email("file@example.com").await.unwrap(), Some(o.user));
}

#[tokio::test]
async fn unknown_scheme_and_unreachable_database() {
    let err = keygate_store::SqlStore::connect("mysql://localhost/x").await.err();
    assert!(matches!(err, Some(keygate_store::StoreError::Other(_))), "{err:?}");
    let err = keygate_store::SqlStore::connect("postgres://postgres@127.0.0.1:1/none").await.err();
    assert!(matches!(err, Some(keygate_store::StoreError::Unavailable(_))), "{err:?}");
}
