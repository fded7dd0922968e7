//! `keygate admin …`: the operator's tasks straight against the configured database, through
//! the same store calls (and audit entries, actor `operator`) the server makes. Meant for a
//! shell on the host: it needs the database, not the operator token.
//!
//! Running servers learn of a change at once: PostgreSQL nodes through `LISTEN/NOTIFY`, a lone
//! SQLite server through the invalidation outbox it polls every 250 ms.

use std::io::Read as _;
use std::sync::Arc;

use anyhow::{Context as _, anyhow, bail};
use chrono::Utc;
use clap::Subcommand;
use keygate_core::id::{IdKind, new_id};
use keygate_core::{Authority, CredentialKind, KeyFormat, ScopeSet};
use keygate_server::Settings;
use keygate_server::auth::Invalidation;
use keygate_server::auth::invalidation::InvalidationBus as _;
use keygate_server::cluster;
use keygate_server::plans::Plans;
use keygate_store::{Account, Actor, ActorType, KeyClass, NewAudit, NewKey, PageRequest, Store, User};
use secrecy::SecretString;
use serde_json::json;

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

fn operator() -> Actor {
    Actor { kind: ActorType::Operator, user_id: None, key_id: None }
}

fn entry(account_id: &str, action: &str, target: (&str, &str), details: serde_json::Value) -> NewAudit {
    NewAudit {
        account_id: account_id.to_owned(),
        actor: operator(),
        action: action.to_owned(),
        target_type: target.0.to_owned(),
        target_id: target.1.to_owned(),
        ip: None,
        details,
    }
}

pub async fn run(settings: Settings, command: AdminCommand) -> Result<(), Failure> {
    let store = keygate_store::open_with(&settings.database_url, &settings.database.pool_config()).await.with_context(
        || format!("cannot open the database {}", keygate_server::config::redact_url(&settings.database_url)),
    )?;
    match command {
        AdminCommand::Accounts { command: AccountsCommand::List } => list_accounts(&store).await?,
        AdminCommand::Accounts { command: AccountsCommand::SetPlan { account_id, plan } } => {
            set_plan(&settings, &store, &account_id, &plan).await?
        }
        AdminCommand::Users { command: UsersCommand::Create { email, name, password_stdin } } => {
            create_user(&settings, &store, &email, &name, password_stdin).await?
        }
        AdminCommand::Keys { command: KeysCommand::Mint { account_id, name, class, user_id, scopes, authority } } => {
            let req = MintRequest { account_id, name, class, user_id, scopes, authority };
            mint_key(&settings, &store, req).await?
        }
        AdminCommand::Keys { command: KeysCommand::Revoke { account_id, key } } => {
            revoke_key(&settings, &store, &account_id, &key).await?
        }
    }
    Ok(())
}

async fn list_accounts(store: &Arc<dyn Store>) -> anyhow::Result<()> {
    let mut cursor = None;
    println!("{:<26} {:<10} NAME", "ID", "PLAN");
    loop {
        let page = store.list_accounts(&PageRequest { limit: 100, cursor }).await?;
        for a in &page.items {
            println!("{:<26} {:<10} {}", a.id, a.plan, a.name);
        }
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => return Ok(()),
        }
    }
}

async fn set_plan(settings: &Settings, store: &Arc<dyn Store>, account_id: &str, plan: &str) -> anyhow::Result<()> {
    if !settings.plans.contains_key(plan) {
        let known = settings.plans.keys().cloned().collect::<Vec<_>>().join(", ");
        bail!("no plan named `{plan}` in the configuration (known: {known})");
    }
    let before = store.account_by_id(account_id).await?.ok_or_else(|| anyhow!("no account {account_id}"))?;
    let audit =
        entry(account_id, "account.plan_changed", ("account", account_id), json!({ "from": before.plan, "to": plan }));
    let account = store.set_plan(account_id, plan, vec![audit]).await?;
    notify(settings, store, Invalidation::Account(account_id.to_owned())).await;
    println!("{} is now on plan {}", account.id, account.plan);
    Ok(())
}

async fn create_user(
    settings: &Settings,
    store: &Arc<dyn Store>,
    email: &str,
    name: &str,
    from_stdin: bool,
) -> anyhow::Result<()> {
    let email = keygate_core::validate::Email::parse(email).map_err(|e| anyhow!("--email: {e}"))?;
    let name = keygate_core::validate::check_name(name).map_err(|e| anyhow!("--name: {e}"))?;
    let (password, generated) = if from_stdin {
        let mut s = String::new();
        std::io::stdin().read_to_string(&mut s).context("cannot read the password from stdin")?;
        (s.trim_end_matches(['\r', '\n']).to_owned(), false)
    } else {
        (keygate_core::base62::random(24), true)
    };
    keygate_core::validate::check_password(&password, settings.signup.min_password_chars)
        .map_err(|e| anyhow!("password: {e}"))?;
    if store.user_by_email(email.as_str()).await?.is_some() {
        bail!("a user with the email {} already exists", email.as_str());
    }
    let passwords =
        keygate_server::password::Passwords::new().map_err(|e| anyhow!("password hasher: {}", e.message))?;
    let password_hash =
        passwords.hash(&SecretString::from(password.clone())).await.map_err(|e| anyhow!("{}", e.message))?;
    let now = Utc::now();
    let plans = Plans::new(settings.plans.clone());
    let plan = settings.signup.default_plan.clone();
    let user = User {
        id: new_id(IdKind::User),
        email: email.as_str().to_owned(),
        name: name.clone(),
        password_hash,
        created_at: now,
    };
    // No company domain: the operator may create several users of one company, each with an
    // account; members can be joined later through the API.
    let account = Account {
        id: new_id(IdKind::Account),
        name,
        url: None,
        domain: None,
        trial_ends_at: plans.trial_end(&plan, now),
        plan,
        created_at: now,
    };
    let audit =
        entry(&account.id, "user.registered", ("user", &user.id), json!({ "email": user.email, "by": "operator" }));
    let (user_id, account_id) = (user.id.clone(), account.id.clone());
    store.register(user, account, vec![audit]).await?;
    println!("user: {user_id}");
    println!("account: {account_id}");
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

async fn mint_key(settings: &Settings, store: &Arc<dyn Store>, req: MintRequest) -> anyhow::Result<()> {
    let account =
        store.account_by_id(&req.account_id).await?.ok_or_else(|| anyhow!("no account {}", req.account_id))?;
    let class = KeyClass::parse(&req.class).ok_or_else(|| anyhow!("--class must be `user` or `org`"))?;
    let authority =
        Authority::parse(&req.authority).ok_or_else(|| anyhow!("--authority must be user, administrator or owner"))?;
    let name = keygate_core::validate::check_name(&req.name).map_err(|e| anyhow!("--name: {e}"))?;
    let scopes = ScopeSet::parse_all(req.scopes.split(',').map(str::trim).filter(|s| !s.is_empty()))
        .map_err(|e| anyhow!("--scopes: {e}"))?;
    if scopes.is_empty() {
        bail!("--scopes: name at least one scope");
    }
    let user_id = match class {
        KeyClass::Org => None,
        KeyClass::User => Some(key_user(store, &account, req.user_id.as_deref(), authority).await?),
    };
    let format = KeyFormat::new(&settings.keys.user_prefix, &settings.keys.org_prefix, &settings.sessions.prefix)
        .map_err(|e| anyhow!("{e}"))?;
    let generated = format.generate(match class {
        KeyClass::User => CredentialKind::UserKey,
        KeyClass::Org => CredentialKind::OrgKey,
    });
    let now = Utc::now();
    let new = NewKey {
        id: new_id(IdKind::Key),
        digest: generated.digest.to_hex(),
        key_part: generated.key_part.clone(),
        class,
        name,
        account_id: account.id.clone(),
        user_id,
        authority,
        scopes: scopes.iter().map(ToString::to_string).collect(),
        role_id: None,
        created_at: now,
        created_by: "operator".into(),
        expires_at: None,
        starts_at: None,
        staged: false,
        usage_limit: None,
        rate_limit: None,
        ip_allowlist: Vec::new(),
        metadata: json!({}),
    };
    let audit = entry(
        &account.id,
        "key.created",
        ("key", &new.id),
        json!({ "name": new.name, "class": class.as_str(), "authority": authority.as_str(), "scopes": new.scopes, "key_part": new.key_part }),
    );
    let max_keys = Plans::new(settings.plans.clone()).access(&account, now).max_keys;
    let key = store.create_key(new, max_keys, vec![audit]).await?;
    println!("id: {}", key.id);
    println!("key_part: {}", key.key_part);
    println!("key: {}", generated.secret.expose());
    eprintln!("(the key is shown once; it is stored only as a SHA-256 digest)");
    Ok(())
}

/// The user a user key acts for: `--user` (must be a member whose authority covers the key's),
/// else the account's first owner.
async fn key_user(
    store: &Arc<dyn Store>,
    account: &Account,
    user_id: Option<&str>,
    authority: Authority,
) -> anyhow::Result<String> {
    let id = match user_id {
        Some(u) => u.to_owned(),
        None => {
            let members = store.list_members(&account.id, &PageRequest { limit: 100, cursor: None }).await?;
            let owner = members.items.iter().filter(|m| m.authority == Authority::Owner).min_by_key(|m| m.created_at);
            owner.map(|m| m.user_id.clone()).ok_or_else(|| anyhow!("the account has no owner: pass --user"))?
        }
    };
    let membership =
        store.membership(&account.id, &id).await?.ok_or_else(|| anyhow!("{id} is not a member of {}", account.id))?;
    if membership.authority < authority {
        bail!("--authority {} exceeds the user's authority {}", authority.as_str(), membership.authority.as_str());
    }
    Ok(id)
}

async fn revoke_key(settings: &Settings, store: &Arc<dyn Store>, account_id: &str, handle: &str) -> anyhow::Result<()> {
    let key = store
        .key_by_handle(account_id, handle)
        .await?
        .ok_or_else(|| anyhow!("no key {handle} in account {account_id}"))?;
    let audit = entry(account_id, "key.revoked", ("key", &key.id), json!({ "key_part": key.key_part }));
    let key = store.revoke_key(account_id, &key.id, Utc::now(), vec![audit]).await?;
    notify(settings, store, Invalidation::Account(account_id.to_owned())).await;
    println!("revoked: {} ({})", key.id, key.key_part);
    Ok(())
}

/// Tells running servers that cached decisions are stale: PostgreSQL nodes through NOTIFY, a
/// SQLite server through the outbox it polls (`cluster::outbox`). The change itself is
/// committed already; should this fail, servers catch up within `cache.ttl_seconds`.
async fn notify(settings: &Settings, store: &Arc<dyn Store>, inv: Invalidation) {
    let sent = if cluster::is_postgres(&settings.database_url) {
        match cluster::pg_bus::PgBus::new(&settings.database_url) {
            Ok(bus) => {
                bus.publish(&inv).await;
                Ok(())
            }
            Err(e) => Err(format!("{e:#}")),
        }
    } else {
        cluster::outbox::publish(store.as_ref(), &inv).await.map_err(|e| e.to_string())
    };
    if let Err(e) = sent {
        eprintln!("warning: running servers were not notified ({e}); they catch up within cache.ttl_seconds");
    }
}
