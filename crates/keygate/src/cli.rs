//! The command line: `serve`, `demo`, `migrate`, `config`, `admin`. Settings are layered
//! defaults → file → `KEYGATE_*` environment → flags. A bad configuration is a clear message
//! naming the key (and, for the file, the line) and exit code 2, never a panic.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand};
use keygate_server::Settings;

use crate::admin::AdminCommand;
use crate::logging::{self, LogFormat};

#[derive(Debug, Parser)]
#[command(name = "keygate", version, about = "Self-hostable authentication and API-key service.")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the server (management API, verify, gateway) until SIGTERM or ctrl-c.
    Serve(ServeArgs),
    /// The whole product at once: embedded SQLite, a sample upstream API, its gateway routes,
    /// a demo user, account and keys, and the curl lines to try.
    Demo(DemoArgs),
    /// Create or upgrade the database schema, then exit.
    Migrate(ConfigArg),
    /// Configuration helpers.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Operator tasks against the configured database.
    Admin(AdminArgs),
    /// Print a fresh verifier token (for callers of verify from outside `[verify]
    /// anonymous_from`) and the `sha256:` form of it to list in `[verify] tokens`.
    VerifierToken,
}

#[derive(Debug, Args)]
struct ConfigArg {
    /// Configuration file (TOML); every key is optional. See `keygate config default`.
    #[arg(long, short = 'c', value_name = "FILE")]
    config: Option<PathBuf>,
}

#[derive(Debug, Args)]
struct ServeArgs {
    #[command(flatten)]
    config: ConfigArg,
    /// Address to listen on (overrides `listen` and KEYGATE_LISTEN).
    #[arg(long, value_name = "ADDR")]
    listen: Option<String>,
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Address to listen on; `127.0.0.1:0` picks a free port.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8080")]
    pub listen: String,
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

#[derive(Debug, Subcommand)]
enum ConfigCommand {
    /// Print the commented default configuration.
    Default,
    /// Load a configuration (file, then KEYGATE_* environment) and report whether it is valid.
    Check(ConfigArg),
}

#[derive(Debug, Args)]
struct AdminArgs {
    #[arg(long, short = 'c', value_name = "FILE", global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: AdminCommand,
}

/// Why a command failed: a configuration problem (exit 2) or anything else (exit 1).
#[derive(Debug)]
pub enum Failure {
    Config(String),
    Runtime(anyhow::Error),
}

impl From<anyhow::Error> for Failure {
    fn from(e: anyhow::Error) -> Self {
        Failure::Runtime(e)
    }
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Config(m)) => {
            eprintln!("keygate: configuration error: {m}");
            ExitCode::from(2)
        }
        Err(Failure::Runtime(e)) => {
            eprintln!("keygate: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn run(command: Command) -> Result<(), Failure> {
    match command {
        Command::Serve(args) => {
            let settings = load_settings(args.config.config.as_deref(), args.listen.as_deref())?;
            logging::init(args.log_format, "info");
            runtime()?.block_on(serve(settings)).map_err(Failure::Runtime)
        }
        Command::Demo(args) => {
            args.listen.parse::<std::net::SocketAddr>().map_err(|_| {
                Failure::Config(format!("--listen: `{}` is not an address like 127.0.0.1:8080", args.listen))
            })?;
            logging::init(args.log_format, "warn");
            runtime()?.block_on(crate::demo::run(args)).map_err(Failure::Runtime)
        }
        Command::Migrate(args) => {
            let settings = load_settings(args.config.as_deref(), None)?;
            logging::init(LogFormat::Text, "info");
            runtime()?.block_on(async {
                keygate_store::open_with(&settings.database_url, &settings.database.pool_config()).await.with_context(
                    || {
                        format!(
                            "cannot open the database {}",
                            keygate_server::config::redact_url(&settings.database_url)
                        )
                    },
                )?;
                println!("database is up to date: {}", keygate_server::config::redact_url(&settings.database_url));
                Ok::<_, anyhow::Error>(())
            })?;
            Ok(())
        }
        Command::Config { command: ConfigCommand::Default } => {
            print!("{}", keygate_server::config::DEFAULT_CONFIG_TOML);
            Ok(())
        }
        Command::Config { command: ConfigCommand::Check(args) } => {
            let s = load_settings(args.config.as_deref(), None)?;
            println!("configuration is valid: listen {}, {} gateway route(s)", s.listen, s.gateway.routes.len());
            Ok(())
        }
        Command::VerifierToken => {
            let (token, digest) = keygate_server::auth::verifier::new_token();
            println!("verifier token: {}\nconfig entry: {digest}", token.expose());
            eprintln!(
                "Give the token to the backend that calls verify (Authorization: Bearer <token>); \
                 list the config entry under [verify] tokens. keygate keeps only the digest."
            );
            Ok(())
        }
        Command::Admin(args) => {
            let settings = load_settings(args.config.as_deref(), None)?;
            logging::init(LogFormat::Text, "warn");
            runtime()?.block_on(crate::admin::run(settings, args.command))
        }
    }
}

fn runtime() -> Result<tokio::runtime::Runtime, Failure> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
        .map_err(Failure::Runtime)
}

/// Defaults, `file`, `KEYGATE_*` from the environment, then the `--listen` flag.
pub fn load_settings(file: Option<&Path>, listen: Option<&str>) -> Result<Settings, Failure> {
    let mut settings = Settings::load(file, std::env::vars()).map_err(|e| Failure::Config(e.to_string()))?;
    if let Some(addr) = listen {
        settings.listen = addr.to_owned();
        settings.validate().map_err(|e| Failure::Config(format!("--listen: {e}")))?;
    }
    Ok(settings)
}

async fn serve(settings: Settings) -> anyhow::Result<()> {
    tracing::info!(settings = ?settings, "starting");
    let listeners = bind(&settings)?;
    let app = keygate_server::build(settings).await?;
    app.serve(listeners, keygate_server::shutdown_signal()).await?;
    Ok(())
}

/// The listening sockets of the serving threads, or why there are none.
pub fn bind(settings: &Settings) -> anyhow::Result<keygate_server::Listeners> {
    keygate_server::Listeners::for_settings(settings).with_context(|| format!("cannot listen on {}", settings.listen))
}
