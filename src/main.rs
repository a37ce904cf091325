//! The `switchboard` command: wiring only. See `lib.rs` for the layout.

use std::io::BufRead;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context};
use clap::{Args, Parser, Subcommand};

use switchboard::config::{Config, Overrides};
use switchboard::ivr::{self, CheckEnv, PromptIndex, Severity};
use switchboard::runtime::offline::OfflineServices;

#[derive(Parser)]
#[command(
    name = "switchboard",
    version,
    about = "Voice and IVR gateway for contact centres"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Args, Clone, Debug, Default)]
struct Common {
    /// Server configuration file (YAML); without it the embedded defaults apply
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    /// Flows directory (default ivr-flows/)
    #[arg(long, global = true)]
    flows: Option<PathBuf>,
    /// Prompts directory (default sounds/)
    #[arg(long, global = true)]
    sounds: Option<PathBuf>,
    /// Accounts CSV for PIN steps (default accounts.csv beside the flows)
    #[arg(long, global = true)]
    accounts: Option<PathBuf>,
    /// Data directory: SQLite database, recordings (default ./data)
    #[arg(long, global = true)]
    data: Option<PathBuf>,
    /// Call record store: postgres://user:pass@host/db, sqlite:PATH or a path (default
    /// DATA/switchboard.db)
    #[arg(long, global = true)]
    database: Option<switchboard::cdr::DatabaseUrl>,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the server
    Run {
        #[command(flatten)]
        common: Common,
        /// SIP listen address (UDP and TCP), default 127.0.0.1:5060
        #[arg(long)]
        sip: Option<String>,
        /// HTTP listen address, default 127.0.0.1:8080
        #[arg(long)]
        http: Option<String>,
        /// RTP port range, default 20000-20999
        #[arg(long = "rtp-ports")]
        rtp_ports: Option<String>,
    },
    /// Validate flows, config and accounts, and run the flows' tests
    Check {
        #[command(flatten)]
        common: Common,
        /// Flows directory to check (same as --flows)
        dir: Option<PathBuf>,
    },
    /// Walk a flow without a phone
    Simulate {
        #[command(flatten)]
        common: Common,
        /// Flow name (or one of its numbers)
        flow: String,
        /// The caller's number
        #[arg(long)]
        caller: String,
        /// When the call happens (RFC 3339, e.g. 2026-11-23T10:00:00-03:00); default now
        #[arg(long)]
        at: Option<String>,
        /// What the caller types, one argument per input step, e.g. --input 4321# 2
        #[arg(long, num_args = 0..)]
        input: Vec<String>,
    },
    /// Read a PIN on stdin and print the hash to put in the accounts file
    PinHash,
    /// Read an agent's password on stdin and print the hash for the config's `agents:`
    PasswordHash,
    /// Read an agent's SIP phone password on stdin and print the `ha1` for their `sip:` entry
    SipHa1 {
        /// The user the phone registers as
        #[arg(long)]
        user: String,
        /// Must match the config's `sip.realm`
        #[arg(long, default_value = "switchboard")]
        realm: String,
    },
    /// Report figures per interval, queue and agent, from the call records (see README)
    Report {
        #[command(flatten)]
        common: Common,
        /// Start (RFC 3339); default today 00:00 UTC
        #[arg(long)]
        from: Option<String>,
        /// End (RFC 3339); default now
        #[arg(long)]
        to: Option<String>,
        /// 15m, 1h or 1d
        #[arg(long)]
        interval: Option<String>,
        #[arg(long)]
        queue: Option<String>,
        #[arg(long)]
        agent: Option<String>,
        #[arg(long)]
        dialed: Option<String>,
        /// Only calls to numbers of this country (ISO 3166 alpha-2, e.g. BR)
        #[arg(long)]
        country: Option<String>,
        /// Interval edges in local time, minutes east of UTC (-180 for São Paulo)
        #[arg(long = "tz-offset", allow_hyphen_values = true)]
        tz_offset: Option<i32>,
        /// table (default), csv or json
        #[arg(long)]
        format: Option<String>,
    },
}

fn overrides(c: &Common) -> Overrides {
    Overrides {
        data: c.data.clone(),
        flows: c.flows.clone(),
        sounds: c.sounds.clone(),
        accounts: c.accounts.clone(),
        database: c.database.clone(),
        ..Overrides::default()
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Cmd::Run {
            common,
            sip,
            http,
            rtp_ports,
        } => run(common, sip, http, rtp_ports),
        Cmd::Check { common, dir } => check(common, dir),
        Cmd::Simulate {
            common,
            flow,
            caller,
            at,
            input,
        } => simulate(common, flow, caller, at, input),
        Cmd::PinHash => pin_hash(),
        Cmd::PasswordHash => password_hash(),
        Cmd::SipHa1 { user, realm } => sip_ha1(&user, &realm),
        Cmd::Report {
            common,
            from,
            to,
            interval,
            queue,
            agent,
            dialed,
            country,
            tz_offset,
            format,
        } => report(
            common, from, to, interval, queue, agent, dialed, country, tz_offset, format,
        ),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(
    common: Common,
    sip: Option<String>,
    http: Option<String>,
    rtp: Option<String>,
) -> anyhow::Result<ExitCode> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let mut ov = overrides(&common);
    ov.sip = sip;
    ov.http = http;
    ov.rtp_ports = rtp;
    let config = Config::load(config_file(common.config.as_deref()).as_deref(), &ov)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    rt.block_on(async move {
        let drain = config.drain_timeout;
        let running = switchboard::runtime::start(config).await?;
        shutdown_signal().await;
        tracing::info!("stopping: draining calls, then flushing call records");
        running.drain(drain).await;
        tracing::info!("stopped");
        Ok::<_, anyhow::Error>(())
    })?;
    Ok(ExitCode::SUCCESS)
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

fn load_accounts(config: &Config) -> anyhow::Result<switchboard::auth::Accounts> {
    if config.accounts.exists() {
        Ok(switchboard::auth::Accounts::load_csv(&config.accounts)?)
    } else {
        Ok(switchboard::auth::Accounts::default())
    }
}

fn check(common: Common, dir: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    let mut ov = overrides(&common);
    if let Some(d) = dir {
        ov.flows = Some(d);
    }
    let config = Config::load(config_file(common.config.as_deref()).as_deref(), &ov)?;
    let mut errors = 0usize;
    let mut warnings = 0usize;
    let accounts = match load_accounts(&config) {
        Ok(a) => a,
        Err(e) => {
            println!("{e}");
            errors += 1;
            switchboard::auth::Accounts::default()
        }
    };
    let env = CheckEnv {
        sounds_dir: config.sounds_dir.clone(),
        queues: config.queue_infos(),
        trunk: Some(config.trunk.is_some()),
    };
    let (set, diags) = ivr::load_dir(&config.flows_dir, &env);
    for d in &diags {
        println!("{d}");
        match d.severity {
            Severity::Error => errors += 1,
            _ => warnings += 1,
        }
    }
    let prompts = std::sync::Arc::new(PromptIndex::scan(&config.sounds_dir));
    let max_failures = config.lockout_max_failures;
    let results = ivr::run_tests(&set, &prompts, &mut || {
        Box::new(OfflineServices::new(accounts.clone(), max_failures, false))
    });
    let mut passed = 0usize;
    for r in &results {
        match &r.failure {
            None => passed += 1,
            Some(d) => {
                println!("{d}");
                errors += 1;
            }
        }
    }
    println!(
        "{} flow(s), {} test(s) passed, {} error(s), {} warning(s)",
        set.flows().count(),
        passed,
        errors,
        warnings
    );
    Ok(if errors == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn simulate(
    common: Common,
    flow: String,
    caller: String,
    at: Option<String>,
    input: Vec<String>,
) -> anyhow::Result<ExitCode> {
    let config = Config::load(
        config_file(common.config.as_deref()).as_deref(),
        &overrides(&common),
    )?;
    let env = CheckEnv {
        sounds_dir: config.sounds_dir.clone(),
        queues: config.queue_infos(),
        trunk: Some(config.trunk.is_some()),
    };
    let (set, diags) = ivr::load_dir(&config.flows_dir, &env);
    for d in diags.iter().filter(|d| d.severity == Severity::Error) {
        eprintln!("{d}");
    }
    let Some(f) = set.get(&flow).or_else(|| set.by_number(&flow)).cloned() else {
        bail!(
            "no flow named or numbered `{flow}` in {} (flows: {})",
            config.flows_dir.display(),
            set.flows()
                .map(|f| f.name.clone())
                .collect::<Vec<_>>()
                .join(", ")
        );
    };
    let at = match at {
        Some(s) => chrono::DateTime::parse_from_rfc3339(&s).with_context(|| {
            format!("--at `{s}` is not an RFC 3339 time like 2026-11-23T10:00:00-03:00")
        })?,
        None => chrono::Utc::now().fixed_offset(),
    };
    let prompts = std::sync::Arc::new(PromptIndex::scan(&config.sounds_dir));
    let mut services =
        OfflineServices::new(load_accounts(&config)?, config.lockout_max_failures, true);
    let report = ivr::simulate(f, prompts, &caller, at, &input, &mut services);
    print!("{report}");
    Ok(ExitCode::SUCCESS)
}

fn password_hash() -> anyhow::Result<ExitCode> {
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .context("reading the password from stdin")?;
    let pw = line.trim_end_matches(['\r', '\n']);
    let hash = switchboard::auth::hash_password(pw)
        .map_err(|_| anyhow::anyhow!("a password is 8 to 256 characters"))?;
    println!("{hash}");
    Ok(ExitCode::SUCCESS)
}

fn sip_ha1(user: &str, realm: &str) -> anyhow::Result<ExitCode> {
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .context("reading the password from stdin")?;
    let pw = line.trim_end_matches(['\r', '\n']);
    if pw.len() < 8 {
        anyhow::bail!("a SIP password is at least 8 characters");
    }
    println!("{}", switchboard::sip::registrar::ha1(user, realm, pw));
    Ok(ExitCode::SUCCESS)
}

/// `--config FILE`, or `./switchboard.yaml` when it exists (the shipped demo queues and agents),
/// or nothing: the embedded defaults.
fn config_file(given: Option<&std::path::Path>) -> Option<PathBuf> {
    match given {
        Some(p) => Some(p.to_path_buf()),
        None => {
            let p = PathBuf::from("switchboard.yaml");
            p.is_file().then_some(p)
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn report(
    common: Common,
    from: Option<String>,
    to: Option<String>,
    interval: Option<String>,
    queue: Option<String>,
    agent: Option<String>,
    dialed: Option<String>,
    country: Option<String>,
    tz_offset: Option<i32>,
    format: Option<String>,
) -> anyhow::Result<ExitCode> {
    let config = Config::load(
        config_file(common.config.as_deref()).as_deref(),
        &overrides(&common),
    )?;
    let q = switchboard::http::report_query(
        from.as_deref(),
        to.as_deref(),
        interval.as_deref(),
        queue,
        agent,
        dialed,
        country,
        tz_offset,
    )
    .map_err(|m| anyhow::anyhow!(m))?;
    let db = config.db_path();
    if config.database.is_none() && !db.exists() {
        bail!("no call records at {} (is --data right?)", db.display());
    }
    let store = switchboard::cdr::open_store(config.database.as_ref(), &db, "report")?;
    let records = store.for_report(q.from, q.to)?;
    let states = store.agent_states(q.from, q.to)?;
    let r = switchboard::cdr::report::compute(&records, &states, &q, &config.queue_targets());
    match format.as_deref().unwrap_or("table") {
        "table" => print!("{}", switchboard::cdr::report::to_table(&r)),
        "csv" => print!("{}", switchboard::cdr::report::to_csv(&r)),
        "json" => println!("{}", serde_json::to_string_pretty(&r)?),
        other => bail!("--format {other}: use table, csv or json"),
    }
    Ok(ExitCode::SUCCESS)
}

fn pin_hash() -> anyhow::Result<ExitCode> {
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .context("reading the PIN from stdin")?;
    let pin = line.trim_end_matches(['\r', '\n']);
    let hash = switchboard::auth::hash_pin(pin)?;
    println!("{hash}");
    Ok(ExitCode::SUCCESS)
}
