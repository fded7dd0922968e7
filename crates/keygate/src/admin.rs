//! `keygate admin …`: the operator's tasks straight against the configured database, through
//! the server's own services (`keygate_server::service`): the same rules, the same audit
//! entries (actor `operator`) as the API. Meant for a shell on the host: it needs the
//! database, not the operator token. This file only parses flags and prints answers.
//!
//! Running servers learn of a change at once: PostgreSQL nodes through `LISTEN/NOTIFY`, a lone
//! SQLite server through the invalidation outbox it polls every 250 ms (`cluster::relay`).

use std::io::Read as _;

use anyhow::{Context as _, anyhow};
use clap::Subcommand;
use keygate_server::Settings;
use keygate_server::error::ApiError;
use keygate_server::service::{Services, identity, keys, operator};
use keygate_store::{KeyClass, PageRequest};
use secrecy::SecretString;

use crate::cli::Failure;

#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Accounts: list them, set their plan.
    Accounts {
        #[command(subcommand)]
        command: AccountsCommand,
    },
    /// Users: create one (with its default account, as sign-up does).
    Users {
        #[command(subcommand)]
        command: UsersCommand,
    },
    /// API keys: mint, revoke.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum AccountsCommand {
    /// Every account, newest first: id, plan, name.
    List,
    /// Put an account on one of the configured plans.
    SetPlan { account_id: String, plan: String },
    /// Override the plan's limits for one account (docs/api.md, "Plans and trials"), as
    /// `PATCH /v1/admin/accounts/{id}` `{overrides}` does.
    SetLimits {
        account_id: String,
        /// Live keys the account may hold.
        #[arg(long)]
        max_keys: Option<u32>,
        /// Account-wide quota: `REQUESTS/day` or `REQUESTS/month`.
        #[arg(long)]
        quota: Option<String>,
        /// An account-wide named limit, `name=minute,limit=100,window=60[,burst=N]`; repeat
        /// for several. Replaces the plan's whole list.
        #[arg(long = "rate-limit")]
        rate_limits: Vec<String>,
        /// Remove an override (the plan's applies again): `max-keys`, `quota` or `rate-limits`.
        #[arg(long)]
        unset: Vec<String>,
        /// Remove every override first.
        #[arg(long)]
        clear: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum UsersCommand {
    /// Create a user, owner of a new account named after them. The password is read from
    /// stdin with --password-stdin, otherwise generated and printed once.
    Create {
        #[arg(long)]
        email: String,
        #[arg(long)]
        name: String,
        #[arg(long)]
        password_stdin: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Mint a key; its secret is printed once.
    Mint {
        #[arg(long = "account")]
        account_id: String,
        #[arg(long)]
        name: String,
        /// `user` (acts for --user, default: the account's first owner) or `org`.
        #[arg(long, default_value = "user")]
        class: String,
        #[arg(long = "user")]
        user_id: Option<String>,
        /// Comma-separated scopes, e.g. `*:read` or `leads:create`.
        #[arg(long, default_value = "*:*")]
        scopes: String,
        #[arg(long, default_value = "user")]
        authority: String,
    },
    /// Revoke a key (by id or key_part) at once and for good.
    Revoke {
        #[arg(long = "account")]
        account_id: String,
        key: String,
    },
}

pub async fn run(settings: Settings, command: AdminCommand) -> Result<(), Failure> {
    let store = keygate_store::open_with(&settings.database_url, &settings.database.pool_config()).await.with_context(
        || format!("cannot open the database {}", keygate_server::config::redact_url(&settings.database_url)),
    )?;
    let svc = Services::standalone(&settings, store)?;
    match command {
        AdminCommand::Accounts { command: AccountsCommand::List } => list_accounts(&svc).await?,
        AdminCommand::Accounts { command: AccountsCommand::SetPlan { account_id, plan } } => {
            set_plan(&svc, &account_id, &plan).await?
        }
        AdminCommand::Accounts {
            command: AccountsCommand::SetLimits { account_id, max_keys, quota, rate_limits, unset, clear },
        } => {
            let o = overrides_from_flags(max_keys, quota.as_deref(), &rate_limits, &unset, clear)?;
            set_limits(&svc, &account_id, o).await?
        }
        AdminCommand::Users { command: UsersCommand::Create { email, name, password_stdin } } => {
            create_user(&svc, email, name, password_stdin).await?
        }
        AdminCommand::Keys { command: KeysCommand::Mint { account_id, name, class, user_id, scopes, authority } } => {
            let req = MintRequest { account_id, name, class, user_id, scopes, authority };
            mint_key(&svc, req).await?
        }
        AdminCommand::Keys { command: KeysCommand::Revoke { account_id, key } } => {
            revoke_key(&svc, &account_id, &key).await?
        }
    }
    Ok(())
}

/// A refusal in the shell's words: a field problem names its flag, a 404 says what is missing.
fn refused(e: ApiError, missing: impl FnOnce() -> String) -> anyhow::Error {
    if e.code == "not_found" {
        return anyhow!("{}", missing());
    }
    const FLAGS: &[&str] = &["email", "name", "class", "user", "scopes", "authority"];
    let fields: Vec<String> = e
        .field_problems()
        .map(|(field, message)| {
            let dashes = if FLAGS.contains(&field) { "--" } else { "" };
            format!("{dashes}{field}: {message}")
        })
        .collect();
    if fields.is_empty() { anyhow!("{}", e.message) } else { anyhow!("{}", fields.join("; ")) }
}

async fn list_accounts(svc: &Services) -> anyhow::Result<()> {
    let mut cursor = None;
    println!("{:<26} {:<10} NAME", "ID", "PLAN");
    loop {
        let page = operator::list_accounts(svc, &PageRequest { limit: 100, cursor })
            .await
            .map_err(|e| refused(e, String::new))?;
        for a in &page.items {
            println!("{:<26} {:<10} {}", a.id, a.plan, a.name);
        }
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => return Ok(()),
        }
    }
}

/// The flags of `set-limits` as the operator service's input.
fn overrides_from_flags(
    max_keys: Option<u32>,
    quota: Option<&str>,
    rate_limits: &[String],
    unset: &[String],
    clear: bool,
) -> anyhow::Result<operator::OverridesInput> {
    let mut o = operator::OverridesInput { clear, max_keys: max_keys.map(Some), ..Default::default() };
    if let Some(q) = quota {
        let (requests, period) =
            q.split_once('/').ok_or_else(|| anyhow!("--quota: give REQUESTS/day or REQUESTS/month"))?;
        let requests = requests.trim().parse().map_err(|_| anyhow!("--quota: `{requests}` is not a number"))?;
        let period = keygate_core::QuotaPeriod::parse(period.trim())
            .ok_or_else(|| anyhow!("--quota: the period is `day` or `month`"))?;
        o.quota = Some(Some(keygate_core::Quota { requests, period }));
    }
    if !rate_limits.is_empty() {
        o.rate_limits = Some(Some(rate_limits.iter().map(|r| named_limit(r)).collect::<anyhow::Result<_>>()?));
    }
    for u in unset {
        match u.as_str() {
            "max-keys" => o.max_keys = Some(None),
            "quota" => o.quota = Some(None),
            "rate-limits" => o.rate_limits = Some(None),
            other => return Err(anyhow!("--unset: `{other}` is not max-keys, quota or rate-limits")),
        }
    }
    Ok(o)
}

/// `name=minute,limit=100,window=60[,burst=N]`.
fn named_limit(flag: &str) -> anyhow::Result<keygate_core::NamedRateLimit> {
    let mut l = keygate_core::NamedRateLimit { name: String::new(), limit: 0, window_seconds: 0, burst: None };
    for part in flag.split(',') {
        let (k, v) = part.split_once('=').ok_or_else(|| anyhow!("--rate-limit: `{part}` is not key=value"))?;
        let number = || v.trim().parse::<u32>().map_err(|_| anyhow!("--rate-limit: {k} `{v}` is not a number"));
        match k.trim() {
            "name" => l.name = v.trim().to_owned(),
            "limit" => l.limit = number()?,
            "window" | "window_seconds" => l.window_seconds = number()?,
            "burst" => l.burst = Some(number()?),
            other => return Err(anyhow!("--rate-limit: unknown `{other}` (name, limit, window, burst)")),
        }
    }
    Ok(l)
}

async fn set_limits(svc: &Services, account_id: &str, o: operator::OverridesInput) -> anyhow::Result<()> {
    let input = operator::AccountLimitsInput { plan: None, overrides: Some(o) };
    let account = operator::set_limits(svc, None, account_id, input)
        .await
        .map_err(|e| refused(e, || format!("no account {account_id}")))?;
    let limits = operator::effective_limits(svc, &account);
    println!("{} on plan {}: effective limits {}", account.id, account.plan, serde_json::to_string(&limits)?);
    Ok(())
}

async fn set_plan(svc: &Services, account_id: &str, plan: &str) -> anyhow::Result<()> {
    let account = operator::set_plan(svc, None, account_id, plan)
        .await
        .map_err(|e| refused(e, || format!("no account {account_id}")))?;
    println!("{} is now on plan {}", account.id, account.plan);
    Ok(())
}

async fn create_user(svc: &Services, email: String, name: String, from_stdin: bool) -> anyhow::Result<()> {
    let (password, generated) = if from_stdin {
        let mut s = String::new();
        std::io::stdin().read_to_string(&mut s).context("cannot read the password from stdin")?;
        (s.trim_end_matches(['\r', '\n']).to_owned(), false)
    } else {
        (keygate_core::base62::random(24), true)
    };
    let input = identity::RegisterInput { email, password: SecretString::from(password.clone()), name, url: None };
    let (user, account) =
        identity::create_by_operator(svc, input).await.map_err(|e| refused(e, || "not found".to_owned()))?;
    println!("user: {}", user.id);
    println!("account: {}", account.id);
    if generated {
        println!("password: {password}");
        eprintln!("(the password is shown once; it is stored only as an argon2id hash)");
    }
    Ok(())
}

struct MintRequest {
    account_id: String,
    name: String,
    class: String,
    user_id: Option<String>,
    scopes: String,
    authority: String,
}

/// A user key acts for `--user` (a member whose authority covers the key's), else for the
/// account's first owner; an org key for nobody.
async fn mint_key(svc: &Services, req: MintRequest) -> anyhow::Result<()> {
    let account_id = req.account_id.as_str();
    let no_account = || format!("no account {account_id}");
    let class = KeyClass::parse(&req.class).ok_or_else(|| anyhow!("--class must be `user` or `org`"))?;
    let as_user = match (class, req.user_id) {
        (KeyClass::Org, _) => None,
        (KeyClass::User, Some(u)) => Some(u),
        (KeyClass::User, None) => Some(
            operator::first_owner(svc, account_id)
                .await
                .map_err(|e| refused(e, no_account))?
                .ok_or_else(|| anyhow!("the account has no owner: pass --user"))?,
        ),
    };
    let caller = operator::in_account(svc, account_id, as_user.as_deref()).await.map_err(|e| refused(e, no_account))?;
    let input = keys::MintInput {
        class: Some(req.class.clone()),
        name: req.name,
        authority: Some(req.authority.clone()),
        scopes: req.scopes.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned).collect(),
        ..keys::MintInput::default()
    };
    let minted = keys::mint(svc, &caller, None, input).await.map_err(|e| {
        if e.code == "insufficient_authority" {
            anyhow!("--authority {} exceeds the user's authority {}", req.authority, caller.authority.as_str())
        } else {
            refused(e, no_account)
        }
    })?;
    println!("id: {}", minted.key.id);
    println!("key_part: {}", minted.key.key_part);
    println!("key: {}", minted.secret.expose());
    eprintln!("(the key is shown once; it is stored only as a SHA-256 digest)");
    Ok(())
}

async fn revoke_key(svc: &Services, account_id: &str, handle: &str) -> anyhow::Result<()> {
    let caller = operator::in_account(svc, account_id, None)
        .await
        .map_err(|e| refused(e, || format!("no account {account_id}")))?;
    let key = keys::revoke(svc, &caller, None, handle)
        .await
        .map_err(|e| refused(e, || format!("no key {handle} in account {account_id}")))?;
    println!("revoked: {} ({})", key.id, key.key_part);
    Ok(())
}
