//! The login throttle's counters: one row per run of failures (an email's digest or a client
//! address) and one per address known to an email. Runs grow by an upsert that adds one in
//! place, so nodes failing the same subject at once never lose a count.

use super::SqlStore;
use super::rows::{from_millis, get, millis};
use crate::error::StoreResult;
use crate::model::*;

fn email_subject(email_key: &str) -> String {
    format!("e:{email_key}")
}

fn ip_subject(ip: &str) -> String {
    format!("ip:{ip}")
}

/// Marks the row that says the pair is known (never a subject: those start `e:` or `ip:`).
const KNOWN_PAIR: &str = "known";

/// One statement, so one round trip and one snapshot: both runs, and a row when the pair is known.
pub(crate) async fn failures(s: &SqlStore, email_key: &str, ip: &str) -> StoreResult<LoginFailures> {
    let (email, address) = (email_subject(email_key), ip_subject(ip));
    let rows = sqlx::query(
        "SELECT subject, count, last_at FROM login_failures WHERE subject IN ($1, $2) \
         UNION ALL \
         SELECT $3 AS subject, 0 AS count, 0 AS last_at FROM login_known WHERE email_key = $4 AND ip = $5",
    )
    .bind(&email)
    .bind(&address)
    .bind(KNOWN_PAIR)
    .bind(email_key)
    .bind(ip)
    .fetch_all(s.reader())
    .await?;
    let mut out = LoginFailures::default();
    for row in rows {
        let subject: String = get(&row, "subject")?;
        if subject == KNOWN_PAIR {
            out.known_pair = true;
            continue;
        }
        let run = FailureRun {
            count: u32::try_from(get::<i64>(&row, "count")?).unwrap_or(u32::MAX),
            last_at: from_millis(get(&row, "last_at")?)?,
        };
        if subject == email {
            out.email = Some(run);
        } else if subject == address {
            out.ip = Some(run);
        }
    }
    Ok(out)
}

pub(crate) async fn record_failure(s: &SqlStore, email_key: &str, ip: &str, at: Time) -> StoreResult<()> {
    let mut tx = s.begin().await?;
    for subject in [email_subject(email_key), ip_subject(ip)] {
        sqlx::query(
            "INSERT INTO login_failures (subject, count, last_at) VALUES ($1, 1, $2) \
             ON CONFLICT (subject) DO UPDATE SET count = login_failures.count + 1, last_at = $2",
        )
        .bind(subject)
        .bind(millis(at))
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(())
}

pub(crate) async fn record_success(s: &SqlStore, email_key: &str, ip: &str, at: Time) -> StoreResult<()> {
    let mut tx = s.begin().await?;
    sqlx::query("DELETE FROM login_failures WHERE subject = $1")
        .bind(email_subject(email_key))
        .execute(&mut *tx)
        .await?;
    sqlx::query(
        "INSERT INTO login_known (email_key, ip, seen_at) VALUES ($1, $2, $3) \
         ON CONFLICT (email_key, ip) DO UPDATE SET seen_at = $3",
    )
    .bind(email_key)
    .bind(ip)
    .bind(millis(at))
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(())
}

pub(crate) async fn prune(s: &SqlStore, runs_before: Time, pairs_before: Time) -> StoreResult<u64> {
    let mut tx = s.begin().await?;
    let runs = sqlx::query("DELETE FROM login_failures WHERE last_at < $1")
        .bind(millis(runs_before))
        .execute(&mut *tx)
        .await?
        .rows_affected();
    let pairs = sqlx::query("DELETE FROM login_known WHERE seen_at < $1")
        .bind(millis(pairs_before))
        .execute(&mut *tx)
        .await?
        .rows_affected();
    tx.commit().await?;
    Ok(runs + pairs)
}
