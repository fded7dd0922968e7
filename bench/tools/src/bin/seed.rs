//! Bulk-inserts keys into a keygate SQLite file (see `keygate_bench::seed`).
//!
//! Usage: `seed DB_PATH ACCOUNT_ID COUNT SECRETS_OUT [RATE_LIMIT_JSON]`: appends each new
//! key's secret to SECRETS_OUT, one per line. Run it while keygate is stopped, or beside it
//! (SQLite's busy timeout queues the writers).
#![forbid(unsafe_code)]

use std::io::Write;

use anyhow::Context as _;
use keygate_bench::seed::{KeySpec, connect, insert_keys};
use keygate_core::KeyFormat;

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [db, account, count, out, rest @ ..] = args.as_slice() else {
        anyhow::bail!("usage: seed DB_PATH ACCOUNT_ID COUNT SECRETS_OUT [RATE_LIMIT_JSON]");
    };
    let count: u64 = count.parse().context("COUNT")?;
    let format = KeyFormat::new("kg_", "kg_org_", "kgs_").map_err(|e| anyhow::anyhow!("{e}"))?;
    let spec = KeySpec { account_id: account.clone(), revoked: false, rate_limit: rest.first().cloned() };
    let file =
        std::fs::OpenOptions::new().create(true).append(true).open(out).with_context(|| format!("open {out}"))?;
    let mut w = std::io::BufWriter::new(file);
    let started = std::time::Instant::now();
    let mut conn = connect(db).await?;
    let n = insert_keys(&mut conn, &format, &spec, count, |s| Ok(writeln!(w, "{s}")?)).await?;
    w.flush()?;
    eprintln!("seeded {n} keys in {:.1} s", started.elapsed().as_secs_f64());
    Ok(())
}
